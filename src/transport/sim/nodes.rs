//! A simple node for exercising the simulator itself (and for calibrating
//! tests): it can send at a constant rate, record what arrives, and echo.
//! One type for every role, so a [`Network`](super::Network) of them needs
//! no enum or boxing.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::network::Node;

/// One datagram as a [`TestNode`] saw it arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arrival {
    /// Sequence number written by the sending [`TestNode`].
    pub seq: u64,
    /// When it was sent (since the common start).
    pub sent: Duration,
    /// When it arrived (since the common start).
    pub arrived: Duration,
    /// Its length in bytes.
    pub len: usize,
}

/// A test endpoint. As a sender it transmits `count` datagrams of `size`
/// bytes (>= 16), one every `interval` from `start`; each carries its
/// sequence number and send time (ns since `start`), big-endian u64s, then
/// zero padding. It records every datagram it receives, and as an echo node
/// reflects each one back.
#[derive(Clone, Debug)]
pub struct TestNode {
    start: Instant,
    interval: Duration,
    size: usize,
    count: u64,
    sent: u64,
    echo: bool,
    to_echo: VecDeque<Vec<u8>>,
    arrivals: Vec<Arrival>,
}

impl TestNode {
    /// A node that only records arrivals; times count from `start` (use
    /// the network's start).
    pub fn sink(start: Instant) -> Self {
        Self {
            start,
            interval: Duration::ZERO,
            size: 16,
            count: 0,
            sent: 0,
            echo: false,
            to_echo: VecDeque::new(),
            arrivals: Vec::new(),
        }
    }

    /// A node that records arrivals and sends each one straight back.
    pub fn echo(start: Instant) -> Self {
        Self {
            echo: true,
            ..Self::sink(start)
        }
    }

    /// A sender of `count` datagrams of `size` bytes, one every `interval`.
    pub fn sender(start: Instant, interval: Duration, size: usize, count: u64) -> Self {
        Self {
            interval,
            size: size.max(16),
            count,
            ..Self::sink(start)
        }
    }

    /// A sender offering `rate_bps` in `size`-byte datagrams.
    pub fn at_rate(start: Instant, rate_bps: u64, size: usize, count: u64) -> Self {
        let interval = Duration::from_nanos(size as u64 * 8_000_000_000 / rate_bps.max(1));
        Self::sender(start, interval, size, count)
    }

    /// Datagrams sent so far (echoes excluded).
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// True once every datagram has been sent.
    pub fn finished_sending(&self) -> bool {
        self.sent >= self.count
    }

    /// Everything received, in arrival order.
    pub fn arrivals(&self) -> &[Arrival] {
        &self.arrivals
    }

    fn next_send(&self) -> Option<Instant> {
        let offset = self.interval.as_nanos() as u64 * self.sent;
        (self.sent < self.count).then(|| self.start + Duration::from_nanos(offset))
    }
}

impl Node for TestNode {
    fn handle_datagram(&mut self, now: Instant, datagram: &mut [u8]) {
        let word = |r: std::ops::Range<usize>| {
            datagram
                .get(r)
                .and_then(|b| b.try_into().ok())
                .map_or(u64::MAX, u64::from_be_bytes)
        };
        self.arrivals.push(Arrival {
            seq: word(0..8),
            sent: Duration::from_nanos(word(8..16)),
            arrived: now - self.start,
            len: datagram.len(),
        });
        if self.echo {
            self.to_echo.push_back(datagram.to_vec());
        }
    }

    fn handle_timeout(&mut self, _now: Instant) {}

    fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        if let Some(d) = self.to_echo.pop_front() {
            return Some(d);
        }
        let due = self.next_send().filter(|&t| t <= now)?;
        let mut d = vec![0u8; self.size];
        d[..8].copy_from_slice(&self.sent.to_be_bytes());
        d[8..16].copy_from_slice(&((due - self.start).as_nanos() as u64).to_be_bytes());
        self.sent += 1;
        Some(d)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.next_send()
    }
}
