//! CUBIC window growth and reduction (RFC 9438), counted in segments.
//!
//! Two users: [`super::Vfer`] behaves as one CUBIC flow while another flow
//! holds the bottleneck's queue (so it takes the share a TCP flow would),
//! and the simulator's TCP model grows its window with it (so tests compete
//! against the Linux default, not only Reno). The window itself belongs to
//! the caller; this keeps the epoch state between congestion events.

use std::time::{Duration, Instant};

/// Multiplicative decrease factor (RFC 9438 §4.6).
pub const BETA: f64 = 0.7;
/// Cubic growth constant, segments per second cubed (RFC 9438 §5).
const C: f64 = 0.4;

/// The state of one CUBIC congestion-avoidance epoch.
#[derive(Debug, Clone)]
pub struct Cubic {
    /// Window before the last reduction (W_max), in segments.
    w_max: f64,
    /// Window at the last reduction (cwnd_prior), for the Reno-friendly
    /// increase factor.
    prior: f64,
    /// Seconds from the epoch start until the window regains `w_max` (K).
    k: f64,
    /// When the current epoch began (the first increase after a reduction).
    epoch: Option<Instant>,
    /// The window a Reno flow with the same losses would have (W_est).
    w_est: f64,
}

impl Cubic {
    /// Epoch state for a flow whose window is now `cwnd` segments and has
    /// never been reduced: growth starts convex from there.
    pub fn new(cwnd: f64) -> Self {
        Cubic {
            w_max: cwnd,
            prior: cwnd,
            k: 0.0,
            epoch: None,
            w_est: cwnd,
        }
    }

    /// The window after `acked` segments were acknowledged, from `cwnd`,
    /// with smoothed round-trip time `rtt` (RFC 9438 §4.2–4.4).
    pub fn increase(&mut self, cwnd: f64, now: Instant, acked: f64, rtt: Duration) -> f64 {
        let cwnd = cwnd.max(1.0);
        let epoch = *self.epoch.get_or_insert_with(|| {
            if cwnd < self.w_max {
                self.k = ((self.w_max - cwnd) / C).cbrt();
            } else {
                self.k = 0.0;
                self.w_max = cwnd;
            }
            self.w_est = cwnd;
            now
        });
        let t = now.saturating_duration_since(epoch).as_secs_f64();
        let w_cubic = |t: f64| C * (t - self.k).powi(3) + self.w_max;
        let alpha = if self.w_est >= self.prior {
            1.0
        } else {
            3.0 * (1.0 - BETA) / (1.0 + BETA)
        };
        self.w_est += alpha * acked / cwnd;
        if w_cubic(t) < self.w_est {
            // Reno-friendly region: grow at least as fast as Reno would.
            return self.w_est.max(cwnd);
        }
        let target = w_cubic(t + rtt.as_secs_f64()).clamp(cwnd, 1.5 * cwnd);
        cwnd + (target - cwnd) / cwnd * acked
    }

    /// The window after a congestion event at `cwnd` segments, with fast
    /// convergence (a flow losing ground gives up more of its old maximum).
    pub fn reduce(&mut self, cwnd: f64) -> f64 {
        self.w_max = if cwnd < self.w_max {
            cwnd * (1.0 + BETA) / 2.0
        } else {
            cwnd
        };
        self.prior = cwnd;
        self.epoch = None;
        (cwnd * BETA).max(2.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives `cubic` with one full window of acks per round trip.
    fn rounds(cubic: &mut Cubic, mut cwnd: f64, start: Instant, rtt: Duration, n: u32) -> f64 {
        for i in 0..n {
            let now = start + rtt * i;
            let per_ack = cwnd.floor().max(1.0) as u32;
            for _ in 0..per_ack {
                cwnd = cubic.increase(cwnd, now, 1.0, rtt);
            }
        }
        cwnd
    }

    #[test]
    fn regains_the_old_maximum_after_k_seconds() {
        // 1000 segments, reduced to 700: K = cbrt(300 / 0.4) ≈ 9.09 s.
        let mut c = Cubic::new(1000.0);
        let cwnd = c.reduce(1000.0);
        assert!((cwnd - 700.0).abs() < 1e-9);
        let start = Instant::now();
        let rtt = Duration::from_millis(100);
        let at_8s = rounds(&mut c.clone(), cwnd, start, rtt, 80);
        assert!(at_8s < 1000.0 && at_8s > 990.0, "{at_8s}");
        let at_10s = rounds(&mut c, cwnd, start, rtt, 100);
        assert!(at_10s > 1000.0 && at_10s < 1010.0, "{at_10s}");
    }

    #[test]
    fn small_windows_grow_at_least_like_reno() {
        // At 10 segments and 100 ms the cubic curve is flat; the
        // Reno-friendly estimate (0.53 segments per RTT) takes over.
        let mut c = Cubic::new(10.0);
        let cwnd = c.reduce(10.0);
        let start = Instant::now();
        let after = rounds(&mut c, cwnd, start, Duration::from_millis(100), 10);
        assert!(
            after >= cwnd + 10.0 * 0.5 && after < cwnd + 10.0 * 1.1,
            "{after}"
        );
    }

    #[test]
    fn fast_convergence_lowers_the_target_of_a_shrinking_flow() {
        let mut c = Cubic::new(1000.0);
        let w = c.reduce(1000.0);
        // A second loss before regaining the maximum.
        let w = c.reduce(w + 50.0);
        assert!((c.w_max - 750.0 * 0.85).abs() < 1e-9);
        assert!((w - 525.0).abs() < 1e-9);
        // Never below two segments.
        assert_eq!(Cubic::new(1.0).reduce(1.0), 2.0);
    }
}
