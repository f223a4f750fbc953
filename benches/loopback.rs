//! Loopback goodput and CPU cost of the whole VFER stack (handshake,
//! VSL sealing/opening, congestion control, pacing, GSO/GRO socket I/O).
//!
//! Run: `cargo bench --bench loopback` (VFER_BENCH_MIB=1024 by default,
//! a few seconds). Prints, for a raw-UDP baseline and for vfer measured in
//! the same run: goodput in Gbit/s, datagrams per second, and CPU seconds
//! per GB (1e9 bytes) for each side.
//!
//! The vfer receiver runs in a child process (this bench re-executed with
//! VFER_BENCH_ROLE=recv) and the sender in this one, so each side's CPU is
//! its whole process's (getrusage), whatever threads the transport starts:
//! sealing or hashing moved to other threads is still counted. The baseline
//! blasts the same bytes as plain UDP datagrams (VFER_BENCH_UDP_SIZE bytes,
//! 65,000 by default) through the same kernel path without any protocol work,
//! one thread per side.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vfer::transport::{socket, Config, Session};

const SECRET: [u8; 32] = [7u8; 32];

fn timespec_cpu(clock: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec; the clock ids used exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// CPU time (user + system) of the calling thread.
fn thread_cpu() -> Duration {
    timespec_cpu(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CPU time (user + system) of this whole process, all threads.
fn process_cpu() -> Duration {
    timespec_cpu(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// CPU time (user + system) of the children this process has waited for.
fn children_cpu() -> Duration {
    // SAFETY: zeroed rusage is a valid out-parameter for getrusage.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer; RUSAGE_CHILDREN is a valid `who`.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// One side's figures.
struct Side {
    cpu: Duration,
    datagrams: u64,
}

struct Run {
    gbps: f64,
    secs: f64,
    send: Side,
    recv: Side,
    path_mtu: u16,
}

/// The receiver child: bind, print the address, take the stream, print its
/// datagram count, exit. Its CPU is read by the parent from RUSAGE_CHILDREN.
fn recv_child(total: u64) {
    runtime().block_on(async move {
        let (sock, _) = socket::bind("127.0.0.1:0".parse().unwrap()).expect("bind");
        println!("addr {}", sock.local_addr().unwrap());
        std::io::stdout().flush().unwrap();
        let s = Session::accept(sock, &SECRET, Config::default(), Duration::from_secs(10))
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
        assert_eq!(got, total, "receiver: stream length");
        let st = s.stats();
        s.close(0, "done").await;
        println!("datagrams {}", st.packets_received);
    });
}

fn vfer_run(total: u64) -> Run {
    let exe = std::env::current_exe().expect("the bench's own path");
    let mut child = Command::new(exe)
        .env("VFER_BENCH_ROLE", "recv")
        .env("VFER_BENCH_MIB", (total >> 20).to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the receiver process");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("receiver address").unwrap();
    let addr: SocketAddr = first
        .strip_prefix("addr ")
        .expect("addr line")
        .parse()
        .expect("receiver address");
    let cpu0 = process_cpu();
    let (secs, send_datagrams, path_mtu) = runtime().block_on(async move {
        let c = Session::connect(addr, &SECRET, Config::default())
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
        let st = c.stats();
        c.close(0, "done").await;
        (secs, st.packets_sent, st.path_mtu)
    });
    let send_cpu = process_cpu() - cpu0;
    let recv_datagrams: u64 = lines
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("datagrams ").and_then(|v| v.parse().ok()))
        .expect("receiver's datagram count");
    let ch0 = children_cpu();
    let status = child.wait().expect("wait for the receiver");
    assert!(status.success(), "receiver process failed: {status}");
    Run {
        gbps: total as f64 * 8.0 / secs / 1e9,
        secs,
        send: Side {
            cpu: send_cpu,
            datagrams: send_datagrams,
        },
        recv: Side {
            cpu: children_cpu() - ch0,
            datagrams: recv_datagrams,
        },
        path_mtu,
    }
}

/// Baseline: the same bytes as plain UDP datagrams, no protocol at all.
fn udp_baseline(total: u64, size: usize) -> Run {
    let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let _ = socket2::SockRef::from(&rx).set_recv_buffer_size(8 << 20);
    rx.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let addr = rx.local_addr().unwrap();
    let receiver = std::thread::spawn(move || {
        let cpu0 = thread_cpu();
        let mut buf = vec![0u8; 65_536];
        let (mut got, mut n_dg) = (0u64, 0u64);
        while let Ok(n) = rx.recv(&mut buf) {
            got += n as u64;
            n_dg += 1;
        }
        // The last 200 ms were spent waiting for the read timeout: no CPU.
        (got, n_dg, thread_cpu() - cpu0)
    });
    let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let buf = vec![0u8; size];
    let cpu0 = thread_cpu();
    let start = Instant::now();
    let (mut sent, mut n_dg) = (0u64, 0u64);
    while sent < total {
        if tx.send_to(&buf, addr).is_ok() {
            sent += buf.len() as u64;
            n_dg += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let send_cpu = thread_cpu() - cpu0;
    let (got, recv_dg, recv_cpu) = receiver.join().unwrap();
    // Count what arrived: the kernel drops what the receiver cannot keep up with.
    Run {
        gbps: got as f64 * 8.0 / secs / 1e9,
        secs,
        send: Side {
            cpu: send_cpu,
            datagrams: n_dg,
        },
        recv: Side {
            cpu: recv_cpu,
            datagrams: recv_dg,
        },
        path_mtu: size as u16,
    }
}

fn print_row(name: &str, r: &Run, total: u64) {
    let gb = total as f64 / 1e9;
    println!(
        "  {name:<34} {:>6.2} {:>9.0}k {:>9.0}k {:>8.2} {:>8.2}",
        r.gbps,
        r.send.datagrams as f64 / r.secs / 1e3,
        r.recv.datagrams as f64 / r.secs / 1e3,
        r.send.cpu.as_secs_f64() / gb,
        r.recv.cpu.as_secs_f64() / gb,
    );
}

fn main() {
    let mib: u64 = std::env::var("VFER_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let total = mib << 20;
    if std::env::var("VFER_BENCH_ROLE").as_deref() == Ok("recv") {
        recv_child(total);
        return;
    }
    let size: usize = std::env::var("VFER_BENCH_UDP_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|s| (1..=65_507).contains(s))
        .unwrap_or(65_000);
    let base = udp_baseline(total, size);
    let v = vfer_run(total);
    println!("loopback, {mib} MiB, same run (CPU-s per GB of stream, 1 GB = 1e9 bytes):");
    println!(
        "  {:<34} {:>6} {:>10} {:>10} {:>8} {:>8}",
        "", "Gbit/s", "dgrams/s", "dgrams/s", "CPU-s/GB", "CPU-s/GB"
    );
    println!(
        "  {:<34} {:>6} {:>10} {:>10} {:>8} {:>8}",
        "", "", "sent", "received", "sender", "receiver"
    );
    print_row(&format!("raw UDP ({size}-byte datagrams)"), &base, total);
    print_row(
        &format!("vfer (path MTU {}, GSO/GRO)", v.path_mtu),
        &v,
        total,
    );
    println!(
        "  vfer goodput = {:.2} x raw UDP; raw UDP goodput counts what arrived",
        v.gbps / base.gbps
    );
}
