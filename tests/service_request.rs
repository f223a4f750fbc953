//! The service request (docs/PROTOCOL.md §5) through a real daemon: the
//! client's `-l` travels on the wire and slows the daemon that sends
//! (issue 15), and a daemon refuses another service by name.

mod common;

use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vfer::bootstrap::keyfile;
use vfer::service::request::{Request, Service, SessionOptions};
use vfer::transport::{CloseReason, Config};

const RECV: &str = env!("CARGO_BIN_EXE_vfer-recv");

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A key-file file daemon on loopback serving `dir/root`.
struct Daemon {
    child: Child,
    port: u16,
    key: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn daemon(dir: &Path) -> Daemon {
    fs::create_dir_all(dir.join("root")).unwrap();
    let key = dir.join("key");
    fs::write(&key, [5u8; 40]).unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    let port = common::free_udp_port();
    let pidfile = dir.join("pid");
    let child = Command::new(RECV)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--key-file",
            s(&key),
        ])
        .args(["--root", s(&dir.join("root")), "--pidfile", s(&pidfile)])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(20);
    while !pidfile.exists() {
        assert!(Instant::now() < end, "the daemon did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Daemon { child, port, key }
}

/// `vfer-recv -l 4M vfer://host/f .` pulls 2 MB: at 4 Mbit/s (500 kB/s)
/// that takes 4 s, so at least 3 s whatever the machine's load (a lower
/// bound only). Before the cap travelled in the request, the daemon sent
/// at full speed and the pull took a fraction of a second.
#[test]
fn a_pull_with_limit_slows_the_daemon_that_sends() {
    let d = tempfile::tempdir().unwrap();
    let daemon = daemon(d.path());
    let data = common::pattern(2_000_000, 3);
    fs::write(d.path().join("root/f"), &data).unwrap();
    let got = d.path().join("got");
    let url = format!("vfer://127.0.0.1:{}/f", daemon.port);
    let start = Instant::now();
    let out = Command::new(RECV)
        .args([
            "-q",
            "-l",
            "4M",
            "--key-file",
            s(&daemon.key),
            &url,
            s(&got),
        ])
        .output()
        .unwrap();
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read(&got).unwrap(), data);
    assert!(
        took >= Duration::from_secs(3),
        "2 MB at -l 4M arrived in {took:?}: the daemon ignored the client's cap"
    );
}

/// A file daemon asked to forward a TCP connection says so by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_daemon_refuses_another_service_by_name() {
    let d = tempfile::tempdir().unwrap();
    let daemon = daemon(d.path());
    let key = keyfile::load(&daemon.key).unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", daemon.port).parse().unwrap();
    let session = keyfile::connect(addr, &key, Config::default())
        .await
        .unwrap();
    Request::new(Service::Forward, SessionOptions::default())
        .write(&mut session.stream())
        .await
        .unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    let reason = loop {
        if let Some(r) = session.close_reason() {
            break r;
        }
        assert!(Instant::now() < end, "the daemon did not refuse");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    match reason {
        CloseReason::Peer { code, reason } => {
            assert_eq!(code, 1);
            assert_eq!(
                reason,
                "this daemon serves files; it forwards no TCP connections"
            );
        }
        other => panic!("unexpected end: {other:?}"),
    }
}

/// Every daemon stops the same way (one runner): SIGTERM refuses new
/// sessions, lets the running ones end, exits 0 — the file daemon too.
#[test]
fn a_file_daemon_stops_cleanly_on_sigterm() {
    let d = tempfile::tempdir().unwrap();
    let mut daemon = daemon(d.path());
    // SAFETY: plain syscall on our child.
    unsafe { libc::kill(daemon.child.id() as i32, libc::SIGTERM) };
    assert_eq!(
        common::wait_code(&mut daemon.child, Duration::from_secs(20)),
        Some(0)
    );
}
