//! A client whose NAT rebinds mid-transfer (PROTOCOL §3.9, §4.3): a UDP
//! relay in the test stands for the NAT between the real `vfer-send` /
//! `vfer-recv` client and a real key-file daemon. Halfway through the copy
//! it drops its outbound socket and takes a new one, so the daemon sees
//! the client's packets from a new source port and its packets to the old
//! port go nowhere. The copy must complete intact: the daemon routes the
//! new port to the session, validates it, and follows.

mod common;

use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;

const SEND: &str = env!("CARGO_BIN_EXE_vfer-send");
const RECV: &str = env!("CARGO_BIN_EXE_vfer-recv");
const SIZE: usize = 24 << 20;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A key-file daemon on loopback, killed when the test ends.
struct Daemon {
    child: std::process::Child,
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
    fn start() -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("root")).unwrap();
        let key = dir.path().join("key");
        fs::write(&key, [9u8; 48]).unwrap();
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
        let port = common::free_udp_port();
        let child = Command::new(RECV)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--key-file", s(&key), "--root", s(&dir.path().join("root"))])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        Daemon { child, dir, port }
    }
}

/// What the relay did.
#[derive(Default)]
struct Relayed {
    bytes: AtomicU64,
    rebound: AtomicBool,
}

/// Relays between the client (on `front`) and the daemon; once
/// `rebind_after` bytes went either way, replaces its outbound socket
/// (the old one is closed: the daemon's packets to it are lost).
async fn relay(front: UdpSocket, daemon: SocketAddr, rebind_after: u64, seen: Arc<Relayed>) {
    let mut back = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut client: Option<SocketAddr> = None;
    let mut up = vec![0u8; 65_536];
    let mut down = vec![0u8; 65_536];
    loop {
        tokio::select! {
            r = front.recv_from(&mut up) => {
                let Ok((n, from)) = r else { continue };
                client = Some(from);
                let total = seen.bytes.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
                if total > rebind_after && !seen.rebound.load(Ordering::Relaxed) {
                    back = UdpSocket::bind("127.0.0.1:0").await.unwrap();
                    seen.rebound.store(true, Ordering::Relaxed);
                }
                let _ = back.send_to(&up[..n], daemon).await;
            }
            r = back.recv_from(&mut down) => {
                let Ok((n, _)) = r else { continue };
                seen.bytes.fetch_add(n as u64, Ordering::Relaxed);
                if let Some(c) = client {
                    let _ = front.send_to(&down[..n], c).await;
                }
            }
        }
    }
}

/// Runs `args` (after the key-file option) against the daemon through a
/// relay that rebinds a third of the way; returns whether it rebound.
async fn through_rebinding_relay(d: &Daemon, args: &[String]) -> bool {
    let front = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let relay_port = front.local_addr().unwrap().port();
    let seen = Arc::new(Relayed::default());
    let daemon: SocketAddr = format!("127.0.0.1:{}", d.port).parse().unwrap();
    let task = tokio::spawn(relay(front, daemon, SIZE as u64 / 3, seen.clone()));
    let args: Vec<String> = args
        .iter()
        .map(|a| a.replace("RELAY", &relay_port.to_string()))
        .collect();
    let key = d.dir.path().join("key");
    let (bin, rest) = args.split_first().unwrap();
    let out = tokio::process::Command::new(bin)
        .args(["-q", "--timeout", "20", "--key-file", s(&key)])
        .args(rest)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), out)
        .await
        .expect("the copy finished within 120 s")
        .unwrap();
    task.abort();
    assert!(
        out.status.success(),
        "{bin} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    seen.rebound.load(Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_and_a_pull_survive_a_nat_rebinding() {
    let d = Daemon::start();
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("src");
    let data: Vec<u8> = (0..SIZE as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(&src, &data).unwrap();

    // Push: the client sends the data; after the rebinding the daemon's
    // acknowledgements must reach the new port.
    let push = [
        SEND.to_string(),
        s(&src).to_string(),
        "vfer://127.0.0.1:RELAY/pushed".to_string(),
    ];
    assert!(through_rebinding_relay(&d, &push).await, "relay rebound");
    assert!(
        fs::read(d.dir.path().join("root/pushed")).unwrap() == data,
        "pushed copy differs"
    );

    // Pull: the daemon sends the data, and must follow to keep sending.
    let dst = local.path().join("pulled");
    let pull = [
        RECV.to_string(),
        "vfer://127.0.0.1:RELAY/pushed".to_string(),
        s(&dst).to_string(),
    ];
    assert!(through_rebinding_relay(&d, &pull).await, "relay rebound");
    assert!(fs::read(&dst).unwrap() == data, "pulled copy differs");
}
