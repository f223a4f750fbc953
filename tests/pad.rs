//! `--pad` (docs/PROTOCOL.md §5, §8.6) through the real binaries: every
//! size arrives intact through forwarding and program daemons, the
//! datagrams on the wire do not show how much a connection carried (a
//! recording UDP relay between client and daemon), each refusal says what
//! to do, and hostile records end the session with an error instead of
//! delivering anything.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use vfer::service::connect::{self, Reach};
use vfer::service::request::{Request, Service, SessionOptions};
use vfer::transport::CloseReason;

const SEND: &str = env!("CARGO_BIN_EXE_vfer-send");
const RECV: &str = env!("CARGO_BIN_EXE_vfer-recv");

/// The sizes every padded mode must carry intact: none, one byte, around
/// one record's data (1,022) and one record (1,024), and 1 MB.
const SIZES: [usize; 7] = [0, 1, 1022, 1023, 1024, 1025, 1_000_000];

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
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

fn key(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let k = dir.join("key");
    std::fs::write(&k, common::pattern(48, 5)).unwrap();
    std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o600)).unwrap();
    k
}

/// A TCP service: echoes everything (`seen` counts what it received).
fn echo_service(seen: Arc<Mutex<usize>>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            let seen = seen.clone();
            thread::spawn(move || {
                let mut buf = vec![0u8; 65_536];
                loop {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            *seen.lock().unwrap() += n;
                            if c.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
                let _ = c.shutdown(Shutdown::Write);
            });
        }
    });
    addr
}

/// `vfer-recv --listen --key-file K --forward TARGET EXTRA...`.
fn forward_daemon(key: &Path, target: SocketAddr, extra: &[&str]) -> (Child, SocketAddr) {
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

/// `vfer-send --key-file K --forward-from ADDR EXTRA... vfer://DAEMON`,
/// once it listens.
fn forward_client(key: &Path, daemon: SocketAddr, extra: &[&str]) -> (Child, SocketAddr) {
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
    match c.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("{e}"),
    }
    writer.join().unwrap();
    got
}

/// Waits until `c` collected text containing `needle`; returns the text.
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
fn forwarding_carries_every_size_intact() {
    let d = tempfile::tempdir().unwrap();
    let k = key(d.path());
    let seen = Arc::new(Mutex::new(0));
    let (dm, daddr) = forward_daemon(&k, echo_service(seen), &["--pad"]);
    let (cl, caddr) = forward_client(&k, daddr, &["--pad"]);
    let _procs = Procs(vec![dm, cl]);
    for (i, n) in SIZES.into_iter().enumerate() {
        let data = common::pattern(n, i as u64);
        let got = round_trip(caddr, data.clone());
        assert!(
            got == data,
            "{n} bytes: {} came back, or changed",
            got.len()
        );
    }
}

