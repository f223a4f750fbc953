//! The path cache (issue 17) through a real, private sshd and the real
//! binaries: a push remembers the path in `$XDG_CACHE_HOME/vfer/paths`, the
//! next copy starts from it (and hands it to the far side), a pull records
//! what its receiver measured, `--no-path-cache` neither reads nor writes
//! the file, and a damaged file costs nothing but a normal start.

mod common;

use std::path::Path;
use std::process::{Command, Output};

const SEND: &str = env!("CARGO_BIN_EXE_vfer-send");
const RECV: &str = env!("CARGO_BIN_EXE_vfer-recv");

/// Runs `bin args` with the cache in `cache`; asserts success.
fn run(bin: &str, cache: &Path, args: &[&str]) -> Output {
    let out = Command::new(bin)
        .args(args)
        .env("XDG_CACHE_HOME", cache)
        .env_remove("SSH_CONNECTION")
        .env_remove("RUST_LOG")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{bin} {args:?}: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The cache's entries for 127.0.0.1: (rate, min RTT µs, loss, saved).
fn entries(cache: &Path) -> Vec<(u64, u64, f64, u64)> {
    let text = std::fs::read_to_string(cache.join("vfer/paths")).unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("127.0.0.1/127.0.0.1 "))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(w.len(), 5, "entry {l:?}");
            (
                w[1].parse().unwrap(),
                w[2].parse().unwrap(),
                w[3].parse().unwrap(),
                w[4].parse().unwrap(),
            )
        })
        .collect()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn path_cache_through_real_sshd() {
    let bin_dir = Path::new(SEND).parent().expect("bin dir");
    let Some(sshd) = common::sshd::Sshd::start(bin_dir) else {
        return;
    };
    let rsh = sshd.rsh();
    let cache = tempfile::tempdir().unwrap();
    let local = tempfile::tempdir().unwrap();
    let remote = tempfile::tempdir().unwrap();
    let data = common::pattern(20_000_000, 17);
    let src = local.path().join("f.bin");
    std::fs::write(&src, &data).unwrap();
    let src = src.to_str().unwrap();
    let dest = format!("127.0.0.1:{}/", remote.path().display());
    let pushed = remote.path().join("f.bin");

    // --no-path-cache: nothing read, nothing written.
    let o = run(
        SEND,
        cache.path(),
        &["-v", "--no-path-cache", "-e", &rsh, src, &dest],
    );
    assert!(!cache.path().join("vfer/paths").exists());
    assert!(!stderr(&o).contains("path cache"), "{}", stderr(&o));

    // A first push puts the file there; a pull records the path (what its
    // receiver measured, else its goodput; a push records its sender's
    // model only once that is past start-up, which a short copy over
    // loopback may never be).
    run(SEND, cache.path(), &["-q", "-e", &rsh, src, &dest]);
    assert!(
        std::fs::read(&pushed).unwrap() == data,
        "pushed file differs"
    );
    let back = local.path().join("back.bin");
    let from = format!("127.0.0.1:{}", pushed.display());
    run(
        RECV,
        cache.path(),
        &["-q", "-e", &rsh, &from, back.to_str().unwrap()],
    );
    assert!(std::fs::read(&back).unwrap() == data, "pulled file differs");
    let first = entries(cache.path());
    assert_eq!(first.len(), 1, "{first:?}");
    let (rate, rtt_us, loss, _) = first[0];
    assert!(rate > 0 && rtt_us > 0 && rtt_us < 1_000_000, "{first:?}");
    assert!((0.0..0.5).contains(&loss));

    // The next copy starts from it and tells the far side (its argv).
    let o = run(SEND, cache.path(), &["-v", "-e", &rsh, src, &dest]);
    let err = stderr(&o);
    assert!(err.contains("path cache: starting from"), "{err}");
    assert!(err.contains("--path-hint"), "{err}");
    assert!(
        std::fs::read(&pushed).unwrap() == data,
        "second push differs"
    );
    assert_eq!(entries(cache.path()).len(), 1, "one entry per path");

    // A damaged cache is no error: a normal start, and a good file after.
    std::fs::write(
        cache.path().join("vfer/paths"),
        b"\xff\x00 garbage\n127.0.0.1/127.0.0.1 x y z\n",
    )
    .unwrap();
    run(
        RECV,
        cache.path(),
        &["-q", "-e", &rsh, &from, back.to_str().unwrap()],
    );
    assert!(std::fs::read(&back).unwrap() == data);
}
