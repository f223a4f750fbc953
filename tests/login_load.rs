//! Challenge-response daemon under load: 50 clients at once, and 100,000
//! junk and spoofed datagrams during a transfer (the transfer completes,
//! the daemon stays up, its memory stays flat). No wall-clock assertions.

mod login_common;

use std::fs;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use login_common::*;
use vfer::bootstrap::login::client::{ClientHandshake, Progress};
use vfer::bootstrap::login::wire::{Accept, Cookie, Hello};

/// The two tests each load the machine; run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn fifty_clients_at_once() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let users = [("u0", "pw zero"), ("u1", "pw one"), ("u2", "pw two")];
    let t = Setup::new(&users);
    let port = free_udp_port();
    let d = t.daemon(port);
    let mut files = Vec::new();
    let mut children = Vec::new();
    for i in 0..50usize {
        let src = t.path(&format!("src{i}.bin"));
        let payload = data(200_000, 100 + i as u64);
        fs::write(&src, &payload).unwrap();
        let (user, pw) = users[i % users.len()];
        let url = format!("vfer://{user}@127.0.0.1:{port}/in/");
        let mut c = client(
            SEND,
            &t.home,
            pw,
            &[
                "-q",
                "--host-key-fingerprint",
                &d.fingerprint,
                s(&src),
                &url,
            ],
        );
        c.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        children.push(c.spawn().expect("spawn client"));
        files.push((format!("src{i}.bin"), payload));
    }
    let mut failures = Vec::new();
    for (i, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        if !out.status.success() {
            failures.push(format!("client {i}: {}", stderr(&out)));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    for (name, payload) in &files {
        let got = fs::read(t.root.join("in").join(name)).unwrap();
        assert!(got == *payload, "{name} differs");
    }
    assert_eq!(d.count("logged in"), 50);
}

/// 100,000 datagrams from 64 sockets (half on spoofed-looking loopback
/// addresses nobody reads), mixed: random junk, HELLOs without or with a
/// forged cookie, forged REQUESTs, forged data packets, server-type packets.
/// Plus 200 handshakes that prove their address and are then abandoned.
fn flood(target: SocketAddr, stop: &AtomicBool) -> usize {
    let mut socks = Vec::new();
    for i in 0..64u8 {
        let ip = if i % 2 == 0 {
            [127, 0, 0, 1]
        } else {
            [127, 10 + i, i, 1 + i]
        };
        if let Ok(s) = UdpSocket::bind(SocketAddr::from((ip, 0))) {
            socks.push(s);
        }
    }
    let mut sent = 0;
    let mut x = 0x1234_5678_9abc_def0u64;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let vsl = |ptype: u8, len: usize, r: &mut dyn FnMut() -> u64| {
        let mut d: Vec<u8> = (0..len).map(|_| r() as u8).collect();
        d[24..28].copy_from_slice(b"VSL1");
        d[28] = ptype;
        d[29..33].copy_from_slice(&((len - 33) as u32).to_be_bytes());
        d
    };
    // Abandoned handshakes that did prove their address.
    for _ in 0..200 {
        let Ok(s) = UdpSocket::bind("127.0.0.1:0") else {
            continue;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
        let mut eph = [0u8; 32];
        eph.iter_mut().for_each(|b| *b = rnd() as u8);
        let now = Instant::now();
        let mut hs = ClientHandshake::new(eph, now);
        let mut buf = [0u8; 2048];
        for _ in 0..2 {
            if let Some(h) = hs.poll_transmit(now) {
                let _ = s.send_to(&h, target);
                sent += 1;
            }
            if let Ok((n, _)) = s.recv_from(&mut buf) {
                if let Progress::Done(_) = hs.handle(&buf[..n]) {
                    break;
                }
            }
        }
    }
    for i in 0..100_000usize {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let d = match i % 6 {
            0 => {
                let len = (rnd() % 1500) as usize;
                (0..len).map(|_| rnd() as u8).collect()
            }
            1 => Hello {
                client_eph: [rnd() as u8; 32],
                cookie: None,
            }
            .encode(),
            2 => Hello {
                client_eph: [rnd() as u8; 32],
                cookie: Some([rnd() as u8 | 1; 32]),
            }
            .encode(),
            3 => vsl(0x01, 1200, &mut rnd),
            4 => vsl(0x00, 33 + (rnd() % 1400) as usize, &mut rnd),
            _ => {
                if i % 2 == 0 {
                    Accept {
                        client_eph: [1; 32],
                        server_eph: [2; 32],
                        server_static: [3; 32],
                        confirm: [4; 32],
                    }
                    .encode()
                } else {
                    Cookie {
                        client_eph: [5; 32],
                        cookie: [6; 32],
                    }
                    .encode()
                }
            }
        };
        let s = &socks[i % socks.len()];
        if s.send_to(&d, target).is_ok() {
            sent += 1;
        }
        if i % 2000 == 1999 {
            // Let the real traffic breathe a little (a flood, not a wall).
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    sent
}

#[test]
fn junk_and_spoofed_datagrams_during_a_transfer() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = Setup::new(&[("flo", "pw")]);
    let port = free_udp_port();
    let mut d = t.daemon(port);
    let fp = d.fingerprint.clone();
    let url = format!("vfer://flo@127.0.0.1:{port}/in/");
    let push = |src: &std::path::Path, extra: &[&str]| {
        let mut args = vec!["-q", "--host-key-fingerprint", fp.as_str()];
        args.extend_from_slice(extra);
        args.extend([s(src), url.as_str()]);
        client(SEND, &t.home, "pw", &args)
    };

    // Warm up (one login, one transfer), then the baseline.
    let small = t.path("small.bin");
    fs::write(&small, data(1_000_000, 1)).unwrap();
    let out = run(push(&small, &[]));
    assert!(out.status.success(), "{}", stderr(&out));
    std::thread::sleep(Duration::from_millis(500));
    let baseline = d.rss_kib();

    // A 16 MB transfer held to 40 Mbit/s so the flood overlaps it.
    let big = t.path("big.bin");
    let payload = data(16_000_000, 2);
    fs::write(&big, &payload).unwrap();
    let mut transfer = push(&big, &["--limit", "40M"]).spawn().unwrap();
    let wait_login = Instant::now();
    while d.count("logged in") < 2 {
        assert!(wait_login.elapsed() < Duration::from_secs(60), "no login");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The transfer's own footprint, before the flood.
    let mut before = baseline;
    for _ in 0..40 {
        before = before.max(d.rss_kib());
        std::thread::sleep(Duration::from_millis(20));
    }
    let stop = AtomicBool::new(false);
    let target: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut peak = before;
    let mut status = None;
    let sent = std::thread::scope(|sc| {
        let flooder = sc.spawn(|| flood(target, &stop));
        // Sample while either runs, and a moment after (queues drain).
        let mut after = 0;
        while after < 25 {
            peak = peak.max(d.rss_kib());
            if status.is_none() {
                status = transfer.try_wait().unwrap();
            }
            if status.is_some() && flooder.is_finished() {
                after += 1;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        flooder.join().unwrap()
    });
    let status = status.unwrap_or_else(|| transfer.wait().unwrap());
    eprintln!(
        "flood: {sent} datagrams; daemon VmRSS idle {baseline} KiB, transfer before the flood {before} KiB, peak {peak} KiB"
    );
    assert!(status.success(), "transfer failed during the flood");
    assert!(sent >= 100_000, "flood sent {sent}");
    assert!(
        fs::read(t.root.join("in/big.bin")).unwrap() == payload,
        "transfer corrupted"
    );
    assert!(d.alive(), "daemon died");
    assert!(
        peak <= 2 * before + 16 * 1024,
        "daemon memory grew: before the flood {before} KiB, peak {peak} KiB"
    );
    // And it still serves.
    let again = t.path("again.bin");
    fs::write(&again, data(50_000, 3)).unwrap();
    let out = run(push(&again, &[]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(d.alive());
}
