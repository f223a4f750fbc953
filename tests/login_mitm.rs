//! A man in the middle between a real `vfer-send` and a login daemon. The
//! relay substitutes its own Diffie-Hellman shares; the client must abort
//! before it sends the password, and the relay must never see it — neither
//! in any datagram nor in anything it can decrypt. A control run shows the
//! relay would capture the password from a client that trusted its key.

mod login_common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use login_common::*;
use tokio::net::UdpSocket;
use vfer::bootstrap::listen::Gate;
use vfer::bootstrap::login::client;
use vfer::bootstrap::login::crypto::{derive, dh, transcript};
use vfer::bootstrap::login::hostkey::HostKey;
use vfer::bootstrap::login::known_hosts;
use vfer::bootstrap::login::server::{GateOptions, LoginGate};
use vfer::bootstrap::login::wire::{Accept, Hello, TYPE_HELLO};
use vfer::transport::TYPE_REQUEST;
use vfer::transport::{Config, Session};
use x25519_dalek::{PublicKey, StaticSecret};

const PASSWORD: &str = "canary-Tr0ub4dor&3-never-on-the-wire";

#[derive(Default, Debug)]
struct Capture {
    /// Every datagram the client sent to the relay.
    datagrams: Vec<Vec<u8>>,
    /// REQUESTs (the transport handshake) among them.
    requests: usize,
    /// Everything the relay could decrypt from the client's stream.
    plaintext: Vec<u8>,
}

impl Capture {
    fn saw_password(&self) -> bool {
        let pw = PASSWORD.as_bytes();
        let has = |b: &[u8]| b.windows(pw.len()).any(|w| w == pw);
        self.datagrams.iter().any(|d| has(d)) || has(&self.plaintext)
    }
}

/// A relay that answers the pre-handshake as a server with its own host
/// key (it holds the private key, so its key confirmation is valid), and
/// if the client goes on, becomes the transport server and reads the login.
async fn impersonate(sock: UdpSocket, key: HostKey, run_for: Duration) -> Capture {
    let mut gate = LoginGate::new(key, GateOptions::default(), Instant::now()).unwrap();
    let mut cap = Capture::default();
    let deadline = tokio::time::Instant::now() + run_for;
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok(Ok((n, from))) = tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)).await
        else {
            return cap;
        };
        let d = buf[..n].to_vec();
        cap.datagrams.push(d.clone());
        if n > 28 && d[28] == TYPE_REQUEST {
            cap.requests += 1;
            if let Some(secret) = gate.secret_for(from, Instant::now()) {
                // Take over as the transport server (the client resends its REQUEST).
                let left = deadline - tokio::time::Instant::now();
                if let Ok(session) =
                    Session::accept(sock, secret.bytes(), Config::default(), left).await
                {
                    let mut stream = session.stream();
                    let mut chunk = [0u8; 4096];
                    use tokio::io::AsyncReadExt;
                    while let Ok(Ok(k)) =
                        tokio::time::timeout(Duration::from_secs(2), stream.read(&mut chunk)).await
                    {
                        if k == 0 {
                            break;
                        }
                        cap.plaintext.extend_from_slice(&chunk[..k]);
                    }
                }
                return cap;
            }
            continue;
        }
        let mut reply = Vec::new();
        gate.other(from, &d, Instant::now(), &mut reply);
        if !reply.is_empty() {
            let _ = sock.send_to(&reply, from).await;
        }
    }
}

/// A relay that keeps the daemon's genuine static key but puts its own
/// ephemeral share in the ACCEPT: once with a confirmation it computes as
/// best it can, once with the genuine confirmation it obtained from the real
/// daemon for its own upstream handshake.
async fn substitute_shares(sock: UdpSocket, daemon: SocketAddr, run_for: Duration) -> Capture {
    let up = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let genuine = client::handshake(&up, daemon, Duration::from_secs(5))
        .await
        .expect("upstream handshake with the real daemon");
    let real_static = genuine.server_static;
    let mut cap = Capture::default();
    let deadline = tokio::time::Instant::now() + run_for;
    let mut buf = vec![0u8; 65_536];
    let mallory = StaticSecret::from([0x4d; 32]);
    let m_pub = PublicKey::from(&mallory).to_bytes();
    let mut flip = false;
    loop {
        let Ok(Ok((n, from))) = tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)).await
        else {
            return cap;
        };
        let d = buf[..n].to_vec();
        cap.datagrams.push(d.clone());
        if n > 28 && d[28] == TYPE_REQUEST {
            cap.requests += 1;
        }
        let Some(hello) = Hello::decode(&d) else {
            continue;
        };
        // Mallory knows DH(m, e_c) but not DH(e_c, s): she uses what she has.
        let ee = dh(&mallory, &hello.client_eph).unwrap();
        let h = transcript(&hello.client_eph, &m_pub, &real_static);
        let guess = derive(&h, &ee, &ee);
        flip = !flip;
        let accept = Accept {
            client_eph: hello.client_eph,
            server_eph: m_pub,
            server_static: real_static,
            confirm: if flip { guess.confirm } else { [0x5a; 32] },
        };
        let _ = sock.send_to(&accept.encode(), from).await;
    }
}

