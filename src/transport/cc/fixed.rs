//! Fixed-rate sending for dedicated links (`--rate`): no probing, no backing off.

use std::time::{Duration, Instant};

use super::{AckEvent, Controller};

/// Paces at a constant rate; the window only bounds memory and keeps a few
/// round trips in flight.
pub struct FixedRate {
    rate: u64,
    window: u64,
    mtu: u64,
}

impl FixedRate {
    /// Sends at `rate` bytes per second.
    pub fn new(rate: u64, mtu: u64) -> Self {
        let mut f = FixedRate {
            rate: rate.max(1),
            window: 0,
            mtu,
        };
        f.update_window(Duration::from_millis(100));
        f
    }

    fn update_window(&mut self, srtt: Duration) {
        // Enough for 3 round trips (covers retransmission delay), at least 16 packets.
        let bdp = (self.rate as f64 * srtt.max(Duration::from_millis(10)).as_secs_f64()) as u64;
        self.window = (3 * bdp).max(16 * self.mtu);
    }
}

impl Controller for FixedRate {
    fn on_sent(&mut self, _: Instant, _: u64, _: u64) {}
    fn on_ack(&mut self, ack: &AckEvent<'_>) {
        if ack.rtt_updated {
            self.update_window(ack.rtt.smoothed());
        }
    }
    fn on_loss(&mut self, _: Instant, _: u64, _: Instant) {}
    fn on_persistent_congestion(&mut self, _: Instant) {}
    fn window(&self) -> u64 {
        self.window
    }
    fn pacing_rate(&self) -> u64 {
        self.rate
    }
    fn set_mtu(&mut self, mtu: u64) {
        self.mtu = mtu;
    }
    fn name(&self) -> &'static str {
        "fixed"
    }
}
