//! Following a peer to a new address only after path validation
//! (PROTOCOL §3.9), with two real connections exchanging packets by hand.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A client at `client_at` and a server at `SERVER`, connected.
struct Pair {
    c: Connection,
    s: Connection,
    now: Instant,
    client_at: SocketAddr,
    /// Where the server's challenges went.
    challenged: Vec<SocketAddr>,
}

const SERVER: &str = "203.0.113.1:7000";

impl Pair {
    fn new() -> Pair {
        let now = Instant::now();
        let (mut c, mut s) = super::tests::client_and_server(&Config::default(), &[5u8; 32], now);
        let client_at = addr("192.0.2.1:4000");
        s.set_remote(client_at);
        c.set_remote(addr(SERVER));
        let mut p = Pair {
            c,
            s,
            now,
            client_at,
            challenged: Vec::new(),
        };
        p.pump();
        assert!(p.c.is_established() && p.s.is_established());
        p
    }

    /// The client's packets now, sealed.
    fn client_packets(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65536];
        while let Some(n) = self.c.poll_transmit(self.now, &mut buf) {
            out.push(buf[..n].to_vec());
        }
        out
    }

    /// Exchanges packets until both sides are quiet: the client's arrive
    /// from `client_at`, the server's go to its `remote()` (delivered if
    /// that is where the client is) and its challenges to theirs.
    fn pump(&mut self) {
        let mut buf = vec![0u8; 65536];
        for _ in 0..50 {
            let mut moved = false;
            for mut d in self.client_packets() {
                moved = true;
                self.s
                    .handle_datagram_from(self.now, self.client_at, &mut d);
            }
            while let Some((n, to)) = self.s.poll_path_transmit(self.now, &mut buf) {
                moved = true;
                self.challenged.push(to);
                if to == self.client_at {
                    self.c
                        .handle_datagram_from(self.now, addr(SERVER), &mut buf[..n]);
                }
            }
            while let Some(n) = self.s.poll_transmit(self.now, &mut buf) {
                moved = true;
                if self.s.remote() == Some(self.client_at) {
                    self.c
                        .handle_datagram_from(self.now, addr(SERVER), &mut buf[..n]);
                }
            }
            if !moved {
                return;
            }
            self.now += Duration::from_millis(1);
        }
    }
}

#[test]
fn a_rebound_client_is_followed_once_it_answers_there() {
    let mut p = Pair::new();
    assert_eq!(p.s.remote(), Some(addr("192.0.2.1:4000")));
    p.c.write(b"before");
    p.pump();
    // The NAT rebinds: the client's packets now come from another port.
    p.client_at = addr("192.0.2.1:5000");
    p.c.write(b"after");
    let mut first = p.client_packets();
    assert!(!first.is_empty());
    for d in &mut first {
        p.s.handle_datagram_from(p.now, p.client_at, d);
    }
    assert_eq!(
        p.s.remote(),
        Some(addr("192.0.2.1:4000")),
        "not followed before the path is validated"
    );
    assert_eq!(p.s.poll_event(), Some(Event::Connected));
    assert_eq!(p.s.poll_event(), Some(Event::NewAddress(p.client_at)));
    p.pump();
    assert_eq!(p.challenged, vec![addr("192.0.2.1:5000")]);
    assert_eq!(p.s.remote(), Some(addr("192.0.2.1:5000")));
    assert_eq!(p.s.stats().path_changes, 1);
    assert_eq!(p.s.poll_event(), Some(Event::NewAddress(p.client_at)));
    let mut got = vec![0u8; 64];
    let n = p.s.read(&mut got);
    assert_eq!(&got[..n], b"beforeafter");
}

/// An on-path attacker copies a fresh packet and races it from its own
/// address, or replays one later: the path does not move, and the
/// attacker's address receives only small challenges.
#[test]
fn a_raced_or_replayed_packet_from_elsewhere_does_not_move_the_path() {
    let mut p = Pair::new();
    let evil = addr("198.51.100.66:6666");
    p.c.write(b"data");
    let packets = p.client_packets();
    let mut sent_by_evil = 0;
    // The copy arrives first, from the attacker.
    for d in &packets {
        sent_by_evil += d.len();
        p.s.handle_datagram_from(p.now, evil, &mut d.clone());
    }
    // The originals arrive after it: replays, dropped.
    let replays = p.s.stats().dropped_replay;
    for d in &packets {
        p.s.handle_datagram_from(p.now, p.client_at, &mut d.clone());
    }
    assert!(p.s.stats().dropped_replay > replays);
    // The server challenges the attacker's address, which cannot answer;
    // the attacker relays the challenges to the real client, whose
    // answers come from the client's own address.
    let mut buf = vec![0u8; 65536];
    let mut to_evil = 0;
    for _ in 0..200 {
        while let Some((n, to)) = p.s.poll_path_transmit(p.now, &mut buf) {
            assert_eq!(to, evil);
            to_evil += n;
            p.c.handle_datagram_from(p.now, addr(SERVER), &mut buf[..n]);
        }
        p.pump();
        p.now += Duration::from_millis(50);
        p.s.handle_timeout(p.now);
        p.c.handle_timeout(p.now);
    }
    assert!(to_evil > 0, "the new address was challenged");
    assert!(
        to_evil <= 3 * sent_by_evil,
        "amplification: {to_evil} bytes sent for {sent_by_evil} received"
    );
    assert_eq!(p.s.remote(), Some(addr("192.0.2.1:4000")));
    assert_eq!(p.s.stats().path_changes, 0);
    // A replay of an old packet from yet another address: not authentic
    // any more, so not even a challenge.
    let before = p.s.stats().dropped_replay;
    p.s.handle_datagram_from(p.now, addr("198.51.100.67:1"), &mut packets[0].clone());
    assert_eq!(p.s.stats().dropped_replay, before + 1);
    assert!(p.s.poll_path_transmit(p.now, &mut buf).is_none());
    assert!(!p.s.is_closed() && !p.c.is_closed());
}
