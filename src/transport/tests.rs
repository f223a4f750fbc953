//! Whole-connection tests driven by hand. Transfers through a lossy network
//! in virtual time are the simulator's (`sim`, tests/transport_sim.rs);
//! a peer that breaks the rules is `violation_tests.rs`.

use std::time::Instant;

use super::*;

/// A client and the server that accepted its REQUEST (`cfg` and `secret`
/// on both sides, fixed randomness); the server's RESPONSE not yet sent.
pub(super) fn client_and_server(
    cfg: &Config,
    secret: &[u8; 32],
    now: Instant,
) -> (Connection, Connection) {
    let mut c = Connection::client(cfg.clone(), secret, HandshakeRandom::from_seed(1), now);
    let mut buf = vec![0u8; 65536];
    let n = c.poll_transmit(now, &mut buf).expect("REQUEST");
    let s = Connection::server(
        cfg.clone(),
        secret,
        HandshakeRandom::from_seed(2),
        now,
        &mut buf[..n],
    )
    .expect("the server accepts the REQUEST");
    (c, s)
}

/// Full data packets are exactly the path MTU (or the buffer given) long,
/// whatever the stream offset: the driver ends a GSO batch at the first
/// shorter datagram, so a packet a few bytes short halves every batch.
#[test]
fn full_packets_fill_the_buffer_exactly() {
    let now = Instant::now();
    let (mut c, mut s) = client_and_server(&Config::default(), &[9u8; 32], now);
    let mut buf = vec![0u8; 65536];
    let n = s.poll_transmit(now, &mut buf).expect("RESPONSE");
    c.handle_datagram(now, &mut buf[..n]);
    assert!(c.is_established());
    let data = vec![0x5au8; 4 << 20];
    let mut written = c.write(&data);
    let mut sizes = Vec::new();
    // Segment sizes a GSO batch would use: the first datagram's length.
    for room in [1200usize, 1187, 1000] {
        for _ in 0..20 {
            written += c.write(&data[written..]);
            if let Some(n) = c.poll_transmit(now, &mut buf[..room]) {
                sizes.push((room, n));
            }
        }
    }
    let data_packets: Vec<_> = sizes.iter().filter(|(_, n)| *n > 100).collect();
    assert!(data_packets.len() > 20, "too few data packets: {sizes:?}");
    for (room, n) in data_packets {
        assert_eq!(n, room, "a full packet must fill its buffer: {sizes:?}");
    }
}
