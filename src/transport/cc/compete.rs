//! The competing mode of the VFER controller: what it does while another
//! flow holds the bottleneck's queue.
//!
//! A delay-based controller beside a loss-based TCP loses: TCP fills the
//! buffer, the delay target is always exceeded, the delay-based flow yields
//! and TCP takes the link (LEDBAT's known failure). When the queue has not
//! once come near empty for a while, the controller concludes it is not the
//! one filling it and switches to this mode: it behaves as one CUBIC flow
//! (RFC 9438, the Linux default), so it takes the share one TCP flow would.
//! A flow that joined a queue another flow already held (its startup ended
//! on that queue's delay, before it found its share) begins in slow start,
//! as a TCP flow joining the link would: the window doubles each round trip
//! until the first congestive loss. Otherwise it would grow from a small
//! window for a long time.
//!
//! It leaves again by checking, every [`CHECK_INTERVAL`], whether the queue
//! drains when it holds back: it caps its window at a little under its own
//! bandwidth-delay product for a measuring period. If it was alone, the
//! queue it built empties and it returns to delay mode; with another flow's
//! data still queued, it carries on where it was.
//!
//! Only losses seen with a standing queue count as congestion here, so random
//! loss on an otherwise empty path still costs no rate.

use std::time::{Duration, Instant};

use super::Cubic;

/// How often the competing mode checks whether it is still competing.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(5);
/// Shortest measuring period of a check (it is at least one base RTT).
const MIN_CHECK_MEASURE: Duration = Duration::from_millis(20);
/// Queueing delay at or below which a check counts the queue as drained;
/// a loss seen with more queue than this is congestion.
pub const LOW_QUEUE_DELAY: Duration = Duration::from_millis(4);
/// Pacing gain over window / smoothed RTT (Linux paces TCP at 1.2x in
/// congestion avoidance).
pub const PACING_GAIN: f64 = 1.2;

/// An ongoing check: does the queue drain while we hold back?
#[derive(Debug, Clone)]
struct Check {
    /// RTT samples from here on reflect the reduced window.
    measure_from: Instant,
    until: Instant,
    min_queue: Option<Duration>,
}

/// What a [`Compete::on_ack`] concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Another flow still holds the queue: keep competing.
    Stay,
    /// The queue drained while we held back: return to delay mode.
    Leave,
}

/// State of the competing mode, windows in bytes.
#[derive(Debug, Clone)]
pub struct Compete {
    cubic: Cubic,
    cwnd: f64,
    /// Until the first congestion event, the window grows as in slow start.
    slow_start: bool,
    /// When the window was last reduced for congestion; losses of packets
    /// sent before this belong to the same event.
    reduced_at: Option<Instant>,
    next_check: Instant,
    check: Option<Check>,
}

impl Compete {
    /// Enters competing mode with `cwnd` bytes in flight, in slow start or
    /// directly in congestion avoidance.
    pub fn enter(now: Instant, cwnd: f64, mtu: u64, slow_start: bool) -> Self {
        Compete {
            cubic: Cubic::new(cwnd / mtu as f64),
            cwnd,
            slow_start,
            reduced_at: None,
            next_check: now + CHECK_INTERVAL,
            check: None,
        }
    }

    /// The congestion window in bytes; during a check, no more than `cap`.
    pub fn window(&self, cap: f64) -> f64 {
        if self.check.is_some() {
            self.cwnd.min(cap)
        } else {
            self.cwnd
        }
    }

    /// True until the first congestion event of a flow that entered in
    /// slow start.
    pub fn in_slow_start(&self) -> bool {
        self.slow_start
    }

    /// True while a check holds the window back.
    pub fn checking(&self) -> bool {
        self.check.is_some()
    }

