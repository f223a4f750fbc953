//! What one direction of a simulated link does to datagrams: [`LinkConfig`]
//! and its loss model [`GilbertElliott`].

use std::time::Duration;

use super::SimError;

/// Configuration of one direction of a simulated link.
///
/// A datagram passes, in this order: blackout check, the rate-limited
/// bottleneck with its drop-tail queue (if `rate_bps` is set), loss on the
/// wire (random and Gilbert-Elliott; lost datagrams have already used the
/// bottleneck's capacity, as on a real lossy path), propagation delay plus
/// jitter, optional reordering delay, optional duplication, and a final
/// blackout check at arrival. All fields are public so struct-update syntax
/// works; the builder methods are shorthands.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkConfig {
    /// Minimum one-way propagation delay (excludes serialization and queueing).
    pub delay: Duration,
    /// Extra delay drawn uniformly from `[0, jitter]` per datagram. Without
    /// reordering it never reorders: a datagram never arrives before an
    /// earlier one (arrivals are clamped to be monotone, so at high packet
    /// rates the delay tends towards `delay + jitter`).
    pub jitter: Duration,
    /// Independent random loss probability per datagram, in `[0, 1]`.
    pub loss: f64,
    /// Optional bursty loss, applied in addition to `loss`.
    pub gilbert_elliott: Option<GilbertElliott>,
    /// Probability that a datagram is held back by `reorder_delay` after its
    /// in-order arrival time, letting later datagrams overtake it.
    pub reorder: f64,
    /// Extra delay of a reordered datagram.
    pub reorder_delay: Duration,
    /// Probability that a datagram is delivered twice.
    pub duplicate: f64,
    /// Bottleneck rate in bits per second; `None` is infinitely fast.
    pub rate_bps: Option<u64>,
    /// Drop-tail queue limit of the bottleneck, in bytes (including the
    /// datagram being serialized). Ignored when `rate_bps` is `None`.
    pub queue_bytes: usize,
    /// Windows `[from, to)` of virtual time since the network start during
    /// which the link drops everything (sent or arriving).
    pub blackouts: Vec<(Duration, Duration)>,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self::ideal(Duration::ZERO)
    }
}

impl LinkConfig {
    /// A perfect link: fixed one-way `delay`, infinite rate, no loss.
    pub fn ideal(delay: Duration) -> Self {
        Self {
            delay,
            jitter: Duration::ZERO,
            loss: 0.0,
            gilbert_elliott: None,
            reorder: 0.0,
            reorder_delay: Duration::ZERO,
            duplicate: 0.0,
            rate_bps: None,
            queue_bytes: 0,
            blackouts: Vec::new(),
        }
    }

    /// One direction of a WAN path: `rate_bps` bottleneck, one-way delay
    /// `rtt / 2`, random `loss`, and a drop-tail queue of one
    /// bandwidth-delay product (`rate × rtt`, at least 64 KiB).
    pub fn wan(rate_bps: u64, rtt: Duration, loss: f64) -> Self {
        Self::ideal(rtt / 2)
            .rate(rate_bps, bdp_bytes(rate_bps, rtt).max(64 * 1024))
            .loss(loss)
    }

    /// Sets the random loss probability.
    pub fn loss(mut self, p: f64) -> Self {
        self.loss = p;
        self
    }

    /// Sets the jitter (uniform extra delay in `[0, jitter]`).
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// Adds Gilbert-Elliott bursty loss.
    pub fn gilbert_elliott(mut self, ge: GilbertElliott) -> Self {
        self.gilbert_elliott = Some(ge);
        self
    }

    /// Holds back a fraction `p` of datagrams by `extra` delay.
    pub fn reorder(mut self, p: f64, extra: Duration) -> Self {
        self.reorder = p;
        self.reorder_delay = extra;
        self
    }

    /// Duplicates a fraction `p` of datagrams.
    pub fn duplicate(mut self, p: f64) -> Self {
        self.duplicate = p;
        self
    }

    /// Sets a bottleneck of `rate_bps` with a drop-tail queue of `queue_bytes`.
    pub fn rate(mut self, rate_bps: u64, queue_bytes: usize) -> Self {
        self.rate_bps = Some(rate_bps);
        self.queue_bytes = queue_bytes;
        self
    }

    /// Sets the queue limit to `factor` bandwidth-delay products for `rtt`
    /// (needs a rate; does nothing without one).
    pub fn queue_bdp(mut self, rtt: Duration, factor: f64) -> Self {
        if let Some(rate) = self.rate_bps {
            self.queue_bytes = (bdp_bytes(rate, rtt) as f64 * factor) as usize;
        }
        self
    }

    /// Adds a blackout window `[from, to)` (virtual time since network start).
    pub fn blackout(mut self, from: Duration, to: Duration) -> Self {
        self.blackouts.push((from, to));
        self
    }

    /// Long-run fraction of datagrams lost on the wire (random and bursty
    /// combined, ignoring queue overflow and blackouts).
    pub fn expected_loss(&self) -> f64 {
        let ge = self.gilbert_elliott.map_or(0.0, |g| g.mean_loss());
        1.0 - (1.0 - self.loss) * (1.0 - ge)
    }

