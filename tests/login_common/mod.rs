//! Helpers for the challenge-response tests: a users file, a running
//! `vfer-recv --listen --users` daemon, and client runs with an isolated
//! HOME (so known_hosts is the test's own).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const SEND: &str = env!("CARGO_BIN_EXE_vfer-send");
pub const RECV: &str = env!("CARGO_BIN_EXE_vfer-recv");

/// A free UDP port on loopback.
pub fn free_udp_port() -> u16 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.local_addr().expect("addr").port()
}

/// Deterministic pseudo-random bytes.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15_u64 ^ seed.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ len as u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// Adds users through the real `vfer-recv --add-user` (password on stdin).
pub fn add_users(users: &Path, list: &[(&str, &str)]) {
    for (name, pw) in list {
        let mut c = Command::new(RECV)
            .args(["--add-user", name, "--users", s(users)])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run --add-user");
        c.stdin
            .take()
            .unwrap()
            .write_all(format!("{pw}\n").as_bytes())
            .unwrap();
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "--add-user: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A running login daemon.
pub struct Daemon {
    pub child: Child,
    pub port: u16,
    pub fingerprint: String,
    /// Every stderr line so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    /// Starts `vfer-recv --listen 127.0.0.1:PORT --users USERS --root ROOT
    /// --host-key KEY -v` and waits until it serves.
    pub fn start(users: &Path, root: &Path, host_key: &Path, port: u16, extra: &[&str]) -> Daemon {
        Daemon::start_on(
            &format!("127.0.0.1:{port}"),
            users,
            root,
            host_key,
            port,
            extra,
        )
    }

    /// Like [`Daemon::start`] on another listen address (e.g. `[::1]:PORT`).
    pub fn start_on(
        listen: &str,
        users: &Path,
        root: &Path,
        host_key: &Path,
        port: u16,
        extra: &[&str],
    ) -> Daemon {
        let mut service = vec!["--root", s(root)];
        service.extend_from_slice(extra);
        Daemon::serving(listen, users, host_key, port, &service)
    }

    /// A login daemon serving what `service` says (`--root DIR`, `--exec
    /// CMD`, `--forward TARGET`, and any other flags).
    pub fn serving(
        listen: &str,
        users: &Path,
        host_key: &Path,
        port: u16,
        service: &[&str],
    ) -> Daemon {
        let mut child = Command::new(RECV)
            .args(["-v", "--listen", listen, "--users", s(users)])
            .args(["--host-key", s(host_key)])
            .args(service)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start daemon");
        let err = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let l = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                if let Some(i) = line.find("SHA256:") {
                    let _ = tx.send(Some(line[i..].trim().to_string()));
                }
                // "serving ROOT on udp A", "running `CMD` ... on udp A",
                // "forwarding udp A to T": the banner's last line.
                if line.contains(" udp ") {
                    let _ = tx.send(None);
                }
                l.lock().unwrap().push(line);
            }
        });
        let mut fingerprint = String::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(20)) {
                Ok(Some(fp)) => fingerprint = fp,
                Ok(None) => break,
                Err(_) => panic!("daemon did not start: {:?}", log.lock().unwrap()),
            }
        }
        assert!(fingerprint.starts_with("SHA256:"));
        Daemon {
            child,
            port,
            fingerprint,
            log,
        }
    }

    /// Lines of the daemon's log containing `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Waits (up to 5 s) until at least `n` log lines contain `needle`, and
    /// returns how many do: the daemon may log a refusal a moment after the
    /// client has exited.
    pub fn count_at_least(&self, needle: &str, n: usize) -> usize {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let c = self.count(needle);
            if c >= n || std::time::Instant::now() > until {
                return c;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// The daemon's resident set size in KiB (VmRSS).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc/PID/status");
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .expect("VmRSS")
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A client run with HOME set to `home` and the password in VFER_PASSWORD.
pub fn client(bin: &str, home: &Path, password: &str, args: &[&str]) -> Command {
    let mut c = Command::new(bin);
    c.args(args)
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .env("VFER_PASSWORD", password)
        .stdin(Stdio::null());
    c
}

/// Runs a client to the end.
pub fn run(mut c: Command) -> Output {
    c.output().expect("run client")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The known_hosts file under `home`.
pub fn known_hosts(home: &Path) -> PathBuf {
    home.join(".config/vfer/known_hosts")
}

/// A fresh test directory with `root/`, `home/`, a users file with `users`.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub home: PathBuf,
    pub users: PathBuf,
    pub host_key: PathBuf,
}

impl Setup {
    pub fn new(users: &[(&str, &str)]) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let home = dir.path().join("home");
        std::fs::create_dir_all(root.join("in")).unwrap();
        std::fs::create_dir_all(&home).unwrap();
        let u = dir.path().join("users");
        add_users(&u, users);
        let host_key = dir.path().join("host_key");
        Setup {
            root,
            home,
            users: u,
            host_key,
            dir,
        }
    }

    pub fn daemon(&self, port: u16) -> Daemon {
        Daemon::start(&self.users, &self.root, &self.host_key, port, &[])
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}
