//! Pacing: spreads packets over time at the controller's rate, in bursts
//! sized to timer resolution rather than one timer per packet.

use std::time::{Duration, Instant};

/// How much unused sending time the bucket keeps: a few timer ticks.
pub const CREDIT_INTERVAL: Duration = Duration::from_millis(4);

/// A token bucket refilled at the pacing rate.
#[derive(Debug, Clone)]
pub struct Pacer {
    tokens: f64,
    last: Option<Instant>,
    capacity: f64,
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
        }
    }

    fn refill(&mut self, now: Instant, rate: u64, mtu: u64) {
        // Credit: CREDIT_INTERVAL of sending, at least 2 and at most 64
        // packets. A timer fires up to a millisecond or two late; credit
        // that covers only one BURST_INTERVAL would be lost to that
        // lateness, capping a slow flow (few ACKs to wake the sender) near
        // two packets per timer tick, ~11 Mbit/s, whatever the rate asked.
        self.capacity = (rate as f64 * CREDIT_INTERVAL.as_secs_f64())
            .clamp(2.0 * mtu as f64, 64.0 * mtu as f64);
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
        if self.tokens >= size as f64 {
            return None;
        }
        let missing = size as f64 - self.tokens;
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
    /// must not cap a slow flow (the bug: ~11 Mbit/s whatever the rate).
    #[test]
    fn late_timers_do_not_cap_the_rate() {
        for rate in [1_000_000u64, 2_000_000, 5_000_000, 12_500_000] {
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
}
