//! Issue 19 through the real binaries: many clients at once against one
//! key-file daemon (every file intact, none dropped), and a daemon past
//! `-n` answering BUSY: the client backs off and gets in when a slot frees,
//! or fails with exit 111 and a message saying the daemon was busy when its
//! `--timeout` runs out. No wall-clock performance is asserted.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use vfer::bootstrap::keyfile;
use vfer::transport::Config;

const SEND: &str = env!("CARGO_BIN_EXE_vfer-send");
const RECV: &str = env!("CARGO_BIN_EXE_vfer-recv");

/// A key-file daemon on loopback, killed when the test ends.
struct Daemon {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    fn start(max_connections: usize) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        for d in ["root", "root/in", "root/out", "local"] {
            fs::create_dir(dir.path().join(d)).unwrap();
        }
        let key = dir.path().join("key");
        fs::write(&key, [9u8; 40]).unwrap();
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
        let port = common::free_udp_port();
        let child = Command::new(RECV)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--key-file"])
            .arg(&key)
            .arg("--root")
            .arg(dir.path().join("root"))
            .args(["-n", &max_connections.to_string()])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        Daemon { child, dir, port }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn url(&self, p: &str) -> String {
        format!("vfer://127.0.0.1:{}/{p}", self.port)
    }

    fn client(&self, program: &str, timeout: u64, args: &[&Path]) -> Command {
        let mut c = Command::new(program);
        c.arg("--key-file")
            .arg(self.path("key"))
            .args(["--timeout", &timeout.to_string(), "-q"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    }
}

/// Distinct contents of `len` bytes for client `i`.
fn contents(i: usize, len: usize) -> Vec<u8> {
    let mut x = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn many_clients_at_once_every_file_intact_none_dropped() {
    const CLIENTS: usize = 160;
    let d = Daemon::start(CLIENTS);
    let size = |i: usize| [1_000, 20_000, 150_000][i % 3] + i;
    // Even clients push, odd ones pull.
    for i in (1..CLIENTS).step_by(2) {
        fs::write(d.path(&format!("root/in/f{i}")), contents(i, size(i))).unwrap();
    }
    for i in (0..CLIENTS).step_by(2) {
        fs::write(d.path(&format!("local/src{i}")), contents(i, size(i))).unwrap();
    }
    let children: Vec<(usize, Child)> = (0..CLIENTS)
        .map(|i| {
            let child = if i % 2 == 0 {
                let src = d.path(&format!("local/src{i}"));
                let dst = PathBuf::from(d.url(&format!("out/f{i}")));
                d.client(SEND, 120, &[&src, &dst]).spawn()
            } else {
                let src = PathBuf::from(d.url(&format!("in/f{i}")));
                let dst = d.path(&format!("local/f{i}"));
                d.client(RECV, 120, &[&src, &dst]).spawn()
            };
            (i, child.unwrap())
        })
        .collect();
    let mut failed = Vec::new();
    for (i, child) in children {
        let out = child.wait_with_output().unwrap();
        if !out.status.success() {
            failed.push(format!(
                "client {i}: {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "{} failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
    for i in 0..CLIENTS {
        let copy = if i % 2 == 0 {
            d.path(&format!("root/out/f{i}"))
        } else {
            d.path(&format!("local/f{i}"))
        };
        let got = fs::read(&copy).unwrap_or_else(|e| panic!("{}: {e}", copy.display()));
        assert!(got == contents(i, size(i)), "client {i}: the copy differs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_daemon_answers_busy_and_the_client_retries_then_says_so() {
    let d = Daemon::start(1);
    let src = d.path("local/src");
    fs::write(&src, contents(1, 10_000)).unwrap();
    // Hold the only slot with a session that sends no request (the daemon
    // waits up to 10 s for it).
    let key = keyfile::load(&d.path("key")).unwrap();
    let server = format!("127.0.0.1:{}", d.port).parse().unwrap();
    let held = keyfile::connect(server, &key, Config::default())
        .await
        .unwrap();

    // A client whose timeout runs out while the slot is held: exit 111 and
    // a message that says the daemon was busy.
    let dst = PathBuf::from(d.url("out/short"));
    let out = d.client(SEND, 2, &[&src, &dst]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(111), "{err}");
    assert!(err.contains("busy"), "{err}");
    assert!(!d.path("root/out/short").exists());

    // A client that starts while the slot is held and has time: it backs
    // off, and gets in once the slot is free.
    let dst = PathBuf::from(d.url("out/patient"));
    let patient = d.client(SEND, 60, &[&src, &dst]).spawn().unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    held.close(0, "done").await;
    let out = tokio::task::spawn_blocking(move || patient.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        fs::read(d.path("root/out/patient")).unwrap(),
        contents(1, 10_000)
    );
}
