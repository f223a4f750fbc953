//! The real binaries through a real, private sshd: `vfer-send FILE
//! host:DIR/` (push) and `vfer-recv host:FILE DEST` (pull). The files
//! arrive intact and no server process is left behind.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

const SEND: &str = env!("CARGO_BIN_EXE_vfer-send");
const RECV: &str = env!("CARGO_BIN_EXE_vfer-recv");

fn run(bin: &str, args: &[&str]) {
    let out = Command::new(bin)
        .args(args)
        .env_remove("SSH_CONNECTION")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{bin} {args:?}: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn push_and_pull_files_through_real_sshd() {
    let bin_dir = Path::new(SEND).parent().expect("bin dir");
    let Some(sshd) = common::sshd::Sshd::start(bin_dir) else {
        return;
    };
    let rsh = sshd.rsh();
    let local = tempfile::tempdir().unwrap();
    let remote = tempfile::tempdir().unwrap();
    // Odd size, spaces in the name: quoting through ssh must hold.
    let data = common::pattern(3_000_017, 11);
    let src = local.path().join("big file.bin");
    std::fs::write(&src, &data).unwrap();

    let dest = format!("127.0.0.1:{}/", remote.path().display());
    run(SEND, &["-q", "-e", &rsh, src.to_str().unwrap(), &dest]);
    let pushed = remote.path().join("big file.bin");
    assert!(
        std::fs::read(&pushed).unwrap() == data,
        "pushed file differs"
    );

    let back = local.path().join("back.bin");
    let from = format!("127.0.0.1:{}", pushed.display());
    run(RECV, &["-q", "-e", &rsh, &from, back.to_str().unwrap()]);
    assert!(std::fs::read(&back).unwrap() == data, "pulled file differs");

    // Both remote servers ended with their sessions.
    for p in ["vfer-recv", "vfer-send"] {
        let left = common::wait_gone(
            &[p, "--server", remote.path().to_str().unwrap()],
            Duration::from_secs(10),
        );
        assert!(left.is_empty(), "{p} --server left running: {left:?}");
    }
}
