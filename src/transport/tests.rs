//! Whole-connection tests through a tiny in-memory network in virtual time.
//! (The richer simulator in `sim` drives the efficiency tests in tests/.)

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use super::*;

/// (arrival time, sequence, destination side, datagram)
type InFlight = Reverse<(Instant, u64, usize, Vec<u8>)>;

struct Net {
    now: Instant,
    delay: Duration,
    loss: f64,
    rng: u64,
    queue: BinaryHeap<InFlight>,
    seq: u64,
    rate_bps: f64,
    link_free: [Instant; 2],
}

impl Net {
    fn rand(&mut self) -> f64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn run(
    secret: [u8; 32],
    size: usize,
    delay_ms: u64,
    loss: f64,
    rate_bps: f64,
) -> (Stats, Stats, Duration) {
    let start = Instant::now();
    let mut net = Net {
        now: start,
        delay: Duration::from_millis(delay_ms),
        loss,
        rng: 0x1234_5678_9abc_def1,
        queue: BinaryHeap::new(),
        seq: 0,
        rate_bps,
        link_free: [start; 2],
    };
    let cfg = Config {
        max_udp_payload: 1452,
        ..Config::default()
    };
    let mut c = Connection::client(cfg.clone(), &secret, HandshakeRandom::from_seed(1), start);
    let mut s: Option<Connection> = None;
    let data: Vec<u8> = (0..size).map(|i| (i * 7 + i / 1000) as u8).collect();
    let mut written = 0;
    let mut received = Vec::with_capacity(size);
    let mut buf = vec![0u8; 65536];
    let mut rbuf = vec![0u8; 1 << 16];
    for _ in 0..2_000_000u64 {
        let now = net.now;
        // client app
        if c.is_established() && written < size {
            written += c.write(&data[written..]);
            if written == size {
                c.finish();
            }
        }
        if let Some(s) = s.as_mut() {
            loop {
                let n = s.read(&mut rbuf);
                if n == 0 {
                    break;
                }
                received.extend_from_slice(&rbuf[..n]);
            }
        }
        if received.len() == size && c.is_send_complete() {
            break;
        }
        // transmit
        for side in 0..2 {
            loop {
                let out = if side == 0 {
                    c.poll_transmit(now, &mut buf)
                } else if let Some(s) = s.as_mut() {
                    s.poll_transmit(now, &mut buf)
                } else {
                    None
                };
                let Some(n) = out else { break };
                if net.rand() < net.loss {
                    continue;
                }
                let ser = Duration::from_secs_f64(n as f64 * 8.0 / net.rate_bps);
                let depart = net.link_free[side].max(now) + ser;
                net.link_free[side] = depart;
                net.seq += 1;
                let at = depart + net.delay;
                net.queue
                    .push(Reverse((at, net.seq, 1 - side, buf[..n].to_vec())));
            }
        }
        // next event
        let mut next = net.queue.peek().map(|Reverse((t, ..))| *t);
        for t in [c.poll_timeout(), s.as_ref().and_then(|s| s.poll_timeout())]
            .into_iter()
            .flatten()
        {
            next = Some(next.map_or(t, |n: Instant| n.min(t)));
        }
        let next = next.expect("something must be scheduled");
        net.now = next.max(now);
        while let Some(Reverse((t, ..))) = net.queue.peek() {
            if *t > net.now {
                break;
            }
            let Reverse((_, _, to, mut d)) = net.queue.pop().unwrap();
            if to == 0 {
                c.handle_datagram(net.now, &mut d);
            } else if let Some(s) = s.as_mut() {
                s.handle_datagram(net.now, &mut d);
            } else {
                s = Connection::server(
                    cfg.clone(),
                    &secret,
                    HandshakeRandom::from_seed(2),
                    net.now,
                    &mut d,
                )
                .ok();
            }
        }
        c.handle_timeout(net.now);
        if let Some(s) = s.as_mut() {
            s.handle_timeout(net.now);
        }
        assert!(!c.is_closed(), "client closed: {:?}", c.close_reason());
    }
    assert_eq!(received.len(), size, "incomplete");
    assert!(received == data, "corrupted");
    (c.stats(), s.unwrap().stats(), net.now - start)
}

#[test]
fn clean_transfer() {
    let (cs, ss, t) = run([3; 32], 5_000_000, 10, 0.0, 100e6);
    let goodput = 5e6 * 8.0 / t.as_secs_f64() / 1e6;
    eprintln!("clean: {t:?} goodput {goodput:.1} Mbit/s client {cs:?} server {ss:?}");
    assert!(goodput > 50.0);
}

#[test]
fn lossy_transfer() {
    let (cs, _ss, t) = run([3; 32], 5_000_000, 50, 0.02, 100e6);
    let goodput = 5e6 * 8.0 / t.as_secs_f64() / 1e6;
    eprintln!("lossy: {t:?} goodput {goodput:.1} Mbit/s client {cs:?}");
}

/// Full data packets are exactly the path MTU (or the buffer given) long,
/// whatever the stream offset: the driver ends a GSO batch at the first
/// shorter datagram, so a packet a few bytes short halves every batch.
#[test]
fn full_packets_fill_the_buffer_exactly() {
    let secret = [9u8; 32];
    let now = Instant::now();
    let cfg = Config::default();
    let mut c = Connection::client(cfg.clone(), &secret, HandshakeRandom::from_seed(1), now);
    let mut buf = vec![0u8; 65536];
    let n = c.poll_transmit(now, &mut buf).expect("REQUEST");
    let mut s = Connection::server(
        cfg,
        &secret,
        HandshakeRandom::from_seed(2),
        now,
        &mut buf[..n],
    )
    .expect("server accepts");
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
