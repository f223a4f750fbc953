//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod sshd;

use std::io::Read;
use std::process::{Child, ChildStderr, ChildStdout};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A free UDP port on loopback (bound then released; good enough for tests).
pub fn free_udp_port() -> u16 {
    let s = std::net::UdpSocket::bind("[::]:0").expect("bind");
    s.local_addr().expect("addr").port()
}

/// A free TCP port on 127.0.0.1.
pub fn free_tcp_port() -> u16 {
    let s = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    s.local_addr().expect("addr").port()
}

/// Everything a child wrote on one pipe, collected by a thread.
pub struct Collector {
    data: Arc<Mutex<Vec<u8>>>,
    thread: Option<JoinHandle<()>>,
}

impl Collector {
    /// Starts collecting from a pipe.
    pub fn new(mut r: impl Read + Send + 'static) -> Self {
        let data = Arc::new(Mutex::new(Vec::new()));
        let d = data.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 {
                    break;
                }
                d.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Collector {
            data,
            thread: Some(thread),
        }
    }

    /// What arrived so far.
    pub fn snapshot(&self) -> Vec<u8> {
        self.data.lock().unwrap().clone()
    }

    /// Waits until at least `n` bytes arrived (or `timeout`).
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<u8> {
        let end = Instant::now() + timeout;
        loop {
            let s = self.snapshot();
            if s.len() >= n || Instant::now() > end {
                return s;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for EOF and returns everything.
    pub fn finish(mut self) -> Vec<u8> {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.snapshot()
    }
}

/// stdout and stderr collectors of a child.
pub fn collect(child: &mut Child) -> (Collector, Collector) {
    let out: ChildStdout = child.stdout.take().expect("piped stdout");
    let err: ChildStderr = child.stderr.take().expect("piped stderr");
    (Collector::new(out), Collector::new(err))
}

/// Waits for a child's exit code, killing it after `timeout`.
pub fn wait_code(child: &mut Child, timeout: Duration) -> Option<i32> {
    let end = Instant::now() + timeout;
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return st.code();
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Processes whose command line contains every one of `needles` (Linux /proc).
pub fn processes_with(needles: &[&str]) -> Vec<u32> {
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if needles.iter().all(|n| cmd.contains(n)) {
            found.push(pid);
        }
    }
    found
}

/// Waits until no process matches `needles`; returns the survivors if any.
pub fn wait_gone(needles: &[&str], timeout: Duration) -> Vec<u32> {
    let end = Instant::now() + timeout;
    loop {
        let p = processes_with(needles);
        if p.is_empty() || Instant::now() > end {
            return p;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `bin` with `args` (stdin closed) and collects its output.
pub fn run(bin: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(bin)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run binary")
}

/// A deterministic test pattern.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    (0..len as u64)
        .map(|i| ((i.wrapping_add(seed)).wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// Ends our direction of a stream. A normal close (code 0) by the peer that
/// overtakes the ACK of our FIN also counts as success: the peer only
/// closes after reading our whole stream (transport race, reported).
pub async fn shutdown_ok(w: &mut (impl tokio::io::AsyncWrite + Unpin)) {
    use tokio::io::AsyncWriteExt;
    match w.shutdown().await {
        Ok(()) => {}
        Err(e)
            if e.to_string()
                .contains("peer closed the connection (code 0)") => {}
        Err(e) => panic!("shutdown: {e}"),
    }
}
