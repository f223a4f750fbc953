//! One direction of a simulated link, sans-IO: datagrams go in with
//! [`Link::send`] at a virtual time and come out of [`Link::poll_deliver`]
//! when their arrival time has come.
//!
//! The bottleneck is a FIFO served at a fixed rate, so it needs no per-packet
//! state: a datagram entering at `t` starts serialization at
//! `max(t, busy_until)` and the backlog in bytes is `(busy_until - t) × rate`.
//! Datagrams in flight are ordered by (arrival time, sequence): those that
//! arrive in order (the common case) in a FIFO, the rest in a min-heap.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

use super::config::LinkConfig;
use super::rng::{splitmix64, Rng};
use super::SimError;

/// Counters of what a link did. Drops are counted by cause; a duplicated
/// datagram counts once in `duplicated` and twice in `delivered`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Datagrams offered to the link.
    pub sent: u64,
    /// Bytes offered to the link.
    pub sent_bytes: u64,
    /// Datagrams lost on the wire (random or Gilbert-Elliott loss).
    pub dropped_loss: u64,
    /// Datagrams dropped because the bottleneck queue was full.
    pub dropped_queue: u64,
    /// Datagrams dropped by a blackout window.
    pub dropped_blackout: u64,
    /// Datagrams handed out by `poll_deliver` (duplicates included).
    pub delivered: u64,
    /// Bytes handed out by `poll_deliver` (duplicates included).
    pub delivered_bytes: u64,
    /// Extra copies created by duplication.
    pub duplicated: u64,
    /// Datagrams held back for reordering.
    pub reordered: u64,
    /// Largest time a datagram waited in the bottleneck queue.
    pub max_queue_delay: Duration,
    /// Largest backlog seen in the bottleneck queue, in bytes (before the
    /// arriving datagram was added).
    pub max_queue_bytes: u64,
}

/// The queueing delay one datagram saw at the bottleneck.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueSample {
    /// When the datagram entered the link (virtual time since network start).
    pub at: Duration,
    /// How long it waited before its serialization began.
    pub delay: Duration,
}

/// One direction of a simulated link (see [`LinkConfig`] for the model).
///
/// Deterministic: the same seed and the same sequence of `send` calls give
/// the same deliveries. Each impairment draws from its own random stream, so
/// e.g. enabling duplication does not change which datagrams are lost.
#[derive(Debug)]
pub struct Link {
    config: LinkConfig,
    epoch: Instant,
    loss_rng: Rng,
    jitter_rng: Rng,
    reorder_rng: Rng,
    dup_rng: Rng,
    ge_bad: bool,
    busy_until: Instant,
    last_arrival: Instant,
    seq: u64,
    /// In-flight datagrams whose arrival is not before the previous one's.
    fifo: VecDeque<InFlight>,
    /// In-flight datagrams that overtake earlier ones' arrival (reordered).
    heap: BinaryHeap<Reverse<InFlight>>,
    stats: LinkStats,
    queue_samples: Vec<QueueSample>,
}

impl Link {
    /// A link with `config`, random streams derived from `seed`; blackout
    /// windows count from `epoch` (the network's start).
    pub fn new(config: LinkConfig, seed: u64, epoch: Instant) -> Result<Self, SimError> {
        config.validate()?;
        let mut sm = seed;
        Ok(Self {
            config,
            epoch,
            loss_rng: Rng::new(splitmix64(&mut sm)),
            jitter_rng: Rng::new(splitmix64(&mut sm)),
            reorder_rng: Rng::new(splitmix64(&mut sm)),
            dup_rng: Rng::new(splitmix64(&mut sm)),
            ge_bad: false,
            busy_until: epoch,
            last_arrival: epoch,
            seq: 0,
            fifo: VecDeque::new(),
            heap: BinaryHeap::new(),
            stats: LinkStats::default(),
            queue_samples: Vec::new(),
        })
    }

    /// Offers a datagram to the link at `now`.
    pub fn send(&mut self, now: Instant, datagram: Vec<u8>) {
        self.send_tagged(now, datagram, 0);
    }

    /// Like [`send`](Self::send), carrying an opaque `tag` that comes back
    /// with the datagram from [`poll_deliver_tagged`](Self::poll_deliver_tagged)
    /// (the network uses it to route datagrams through shared links).
    pub fn send_tagged(&mut self, now: Instant, datagram: Vec<u8>, tag: u64) {
        let len = datagram.len();
        self.stats.sent += 1;
        self.stats.sent_bytes += len as u64;
        if self.in_blackout(now) {
            self.stats.dropped_blackout += 1;
            return;
        }
        let departure = match self.config.rate_bps {
            Some(rate) => match self.enqueue(now, len, rate) {
                Some(departure) => departure,
                None => {
                    self.stats.dropped_queue += 1;
                    return;
                }
            },
            None => now,
        };
        if self.lost_on_wire() {
            self.stats.dropped_loss += 1;
            return;
        }
        // In-order arrivals are monotone; a reordered datagram is held back
        // from its in-order slot without moving that order forward.
        let mut arrival = (departure + self.config.delay + self.jitter()).max(self.last_arrival);
        if self.reorder_rng.chance(self.config.reorder) {
            self.stats.reordered += 1;
            arrival += self.config.reorder_delay;
        } else {
            self.last_arrival = arrival;
        }
        if self.dup_rng.chance(self.config.duplicate) {
            self.stats.duplicated += 1;
            self.push(arrival, tag, datagram.clone());
        }
        self.push(arrival, tag, datagram);
    }

