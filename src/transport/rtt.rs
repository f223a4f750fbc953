//! Round-trip time estimation (RFC 9002 §5).

use std::time::Duration;

/// Initial RTT before any sample (RFC 9002 uses 333 ms).
pub const INITIAL_RTT: Duration = Duration::from_millis(333);

/// Smoothed RTT, variation and minimum, from acknowledgement samples.
#[derive(Debug, Clone)]
pub struct RttEstimator {
    latest: Duration,
    smoothed: Option<Duration>,
    var: Duration,
    min: Duration,
}

impl Default for RttEstimator {
    fn default() -> Self {
        Self::new()
    }
}

impl RttEstimator {
    /// No samples yet.
    pub fn new() -> Self {
        RttEstimator {
            latest: INITIAL_RTT,
            smoothed: None,
            var: INITIAL_RTT / 2,
            min: INITIAL_RTT,
        }
    }

    /// Adds a sample: `rtt` measured, `ack_delay` reported by the peer.
    pub fn update(&mut self, rtt: Duration, ack_delay: Duration) {
        self.latest = rtt;
        match self.smoothed {
            None => {
                self.min = rtt;
                self.smoothed = Some(rtt);
                self.var = rtt / 2;
            }
            Some(srtt) => {
                self.min = self.min.min(rtt);
                let adjusted = if rtt >= self.min + ack_delay {
                    rtt - ack_delay
                } else {
                    rtt
                };
                let diff = srtt.abs_diff(adjusted);
                self.var = (self.var * 3 + diff) / 4;
                self.smoothed = Some((srtt * 7 + adjusted) / 8);
            }
        }
    }

    /// Smoothed RTT (the initial RTT before any sample).
    pub fn smoothed(&self) -> Duration {
        self.smoothed.unwrap_or(INITIAL_RTT)
    }

    /// Has any sample arrived?
    pub fn has_sample(&self) -> bool {
        self.smoothed.is_some()
    }

    /// The last sample.
    pub fn latest(&self) -> Duration {
        self.latest
    }

    /// Minimum RTT seen over the connection.
    pub fn min(&self) -> Duration {
        self.min
    }

    /// RTT variation.
    pub fn var(&self) -> Duration {
        self.var
    }

    /// Probe timeout base: srtt + max(4 rttvar, 1 ms) + the peer's max ack delay.
    pub fn pto_base(&self, max_ack_delay: Duration) -> Duration {
        self.smoothed() + (self.var * 4).max(Duration::from_millis(1)) + max_ack_delay
    }

    /// How long after a later packet was acknowledged an earlier one is declared lost.
    pub fn loss_delay(&self) -> Duration {
        (self.smoothed().max(self.latest) * 9 / 8).max(Duration::from_millis(1))
    }
}
