//! One host cannot starve the login daemon (issue 13 item 3): a host that
//! keeps opening sessions without ever logging in holds at most its share
//! of the slots (per IPv4 address, per IPv6 /64), each only for the short
//! login timeout, and a genuine user on another address still logs in.

mod login_common;

use std::fs;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use login_common::*;
use vfer::bootstrap::login::client;
use vfer::transport::{Config, Session};

/// Opens sessions from 127.0.0.2 that never log in, `width` at a time,
/// until `stop`; counts the sessions it got.
async fn hog(daemon: SocketAddr, width: usize, stop: Arc<AtomicBool>, got: Arc<AtomicUsize>) {
    let mut tasks = Vec::new();
    for _ in 0..width {
        let (stop, got) = (stop.clone(), got.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let Ok((sock, warning)) =
                    vfer::transport::socket::bind("127.0.0.2:0".parse().unwrap())
                else {
                    return;
                };
                let wait = Duration::from_secs(2);
                let Ok(acc) = client::handshake(&sock, daemon, wait).await else {
                    continue;
                };
                let cfg = Config {
                    handshake_timeout: wait,
                    ..Config::default()
                };
                if let Ok(s) =
                    Session::connect_on(sock, warning, daemon, acc.secret.bytes(), cfg).await
                {
                    got.fetch_add(1, Ordering::Relaxed);
                    // Hold it without a word until the daemon gives up.
                    let mut buf = Vec::new();
                    let _ = tokio::io::AsyncReadExt::read_to_end(&mut s.stream(), &mut buf).await;
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

#[test]
fn a_host_that_never_logs_in_does_not_lock_out_a_genuine_user() {
    let t = Setup::new(&[("alice", "correct horse")]);
    let port = free_udp_port();
    let _d = Daemon::start(&t.users, &t.root, &t.host_key, port, &["-n", "2"]);
    let daemon: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let src = t.path("f.bin");
    fs::write(&src, data(10_000, 3)).unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let got = Arc::new(AtomicUsize::new(0));
    let hogging = rt.spawn(hog(daemon, 4, stop.clone(), got.clone()));
    // Let the hog take what it can.
    let start = Instant::now();
    while got.load(Ordering::Relaxed) < 1 && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        got.load(Ordering::Relaxed) >= 1,
        "the hog never got a session"
    );
    std::thread::sleep(Duration::from_millis(500));

    // A genuine user from another address logs in and pushes, twice.
    for round in 0..2 {
        let url = format!("vfer://alice@127.0.0.1:{port}/in/r{round}");
        let out = run(client(
            SEND,
            &t.home,
            "correct horse",
            &["--accept-new-host-key", s(&src), &url],
        ));
        assert!(
            out.status.success(),
            "round {round}: the genuine user was locked out: {}",
            stderr(&out)
        );
    }
    stop.store(true, Ordering::Relaxed);
    rt.block_on(async {
        let _ = tokio::time::timeout(Duration::from_secs(15), hogging).await;
    });
    assert_eq!(fs::read(t.root.join("in/r1")).unwrap(), data(10_000, 3));
}
