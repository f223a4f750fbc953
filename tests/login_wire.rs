//! The login daemon's pre-handshake seen from the wire: what an address
//! that has not proven itself gets back (amplification), the cookie round
//! trip, and IPv6.

mod login_common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use login_common::*;
use vfer::bootstrap::login::client::{ClientHandshake, Progress};
use vfer::bootstrap::login::hostkey::fingerprint;
use vfer::bootstrap::login::wire::{
    Accept, Cookie, Hello, ACCEPT_DATAGRAM_LEN, COOKIE_DATAGRAM_LEN, TYPE_COOKIE,
};

#[test]
fn unvalidated_addresses_get_little_back_and_cookies_work() {
    let t = Setup::new(&[("w", "pw")]);
    let port = free_udp_port();
    let d = t.daemon(port);
    let target = format!("127.0.0.1:{port}");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();

    let mut sent = 0usize;
    let mut send = |d: &[u8]| {
        sock.send_to(d, &target).unwrap();
        sent += d.len();
    };
    for i in 0..50u8 {
        send(
            &Hello {
                client_eph: [i | 1; 32],
                cookie: None,
            }
            .encode(),
        );
        send(
            &Hello {
                client_eph: [i | 1; 32],
                cookie: Some([i | 2; 32]),
            }
            .encode(),
        );
        let mut req = vec![i; 1200];
        req[24..28].copy_from_slice(b"VSL1");
        req[28] = 0x01;
        req[29..33].copy_from_slice(&1167u32.to_be_bytes());
        send(&req);
        send(&vec![i; 900]);
        // A short HELLO (under 1200 bytes) is not answered at all.
        send(
            &Hello {
                client_eph: [i | 1; 32],
                cookie: None,
            }
            .encode()[..1199],
        );
    }
    let mut got = 0usize;
    let mut buf = [0u8; 2048];
    let end = Instant::now() + Duration::from_secs(2);
    while Instant::now() < end {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            assert_eq!(
                n, COOKIE_DATAGRAM_LEN,
                "only COOKIEs to an unproven address"
            );
            assert_eq!(buf[28], TYPE_COOKIE);
            got += n;
        }
    }
    assert!(got > 0, "HELLOs are answered");
    assert!(got * 3 <= sent, "amplification: sent {sent}, got {got}");
    assert!(
        got <= 100 * COOKIE_DATAGRAM_LEN,
        "at most one COOKIE per full-size HELLO"
    );
    eprintln!("unproven address: sent {sent} bytes, received {got} bytes");

    // The cookie round trip yields an ACCEPT carrying the daemon's key.
    let now = Instant::now();
    let mut hs = ClientHandshake::new([42; 32], now);
    sock.send_to(&hs.poll_transmit(now).unwrap(), &target)
        .unwrap();
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    assert!(Cookie::decode(&buf[..n]).is_some());
    assert!(matches!(hs.handle(&buf[..n]), Progress::Continue));
    sock.send_to(&hs.poll_transmit(now).unwrap(), &target)
        .unwrap();
    let (n, _) = loop {
        let r = sock.recv_from(&mut buf).unwrap();
        if Accept::decode(&buf[..r.0]).is_some() {
            break r;
        }
    };
    assert_eq!(n, ACCEPT_DATAGRAM_LEN);
    let Progress::Done(acc) = hs.handle(&buf[..n]) else {
        panic!("genuine ACCEPT refused")
    };
    assert_eq!(fingerprint(&acc.server_static), d.fingerprint);
}

#[test]
fn login_over_ipv6() {
    if UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback: skipped");
        return;
    }
    let t = Setup::new(&[("six", "pw6")]);
    let port = free_udp_port();
    let _d = Daemon::start_on(
        &format!("[::1]:{port}"),
        &t.users,
        &t.root,
        &t.host_key,
        port,
        &[],
    );
    let src = t.path("f.bin");
    let payload = data(100_000, 6);
    std::fs::write(&src, &payload).unwrap();
    let url = format!("vfer://six@[::1]:{port}/in/");
    let out = run(client(
        SEND,
        &t.home,
        "pw6",
        &["--accept-new-host-key", s(&src), &url],
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(t.root.join("in/f.bin")).unwrap(), payload);
    let pins = std::fs::read_to_string(known_hosts(&t.home)).unwrap();
    assert!(pins.starts_with(&format!("[::1]:{port} SHA256:")), "{pins}");
}