    /// Takes an acknowledgement of `acked` bytes. `queue` is the queueing
    /// delay of this ACK's RTT sample, if it carried one.
    pub fn on_ack(
        &mut self,
        now: Instant,
        acked: u64,
        mtu: u64,
        srtt: Duration,
        base_rtt: Duration,
        queue: Option<Duration>,
    ) -> Verdict {
        let recovering = self.reduced_at.is_some_and(|t| now < t + srtt);
        if let Some(check) = &mut self.check {
            if now >= check.measure_from {
                if let Some(q) = queue {
                    check.min_queue = Some(check.min_queue.map_or(q, |m| m.min(q)));
                }
            }
            if now < check.until {
                return Verdict::Stay;
            }
            let drained = check.min_queue.is_some_and(|q| q <= LOW_QUEUE_DELAY);
            self.check = None;
            self.next_check = now + CHECK_INTERVAL;
            return if drained {
                Verdict::Leave
            } else {
                Verdict::Stay
            };
        }
        if recovering {
            return Verdict::Stay;
        }
        if now >= self.next_check {
            let measure_from = now + srtt;
            self.check = Some(Check {
                measure_from,
                until: measure_from + base_rtt.max(MIN_CHECK_MEASURE),
                min_queue: None,
            });
            return Verdict::Stay;
        }
        if self.slow_start {
            self.cwnd += acked as f64;
            return Verdict::Stay;
        }
        let mtu = mtu as f64;
        let segments = self
            .cubic
            .increase(self.cwnd / mtu, now, acked as f64 / mtu, srtt);
        self.cwnd = segments * mtu;
        Verdict::Stay
    }

    /// Takes a loss of packets sent up to `newest_lost_sent`; `congestive`
    /// says a standing queue was seen, so the loss is the queue overflowing.
    pub fn on_loss(&mut self, now: Instant, newest_lost_sent: Instant, congestive: bool, mtu: u64) {
        if !congestive || self.reduced_at.is_some_and(|t| newest_lost_sent <= t) {
            return;
        }
        let mtu = mtu as f64;
        self.cwnd = self.cubic.reduce(self.cwnd / mtu) * mtu;
        self.reduced_at = Some(now);
        self.slow_start = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const MTU: u64 = 1000;

    #[test]
    fn one_reduction_per_congestion_event() {
        let t0 = Instant::now();
        let mut c = Compete::enter(t0, 100_000.0, MTU, false);
        c.on_loss(t0 + 10 * MS, t0 + 5 * MS, true, MTU);
        assert_eq!(c.window(f64::MAX), 70_000.0);
        // Another packet sent before the reduction: same event.
        c.on_loss(t0 + 12 * MS, t0 + 9 * MS, true, MTU);
        assert_eq!(c.window(f64::MAX), 70_000.0);
        // One sent after it: a new event.
        c.on_loss(t0 + 80 * MS, t0 + 20 * MS, true, MTU);
        assert_eq!(c.window(f64::MAX), 49_000.0);
    }

    #[test]
    fn losses_without_a_queue_are_not_congestion() {
        let t0 = Instant::now();
        let mut c = Compete::enter(t0, 100_000.0, MTU, false);
        c.on_loss(t0 + 10 * MS, t0 + 5 * MS, false, MTU);
        assert_eq!(c.window(f64::MAX), 100_000.0);
    }

    /// Runs acks every millisecond until `end`, with queueing delay `queue`.
    fn acks(c: &mut Compete, from: Instant, end: Instant, queue: Duration) -> Option<Verdict> {
        let mut now = from;
        while now < end {
            if c.on_ack(now, MTU, MTU, 60 * MS, 50 * MS, Some(queue)) == Verdict::Leave {
                return Some(Verdict::Leave);
            }
            now += MS;
        }
        None
    }

    #[test]
    fn leaves_when_the_queue_drains_during_a_check() {
        let t0 = Instant::now();
        let mut c = Compete::enter(t0, 100_000.0, MTU, false);
        let grown = {
            acks(&mut c, t0, t0 + CHECK_INTERVAL, 10 * MS);
            c.window(f64::MAX)
        };
        assert!(grown > 100_000.0, "{grown}");
        // The check starts: the window is capped, the queue stays.
        let t1 = t0 + CHECK_INTERVAL;
        assert_eq!(acks(&mut c, t1, t1 + 200 * MS, 10 * MS), None);
        assert!(!c.checking());
        // The next check sees the queue drain.
        let t2 = t1 + 200 * MS;
        assert_eq!(
            acks(&mut c, t2, t2 + CHECK_INTERVAL + 200 * MS, MS),
            Some(Verdict::Leave)
        );
    }

    #[test]
    fn a_check_caps_the_window() {
        let t0 = Instant::now();
        let mut c = Compete::enter(t0, 100_000.0, MTU, false);
        acks(&mut c, t0, t0 + CHECK_INTERVAL + MS, 10 * MS);
        assert!(c.checking());
        assert_eq!(c.window(40_000.0), 40_000.0);
    }
}
