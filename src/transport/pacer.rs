//! Pacing: spreads packets over time at the controller's rate, in bursts
//! sized to timer resolution rather than one timer per packet.
//!
//! A burst starts only once a *send quantum* of credit has built up (as
//! Linux's TSO autosizing: about a millisecond of sending, at least one
//! packet, at most one 64 KB GSO batch), then runs while credit lasts. At
//! high rates this turns "two packets per ACK" into full GSO batches: one
//! system call, and one GRO train and one ACK at the receiver, per ~45
//! datagrams instead of per two.

use std::time::{Duration, Instant};

/// How much unused sending time the bucket keeps: a few timer ticks.
pub const CREDIT_INTERVAL: Duration = Duration::from_millis(4);
/// The burst the bucket allows, in packets, before the time-based bound
/// takes over (as quinn's 256-packet `MAX_BURST_SIZE`).
const BURST_PACKETS: f64 = 256.0;
/// However high the packet bound, the bucket always holds this much sending
/// time: a timer tick (1 ms in tokio) fired late must not cap a fast flow.
const MIN_CREDIT_INTERVAL: Duration = Duration::from_millis(2);
/// A burst starts once this much sending time has built up...
const QUANTUM_INTERVAL: Duration = Duration::from_millis(1);
/// ...but never waits for more than one GSO batch (the kernel's 64 KiB).
const MAX_QUANTUM: f64 = 64_000.0;

/// A token bucket refilled at the pacing rate.
#[derive(Debug, Clone)]
pub struct Pacer {
    tokens: f64,
    last: Option<Instant>,
    capacity: f64,
    /// The instant of the burst under way (one transmit pass shares one
    /// `now`): within it, send while credit lasts.
    burst_at: Option<Instant>,
}

impl Default for Pacer {
    fn default() -> Self {
        Self::new()
    }
}

impl Pacer {
    /// An empty bucket.
    pub fn new() -> Self {
        Pacer {
            tokens: 0.0,
            last: None,
            capacity: 0.0,
            burst_at: None,
        }
    }

    fn refill(&mut self, now: Instant, rate: u64, mtu: u64) {
        // Credit: CREDIT_INTERVAL of sending, at least 2 packets, and at
        // most 256 packets or MIN_CREDIT_INTERVAL of sending, whichever is
        // more. A timer fires up to a millisecond or two late; credit that
        // covers only one tick would be lost to that lateness, capping a
        // slow flow (few ACKs to wake the sender) near two packets per tick,
        // ~11 Mbit/s, and a fast one (a 64-packet bound at 1,430 bytes is
        // 0.7 Gbit/s with 1 ms ticks) alike, whatever the rate asked.
        let r = rate as f64;
        let mtu = mtu as f64;
        let most = (BURST_PACKETS * mtu).max(r * MIN_CREDIT_INTERVAL.as_secs_f64());
        self.capacity = (r * CREDIT_INTERVAL.as_secs_f64()).min(most).max(2.0 * mtu);
        match self.last {
            None => self.tokens = self.capacity,
            Some(t) => {
                let dt = now.saturating_duration_since(t).as_secs_f64();
                self.tokens = (self.tokens + dt * rate as f64).min(self.capacity);
            }
        }
        self.last = Some(now);
    }

    /// When a packet of `size` bytes may leave: `None` means now.
    pub fn delay(&mut self, now: Instant, size: u64, rate: u64, mtu: u64) -> Option<Instant> {
        self.refill(now, rate, mtu);
        let size = size as f64;
        let quantum = (rate as f64 * QUANTUM_INTERVAL.as_secs_f64())
            .min(MAX_QUANTUM)
            .min(self.capacity)
            .max(size);
        if self.tokens >= size && (self.burst_at == Some(now) || self.tokens >= quantum) {
            self.burst_at = Some(now);
            return None;
        }
        self.burst_at = None;
        let missing = quantum - self.tokens;
        // Round up (and at least 1 µs) so the deadline is strictly later and
        // the refill then covers the packet: no zero-length wait loops.
        let nanos = (missing * 1e9 / rate.max(1) as f64).ceil() as u64;
        Some(now + Duration::from_nanos(nanos.max(1_000)))
    }

    /// A packet of `size` bytes was sent.
    pub fn on_sent(&mut self, size: u64) {
        self.tokens -= size as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paces_at_rate() {
        let mut p = Pacer::new();
        let start = Instant::now();
        let mut now = start;
        let rate = 10_000_000u64; // 10 MB/s
        let mut sent = 0u64;
        while now < start + Duration::from_secs(1) {
            match p.delay(now, 1200, rate, 1200) {
                None => {
                    p.on_sent(1200);
                    sent += 1200;
                }
                Some(t) => now = t,
            }
        }
        let ratio = sent as f64 / rate as f64;
        assert!((0.98..1.03).contains(&ratio), "sent {sent}");
    }

    /// A timer with 1 ms ticks that fires up to 2 ms after the deadline
    /// must not cap a slow flow (the bug: ~11 Mbit/s whatever the rate),
    /// nor a fast one (4 Gbit/s in 1,430-byte packets: a 64-packet bound
    /// capped it at 0.7 Gbit/s).
    #[test]
    fn late_timers_do_not_cap_the_rate() {
        for rate in [1_000_000u64, 2_000_000, 5_000_000, 12_500_000, 500_000_000] {
            let mut p = Pacer::new();
            let start = Instant::now();
            let mut now = start;
            let mut sent = 0u64;
            while now < start + Duration::from_secs(2) {
                match p.delay(now, 1430, rate, 1430) {
                    None => {
                        p.on_sent(1430);
                        sent += 1430;
                    }
                    Some(t) => {
                        // Round up to the next 1 ms tick, then 1 ms late.
                        let ms = (t - start).as_nanos().div_ceil(1_000_000) as u64 + 1;
                        now = start + Duration::from_millis(ms);
                    }
                }
            }
            let ratio = sent as f64 / (2 * rate) as f64;
            assert!((0.97..1.03).contains(&ratio), "rate {rate}: ratio {ratio}");
        }
    }

    /// Woken every 20 µs (an ACK clock), a 4 Gbit/s flow of 1,430-byte
    /// packets goes out in bursts of a whole GSO batch, not two at a time,
    /// and still at its rate.
    #[test]
    fn fast_flows_send_in_gso_sized_bursts() {
        let mut p = Pacer::new();
        let start = Instant::now();
        let rate = 500_000_000u64;
        let (mut sent, mut bursts) = (0u64, 0u64);
        let mut now = start;
        while now < start + Duration::from_millis(100) {
            let mut in_burst = false;
            while p.delay(now, 1430, rate, 1430).is_none() {
                p.on_sent(1430);
                sent += 1430;
                in_burst = true;
            }
            bursts += u64::from(in_burst);
            now += Duration::from_micros(20);
        }
        let per_burst = sent as f64 / 1430.0 / bursts as f64;
        assert!(per_burst >= 40.0, "{per_burst} packets per burst");
        let ratio = sent as f64 / (rate as f64 * 0.1);
        assert!((0.97..1.03).contains(&ratio), "ratio {ratio}");
    }
}
