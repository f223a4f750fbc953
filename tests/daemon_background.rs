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

/// Waits until process `pid` is gone (the test's own daemon).
fn wait_gone(pid: i32) {
    let end = Instant::now() + Duration::from_secs(30);
    // SAFETY: signal 0 only checks that the process exists.
    while unsafe { libc::kill(pid, 0) } == 0 {
        assert!(Instant::now() < end, "process {pid} did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `vfer-send --forward-from ... --daemon` (spiped's default): the command
/// returns 0 once the forwarder listens, the forwarder (named in its
/// pidfile) carries connections, and SIGTERM ends it and removes the
/// pidfile and its UNIX socket.
#[test]
fn the_forwarder_goes_to_the_background_too() {
    use std::io::{Read, Write};
    let d = tempfile::tempdir().unwrap();
    let key = d.path().join("key");
    std::fs::write(&key, common::pattern(40, 7)).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    // The target: a TCP service that answers "hello" and closes.
    let target = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target_addr = target.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in target.incoming() {
            let Ok(mut c) = c else { return };
            let _ = c.write_all(b"hello");
        }
    });
    let port = common::free_udp_port();
    let (dpid, fpid) = (d.path().join("d.pid"), d.path().join("f.pid"));
    let out = Command::new(RECV)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--key-file",
            s(&key),
        ])
        .args([
            "--forward",
            &target_addr.to_string(),
            "--daemon",
            "--pidfile",
            s(&dpid),
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let sock = d.path().join("front.sock");
    // The forwarder keeps stderr (its log): a file, not a pipe we would
    // wait on.
    let log = d.path().join("forwarder.log");
    let status = Command::new(SEND)
        .args([
            "--key-file",
            s(&key),
            "--forward-from",
            s(&sock),
            "--daemon",
        ])
        .args(["--pidfile", s(&fpid), &format!("vfer://127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .status()
        .unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let pid_of = |p: &Path| -> i32 { std::fs::read_to_string(p).unwrap().trim().parse().unwrap() };
    let (daemon, forwarder) = (pid_of(&dpid), pid_of(&fpid));
    struct Kill(Vec<i32>);
    impl Drop for Kill {
        fn drop(&mut self) {
            for p in &self.0 {
                // SAFETY: plain syscall on the processes this test started.
                unsafe { libc::kill(*p, libc::SIGKILL) };
            }
        }
    }
    let guard = Kill(vec![daemon, forwarder]);
    // Already listening when the command returned: no waiting needed.
    let mut c = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"hello");
    for pid in [forwarder, daemon] {
        // SAFETY: plain syscall on the processes this test started.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        wait_gone(pid);
    }
    std::mem::forget(guard);
    assert!(!fpid.exists(), "the forwarder left its pidfile behind");
    assert!(!dpid.exists(), "the daemon left its pidfile behind");
    assert!(!sock.exists(), "the forwarder left its socket behind");
}

/// A forwarder that cannot start (its address is taken) fails the command
/// with the forwarder's own message and status.
#[test]
fn a_forwarder_that_cannot_start_fails_the_command() {
    let d = tempfile::tempdir().unwrap();
    let key = d.path().join("key");
    std::fs::write(&key, common::pattern(40, 7)).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let out = Command::new(SEND)
        .args(["--key-file", s(&key), "--daemon", "--forward-from"])
        .arg(taken.local_addr().unwrap().to_string())
        .arg("vfer://127.0.0.1:9")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("cannot listen"), "{err}");
}
