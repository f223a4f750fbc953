//! One direction of an emulated link, sans-IO: packets go in with the time
//! they arrived, come out when they are due. No clocks or sockets in here,
//! so the model is tested in virtual time.
//!
//! Pipeline, in the order a packet meets it:
//! 1. duplication (the copy takes the same path);
//! 2. the bottleneck: a drop-tail FIFO of `queue_bytes` served at `rate`
//!    (IP bytes, no link-layer overhead) — a full queue drops the packet;
//! 3. random / Gilbert-Elliott loss *on the wire*: a lost packet has used
//!    its transmission time, so the best goodput is `rate x (1 - loss)`;
//! 4. propagation: `delay` plus uniform jitter in `[-jitter, +jitter]`;
//!    jitter never reorders (a packet leaves no earlier than the one
//!    before it);
//! 5. reordering: with probability `reorder`, a packet is held back an
//!    extra `reorder_delay` and the packets behind it overtake it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use fastrand::Rng;

use crate::loss::{LossModel, LossState};

/// Parameters of one direction of the link.
#[derive(Debug, Clone, PartialEq)]
pub struct DirConfig {
    /// Bottleneck rate in bit/s (IP bytes); `None` = unlimited.
    pub rate_bps: Option<u64>,
    /// Bottleneck queue capacity in bytes (drop-tail).
    pub queue_bytes: u64,
    /// One-way propagation delay.
    pub delay: Duration,
    /// Uniform jitter amplitude around `delay`.
    pub jitter: Duration,
    /// Loss on the wire.
    pub loss: LossModel,
    /// Probability that a packet is duplicated.
    pub duplicate: f64,
    /// Probability that a packet is held back and overtaken.
    pub reorder: f64,
    /// How long a reordered packet is held back beyond its normal delay.
    pub reorder_delay: Duration,
    /// Upper bound on bytes held by this direction (queue + wire), so memory
    /// stays bounded whatever the parameters.
    pub max_inflight_bytes: u64,
    /// PRNG seed (runs are reproducible for the same packet arrivals).
    pub seed: u64,
}

impl Default for DirConfig {
    fn default() -> Self {
        DirConfig {
            rate_bps: None,
            queue_bytes: 1 << 20,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: LossModel::None,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(2),
            max_inflight_bytes: 256 << 20,
            seed: 1,
        }
    }
}

/// Counters for one direction; `delivered` + drops + queued = `received` + `duplicated`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Packets that entered the link.
    pub received: u64,
    /// Bytes that entered the link.
    pub received_bytes: u64,
    /// Packets dropped because the bottleneck queue was full.
    pub queue_drops: u64,
    /// Packets lost on the wire (random / Gilbert-Elliott).
    pub lost: u64,
    /// Extra copies created by duplication.
    pub duplicated: u64,
    /// Packets held back and overtaken.
    pub reordered: u64,
    /// Packets dropped because `max_inflight_bytes` was reached.
    pub overflow_drops: u64,
    /// Packets handed out by `pop_due`.
    pub delivered: u64,
    /// Bytes handed out by `pop_due`.
    pub delivered_bytes: u64,
    /// Largest bottleneck backlog seen, in bytes.
    pub max_backlog_bytes: u64,
    /// How long accepted packets waited in the bottleneck queue.
    pub queue_delay: DelayHistogram,
}

/// Buckets of [`DelayHistogram`]: 1 ms each below 256 ms, then 8 ms each.
pub const DELAY_BUCKETS: usize = 512;

/// A histogram of queueing delays: 1 ms resolution where a delay-based
/// sender keeps the queue (below 256 ms), 8 ms above (up to 2.3 s; longer
/// waits count in the last bucket). Fixed size and `Copy`, so counters are
/// published without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DelayHistogram(pub [u64; DELAY_BUCKETS]);

impl Default for DelayHistogram {
    fn default() -> Self {
        DelayHistogram([0; DELAY_BUCKETS])
    }
}

impl DelayHistogram {
    /// The bucket of a delay.
    pub fn bucket(d: Duration) -> usize {
        let ms = d.as_millis() as usize;
        if ms < 256 {
            ms
        } else {
            (256 + (ms - 256) / 8).min(DELAY_BUCKETS - 1)
        }
    }

    /// The smallest delay (in ms) a bucket holds.
    pub fn bucket_ms(b: usize) -> u64 {
        if b < 256 {
            b as u64
        } else {
            256 + (b as u64 - 256) * 8
        }
    }

