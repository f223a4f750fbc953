//! The endpoint without sockets: admission, replays and routing.

use super::*;
use crate::transport::handshake::{encode_request, Offer, Tai64n};
use crate::transport::TransportParams;

struct Idle;
impl Load for Idle {
    fn short_of_resources(&mut self, _: Instant) -> bool {
        false
    }
}

fn key() -> Secret {
    Secret::from_bytes([7; 32])
}

fn endpoint(max: usize) -> Endpoint<StaticKey> {
    let opts = ListenOptions {
        max_connections: max,
        ..ListenOptions::default()
    };
    let slots = Arc::new(Semaphore::new(max));
    Endpoint::new(
        StaticKey(key()),
        opts,
        slots,
        Box::new(Idle),
        Instant::now(),
    )
}

fn request(seed: u64, wall: SystemTime) -> Vec<u8> {
    let mut rnd = HandshakeRandom::from_seed(seed);
    rnd.timestamp = Tai64n::from_system(wall);
    let params = TransportParams {
        max_udp_payload: 1500,
        initial_max_data: 1 << 20,
        idle_timeout_ms: 30_000,
    };
    let offer = Offer::new(Config::default().cipher.suites());
    encode_request(key().bytes(), &rnd, &params, &offer)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A DATA-typed datagram with packet number `msgnr` (not authentic: the
/// endpoint never authenticates DATA, the sessions do).
fn data(msgnr: u64) -> Vec<u8> {
    let mut d = vec![0u8; 60];
    d[..8].copy_from_slice(&msgnr.to_be_bytes());
    d[24..28].copy_from_slice(b"VSL2");
    d[28] = TYPE_DATA;
    d[29..33].copy_from_slice(&27u32.to_be_bytes());
    d
}

fn open(e: &mut Endpoint<StaticKey>, seed: u64, from: SocketAddr) -> ConnId {
    let (now, wall) = (Instant::now(), SystemTime::now());
    match e.handle(now, wall, from, &request(seed, wall)) {
        DatagramEvent::New(id, ..) => id,
        _ => panic!("REQUEST from {from} not admitted"),
    }
}

#[test]
fn a_request_opens_a_connection_known_by_its_address() {
    let mut e = endpoint(10);
    let a = addr("192.0.2.1:1000");
    let id = open(&mut e, 1, a);
    let (now, wall) = (Instant::now(), SystemTime::now());
    assert!(matches!(e.handle(now, wall, a, &data(5)), DatagramEvent::Known(i) if i == id));
    // Garbage from an unknown host: dropped, no state.
    let b = addr("198.51.100.1:1");
    assert!(matches!(
        e.handle(now, wall, b, b"junk"),
        DatagramEvent::Drop
    ));
    assert_eq!(e.len(), 1);
    e.forget(id, now);
    assert!(e.is_empty());
    assert!(matches!(
        e.handle(now, wall, a, &data(6)),
        DatagramEvent::Drop
    ));
}

#[test]
fn a_recorded_request_opens_nothing_from_any_address() {
    let mut e = endpoint(10);
    let wall = SystemTime::now();
    let req = request(2, wall);
    let now = Instant::now();
    assert!(matches!(
        e.handle(now, wall, addr("192.0.2.1:1"), &req),
        DatagramEvent::New(..)
    ));
    for from in ["192.0.2.9:1", "203.0.113.5:77"] {
        assert!(
            matches!(e.handle(now, wall, addr(from), &req), DatagramEvent::Drop),
            "replay from {from} admitted"
        );
    }
    // A stale one (recorded three minutes ago) neither.
    let old = request(3, wall - Duration::from_secs(180));
    assert!(matches!(
        e.handle(now, wall, addr("192.0.2.3:1"), &old),
        DatagramEvent::Drop
    ));
    assert_eq!(e.len(), 1);
}

#[test]
fn past_the_slots_a_request_gets_busy() {
    let mut e = endpoint(1);
    let wall = SystemTime::now();
    let now = Instant::now();
    // max_handshakes(1) = 18 handshakes may wait beside one slot, but
    // connections are limited by max_connections.
    open(&mut e, 4, addr("192.0.2.1:1"));
    match e.handle(now, wall, addr("192.0.2.2:1"), &request(5, wall)) {
        DatagramEvent::Reply(r) => assert!(r.len() < 100, "BUSY is small"),
        _ => panic!("no BUSY"),
    }
}

#[test]
fn data_from_a_new_port_is_offered_to_that_host_s_connections() {
    let mut e = endpoint(100);
    let (now, wall) = (Instant::now(), SystemTime::now());
    let a = open(&mut e, 10, addr("192.0.2.1:1000"));
    let b = open(&mut e, 11, addr("192.0.2.1:2000"));
    let c = open(&mut e, 12, addr("198.51.100.7:1000"));
    // Packet numbers seen so far: a near 500, b near 90,000, c near 500.
    e.handle(now, wall, addr("192.0.2.1:1000"), &data(500));
    e.handle(now, wall, addr("192.0.2.1:2000"), &data(90_000));
    e.handle(now, wall, addr("198.51.100.7:1000"), &data(500));
    // From a new port of 192.0.2.1: that host's connections, nearest first.
    match e.handle(now, wall, addr("192.0.2.1:3000"), &data(502)) {
        DatagramEvent::Rebinding(ids) => assert_eq!(ids, vec![a, b]),
        _ => panic!("not offered"),
    }
    // From an unknown host: connections anywhere within the replay window.
    match e.handle(now, wall, addr("203.0.113.1:9"), &data(502)) {
        DatagramEvent::Rebinding(mut ids) => {
            ids.sort();
            assert_eq!(ids, vec![a, c]);
        }
        _ => panic!("not offered"),
    }
    assert!(matches!(
        e.handle(now, wall, addr("203.0.113.1:9"), &data(1 << 40)),
        DatagramEvent::Drop
    ));
    // Once a session authenticated it, the address is routed to it.
    e.learned(a, addr("192.0.2.1:3000"));
    assert!(matches!(
        e.handle(now, wall, addr("192.0.2.1:3000"), &data(503)),
        DatagramEvent::Known(i) if i == a
    ));
    // The old address still reaches it too (late packets), until evicted.
    assert!(matches!(
        e.handle(now, wall, addr("192.0.2.1:1000"), &data(504)),
        DatagramEvent::Known(i) if i == a
    ));
    for p in 0..MAX_ADDRESSES as u16 {
        e.learned(a, SocketAddr::from(([192, 0, 2, 1], 4000 + p)));
    }
    assert!(!matches!(
        e.handle(now, wall, addr("192.0.2.1:1000"), &data(505)),
        DatagramEvent::Known(_)
    ));
    // Forgotten: its addresses go.
    e.forget(a, now);
    assert!(!matches!(
        e.handle(now, wall, addr("192.0.2.1:4003"), &data(506)),
        DatagramEvent::Known(_)
    ));
}

#[test]
fn guesses_are_rate_limited() {
    let mut e = endpoint(10);
    let (now, wall) = (Instant::now(), SystemTime::now());
    open(&mut e, 20, addr("192.0.2.1:1000"));
    let offered = (0..(GUESSES_PER_SECOND as u16 + 500))
        .filter(|p| {
            let from = SocketAddr::from(([192, 0, 2, 1], 10_000 + p));
            matches!(
                e.handle(now, wall, from, &data(1)),
                DatagramEvent::Rebinding(_)
            )
        })
        .count();
    assert_eq!(offered, GUESSES_PER_SECOND as usize);
    let later = now + Duration::from_secs(1);
    assert!(matches!(
        e.handle(later, wall, addr("192.0.2.1:9"), &data(1)),
        DatagramEvent::Rebinding(_)
    ));
}

/// A session that learned an address (its peer was seen there) does not
/// keep a new client at that address from connecting.
#[test]
fn a_learned_address_can_still_open_a_connection() {
    let mut e = endpoint(10);
    let (now, wall) = (Instant::now(), SystemTime::now());
    let a = open(&mut e, 30, addr("192.0.2.1:1000"));
    e.learned(a, addr("192.0.2.1:2000"));
    let b = open(&mut e, 31, addr("192.0.2.1:2000"));
    assert_ne!(a, b);
    assert!(matches!(
        e.handle(now, wall, addr("192.0.2.1:2000"), &data(1)),
        DatagramEvent::Known(i) if i == b
    ));
    // A's own REQUEST retransmitted still reaches A.
    let wall2 = SystemTime::now();
    let retry = request(30, wall2);
    assert!(matches!(
        e.handle(now, wall2, addr("192.0.2.1:1000"), &retry),
        DatagramEvent::Known(i) if i == a
    ));
}
