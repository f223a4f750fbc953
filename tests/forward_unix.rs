//! spiped's headline use: UNIX-domain sockets on either end of forwarding
//! (`vfer-send --forward-from PATH`, `vfer-recv --forward PATH`), the
//! client's socket file removed at exit, and `-K` ending an idle
//! forwarded connection (issue 18, items 2 and 4).

mod common;

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SEND: &str = env!("CARGO_BIN_EXE_vfer-send");
const RECV: &str = env!("CARGO_BIN_EXE_vfer-recv");

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// A process killed when the test ends, even by a panic.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An echo service on a UNIX socket: each connection gets its bytes back,
/// then EOF after the client's EOF.
fn unix_echo(path: &Path) {
    let l = UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                loop {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if c.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
                let _ = c.shutdown(std::net::Shutdown::Write);
            });
        }
    });
}

fn wait_for(p: &Path) {
    let end = Instant::now() + Duration::from_secs(20);
    while !p.exists() {
        assert!(Instant::now() < end, "{} did not appear", p.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A daemon forwarding to `target` and a client accepting on `front`.
fn pair(dir: &Path, target: &str, front: &str, extra: &[&str]) -> (Proc, Proc, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let key = dir.join("key");
    std::fs::write(&key, common::pattern(40, 8)).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let port = common::free_udp_port();
    let listen = format!("127.0.0.1:{port}");
    let dpid = dir.join("daemon.pid");
    let daemon = Command::new(RECV)
        .args([
            "--listen",
            &listen,
            "--key-file",
            s(&key),
            "--forward",
            target,
        ])
        .args(extra)
        .arg("--pidfile")
        .arg(&dpid)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let daemon = Proc(daemon);
    wait_for(&dpid);
    let cpid = dir.join("client.pid");
    let client = Command::new(SEND)
        .args(["--key-file", s(&key), "--forward-from", front])
        .args(extra)
        .arg("--pidfile")
        .arg(&cpid)
        .arg(format!("vfer://127.0.0.1:{port}"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = Proc(client);
    wait_for(&cpid);
    (daemon, client, key)
}

#[test]
fn unix_sockets_on_both_ends() {
    let d = tempfile::tempdir().unwrap();
    let target = d.path().join("echo.sock");
    unix_echo(&target);
    let front = d.path().join("front.sock");
    let (_daemon, mut client, _key) = pair(d.path(), s(&target), s(&front), &[]);
    wait_for(&front);
    let data = common::pattern(3 << 20, 4);
    let mut c = UnixStream::connect(&front).unwrap();
    let mut r = c.try_clone().unwrap();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        got
    });
    c.write_all(&data).unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let got = reader.join().unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "the echo differs");
    // A stop signal: the client exits 0 and removes its socket file.
    // SAFETY: plain syscall on our child.
    unsafe { libc::kill(client.0.id() as i32, libc::SIGTERM) };
    assert_eq!(
        common::wait_code(&mut client.0, Duration::from_secs(30)),
        Some(0)
    );
    assert!(!front.exists(), "the client left its socket file behind");
    assert!(
        !d.path().join("client.pid").exists(),
        "the client left its pidfile behind"
    );
}

#[test]
fn a_stale_socket_file_is_replaced_but_a_regular_file_is_not() {
    let d = tempfile::tempdir().unwrap();
    let target = d.path().join("echo.sock");
    unix_echo(&target);
    // A regular file where the socket should go: refused, exit 111.
    let front = d.path().join("front.sock");
    std::fs::write(&front, b"not a socket").unwrap();
    let key = d.path().join("k0");
    std::fs::write(&key, common::pattern(40, 1)).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = Command::new(SEND)
        .args(["--key-file", s(&key), "--forward-from", s(&front)])
        .arg("vfer://127.0.0.1:9")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(111));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a socket"), "{err}");
    assert_eq!(std::fs::read(&front).unwrap(), b"not a socket");
    std::fs::remove_file(&front).unwrap();
    // A socket file left by a dead process: replaced.
    drop(UnixListener::bind(&front).unwrap());
    assert!(front.exists());
    let (_daemon, _client, _key) = pair(d.path(), s(&target), s(&front), &[]);
    let mut c = UnixStream::connect(&front).unwrap();
    c.write_all(b"ping").unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"ping");
}

#[test]
fn kill_idle_ends_an_idle_forwarded_connection() {
    let d = tempfile::tempdir().unwrap();
    let target = d.path().join("echo.sock");
    unix_echo(&target);
    let front = d.path().join("front.sock");
    let (_daemon, _client, _key) = pair(d.path(), s(&target), s(&front), &["-K", "800"]);
    let mut c = UnixStream::connect(&front).unwrap();
    c.write_all(b"hello").unwrap();
    let mut buf = [0u8; 5];
    c.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hello");
    // Now idle: -K ends the connection (EOF or reset), well before the
    // 30 s peer timeout.
    let start = Instant::now();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
    assert!(rest.is_empty());
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "the idle connection was not ended by -K"
    );
}