    /// The `q` quantile (0-1) of the waits counted, in ms (the lower edge
    /// of its bucket); `None` before any.
    pub fn quantile_ms(&self, q: f64) -> Option<u64> {
        let n: u64 = self.0.iter().sum();
        let want = (n as f64 * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (b, &c) in self.0.iter().enumerate() {
            seen += c;
            if n > 0 && seen >= want {
                return Some(Self::bucket_ms(b));
            }
        }
        None
    }

    /// Counts one packet's wait.
    pub fn add(&mut self, d: Duration) {
        self.0[Self::bucket(d)] += 1;
    }

    /// `bucket:count` pairs of the non-empty buckets, comma-separated (for
    /// scripts that subtract two snapshots).
    pub fn encode(&self) -> String {
        let parts: Vec<String> = (0..DELAY_BUCKETS)
            .filter(|&b| self.0[b] > 0)
            .map(|b| format!("{b}:{}", self.0[b]))
            .collect();
        parts.join(",")
    }
}

/// Anything with a length can cross the link.
pub trait Packet: Clone {
    /// Length in bytes on the wire (the IP packet length).
    fn wire_len(&self) -> usize;
}

impl Packet for Vec<u8> {
    fn wire_len(&self) -> usize {
        self.len()
    }
}

/// One direction of the link (see the module doc for the pipeline).
pub struct Link<P> {
    cfg: DirConfig,
    rng: Rng,
    loss: LossState,
    /// When the bottleneck finishes sending everything accepted so far.
    busy_until: Option<Instant>,
    /// Delivery time of the last in-order packet (jitter never reorders).
    last_deliver: Option<Instant>,
    /// In-order packets on the wire, sorted by delivery time.
    wire: VecDeque<(Instant, P)>,
    /// Reordered packets, sorted by delivery time.
    late: VecDeque<(Instant, P)>,
    inflight_bytes: u64,
    stats: Stats,
}

impl<P: Packet> Link<P> {
    /// A link direction with these parameters.
    pub fn new(cfg: DirConfig) -> Self {
        Link {
            rng: Rng::with_seed(cfg.seed),
            loss: LossState::new(cfg.loss),
            cfg,
            busy_until: None,
            last_deliver: None,
            wire: VecDeque::new(),
            late: VecDeque::new(),
            inflight_bytes: 0,
            stats: Stats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Bytes waiting in the bottleneck queue at `now`.
    pub fn backlog_bytes(&self, now: Instant) -> u64 {
        match (self.cfg.rate_bps, self.busy_until) {
            (Some(rate), Some(busy)) if busy > now => {
                let ns = (busy - now).as_nanos();
                (ns * rate as u128 / 8 / 1_000_000_000) as u64
            }
            _ => 0,
        }
    }

    /// A packet arrives at the link at `now`.
    pub fn push(&mut self, now: Instant, pkt: P) {
        self.stats.received += 1;
        self.stats.received_bytes += pkt.wire_len() as u64;
        if self.cfg.duplicate > 0.0 && self.rng.f64() < self.cfg.duplicate {
            self.stats.duplicated += 1;
            self.transmit(now, pkt.clone());
        }
        self.transmit(now, pkt);
    }

    fn transmit(&mut self, now: Instant, pkt: P) {
        let len = pkt.wire_len() as u64;
        if self.inflight_bytes + len > self.cfg.max_inflight_bytes {
            self.stats.overflow_drops += 1;
            return;
        }
        // The bottleneck: drop-tail, then serialisation at `rate`.
        let sent_at = match self.cfg.rate_bps {
            Some(rate) if rate > 0 => {
                let backlog = self.backlog_bytes(now);
                if backlog > 0 && backlog + len > self.cfg.queue_bytes {
                    self.stats.queue_drops += 1;
                    return;
                }
                let start = self.busy_until.map_or(now, |b| b.max(now));
                self.stats.queue_delay.add(start - now);
                let tx =
                    Duration::from_nanos((len as u128 * 8 * 1_000_000_000 / rate as u128) as u64);
                let done = start + tx;
                self.busy_until = Some(done);
                self.stats.max_backlog_bytes = self.stats.max_backlog_bytes.max(backlog + len);
                done
            }
            _ => now,
        };
        // Loss on the wire, after the packet used its share of the rate.
        if self.loss.lose(&mut self.rng) {
            self.stats.lost += 1;
            return;
        }
        let mut at = sent_at + self.cfg.delay;
        if !self.cfg.jitter.is_zero() {
            let j = self.cfg.jitter.as_nanos() as f64 * (self.rng.f64() * 2.0 - 1.0);
            at = if j >= 0.0 {
                at + Duration::from_nanos(j as u64)
            } else {
                at.checked_sub(Duration::from_nanos((-j) as u64))
                    .unwrap_or(sent_at)
                    .max(sent_at)
            };
        }
        self.inflight_bytes += len;
        if self.cfg.reorder > 0.0 && self.rng.f64() < self.cfg.reorder {
            self.stats.reordered += 1;
            let at = at + self.cfg.reorder_delay;
            // Keep `late` sorted (delays are equal, so this is nearly always a push).
            let pos = self.late.partition_point(|(t, _)| *t <= at);
            self.late.insert(pos, (at, pkt));
            return;
        }
        let at = self.last_deliver.map_or(at, |l| l.max(at));
        self.last_deliver = Some(at);
        self.wire.push_back((at, pkt));
    }

    /// The earliest time a packet is due, if any is in flight.
    pub fn next_due(&self) -> Option<Instant> {
        match (self.wire.front(), self.late.front()) {
            (Some((a, _)), Some((b, _))) => Some((*a).min(*b)),
            (Some((a, _)), None) | (None, Some((a, _))) => Some(*a),
            (None, None) => None,
        }
    }

    /// The next packet due at or before `now`, earliest first.
    pub fn pop_due(&mut self, now: Instant) -> Option<P> {
        let from_late = match (self.wire.front(), self.late.front()) {
            (Some((a, _)), Some((b, _))) => b < a,
            (None, Some(_)) => true,
            _ => false,
        };
        let queue = if from_late {
            &mut self.late
        } else {
            &mut self.wire
        };
        if queue.front().is_some_and(|(t, _)| *t <= now) {
            let (_, pkt) = queue.pop_front()?;
            let len = pkt.wire_len() as u64;
            self.inflight_bytes = self.inflight_bytes.saturating_sub(len);
            self.stats.delivered += 1;
            self.stats.delivered_bytes += len;
            return Some(pkt);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Push packets of `size` bytes at `offered_bps` for `secs`, popping as
    /// time advances in 100 us steps; returns (deliveries with times, link).
    type Deliveries = Vec<(Duration, Vec<u8>)>;

    fn drive(
        cfg: DirConfig,
        size: usize,
        offered_bps: u64,
        secs: f64,
    ) -> (Deliveries, Link<Vec<u8>>) {
        let t0 = Instant::now();
        let mut link = Link::new(cfg);
        let mut out = Vec::new();
        let gap_ns = size as u64 * 8 * 1_000_000_000 / offered_bps;
        let end_ns = (secs * 1e9) as u64;
        let mut next_send = 0u64;
        let mut seq = 0u32;
        let mut t = 0u64;
        while t < end_ns + 5_000_000_000 {
            while next_send <= t && next_send < end_ns {
                let mut p = vec![0u8; size];
                p[..4].copy_from_slice(&seq.to_be_bytes());
                seq += 1;
                link.push(t0 + Duration::from_nanos(next_send), p);
                next_send += gap_ns;
            }
            let now = t0 + Duration::from_nanos(t);
            while let Some(p) = link.pop_due(now) {
                out.push((now - t0, p));
            }
            t += 100_000;
        }
        (out, link)
    }

    fn seq(p: &[u8]) -> u32 {
        u32::from_be_bytes([p[0], p[1], p[2], p[3]])
    }

    #[test]
    fn delay_is_applied() {
        let cfg = DirConfig {
            delay: ms(50),
            ..Default::default()
        };
        let (out, _) = drive(cfg, 100, 1_000_000, 0.01);
        assert!(!out.is_empty());
        // First packet sent at t=0 arrives at 50 ms (100 us step).
        assert!(out[0].0 >= ms(50) && out[0].0 <= ms(50) + Duration::from_micros(100));
    }

    #[test]
    fn rate_limits_throughput() {
        let cfg = DirConfig {
            rate_bps: Some(10_000_000),
            queue_bytes: 100_000,
            delay: ms(10),
            ..Default::default()
        };
        // Offer 20 Mbit/s for 1 s: get ~10 Mbit/s out, the rest dropped.
        let (out, link) = drive(cfg, 1250, 20_000_000, 1.0);
        let first = out.first().map(|o| o.0).unwrap_or_default();
        let last = out.last().map(|o| o.0).unwrap_or_default();
        let bits = (out.len() as f64 - 1.0) * 1250.0 * 8.0;
        let rate = bits / (last - first).as_secs_f64();
        assert!((rate - 10e6).abs() / 10e6 < 0.01, "rate {rate}");
        let s = link.stats();
        assert!(s.queue_drops > 0);
        assert!(s.max_backlog_bytes <= 100_000 + 1250);
        assert_eq!(s.delivered + s.queue_drops, s.received);
    }

    #[test]
    fn queue_adds_delay_up_to_its_size() {
        let cfg = DirConfig {
            rate_bps: Some(8_000_000), // 1 MB/s
            queue_bytes: 50_000,       // 50 ms worth
            delay: ms(20),
            ..Default::default()
        };
        let (out, _) = drive(cfg, 1000, 16_000_000, 0.5);
        // Once the queue is full, a packet waits ~50 ms + 20 ms delay.
        let s = seq(&out[300].1) as u64;
        let sent = Duration::from_nanos(s * 500_000);
        let owd = out[300].0 - sent;
        assert!(owd > ms(65) && owd < ms(75), "owd {owd:?}");
        // The histogram saw the same waits: most packets near 50 ms.
        let (out, link) = drive(cfg_50ms(), 1000, 16_000_000, 0.5);
        let h = link.stats().queue_delay;
        let counted: u64 = h.0.iter().sum();
        assert_eq!(counted, out.len() as u64);
        let full: u64 = h.0[45..=50].iter().sum();
        assert!(full * 10 > counted * 8, "{}", h.encode());
    }

    fn cfg_50ms() -> DirConfig {
        DirConfig {
            rate_bps: Some(8_000_000),
            queue_bytes: 50_000,
            delay: ms(20),
            ..Default::default()
        }
    }

    #[test]
    fn delay_buckets_are_1_ms_then_8_ms() {
        assert_eq!(DelayHistogram::bucket(Duration::from_micros(999)), 0);
        assert_eq!(DelayHistogram::bucket(ms(25)), 25);
        assert_eq!(DelayHistogram::bucket(ms(263)), 256);
        assert_eq!(DelayHistogram::bucket(ms(264)), 257);
        assert_eq!(DelayHistogram::bucket_ms(257), 264);
        assert_eq!(
            DelayHistogram::bucket(Duration::from_secs(60)),
            DELAY_BUCKETS - 1
        );
        let mut h = DelayHistogram::default();
        h.add(ms(3));
        h.add(ms(3));
        h.add(ms(300));
        assert_eq!(h.encode(), "3:2,261:1");
        assert_eq!(h.quantile_ms(0.5), Some(3));
        assert_eq!(h.quantile_ms(0.9), Some(296));
        assert_eq!(DelayHistogram::default().quantile_ms(0.9), None);
    }

    #[test]
    fn random_loss_after_the_bottleneck() {
        let cfg = DirConfig {
            rate_bps: Some(10_000_000),
            queue_bytes: 1 << 20,
            loss: LossModel::Random(0.1),
            ..Default::default()
        };
        let (out, link) = drive(cfg, 1250, 5_000_000, 2.0);
        let s = link.stats();
        let loss = s.lost as f64 / s.received as f64;
        assert!((loss - 0.1).abs() < 0.02, "loss {loss}");
        assert_eq!(out.len() as u64, s.received - s.lost);
    }

    #[test]
    fn jitter_never_reorders() {
        let cfg = DirConfig {
            delay: ms(30),
            jitter: ms(10),
            ..Default::default()
        };
        let (out, _) = drive(cfg, 200, 8_000_000, 0.2);
        let seqs: Vec<u32> = out.iter().map(|(_, p)| seq(p)).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]));
        assert!(out.iter().all(|(t, _)| *t >= ms(20)));
    }

    #[test]
    fn reorder_and_duplicate() {
        let cfg = DirConfig {
            delay: ms(5),
            reorder: 0.05,
            reorder_delay: ms(3),
            duplicate: 0.02,
            ..Default::default()
        };
        let (out, link) = drive(cfg, 200, 8_000_000, 1.0);
        let s = link.stats();
        assert_eq!(out.len() as u64, s.received + s.duplicated);
        assert!(s.reordered > 100 && s.duplicated > 50, "{s:?}");
        let inversions = out
            .windows(2)
            .filter(|w| seq(&w[1].1) < seq(&w[0].1))
            .count();
        assert!(inversions > 100);
        let times: Vec<Duration> = out.iter().map(|o| o.0).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn inflight_cap_bounds_memory() {
        let cfg = DirConfig {
            delay: Duration::from_secs(10),
            max_inflight_bytes: 10_000,
            ..Default::default()
        };
        let mut link: Link<Vec<u8>> = Link::new(cfg);
        let now = Instant::now();
        for _ in 0..100 {
            link.push(now, vec![0; 1000]);
        }
        assert_eq!(link.stats().overflow_drops, 90);
        assert_eq!(link.next_due(), Some(now + Duration::from_secs(10)));
        assert!(link.pop_due(now).is_none());
    }
}