#[test]
fn program_daemon_carries_every_size_intact() {
    let d = tempfile::tempdir().unwrap();
    let k = key(d.path());
    let port = common::free_udp_port();
    let listen = format!("127.0.0.1:{port}");
    let dm = Command::new(RECV)
        .args(["--listen", &listen, "--key-file", s(&k), "--pad"])
        .args(["--exec", "cat; echo done >&2"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _procs = Procs(vec![dm]);
    for (i, n) in SIZES.into_iter().enumerate() {
        let input = d.path().join(format!("in{i}"));
        let data = common::pattern(n, 40 + i as u64);
        std::fs::write(&input, &data).unwrap();
        // The daemon may still be binding its socket for the first one.
        let mut tries = 0;
        let out = loop {
            let out = Command::new(SEND)
                .args(["--key-file", s(&k), "--pad", "--exec", "-"])
                .arg(format!("vfer://{listen}"))
                .stdin(std::fs::File::open(&input).unwrap())
                .output()
                .unwrap();
            tries += 1;
            if out.status.success() || tries == 3 {
                break out;
            }
            thread::sleep(Duration::from_millis(300));
        };
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{n} bytes: {:?} {err}", out.status);
        assert!(
            out.stdout == data,
            "{n} bytes: {} came back",
            out.stdout.len()
        );
        assert!(
            err.contains("done\n"),
            "the program's stderr, in its own frames: {err}"
        );
    }
}

#[test]
fn ssh_started_program_pads_too() {
    // --local starts the far side as ssh would, with --pad in its words.
    let data = common::pattern(300_000, 77);
    let mut child = Command::new(SEND)
        .args(["--pad", "--local", "--exec", "-", "--", "sh", "-c"])
        .arg("cat; exit 3")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let d2 = data.clone();
    let w = thread::spawn(move || stdin.write_all(&d2).unwrap());
    let (out, err) = common::collect(&mut child);
    let code = common::wait_code(&mut child, Duration::from_secs(60));
    w.join().unwrap();
    let err = String::from_utf8_lossy(&err.finish()).into_owned();
    assert_eq!(code, Some(3), "the far program's status: {err}");
    assert!(out.finish() == data, "{err}");
}

/// A UDP relay that records the size of every datagram, per session
/// (client address) and direction, in order.
struct Recorder {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// One entry per client address, in order of arrival: (to daemon, to
    /// client) datagram sizes.
    log: Arc<Mutex<Vec<Flow>>>,
}

/// One session's datagram sizes: its client, to the daemon, to the client.
type Flow = (SocketAddr, Vec<usize>, Vec<usize>);

impl Recorder {
    fn start(upstream: SocketAddr) -> Recorder {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        front
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let addr = front.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (st, lg) = (stop.clone(), log.clone());
        thread::spawn(move || {
            let mut backs: HashMap<SocketAddr, (usize, Arc<UdpSocket>)> = HashMap::new();
            let mut buf = vec![0u8; 65_536];
            while !st.load(Ordering::Relaxed) {
                let Ok((n, from)) = front.recv_from(&mut buf) else {
                    continue;
                };
                let (idx, back) = backs
                    .entry(from)
                    .or_insert_with(|| {
                        let idx = {
                            let mut l = lg.lock().unwrap();
                            l.push((from, Vec::new(), Vec::new()));
                            l.len() - 1
                        };
                        let b = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
                        b.connect(upstream).unwrap();
                        b.set_read_timeout(Some(Duration::from_millis(100)))
                            .unwrap();
                        let (b2, f2, st2, lg2) = (b.clone(), front.clone(), st.clone(), lg.clone());
                        thread::spawn(move || {
                            let mut buf = vec![0u8; 65_536];
                            while !st2.load(Ordering::Relaxed) {
                                let Ok(n) = b2.recv(&mut buf) else { continue };
                                lg2.lock().unwrap()[idx].2.push(n);
                                let _ = f2.send_to(&buf[..n], from);
                            }
                        });
                        (idx, b)
                    })
                    .clone();
                lg.lock().unwrap()[idx].1.push(n);
                let _ = back.send(&buf[..n]);
            }
        });
        Recorder { addr, stop, log }
    }

    /// Every session so far: (to daemon, to client) sizes.
    fn sessions(&self) -> Vec<(Vec<usize>, Vec<usize>)> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .map(|(_, a, b)| (a.clone(), b.clone()))
            .collect()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The datagrams of one direction that can carry a record: after the
/// first (the handshake's), at least 900 bytes, and below PLPMTUD's
/// probes (the smallest is 1,430 bytes, §3.7).
fn big(sizes: &[usize]) -> Vec<usize> {
    let mut b: Vec<usize> = sizes
        .iter()
        .skip(1)
        .copied()
        .filter(|&n| (900..1430).contains(&n))
        .collect();
    b.sort_unstable();
    b
}

/// One connection of `n` bytes (echoed) per session through the relay;
/// returns each session's big datagrams both ways.
fn wire_sizes(pad: bool, sizes: &[usize]) -> Vec<(Vec<usize>, Vec<usize>)> {
    let d = tempfile::tempdir().unwrap();
    let k = key(d.path());
    let flags: &[&str] = if pad { &["--pad"] } else { &[] };
    let seen = Arc::new(Mutex::new(0));
    let (dm, daddr) = forward_daemon(&k, echo_service(seen), flags);
    let relay = Recorder::start(daddr);
    let (cl, caddr) = forward_client(&k, relay.addr, flags);
    let _procs = Procs(vec![dm, cl]);
    // forward_client's probe connection is a session too: let it end first.
    thread::sleep(Duration::from_millis(300));
    let probes = relay.sessions().len();
    for (i, &n) in sizes.iter().enumerate() {
        let data = common::pattern(n, 9 + i as u64);
        assert!(round_trip(caddr, data.clone()) == data, "{n} bytes");
        // The session's last datagrams (FIN's ack, CLOSE) settle.
        thread::sleep(Duration::from_millis(300));
    }
    let mut sessions = relay.sessions();
    sessions.drain(..probes);
    assert_eq!(sessions.len(), sizes.len(), "one session per connection");
    sessions
        .into_iter()
        .map(|(up, down)| (big(&up), big(&down)))
        .collect()
}

#[test]
fn lengths_do_not_show_on_the_wire() {
    // One byte and 1,000 bytes: one record each way, so with --pad the
    // datagrams that carry them must look alike (the same count, sizes
    // within a few bytes of acknowledgement and request framing), while
    // without it the 1,000 bytes show.
    let plain = wire_sizes(false, &[1, 1000]);
    eprintln!("without --pad: {plain:?}");
    assert!(
        plain[0].0.is_empty() && plain[1].0.len() == 1,
        "the control: without --pad, 1,000 bytes need a big datagram and 1 byte does not: {plain:?}"
    );
    let padded = wire_sizes(true, &[1, 1000, 1022]);
    eprintln!("with --pad: {padded:?}");
    let (first, rest) = padded.split_first().unwrap();
    for (dir, a, b) in rest
        .iter()
        .flat_map(|o| [("up", &first.0, &o.0), ("down", &first.1, &o.1)])
    {
        assert_eq!(a.len(), b.len(), "{dir}: {padded:?}");
        assert!(
            !a.is_empty(),
            "{dir}: a record makes a big datagram: {padded:?}"
        );
        for (x, y) in a.iter().zip(b.iter()) {
            assert!(x.abs_diff(*y) <= 32, "{dir}: {padded:?}");
        }
    }
}

#[test]
fn refusals_say_what_to_do() {
    let d = tempfile::tempdir().unwrap();
    let k = key(d.path());
    let seen = Arc::new(Mutex::new(0));
    // A client without --pad at a daemon with it: refused by name, and
    // nothing reaches the target.
    let (dm, daddr) = forward_daemon(&k, echo_service(seen.clone()), &["--pad"]);
    let (mut cl, caddr) = forward_client(&k, daddr, &[]);
    let err = common::Collector::new(cl.stderr.take().unwrap());
    let _procs = Procs(vec![dm, cl]);
    assert!(round_trip(caddr, b"hello".to_vec()).is_empty());
    let t = wait_text(&err, "run the client with --pad");
    assert!(
        t.contains(
            "the daemon says: this daemon pads its traffic (--pad); run the client with --pad too"
        ),
        "{t}"
    );
    assert_eq!(*seen.lock().unwrap(), 0);
    // --pad where nothing is padded: usage errors.
    let out = common::run(SEND, &["--pad", "--local", "/etc/hostname", "/tmp/x"]);
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("--pad is for program modes"), "{e}");
    let out = common::run(RECV, &["--pad", "--local", "x:/etc/hostname", "."]);
    assert_eq!(out.status.code(), Some(2));
}

/// Opens a key-file session to `daemon` and sends a version 3 request
/// with the pad option for `service`.
async fn padded_session(
    key: &Path,
    daemon: SocketAddr,
    service: Service,
) -> vfer::transport::Session {
    let reach = Reach {
        key_file: Some(key.to_path_buf()),
        ..Reach::default()
    };
    let mut tries = 0;
    let session = loop {
        match connect::key_file_session("127.0.0.1", daemon.port(), &reach).await {
            Ok(s) => break s,
            Err(e) if tries < 5 => {
                tries += 1;
                eprintln!("retrying: {e:#}");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => panic!("{e:#}"),
        }
    };
    let opts = SessionOptions {
        pad: true,
        ..SessionOptions::default()
    };
    Request::new(service, opts)
        .write(&mut session.stream())
        .await
        .unwrap();
    session
}

/// Waits for the peer's CLOSE and returns its code and reason.
async fn peer_close(session: &vfer::transport::Session) -> (u64, String) {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        match session.close_reason() {
            Some(CloseReason::Peer { code, reason }) => return (code, reason),
            Some(other) => panic!("not closed by the peer: {other}"),
            None if Instant::now() > end => panic!("the daemon did not close the session"),
            None => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// A record that is not one (length 0xffff, the first bytes of an
/// unpadded stream, a length beyond the record) ends a forwarding session
/// with CLOSE 1 and the reason, and nothing reaches the target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_record_length_ends_the_forwarding_session() {
    use tokio::io::AsyncWriteExt;
    let d = tempfile::tempdir().unwrap();
    let k = key(d.path());
    let seen = Arc::new(Mutex::new(0));
    let (dm, daddr) = forward_daemon(&k, echo_service(seen.clone()), &[]);
    let _procs = Procs(vec![dm]);
    for (head, want) in [
        (
            [0xff, 0xff],
            "bad padded record: length 65535 (want 1 to 1022)",
        ),
        (*b"GE", "bad padded record: length 18245"),
        ([0x04, 0x00], "bad padded record: length 1024"),
        ([0x00, 0x00], "bad padded record: length 0"),
    ] {
        let session = padded_session(&k, daddr, Service::Forward).await;
        let mut record = vec![0u8; 1024];
        record[..2].copy_from_slice(&head);
        record[2..20].copy_from_slice(b"must never arrive!");
        session.stream().write_all(&record).await.unwrap();
        let (code, reason) = peer_close(&session).await;
        assert_eq!(code, 1, "{reason}");
        assert!(reason.contains(want), "{reason}");
        session.close(0, "").await;
    }
    // Non-zero padding, and a stream that ends inside a record.
    let session = padded_session(&k, daddr, Service::Forward).await;
    let mut record = vec![0u8; 1024];
    record[..3].copy_from_slice(&[0, 1, b'x']);
    record[1023] = 1;
    session.stream().write_all(&record).await.unwrap();
    let (code, reason) = peer_close(&session).await;
    assert_eq!(
        (code, reason.contains("non-zero padding")),
        (1, true),
        "{reason}"
    );
    session.close(0, "").await;
    let session = padded_session(&k, daddr, Service::Forward).await;
    let mut s = session.stream();
    s.write_all(&[0, 1, b'x']).await.unwrap();
    let _ = s.shutdown().await;
    let (code, reason) = peer_close(&session).await;
    assert_eq!(code, 1, "{reason}");
    assert!(
        reason.contains("ended inside a padded record (3 of 1024"),
        "{reason}"
    );
    session.close(0, "").await;
    assert_eq!(
        *seen.lock().unwrap(),
        0,
        "no byte of a bad record was delivered"
    );
}

/// The program daemon: a bad record stops the program and ends the session
/// with the reason; the program never saw the bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_record_length_ends_the_program_session() {
    use tokio::io::AsyncWriteExt;
    let d = tempfile::tempdir().unwrap();
    let k = key(d.path());
    let port = common::free_udp_port();
    let listen: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let got = d.path().join("got");
    let dm = Command::new(RECV)
        .args(["--listen", &listen.to_string(), "--key-file", s(&k)])
        .arg("--exec")
        .arg(format!("cat > {}", s(&got)))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _procs = Procs(vec![dm]);
    let session = padded_session(&k, listen, Service::Program).await;
    let mut record = vec![0u8; 1024];
    record[..2].copy_from_slice(&[0x7f, 0xff]);
    record[2..20].copy_from_slice(b"must never arrive!");
    session.stream().write_all(&record).await.unwrap();
    let (code, reason) = peer_close(&session).await;
    assert_eq!(code, 1, "{reason}");
    assert!(
        reason.contains("bad padded record: length 32767"),
        "{reason}"
    );
    session.close(0, "").await;
    let file = std::fs::read(&got).unwrap_or_default();
    assert!(file.is_empty(), "the program got {file:?}");
}

/// A padded client whose far side does not pad (a far `vfer-recv` started
/// without --pad through a wrapper): the client refuses the unpadded
/// frames as records, exits 111 and says why; nothing reaches its stdout.
#[test]
fn a_padded_client_refuses_an_unpadded_far_side() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let wrapper = d.path().join("vfer-recv-nopad");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nfor a do shift; [ \"$a\" = --pad ] || set -- \"$@\" \"$a\"; done\nexec {RECV} \"$@\"\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new(SEND)
        .args(["--pad", "--local", "--remote-path", s(&wrapper)])
        .args(["--exec", "-", "--", "sh", "-c"])
        .arg("yes | head -c 5000")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(111), "{err}");
    assert!(err.contains("bad padded record: non-zero padding"), "{err}");
    assert!(out.stdout.is_empty(), "{:?}", out.stdout.len());
}
