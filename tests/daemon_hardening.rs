//! Smaller holes of the standing daemons (issue 13 item 4), attacked from
//! outside through the real binaries: a CLOSE reason forging a log line, a
//! client that never sends its request, core dumps, and a program daemon
//! leaking its environment.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use vfer::bootstrap::keyfile;
use vfer::transport::Config;

const SEND: &str = env!("CARGO_BIN_EXE_vfer-send");
const RECV: &str = env!("CARGO_BIN_EXE_vfer-recv");

fn key_file(dir: &Path) -> PathBuf {
    let p = dir.join("key");
    std::fs::write(&p, [7u8; 48]).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// A running `vfer-recv -v --listen ... ARGS`, its stderr lines collected.
struct Daemon {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    fn start(port: u16, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let listen = format!("127.0.0.1:{port}");
        let mut child = Command::new(RECV)
            .args(["-v", "--listen", &listen])
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let err = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                l.lock().unwrap().push(line);
            }
        });
        let d = Daemon { child, log };
        let end = Instant::now() + Duration::from_secs(20);
        while !d
            .lines()
            .iter()
            .any(|l| l.contains("serving") || l.contains("running"))
        {
            assert!(
                Instant::now() < end,
                "daemon did not start: {:?}",
                d.lines()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    fn lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn peer_text_cannot_forge_log_lines_and_a_silent_client_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let key_path = key_file(dir.path());
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let port = common::free_udp_port();
    let d = Daemon::start(
        port,
        &[
            "--key-file",
            key_path.to_str().unwrap(),
            "--root",
            root.to_str().unwrap(),
        ],
        &[],
    );
    // Core dumps are off in the key-file daemon.
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", d.child.id())).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap()
        .split_whitespace()
        .skip(4)
        .take(2)
        .collect::<Vec<_>>();
    assert_eq!(core, ["0", "0"], "{limits}");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let key = keyfile::load(&key_path).unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    rt.block_on(async {
        // A client that sends no request, only keep-alives.
        let silent = keyfile::connect(addr, &key, Config::default())
            .await
            .unwrap();
        // A client that closes with a reason forging a whole log line.
        // It starts a request, so the daemon is reading it.
        let forger = keyfile::connect(addr, &key, Config::default())
            .await
            .unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut forger.stream(), b"VF")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        forger
            .close(1, "bye\nvfer-recv: user \"root\" logged in\r\u{1b}[2J")
            .await;
        let start = Instant::now();
        let mut buf = Vec::new();
        let r = tokio::time::timeout(
            Duration::from_secs(30),
            silent.stream().read_to_end(&mut buf),
        )
        .await;
        assert!(
            r.is_ok(),
            "the daemon kept a client without a request for 30 s"
        );
        let waited = start.elapsed();
        assert!(waited >= Duration::from_secs(5), "closed after {waited:?}");
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        d.lines()
            .iter()
            .any(|l| l.contains("no daemon request within")),
        "{:#?}",
        d.lines()
    );
    std::thread::sleep(Duration::from_millis(300));
    let lines = d.lines();
    assert!(
        !lines.iter().any(|l| l.starts_with("vfer-recv: user")),
        "a peer forged a log line: {lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("bye\\nvfer-recv: user")),
        "the reason is logged, escaped: {lines:#?}"
    );
    assert!(!lines.iter().any(|l| l.contains("\u{1b}[2J")), "{lines:#?}");
}

#[test]
fn a_program_daemon_does_not_leak_its_environment() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path());
    let key = key.to_str().unwrap();
    let env = [
        ("VFER_TEST_SECRET", "hunter2"),
        ("LANG", "C.UTF-8"),
        ("AWS_SECRET_ACCESS_KEY", "abc"),
    ];
    let run = |port: u16| {
        let out = Command::new(SEND)
            .args([
                "--key-file",
                key,
                "--exec",
                "-",
                &format!("vfer://127.0.0.1:{port}"),
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let port = common::free_udp_port();
    let clean = {
        let _d = Daemon::start(port, &["--key-file", key, "--exec", "env"], &env);
        run(port)
    };
    assert!(!clean.contains("hunter2"), "{clean}");
    assert!(!clean.contains("AWS_SECRET_ACCESS_KEY"), "{clean}");
    for kept in [
        "PATH=",
        "LANG=C.UTF-8",
        "VFER_PEER=127.0.0.1:",
        "VSL_CIPHER=",
    ] {
        assert!(
            clean.lines().any(|l| l.starts_with(kept)),
            "{kept} missing: {clean}"
        );
    }
    let port = common::free_udp_port();
    let kept = {
        let _d = Daemon::start(
            port,
            &["--key-file", key, "--exec", "env", "--keep-env"],
            &env,
        );
        run(port)
    };
    assert!(kept.contains("VFER_TEST_SECRET=hunter2"), "{kept}");
}
