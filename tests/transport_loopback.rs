//! Real UDP sockets on loopback: a whole session through the tokio driver.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vfer::transport::{socket, Config, Session};

fn pattern(i: u64) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 13) as u8
}

async fn transfer(total: u64) -> (f64, vfer::transport::Stats) {
    let secret = [42u8; 32];
    let (sock, _) = socket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = sock.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let s = Session::accept(sock, &secret, Config::default(), Duration::from_secs(10))
            .await
            .expect("accept");
        let mut stream = s.stream();
        let mut buf = vec![0u8; 1 << 20];
        let mut got = 0u64;
        loop {
            let n = stream.read(&mut buf).await.expect("read");
            if n == 0 {
                break;
            }
            for (k, b) in buf[..n].iter().enumerate() {
                assert_eq!(
                    *b,
                    pattern(got + k as u64),
                    "byte {} corrupted",
                    got + k as u64
                );
            }
            got += n as u64;
        }
        (got, s.close(0, "done").await)
    });
    let client = Session::connect(addr, &secret, Config::default())
        .await
        .expect("connect");
    let start = Instant::now();
    let mut stream = client.stream();
    let mut buf = vec![0u8; 1 << 20];
    let mut sent = 0u64;
    while sent < total {
        let n = (total - sent).min(buf.len() as u64) as usize;
        for (k, b) in buf[..n].iter_mut().enumerate() {
            *b = pattern(sent + k as u64);
        }
        stream.write_all(&buf[..n]).await.expect("write");
        sent += n as u64;
    }
    stream.shutdown().await.expect("all data acknowledged");
    let secs = start.elapsed().as_secs_f64();
    let stats = client.close(0, "done").await;
    let (got, _server_stats) = server.await.expect("server task");
    assert_eq!(got, total);
    (total as f64 * 8.0 / secs / 1e9, stats)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_100_mb() {
    let (gbps, stats) = transfer(100 << 20).await;
    eprintln!("loopback 100 MiB: {gbps:.2} Gbit/s, {stats:?}");
}

/// 1 GiB through real sockets; run with `cargo test --release -- --ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: 1 GiB over loopback"]
async fn loopback_1_gib() {
    let (gbps, stats) = transfer(1 << 30).await;
    eprintln!("loopback 1 GiB: {gbps:.2} Gbit/s, {stats:?}");
}
