//! TCP forwarding over vfer (`vfer-send --forward-from`, `vfer-recv
//! --listen --forward`): an echo service through a UDP relay that drops 1%
//! of the datagrams each way, half-close, the connection limit, an
//! unreachable target, pidfiles and SIGTERM.
//!
//! Loss: a UDP relay on loopback between client and daemon (this file's
//! [`LossyRelay`]), dropping 1% of the datagrams (seeded xorshift) and all
//! over a 1500-byte MTU, so real binaries, sockets and timers are exercised
//! end to end.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const SEND: &str = env!("CARGO_BIN_EXE_vfer-send");
const RECV: &str = env!("CARGO_BIN_EXE_vfer-recv");

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// Drops `per_mille`/1000 of the datagrams each way between its clients
/// and `upstream`, and every datagram over [`RELAY_MTU`] bytes of UDP
/// payload (an Ethernet path: PLPMTUD's probes above it get lost, as on a
/// real path); one upstream socket per client address.
struct LossyRelay {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
    passed: Arc<AtomicU64>,
}

/// Largest UDP payload the relay passes: 1500-byte IPv4 MTU.
const RELAY_MTU: usize = 1472;

struct Dice(u64);

impl Dice {
    fn drop(&mut self, per_mille: u64) -> bool {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % 1000 < per_mille
    }
}

impl LossyRelay {
    fn start(upstream: SocketAddr, per_mille: u64, seed: u64) -> LossyRelay {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        front
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let addr = front.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicU64::new(0));
        let passed = Arc::new(AtomicU64::new(0));
        let (st, dr, pa) = (stop.clone(), dropped.clone(), passed.clone());
        thread::spawn(move || {
            let backs: Mutex<HashMap<SocketAddr, Arc<UdpSocket>>> = Mutex::new(HashMap::new());
            let mut dice = Dice(seed | 1);
            let mut buf = vec![0u8; 65_536];
            let mut n_clients = 0u64;
            while !st.load(Ordering::Relaxed) {
                let Ok((n, from)) = front.recv_from(&mut buf) else {
                    continue;
                };
                let back = {
                    let mut map = backs.lock().unwrap();
                    map.entry(from)
                        .or_insert_with(|| {
                            n_clients += 1;
                            let b = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
                            b.connect(upstream).unwrap();
                            b.set_read_timeout(Some(Duration::from_millis(100)))
                                .unwrap();
                            let (b2, f2, st2) = (b.clone(), front.clone(), st.clone());
                            let (dr2, pa2) = (dr.clone(), pa.clone());
                            let seed2 = seed.wrapping_mul(31).wrapping_add(n_clients) | 1;
                            thread::spawn(move || {
                                let mut dice = Dice(seed2);
                                let mut buf = vec![0u8; 65_536];
                                while !st2.load(Ordering::Relaxed) {
                                    let Ok(n) = b2.recv(&mut buf) else { continue };
                                    if n > RELAY_MTU {
                                        continue;
                                    }
                                    if dice.drop(per_mille) {
                                        dr2.fetch_add(1, Ordering::Relaxed);
                                    } else {
                                        pa2.fetch_add(1, Ordering::Relaxed);
                                        let _ = f2.send_to(&buf[..n], from);
                                    }
                                }
                            });
                            b
                        })
                        .clone()
                };
                if n > RELAY_MTU {
                    continue;
                }
                if dice.drop(per_mille) {
                    dr.fetch_add(1, Ordering::Relaxed);
                } else {
                    pa.fetch_add(1, Ordering::Relaxed);
                    let _ = back.send(&buf[..n]);
                }
            }
        });
        LossyRelay {
            addr,
            stop,
            dropped,
            passed,
        }
    }
}

impl Drop for LossyRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A TCP echo service; with `count`, it instead reads to EOF and answers
/// with the byte count (a `wc -c` service, to see half-close through).
fn tcp_service(count: bool) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            thread::spawn(move || {
                let mut buf = vec![0u8; 65_536];
                let mut total = 0usize;
                loop {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            total += n;
                            if !count && c.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
                if count {
                    let _ = c.write_all(format!("{total}\n").as_bytes());
                }
                let _ = c.shutdown(Shutdown::Write);
            });
        }
    });
    addr
}

struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn key(dir: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let k = dir.join("key");
    std::fs::write(&k, common::pattern(48, 5)).unwrap();
    std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o600)).unwrap();
    k
}

fn daemon(key: &Path, target: SocketAddr, extra: &[&str]) -> (Child, SocketAddr) {
    let port = common::free_udp_port();
    let listen = format!("127.0.0.1:{port}");
    let child = Command::new(RECV)
        .args(["--listen", &listen, "--key-file", s(key)])
        .args(["--forward", &target.to_string()])
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (child, listen.parse().unwrap())
}

fn client(key: &Path, daemon: SocketAddr, extra: &[&str]) -> (Child, SocketAddr) {
    let port = common::free_tcp_port();
    let from = format!("127.0.0.1:{port}");
    let child = Command::new(SEND)
        .args(["--key-file", s(key), "--forward-from", &from])
        .args(extra)
        .arg(format!("vfer://{daemon}"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr: SocketAddr = from.parse().unwrap();
    let end = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < end, "forwarding client did not listen");
        thread::sleep(Duration::from_millis(50));
    }
    (child, addr)
}

/// Sends `data`, half-closes, returns everything read back until EOF.
fn round_trip(addr: SocketAddr, data: Vec<u8>) -> Vec<u8> {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut w = c.try_clone().unwrap();
    let writer = thread::spawn(move || {
        w.write_all(&data).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    writer.join().unwrap();
    got
}

/// Sends `data` to a connection the forwarder will drop: returns what came
/// back (a reset counts as nothing).
fn refused(addr: SocketAddr, data: &[u8]) -> Vec<u8> {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let _ = c.write_all(data);
    let _ = c.shutdown(Shutdown::Write);
    let mut got = Vec::new();
    match c.read_to_end(&mut got) {
        Ok(_) => got,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => got,
        Err(e) => panic!("{e}"),
    }
}

/// Waits until `c` collected text containing `needle`.
fn wait_text(c: &common::Collector, needle: &str) -> String {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let t = String::from_utf8_lossy(&c.snapshot()).into_owned();
        if t.contains(needle) || Instant::now() > end {
            return t;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn echo_through_one_percent_loss() {
    let d = tempfile::tempdir().unwrap();
    let k = key(d.path());
    let (dm, daddr) = daemon(&k, tcp_service(false), &[]);
    let relay = LossyRelay::start(daddr, 10, 0x5eed);
    let (cl, caddr) = client(&k, relay.addr, &[]);
    let _procs = Procs(vec![dm, cl]);
    // Three connections at once, each its own session, 4 MB each way.
    let workers: Vec<_> = (0..3u64)
        .map(|i| {
            thread::spawn(move || {
                let data = common::pattern(4_000_000, 100 + i);
                let got = round_trip(caddr, data.clone());
                assert!(
                    got == data,
                    "connection {i}: {} of {} bytes, or changed",
                    got.len(),
                    data.len()
                );
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let (dropped, passed) = (
        relay.dropped.load(Ordering::Relaxed),
        relay.passed.load(Ordering::Relaxed),
    );
    eprintln!("relay: {dropped} dropped, {passed} passed");
    assert!(
        dropped > 0,
        "the relay dropped nothing: the test tested no loss"
    );
}

#[test]
fn half_close_both_ways() {
    let d = tempfile::tempdir().unwrap();
    let k = key(d.path());
    let (dm, daddr) = daemon(&k, tcp_service(true), &[]);
    let (cl, caddr) = client(&k, daddr, &[]);
    let _procs = Procs(vec![dm, cl]);
    // The service answers only after our EOF reached it, then closes:
    // the answer and its EOF come back.
    let got = round_trip(caddr, common::pattern(777_777, 1));
    assert_eq!(String::from_utf8_lossy(&got), "777777\n");
    let got = round_trip(caddr, Vec::new());
    assert_eq!(String::from_utf8_lossy(&got), "0\n");
}

#[test]
fn connection_limit_queues_the_next() {
    let d = tempfile::tempdir().unwrap();
    let k = key(d.path());
    let (dm, daddr) = daemon(&k, tcp_service(false), &[]);
    let (cl, caddr) = client(&k, daddr, &["-n", "1"]);
    let _procs = Procs(vec![dm, cl]);
    let mut a = TcpStream::connect(caddr).unwrap();
    a.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    a.write_all(b"first").unwrap();
    let mut buf = [0u8; 5];
    a.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"first");
    // The second connection waits in the backlog while the first is open.
    let mut b = TcpStream::connect(caddr).unwrap();
    b.write_all(b"second").unwrap();
    b.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut buf = [0u8; 6];
    assert!(b.read_exact(&mut buf).is_err(), "served beyond -n 1");
    drop(a);
    b.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    b.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"second");
}

#[test]
fn unreachable_target_is_reported() {
    let d = tempfile::tempdir().unwrap();
    let k = key(d.path());
    let dead: SocketAddr = format!("127.0.0.1:{}", common::free_tcp_port())
        .parse()
        .unwrap();
    let (dm, daddr) = daemon(&k, dead, &["-o", "2"]);
    let (mut cl, caddr) = client(&k, daddr, &[]);
    let err = cl.stderr.take().map(common::Collector::new).unwrap();
    let _procs = Procs(vec![dm, cl]);
    assert!(refused(caddr, b"anyone?").is_empty());
    let msg = wait_text(&err, "cannot connect");
    assert!(msg.contains("the daemon says: cannot connect to"), "{msg}");
}

#[test]
fn pidfiles_and_sigterm_close_cleanly() {
    let d = tempfile::tempdir().unwrap();
    let k = key(d.path());
    let (dpid, cpid) = (d.path().join("d.pid"), d.path().join("c.pid"));
    let (mut dm, daddr) = daemon(&k, tcp_service(false), &["--pidfile", s(&dpid)]);
    let (mut cl, caddr) = client(&k, daddr, &["--pidfile", s(&cpid)]);
    let read_pid = |p: &Path| {
        std::fs::read_to_string(p)
            .unwrap()
            .trim()
            .parse::<u32>()
            .unwrap()
    };
    assert_eq!(read_pid(&dpid), dm.id());
    assert_eq!(read_pid(&cpid), cl.id());
    // A connection in the middle of its stream.
    let mut c = TcpStream::connect(caddr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let data = common::pattern(100_000, 4);
    c.write_all(&data).unwrap();
    let mut back = vec![0u8; data.len()];
    c.read_exact(&mut back).unwrap();
    assert!(back == data);
    // SIGTERM: the client stops reading, flushes, sends its EOF; the echo
    // service closes in turn and that EOF reaches us; everyone exits 0.
    // SAFETY: plain syscall on our child.
    unsafe { libc::kill(cl.id() as i32, libc::SIGTERM) };
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    assert_eq!(common::wait_code(&mut cl, Duration::from_secs(30)), Some(0));
    assert!(
        TcpStream::connect(caddr).is_err(),
        "still accepting after SIGTERM"
    );
    unsafe { libc::kill(dm.id() as i32, libc::SIGTERM) };
    assert_eq!(common::wait_code(&mut dm, Duration::from_secs(30)), Some(0));
}

#[test]
fn handshake_timeout_drops_the_connection() {
    let d = tempfile::tempdir().unwrap();
    let k = key(d.path());
    // Nobody listens on this UDP port.
    let nobody: SocketAddr = format!("127.0.0.1:{}", common::free_udp_port())
        .parse()
        .unwrap();
    let (mut cl, caddr) = client(&k, nobody, &["-o", "1"]);
    let err = cl.stderr.take().map(common::Collector::new).unwrap();
    let _procs = Procs(vec![cl]);
    assert!(refused(caddr, b"hello").is_empty());
    let msg = wait_text(&err, "no session with");
    assert!(msg.contains("no session with"), "{msg}");
}