    /// Earliest time a datagram will be ready, if any is in flight.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_in_flight().map(|p| p.arrival)
    }

    /// The next datagram that has arrived by `now`, if any.
    pub fn poll_deliver(&mut self, now: Instant) -> Option<Vec<u8>> {
        self.poll_deliver_tagged(now).map(|(_, d)| d)
    }

    /// The next datagram that has arrived by `now`, with its tag.
    pub fn poll_deliver_tagged(&mut self, now: Instant) -> Option<(u64, Vec<u8>)> {
        loop {
            if self.poll_timeout()? > now {
                return None;
            }
            let from_fifo = match (self.fifo.front(), self.heap.peek()) {
                (Some(f), Some(Reverse(h))) => f < h,
                (f, _) => f.is_some(),
            };
            let p = if from_fifo {
                self.fifo.pop_front()?
            } else {
                self.heap.pop()?.0
            };
            if self.in_blackout(p.arrival) {
                self.stats.dropped_blackout += 1;
                continue;
            }
            self.stats.delivered += 1;
            self.stats.delivered_bytes += p.data.len() as u64;
            return Some((p.tag, p.data));
        }
    }

    /// Datagrams currently queued or propagating.
    pub fn in_flight(&self) -> usize {
        self.fifo.len() + self.heap.len()
    }

    /// What the link has done so far.
    pub fn stats(&self) -> &LinkStats {
        &self.stats
    }

    /// Queueing delay of every datagram accepted by the bottleneck, in
    /// order of entry (empty without a rate limit).
    pub fn queue_samples(&self) -> &[QueueSample] {
        &self.queue_samples
    }

    /// The `q`-quantile (`0.0..=1.0`) of the queueing delay of datagrams that
    /// entered at or after `after` (virtual time since network start);
    /// `None` if there are no such samples.
    pub fn queue_delay_quantile(&self, q: f64, after: Duration) -> Option<Duration> {
        let mut delays: Vec<Duration> = self
            .queue_samples
            .iter()
            .filter(|s| s.at >= after)
            .map(|s| s.delay)
            .collect();
        if delays.is_empty() {
            return None;
        }
        delays.sort_unstable();
        let idx = ((delays.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
        delays.get(idx).copied()
    }

    /// The link's configuration.
    pub fn config(&self) -> &LinkConfig {
        &self.config
    }

    /// Replaces the configuration mid-run (e.g. to change the loss rate);
    /// datagrams already in flight keep their arrival times.
    pub fn set_config(&mut self, config: LinkConfig) -> Result<(), SimError> {
        config.validate()?;
        self.config = config;
        Ok(())
    }

    /// Admits `len` bytes to the bottleneck at `now`; returns the time the
    /// last bit leaves, or `None` if the drop-tail queue is full.
    fn enqueue(&mut self, now: Instant, len: usize, rate: u64) -> Option<Instant> {
        let start = self.busy_until.max(now);
        let wait = start - now;
        let backlog = (wait.as_nanos() * rate as u128 / 8_000_000_000) as u64;
        if backlog + len as u64 > self.config.queue_bytes as u64 {
            return None;
        }
        self.stats.max_queue_bytes = self.stats.max_queue_bytes.max(backlog);
        self.stats.max_queue_delay = self.stats.max_queue_delay.max(wait);
        self.queue_samples.push(QueueSample {
            at: now.saturating_duration_since(self.epoch),
            delay: wait,
        });
        let bits = len as u128 * 8_000_000_000;
        let serialization = Duration::from_nanos(bits.div_ceil(rate as u128) as u64);
        self.busy_until = start + serialization;
        Some(self.busy_until)
    }

    /// Random loss and the Gilbert-Elliott chain (which moves every datagram).
    fn lost_on_wire(&mut self) -> bool {
        let mut lost = self.loss_rng.chance(self.config.loss);
        if let Some(ge) = self.config.gilbert_elliott {
            let flip = if self.ge_bad { ge.r } else { ge.p };
            if self.loss_rng.chance(flip) {
                self.ge_bad = !self.ge_bad;
            }
            let p = if self.ge_bad {
                ge.loss_bad
            } else {
                ge.loss_good
            };
            lost |= self.loss_rng.chance(p);
        }
        lost
    }

    fn jitter(&mut self) -> Duration {
        let j = self.config.jitter.as_nanos() as f64;
        if j == 0.0 {
            return Duration::ZERO;
        }
        Duration::from_nanos((self.jitter_rng.unit() * j) as u64)
    }

    fn in_blackout(&self, t: Instant) -> bool {
        let since = t.saturating_duration_since(self.epoch);
        self.config
            .blackouts
            .iter()
            .any(|&(from, to)| from <= since && since < to)
    }

    fn push(&mut self, arrival: Instant, tag: u64, data: Vec<u8>) {
        self.seq += 1;
        let p = InFlight {
            arrival,
            seq: self.seq,
            tag,
            data,
        };
        if self.fifo.back().is_none_or(|b| b.arrival <= arrival) {
            self.fifo.push_back(p);
        } else {
            self.heap.push(Reverse(p));
        }
    }

    fn next_in_flight(&self) -> Option<&InFlight> {
        match (self.fifo.front(), self.heap.peek()) {
            (Some(f), Some(Reverse(h))) => Some(f.min(h)),
            (f, h) => f.or(h.map(|Reverse(h)| h)),
        }
    }
}

/// A datagram between entry and arrival; ordered by (arrival, entry order).
#[derive(Debug)]
struct InFlight {
    arrival: Instant,
    seq: u64,
    tag: u64,
    data: Vec<u8>,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for InFlight {}

impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.arrival, self.seq).cmp(&(other.arrival, other.seq))
    }
}