    /// Checks that probabilities are in `[0, 1]`, a rate is non-zero with a
    /// non-empty queue, and blackout windows are not reversed.
    pub fn validate(&self) -> Result<(), SimError> {
        let probs = [self.loss, self.reorder, self.duplicate];
        if !probs.iter().all(|p| (0.0..=1.0).contains(p)) {
            return Err(SimError::InvalidConfig("probability outside [0, 1]"));
        }
        if let Some(ge) = &self.gilbert_elliott {
            ge.validate()?;
        }
        if self.rate_bps == Some(0) {
            return Err(SimError::InvalidConfig("rate of 0 bit/s"));
        }
        if self.rate_bps.is_some() && self.queue_bytes == 0 {
            return Err(SimError::InvalidConfig(
                "rate-limited link with a 0-byte queue",
            ));
        }
        if self.blackouts.iter().any(|(from, to)| from > to) {
            return Err(SimError::InvalidConfig(
                "blackout window ends before it starts",
            ));
        }
        Ok(())
    }
}

/// Bandwidth-delay product in bytes: `rate_bps × rtt / 8`.
pub fn bdp_bytes(rate_bps: u64, rtt: Duration) -> usize {
    (rate_bps as u128 * rtt.as_nanos() / 8_000_000_000) as usize
}

/// Gilbert-Elliott two-state bursty loss (the `gemodel` of Linux netem).
///
/// Per datagram the chain first moves (GOOD→BAD with probability `p`,
/// BAD→GOOD with probability `r`), then the datagram is lost with the loss
/// probability of the new state. With `loss_bad = 1` and `loss_good = 0`,
/// loss bursts last `1 / r` datagrams on average.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GilbertElliott {
    /// Probability of moving GOOD → BAD per datagram.
    pub p: f64,
    /// Probability of moving BAD → GOOD per datagram.
    pub r: f64,
    /// Loss probability in the BAD state (netem's `1 - h`).
    pub loss_bad: f64,
    /// Loss probability in the GOOD state (netem's `1 - k`).
    pub loss_good: f64,
}

impl GilbertElliott {
    /// Bursts of total loss: long-run loss rate `mean_loss`, mean burst
    /// length `mean_burst` datagrams (>= 1).
    pub fn bursty(mean_loss: f64, mean_burst: f64) -> Self {
        let r = 1.0 / mean_burst.max(1.0);
        let p = if mean_loss >= 1.0 {
            1.0
        } else {
            (mean_loss * r / (1.0 - mean_loss)).min(1.0)
        };
        Self {
            p,
            r,
            loss_bad: 1.0,
            loss_good: 0.0,
        }
    }

    /// Long-run loss rate: `π_bad × loss_bad + π_good × loss_good`.
    pub fn mean_loss(&self) -> f64 {
        if self.p + self.r <= 0.0 {
            return self.loss_good;
        }
        let bad = self.p / (self.p + self.r);
        bad * self.loss_bad + (1.0 - bad) * self.loss_good
    }

    fn validate(&self) -> Result<(), SimError> {
        let probs = [self.p, self.r, self.loss_bad, self.loss_good];
        if probs.iter().all(|p| (0.0..=1.0).contains(p)) {
            Ok(())
        } else {
            Err(SimError::InvalidConfig(
                "Gilbert-Elliott probability outside [0, 1]",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wan_preset_sizes_queue_to_one_bdp() {
        let c = LinkConfig::wan(100_000_000, Duration::from_millis(100), 0.01);
        assert_eq!(c.delay, Duration::from_millis(50));
        assert_eq!(c.rate_bps, Some(100_000_000));
        assert_eq!(c.queue_bytes, 1_250_000);
        assert_eq!(c.loss, 0.01);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn bursty_parameters_give_requested_means() {
        let ge = GilbertElliott::bursty(0.05, 4.0);
        assert!((ge.r - 0.25).abs() < 1e-12);
        assert!((ge.mean_loss() - 0.05).abs() < 1e-12);
    }

    #[test]
    fn validate_rejects_nonsense() {
        assert!(LinkConfig::default().loss(1.5).validate().is_err());
        assert!(LinkConfig::default().loss(f64::NAN).validate().is_err());
        assert!(LinkConfig::default().rate(0, 1000).validate().is_err());
        assert!(LinkConfig::default().rate(1000, 0).validate().is_err());
        let reversed =
            LinkConfig::default().blackout(Duration::from_secs(2), Duration::from_secs(1));
        assert!(reversed.validate().is_err());
        let ge = GilbertElliott {
            p: -0.1,
            r: 0.5,
            loss_bad: 1.0,
            loss_good: 0.0,
        };
        assert!(LinkConfig::default()
            .gilbert_elliott(ge)
            .validate()
            .is_err());
    }

    #[test]
    fn expected_loss_combines_models() {
        let c = LinkConfig::default()
            .loss(0.1)
            .gilbert_elliott(GilbertElliott::bursty(0.1, 2.0));
        assert!((c.expected_loss() - 0.19).abs() < 1e-12);
    }
}
