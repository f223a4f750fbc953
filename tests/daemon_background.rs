//! `vfer-recv --listen ... --daemon` (spiped without `-F`): the command
//! returns 0 once the daemon listens, the daemon (another process, named
//! in the pidfile) serves, and a stop signal ends it and removes the
//! pidfile; a daemon that cannot start makes the command fail.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SEND: &str = env!("CARGO_BIN_EXE_vfer-send");
const RECV: &str = env!("CARGO_BIN_EXE_vfer-recv");

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

#[test]
fn goes_to_the_background_once_listening() {
    let d = tempfile::tempdir().unwrap();
    let key = d.path().join("key");
    std::fs::write(&key, common::pattern(40, 6)).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let port = common::free_udp_port();
    let listen = format!("127.0.0.1:{port}");
    let pidfile = d.path().join("pid");
    let out = Command::new(RECV)
        .args(["--listen", &listen, "--key-file", s(&key), "--daemon"])
        .arg("--pidfile")
        .arg(&pidfile)
        .args(["--exec", "echo served"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    struct Kill(i32);
    impl Drop for Kill {
        fn drop(&mut self) {
            // SAFETY: plain syscall on the daemon this test started.
            unsafe { libc::kill(self.0, libc::SIGKILL) };
        }
    }
    let guard = Kill(pid);
    let got = Command::new(SEND)
        .args(["--key-file", s(&key), "--exec", "-"])
        .arg(format!("vfer://127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&got.stdout), "served\n");
    // SAFETY: plain syscall on the daemon this test started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let end = Instant::now() + Duration::from_secs(30);
    while unsafe { libc::kill(pid, 0) } == 0 {
        assert!(Instant::now() < end, "the daemon did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::mem::forget(guard);
    assert!(!pidfile.exists(), "the daemon left its pidfile behind");
}

#[test]
fn a_daemon_that_cannot_start_fails_the_command() {
    let d = tempfile::tempdir().unwrap();
    let key = d.path().join("key");
    std::fs::write(&key, common::pattern(40, 6)).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    // The port is taken.
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    let out = Command::new(RECV)
        .args(["--listen", &listen, "--key-file", s(&key), "--daemon"])
        .args(["--exec", "true"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(111),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot listen"));
}