fn spawn_client(
    home: &std::path::Path,
    args: Vec<String>,
) -> tokio::task::JoinHandle<std::process::Output> {
    let home = home.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(client(SEND, &home, PASSWORD, &args))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_with_its_own_key_is_refused_before_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("f.bin");
    std::fs::write(&src, data(20_000, 9)).unwrap();
    let genuine = HostKey::generate().unwrap();
    let rogue = HostKey::generate().unwrap();

    // The client has pinned the genuine daemon's key for this address.
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = sock.local_addr().unwrap().port();
    let home = dir.path().join("home");
    let name = known_hosts::host_key("127.0.0.1", port);
    known_hosts::add(&known_hosts(&home), &name, &genuine.fingerprint()).unwrap();
    let relay = tokio::spawn(impersonate(sock, rogue.clone(), Duration::from_secs(6)));
    let url = format!("vfer://alice@127.0.0.1:{port}/in/");
    let out = spawn_client(
        &home,
        vec!["--timeout".into(), "4".into(), s(&src).into(), url],
    )
    .await
    .unwrap();
    let cap = relay.await.unwrap();
    assert_eq!(out.status.code(), Some(17), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(
        e.contains("HOST KEY HAS CHANGED") && e.contains(&rogue.fingerprint()),
        "{e}"
    );
    assert!(
        !cap.datagrams.is_empty(),
        "the client did talk to the relay"
    );
    assert!(
        cap.datagrams
            .iter()
            .all(|d| d.len() > 28 && d[28] == TYPE_HELLO),
        "the client sent nothing but HELLOs"
    );
    assert_eq!(cap.requests, 0);
    assert!(cap.plaintext.is_empty());
    assert!(!cap.saw_password());

    // Control: a client that trusts the relay's key on first use (an
    // unpinned host with --accept-new-host-key) hands the relay its
    // password — so the relay above really would have seen it.
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = sock.local_addr().unwrap().port();
    let relay = tokio::spawn(impersonate(sock, rogue.clone(), Duration::from_secs(6)));
    let fresh = dir.path().join("fresh-home");
    let url = format!("vfer://alice@127.0.0.1:{port}/in/");
    let args = vec![
        "--timeout".into(),
        "4".into(),
        "--accept-new-host-key".into(),
        s(&src).into(),
        url,
    ];
    let out = spawn_client(&fresh, args).await.unwrap();
    let cap = relay.await.unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(cap.requests > 0);
    assert!(
        cap.saw_password(),
        "control: the relay captures a trusting client's password"
    );
    assert!(
        !cap.datagrams
            .iter()
            .any(|d| d.windows(PASSWORD.len()).any(|w| w == PASSWORD.as_bytes())),
        "never in clear on the wire"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_substituting_dh_shares_fails_key_confirmation() {
    let t = Setup::new(&[("alice", PASSWORD)]);
    let dport = free_udp_port();
    let d = t.daemon(dport);
    let src = t.path("f.bin");
    std::fs::write(&src, data(20_000, 10)).unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = sock.local_addr().unwrap().port();
    let daemon: SocketAddr = format!("127.0.0.1:{dport}").parse().unwrap();
    let relay = tokio::spawn(substitute_shares(sock, daemon, Duration::from_secs(6)));
    let url = format!("vfer://alice@127.0.0.1:{port}/in/");
    let args = vec![
        "--timeout".into(),
        "3".into(),
        "--host-key-fingerprint".into(),
        d.fingerprint.clone(),
        s(&src).into(),
        url,
    ];
    let out = spawn_client(&t.home, args).await.unwrap();
    let cap = relay.await.unwrap();
    assert_eq!(out.status.code(), Some(17), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(
        e.contains("key confirmation") && e.contains("man in the middle"),
        "{e}"
    );
    assert!(cap
        .datagrams
        .iter()
        .all(|d| d.len() > 28 && d[28] == TYPE_HELLO));
    assert_eq!(cap.requests, 0);
    assert!(!cap.saw_password());
    assert_eq!(d.count("logged in"), 0);
    assert!(!t.root.join("in/f.bin").exists());
}
