//! Key-file mode: a standing server authenticates clients by K =
//! SHA-256(key file); a client with the wrong key gets no answer, fails
//! with a clear error within its handshake timeout, and the server goes on
//! serving others.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vfer::bootstrap::keyfile::{self, ListenOptions};
use vfer::transport::{CloseReason, Config, SessionError};

fn key_file(dir: &std::path::Path, name: &str, byte: u8) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, [byte; 48]).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_is_ignored_and_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let good = keyfile::load(&key_file(dir.path(), "good", 1)).unwrap();
    let bad = keyfile::load(&key_file(dir.path(), "bad", 2)).unwrap();
    let port = common::free_udp_port();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();

    let server_key = good.clone();
    let server = tokio::spawn(async move {
        let opts = ListenOptions {
            max_sessions: Some(2),
            ..ListenOptions::default()
        };
        keyfile::listen(addr, &server_key, opts, |s| async move {
            // Reply with the number of bytes received, then close.
            let mut st = s.stream();
            let mut buf = Vec::new();
            let n = st.read_to_end(&mut buf).await.unwrap_or(0);
            let _ = st.write_all(&(n as u64).to_be_bytes()).await;
            let _ = st.shutdown().await;
            s.close(0, "bye").await;
        })
        .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;

    let cfg = Config {
        handshake_timeout: Duration::from_secs(2),
        ..Config::default()
    };
    for round in 0..2 {
        let start = Instant::now();
        let e = keyfile::connect(addr, &bad, cfg.clone())
            .await
            .map(|_| ())
            .unwrap_err();
        assert!(
            matches!(e, SessionError::Closed(CloseReason::HandshakeTimeout(_))),
            "{e:?}"
        );
        assert!(e.to_string().contains("wrong secret/key"), "{e}");
        assert!(start.elapsed() < Duration::from_secs(10));

        let s = keyfile::connect(addr, &good, cfg.clone())
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        let (mut r, mut w) = tokio::io::split(s.stream());
        let writer = async {
            w.write_all(&common::pattern(100_000, round)).await.unwrap();
            common::shutdown_ok(&mut w).await;
        };
        let mut n = [0u8; 8];
        let (_, got) = tokio::join!(writer, r.read_exact(&mut n));
        got.unwrap();
        assert_eq!(u64::from_be_bytes(n), 100_000);
        s.close(0, "done").await;
    }
    let r = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("listener stops after max_sessions");
    r.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_clients_at_once_on_one_port() {
    let dir = tempfile::tempdir().unwrap();
    let good = keyfile::load(&key_file(dir.path(), "good", 5)).unwrap();
    let bad = keyfile::load(&key_file(dir.path(), "bad", 6)).unwrap();
    let (sock, _) = vfer::transport::socket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = sock.local_addr().unwrap();
    const CLIENTS: u64 = 6;
    let server_key = good.clone();
    let server = tokio::spawn(async move {
        let opts = ListenOptions {
            max_sessions: Some(CLIENTS),
            ..ListenOptions::default()
        };
        keyfile::serve(
            std::sync::Arc::new(sock),
            &server_key,
            opts,
            |s| async move {
                // Echo, then close.
                let (mut r, mut w) = tokio::io::split(s.stream());
                if tokio::io::copy(&mut r, &mut w).await.is_ok() {
                    let _ = w.shutdown().await;
                }
                s.close(0, "bye").await;
            },
        )
        .await
    });
    let cfg = Config {
        handshake_timeout: Duration::from_secs(2),
        ..Config::default()
    };
    let intruder = {
        let cfg = cfg.clone();
        tokio::spawn(async move { keyfile::connect(addr, &bad, cfg).await.map(|_| ()) })
    };
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let (key, cfg) = (good.clone(), cfg.clone());
        clients.push(tokio::spawn(async move {
            let s = keyfile::connect(addr, &key, cfg).await.expect("connect");
            let data = common::pattern(500_000, i);
            let (mut r, mut w) = tokio::io::split(s.stream());
            let writer = async {
                w.write_all(&data).await.unwrap();
                common::shutdown_ok(&mut w).await;
            };
            let mut back = Vec::new();
            let (_, n) = tokio::join!(writer, r.read_to_end(&mut back));
            n.unwrap();
            s.close(0, "done").await;
            back == data
        }));
    }
    for c in clients {
        assert!(c.await.unwrap(), "a client's echo differs");
    }
    assert!(
        intruder.await.unwrap().is_err(),
        "wrong key must not connect"
    );
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("listener returns after max_sessions")
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_request_from_another_address_gets_no_answer() {
    use tokio::net::UdpSocket;
    let dir = tempfile::tempdir().unwrap();
    let key = keyfile::load(&key_file(dir.path(), "k", 7)).unwrap();
    let (sock, _) = vfer::transport::socket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let server_addr = sock.local_addr().unwrap();
    let server_key = key.clone();
    tokio::spawn(async move {
        keyfile::serve(
            std::sync::Arc::new(sock),
            &server_key,
            ListenOptions::default(),
            |s| async move {
                let mut buf = Vec::new();
                let _ = s.stream().read_to_end(&mut buf).await;
                s.close(0, "bye").await;
            },
        )
        .await
    });

    // A recording relay between the client and the server.
    let front = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let back = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let front_addr = front.local_addr().unwrap();
    let (first_tx, first_rx) = tokio::sync::oneshot::channel::<Vec<u8>>();
    tokio::spawn(async move {
        let mut first_tx = Some(first_tx);
        let mut client = None;
        let (mut a, mut b) = (vec![0u8; 65_536], vec![0u8; 65_536]);
        loop {
            tokio::select! {
                Ok((n, from)) = front.recv_from(&mut a) => {
                    client = Some(from);
                    if let Some(tx) = first_tx.take() {
                        let _ = tx.send(a[..n].to_vec());
                    }
                    let _ = back.send_to(&a[..n], server_addr).await;
                }
                Ok((n, _)) = back.recv_from(&mut b) => {
                    if let Some(c) = client {
                        let _ = front.send_to(&b[..n], c).await;
                    }
                }
            }
        }
    });
    let s = keyfile::connect(front_addr, &key, Config::default())
        .await
        .expect("connect through the relay");
    let request = first_rx.await.unwrap();
    s.close(0, "done").await;

    // The captured REQUEST, replayed from a new address: no RESPONSE.
    let replayer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    replayer.send_to(&request, server_addr).await.unwrap();
    let mut buf = [0u8; 2048];
    let r = tokio::time::timeout(Duration::from_millis(800), replayer.recv_from(&mut buf)).await;
    assert!(r.is_err(), "the server answered a replayed REQUEST");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_flood_does_not_disturb_a_session() {
    let dir = tempfile::tempdir().unwrap();
    let key = keyfile::load(&key_file(dir.path(), "k", 8)).unwrap();
    let (sock, _) = vfer::transport::socket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = sock.local_addr().unwrap();
    let server_key = key.clone();
    tokio::spawn(async move {
        keyfile::serve(
            std::sync::Arc::new(sock),
            &server_key,
            ListenOptions::default(),
            |s| async move {
                let (mut r, mut w) = tokio::io::split(s.stream());
                if tokio::io::copy(&mut r, &mut w).await.is_ok() {
                    let _ = w.shutdown().await;
                }
                s.close(0, "bye").await;
            },
        )
        .await
    });
    // Junk: random bytes, and well-formed REQUEST headers with bad MACs.
    let flood = tokio::spawn(async move {
        let junk = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut d = common::pattern(1200, 99);
        for i in 0..30_000u32 {
            d[..4].copy_from_slice(&i.to_be_bytes());
            if i % 2 == 0 {
                // VSL header: magic, type REQUEST, exact datalen.
                d[24..28].copy_from_slice(b"VSL1");
                d[28] = 0x01;
                d[29..33].copy_from_slice(&(1200u32 - 33).to_be_bytes());
            }
            let _ = junk.send_to(&d, addr).await;
            if i % 256 == 0 {
                tokio::task::yield_now().await;
            }
        }
    });
    let s = keyfile::connect(addr, &key, Config::default())
        .await
        .expect("connect during the flood");
    let data = common::pattern(4 << 20, 5);
    let (mut r, mut w) = tokio::io::split(s.stream());
    let writer = async {
        w.write_all(&data).await.unwrap();
        common::shutdown_ok(&mut w).await;
    };
    let mut back = Vec::new();
    let (_, n) = tokio::join!(writer, r.read_to_end(&mut back));
    n.unwrap();
    assert!(back == data, "echo differs under junk flood");
    s.close(0, "done").await;
    flood.await.unwrap();
}

/// A key-file server on 127.0.0.1 (an OS-chosen port) whose sessions echo.
fn echo_server(key: &vfer::bootstrap::Secret, opts: ListenOptions) -> std::net::SocketAddr {
    let (sock, _) = vfer::transport::socket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = sock.local_addr().unwrap();
    let key = key.clone();
    tokio::spawn(async move {
        keyfile::serve(std::sync::Arc::new(sock), &key, opts, |s| async move {
            let (mut r, mut w) = tokio::io::split(s.stream());
            if tokio::io::copy(&mut r, &mut w).await.is_ok() {
                let _ = w.shutdown().await;
            }
            s.close(0, "bye").await;
        })
        .await
    });
    addr
}

/// A REQUEST as a genuine client makes it, stamped `age` in the past.
fn request(key: &vfer::bootstrap::Secret, age: Duration) -> Vec<u8> {
    use vfer::transport::{encode_request, Offer, Tai64n};
    let mut rnd = vfer::transport::HandshakeRandom::from_os().unwrap();
    rnd.timestamp = Tai64n::from_system(std::time::SystemTime::now() - age);
    let params = vfer::transport::TransportParams {
        max_udp_payload: 1452,
        initial_max_data: 1 << 20,
        idle_timeout_ms: 30_000,
    };
    encode_request(
        key.bytes(),
        &rnd,
        &params,
        &Offer::new(vfer::vsl::ALL_SUITES),
    )
}

/// Sends `d` from `sock` and says whether the server answered within 800 ms.
async fn answered(sock: &tokio::net::UdpSocket, d: &[u8], to: std::net::SocketAddr) -> bool {
    let mut buf = [0u8; 2048];
    // Forget earlier answers (a server may resend its RESPONSE).
    while sock.try_recv_from(&mut buf).is_ok() {}
    sock.send_to(d, to).await.unwrap();
    tokio::time::timeout(Duration::from_millis(800), sock.recv_from(&mut buf))
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_requests_are_refused_from_any_address_at_any_time() {
    use tokio::net::UdpSocket;
    let dir = tempfile::tempdir().unwrap();
    let key = keyfile::load(&key_file(dir.path(), "k", 9)).unwrap();
    let opts = ListenOptions {
        handshake_timeout: Duration::from_millis(500),
        ..ListenOptions::default()
    };
    let server = echo_server(&key, opts);
    tokio::time::sleep(Duration::from_millis(100)).await;

    // A fresh REQUEST is answered (and its RESPONSE resent to the same
    // address while the handshake is open).
    let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let fresh = request(&key, Duration::ZERO);
    assert!(answered(&a, &fresh, server).await);
    // Once the server forgot that handshake, the same REQUEST from the same
    // address (the attacker spoofs the recorded source) opens nothing.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        !answered(&a, &fresh, server).await,
        "a replayed REQUEST was answered"
    );
    // Nor from another address.
    let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    assert!(!answered(&b, &fresh, server).await);
    // A REQUEST recorded ten minutes ago (never used here) is refused too.
    let old = request(&key, Duration::from_secs(600));
    assert!(
        !answered(&b, &old, server).await,
        "a REQUEST stamped 10 minutes ago was answered"
    );
    // One from a clock a minute behind is within the window.
    let skewed = request(&key, Duration::from_secs(60));
    assert!(answered(&b, &skewed, server).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_handshake_holds_a_slot_only_until_the_handshake_timeout() {
    use tokio::net::UdpSocket;
    let dir = tempfile::tempdir().unwrap();
    let key = keyfile::load(&key_file(dir.path(), "k", 10)).unwrap();
    // One slot; handshakes are forgotten after 1 s.
    let opts = ListenOptions {
        max_connections: 1,
        handshake_timeout: Duration::from_secs(1),
        ..ListenOptions::default()
    };
    let server = echo_server(&key, opts);
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A REQUEST that never goes on to the first packet under session keys:
    // it reserves the slot until it is forgotten.
    let idle = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    assert!(answered(&idle, &request(&key, Duration::ZERO), server).await);
    // A genuine client is told BUSY meanwhile, backs off and gets the slot
    // once the idle handshake is forgotten, within its timeout.
    let cfg = Config {
        handshake_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(20),
        ..Config::default()
    };
    let s = keyfile::connect(server, &key, cfg)
        .await
        .expect("the slot was held by a handshake that never completed");
    let (mut r, mut w) = tokio::io::split(s.stream());
    w.write_all(b"ping").await.unwrap();
    let mut got = [0u8; 4];
    r.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"ping");
    // While it is served, a second client is answered BUSY until its
    // timeout runs out, and is told so.
    let s2 = keyfile::connect(
        server,
        &key,
        Config {
            handshake_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(3),
            ..Config::default()
        },
    )
    .await;
    match s2 {
        Err(SessionError::Closed(CloseReason::Busy { replies, .. })) => {
            assert!(replies >= 2, "{replies}")
        }
        Err(e) => panic!("not busy: {e}"),
        Ok(_) => panic!("a second session while the only slot is held"),
    }
    s.close(0, "done").await;
}
