//! Loopback goodput and CPU cost of the whole VFER stack (handshake,
//! VSL sealing/opening, congestion control, pacing, GSO/GRO socket I/O).
//!
//! Each side runs on its own single-threaded tokio runtime on its own OS
//! thread, so its CPU time is that thread's. Run:
//! `cargo bench --bench loopback` (VFER_BENCH_MIB=1024 by default).
//! Prints goodput in Gbit/s and CPU seconds per GB for each side, beside a
//! baseline measured in the same run: plain UDP blasting of the same bytes
//! through the same kernel path without any protocol work.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vfer::transport::{socket, Config, Session};

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec; CLOCK_THREAD_CPUTIME_ID exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn vfer_run(total: u64) -> (f64, Duration, Duration) {
    let secret = [7u8; 32];
    let (tx, rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        runtime().block_on(async move {
            let (sock, _) = socket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
            tx.send(sock.local_addr().unwrap()).unwrap();
            let cpu0 = thread_cpu();
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
                got += n as u64;
            }
            assert_eq!(got, total);
            s.close(0, "done").await;
            thread_cpu() - cpu0
        })
    });
    let addr = rx.recv().unwrap();
    let (secs, client_cpu) = runtime().block_on(async move {
        let cpu0 = thread_cpu();
        let c = Session::connect(addr, &secret, Config::default())
            .await
            .expect("connect");
        let start = Instant::now();
        let mut stream = c.stream();
        let buf = vec![0x5au8; 1 << 20];
        let mut sent = 0u64;
        while sent < total {
            let n = (total - sent).min(buf.len() as u64) as usize;
            stream.write_all(&buf[..n]).await.expect("write");
            sent += n as u64;
        }
        stream.shutdown().await.expect("acknowledged");
        let secs = start.elapsed().as_secs_f64();
        c.close(0, "done").await;
        (secs, thread_cpu() - cpu0)
    });
    let server_cpu = server.join().expect("server thread");
    (total as f64 * 8.0 / secs / 1e9, client_cpu, server_cpu)
}

/// Baseline: the same bytes as 65 KB UDP datagrams, no protocol at all.
fn udp_baseline(total: u64) -> f64 {
    let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let _ = socket2::SockRef::from(&rx).set_recv_buffer_size(8 << 20);
    rx.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let addr = rx.local_addr().unwrap();
    let receiver = std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        let mut got = 0u64;
        while let Ok(n) = rx.recv(&mut buf) {
            got += n as u64;
        }
        got
    });
    let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let buf = vec![0u8; 65_000];
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < total {
        if tx.send_to(&buf, addr).is_ok() {
            sent += buf.len() as u64;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let got = receiver.join().unwrap();
    // Count what arrived: the kernel drops what the receiver cannot keep up with.
    got as f64 * 8.0 / secs / 1e9
}

fn main() {
    let mib: u64 = std::env::var("VFER_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let total = mib << 20;
    let base = udp_baseline(total);
    let (gbps, ccpu, scpu) = vfer_run(total);
    let gb = total as f64 / 1e9;
    println!("loopback, {mib} MiB, same run:");
    println!("  raw UDP (no protocol, 65 KB datagrams): {base:.2} Gbit/s received");
    println!(
        "  vfer (VSL + VFER, GSO/GRO):             {gbps:.2} Gbit/s goodput = {:.2} x raw UDP",
        gbps / base
    );
    println!(
        "  CPU: sender {:.2} s/GB, receiver {:.2} s/GB",
        ccpu.as_secs_f64() / gb,
        scpu.as_secs_f64() / gb
    );
}
