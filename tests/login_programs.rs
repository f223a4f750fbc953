//! Program and forwarding daemons behind a login (issue 18, s6-tlsd's
//! jobs): `vfer-recv --listen --users F --exec CMD` runs CMD for each user
//! who logs in, and CMD learns the name (`VFER_USER`, `VFER_CLIENT`);
//! `vfer-recv --listen --users F --forward T` forwards for them, and
//! `vfer-send --forward-from A vfer://USER@HOST` logs in for each
//! connection. A wrong password runs nothing and forwards nothing.

mod login_common;

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use login_common::*;

/// The client flags every run here uses: a pinned fingerprint.
fn pin(d: &Daemon) -> [String; 2] {
    ["--host-key-fingerprint".into(), d.fingerprint.clone()]
}

#[test]
fn a_program_daemon_behind_a_login_tells_the_program_who() {
    let t = Setup::new(&[("alice", "wonderland")]);
    let port = free_udp_port();
    let d = Daemon::serving(
        &format!("127.0.0.1:{port}"),
        &t.users,
        &t.host_key,
        port,
        &[
            "--exec",
            "echo \"user=$VFER_USER client=$VFER_CLIENT\"; cat",
        ],
    );
    let url = format!("vfer://alice@127.0.0.1:{port}");
    let mut c = client(SEND, &t.home, "wonderland", &["--exec", "-", &url]);
    c.args(pin(&d));
    let out = run(c);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "user=alice client=alice\n"
    );
    // A wrong password: refused (17), and the program never ran.
    let mut c = client(SEND, &t.home, "looking-glass", &["--exec", "-", &url]);
    c.args(pin(&d));
    let out = run(c);
    assert_eq!(out.status.code(), Some(17), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    assert_eq!(d.count_at_least("login refused", 1), 1);
    assert_eq!(d.count("user \"alice\" logged in"), 1);
}

/// A TCP service that sends back what it gets, then EOF after ours.
fn tcp_echo() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                while let Ok(n) = c.read(&mut buf) {
                    if n == 0 || c.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = c.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    addr
}

/// A process killed when the test ends.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `vfer-send --forward-from SOCK vfer://USER@127.0.0.1:PORT` with
/// `password` and waits until SOCK exists.
fn forwarder(t: &Setup, d: &Daemon, name: &str, password: &str) -> (Proc, std::path::PathBuf) {
    let sock = t.path(name);
    let url = format!("vfer://alice@127.0.0.1:{}", d.port);
    let mut c = client(SEND, &t.home, password, &["--forward-from", s(&sock), &url]);
    c.args(pin(d)).stdout(Stdio::null()).stderr(Stdio::null());
    let p = Proc(c.spawn().unwrap());
    let end = Instant::now() + Duration::from_secs(20);
    while !sock.exists() {
        assert!(Instant::now() < end, "the forwarder did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    (p, sock)
}

fn through(sock: &std::path::Path, data: &[u8]) -> Vec<u8> {
    // The socket's file appears at bind(), a moment before listen():
    // a connection in between is refused, so retry briefly.
    let end = Instant::now() + Duration::from_secs(10);
    let mut c = loop {
        match std::os::unix::net::UnixStream::connect(sock) {
            Ok(c) => break c,
            Err(e) if Instant::now() < end => {
                assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("connecting to the forwarder at {}: {e}", sock.display()),
        }
    };
    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let w = {
        let (mut c, data) = (c.try_clone().unwrap(), data.to_vec());
        std::thread::spawn(move || {
            let _ = c.write_all(&data);
            let _ = c.shutdown(std::net::Shutdown::Write);
        })
    };
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    w.join().unwrap();
    got
}

#[test]
fn forwarding_behind_a_login() {
    let t = Setup::new(&[("alice", "wonderland")]);
    let target = tcp_echo().to_string();
    let port = free_udp_port();
    let d = Daemon::serving(
        &format!("127.0.0.1:{port}"),
        &t.users,
        &t.host_key,
        port,
        &["--forward", &target],
    );
    let (_good, sock) = forwarder(&t, &d, "good.sock", "wonderland");
    let data = login_common::data(300_000, 18);
    // Two connections, each its own login.
    assert_eq!(through(&sock, &data), data);
    assert_eq!(through(&sock, b"again"), b"again");
    assert_eq!(d.count_at_least("user \"alice\" logged in", 2), 2);
    // A forwarder with the wrong password carries nothing.
    let (_bad, bad) = forwarder(&t, &d, "bad.sock", "looking-glass");
    assert!(through(&bad, b"let me in").is_empty());
    assert_eq!(d.count_at_least("login refused", 1), 1);
}

#[test]
fn users_and_a_key_file_are_one_or_the_other() {
    let t = Setup::new(&[("alice", "wonderland")]);
    let key = t.path("key");
    std::fs::write(&key, [7u8; 40]).unwrap();
    let out = Command::new(SEND)
        .args(["--key-file", s(&key), "--forward-from", "127.0.0.1:0"])
        .arg("vfer://alice@127.0.0.1:9")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("not both"), "{}", stderr(&out));
}
