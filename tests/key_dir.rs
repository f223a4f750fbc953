//! Per-client keys (issue 18, item 4): `vfer-recv --listen --key-dir D`
//! admits a client holding any key file in D, tells the program which
//! (`VFER_CLIENT`, the file's name), refuses other keys, and a removed
//! file revokes its client without a restart.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const SEND: &str = env!("CARGO_BIN_EXE_vfer-send");
const RECV: &str = env!("CARGO_BIN_EXE_vfer-recv");

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn key(dir: &Path, name: &str, seed: u64) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, common::pattern(40, seed)).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

fn daemon(args: &[&str], pidfile: &Path) -> Proc {
    let p = Proc(
        Command::new(RECV)
            .args(args)
            .arg("--pidfile")
            .arg(pidfile)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let end = Instant::now() + Duration::from_secs(20);
    while !pidfile.exists() {
        assert!(Instant::now() < end, "daemon did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    p
}

fn client(key: &Path, url: &str) -> Output {
    Command::new(SEND)
        .args(["--timeout", "3", "--key-file", s(key), "--exec", "-", url])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn each_client_its_key_named_and_revocable() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("clients");
    std::fs::create_dir(&dir).unwrap();
    let alice = key(&dir, "alice", 1);
    let bob = key(&dir, "bob", 2);
    let carol = key(d.path(), "carol", 3); // not in the directory
    let bob_copy = d.path().join("bob-copy");
    std::fs::copy(&bob, &bob_copy).unwrap();
    std::fs::set_permissions(&bob_copy, std::fs::Permissions::from_mode(0o600)).unwrap();
    let port = common::free_udp_port();
    let listen = format!("127.0.0.1:{port}");
    let _d = daemon(
        &[
            "--listen",
            &listen,
            "--key-dir",
            s(&dir),
            "--exec",
            "echo \"client=$VFER_CLIENT\"",
        ],
        &d.path().join("pid"),
    );
    let url = format!("vfer://127.0.0.1:{port}");
    let out = client(&alice, &url);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "client=alice\n");
    let out = client(&bob_copy, &url);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "client=bob\n");
    // A key not in the directory gets no session.
    let out = client(&carol, &url);
    assert_ne!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "");
    // Revoke bob: remove his file; the daemon notices without a restart.
    std::fs::remove_file(&bob).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let out = client(&bob_copy, &url);
    assert_ne!(out.status.code(), Some(0), "a revoked key still got in");
    assert_eq!(text(&out.stdout), "");
    // Alice is unaffected.
    let out = client(&alice, &url);
    assert_eq!(text(&out.stdout), "client=alice\n");
}

#[test]
fn a_file_daemon_takes_a_key_dir_too() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("clients");
    std::fs::create_dir(&dir).unwrap();
    let alice = key(&dir, "alice", 5);
    let root = d.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let port = common::free_udp_port();
    let listen = format!("127.0.0.1:{port}");
    let _d = daemon(
        &[
            "--listen",
            &listen,
            "--key-dir",
            s(&dir),
            "--root",
            s(&root),
        ],
        &d.path().join("pid"),
    );
    let src = d.path().join("f");
    std::fs::write(&src, b"hello").unwrap();
    let out = common::run(
        SEND,
        &[
            "-q",
            "--key-file",
            s(&alice),
            s(&src),
            &format!("vfer://127.0.0.1:{port}/"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(root.join("f")).unwrap(), b"hello");
    // --key-file and --key-dir together: a usage error.
    let out = common::run(
        RECV,
        &[
            "--listen",
            &listen,
            "--key-dir",
            s(&dir),
            "--key-file",
            s(&alice),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
}
