//! The receiver's view of the path toward it: how fast packets arrive and
//! how many of the peer's packet numbers never do, measured in fixed
//! windows. A client that pulls a file remembers this (the path cache,
//! [`super::pathcache`]): the sender's model stays on the far side, and the
//! data phase's goodput under-states the path (its start-up and last round
//! trips count), so a hint taken from it made the next pull start too slow,
//! find the path faster and overflow the queue in a start-up.
//!
//! Sans-IO and cheap: one comparison and a few additions per packet; the
//! work of a window is done once it ends.

use std::time::{Duration, Instant};

/// Length of one measuring window. Arrivals are spaced by the bottleneck,
/// so a quarter second holds thousands of packets on a fast path and still
/// tens at 1 Mbit/s.
pub const WINDOW: Duration = Duration::from_millis(250);
/// Windows with fewer packets than this say nothing (an idle or
/// application-limited sender).
const MIN_PACKETS: u64 = 16;
/// Windows kept: the latest ones (about four minutes).
const MAX_WINDOWS: usize = 1024;
/// Full windows needed before the meter reports anything.
const MIN_WINDOWS: usize = 4;
/// The rate reported is this quantile of the windows' rates: near the top
/// (the path's rate, not start-up's), but not the one window that a
/// stalled-then-hurried receiver process may have over-counted.
const RATE_QUANTILE: f64 = 0.9;

/// One window's result.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Bytes per second that arrived.
    rate: f64,
    /// Fraction of the peer's packet numbers in the window that did not
    /// arrive.
    loss: f64,
}

/// Arrival rate and loss of the packets a connection receives.
#[derive(Debug, Default)]
pub struct ArrivalMeter {
    /// Start of the current window.
    start: Option<Instant>,
    bytes: u64,
    packets: u64,
    /// Highest packet number seen when the window began (plus one).
    first_pn: u64,
    /// Highest packet number seen so far, plus one.
    next_pn: u64,
    samples: Vec<Sample>,
    /// Where the next sample goes once `samples` is full.
    next_slot: usize,
}

impl ArrivalMeter {
    /// Nothing measured yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// An authenticated packet numbered `pn` of `bytes` arrived at `now`.
    pub fn on_packet(&mut self, now: Instant, pn: u64, bytes: usize) {
        let start = *self.start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= WINDOW {
            self.close_window(elapsed);
            self.start = Some(now);
        }
        self.bytes += bytes as u64;
        self.packets += 1;
        self.next_pn = self.next_pn.max(pn.saturating_add(1));
    }

    fn close_window(&mut self, elapsed: Duration) {
        let sent = self.next_pn.saturating_sub(self.first_pn);
        // A window that ends after a silence longer than itself measured
        // the silence, not the path.
        if self.packets >= MIN_PACKETS && sent >= self.packets && elapsed < 2 * WINDOW {
            let s = Sample {
                rate: self.bytes as f64 / elapsed.as_secs_f64(),
                loss: 1.0 - self.packets as f64 / sent as f64,
            };
            if self.samples.len() < MAX_WINDOWS {
                self.samples.push(s);
            } else {
                self.samples[self.next_slot] = s;
                self.next_slot = (self.next_slot + 1) % MAX_WINDOWS;
            }
        }
        self.bytes = 0;
        self.packets = 0;
        self.first_pn = self.next_pn;
    }

    /// The path toward us as measured so far: (rate in bytes per second,
    /// loss fraction), once [`MIN_WINDOWS`] windows were full. The rate is
    /// a high quantile of the windows' rates; the loss is their median, so
    /// a burst of queue overflow in one start-up does not pass for random
    /// loss.
    pub fn estimate(&self) -> Option<(u64, f64)> {
        if self.samples.len() < MIN_WINDOWS {
            return None;
        }
        let mut rates: Vec<f64> = self.samples.iter().map(|s| s.rate).collect();
        let mut losses: Vec<f64> = self.samples.iter().map(|s| s.loss).collect();
        let rate = quantile(&mut rates, RATE_QUANTILE);
        let loss = quantile(&mut losses, 0.5);
        Some((rate as u64, loss))
    }
}

/// The `q` quantile (0-1) of `v` (not empty), by sorting it.
fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i.min(v.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `secs` seconds of packets of 1400 bytes at `rate` bytes per
    /// second, dropping every `drop_every`-th packet number (0: none).
    fn feed(
        m: &mut ArrivalMeter,
        t: &mut Instant,
        pn: &mut u64,
        secs: f64,
        rate: f64,
        drop_every: u64,
    ) {
        let gap = Duration::from_secs_f64(1400.0 / rate);
        let n = (secs * rate / 1400.0) as u64;
        for _ in 0..n {
            *t += gap;
            *pn += 1;
            if drop_every == 0 || !(*pn).is_multiple_of(drop_every) {
                m.on_packet(*t, *pn, 1400);
            }
        }
    }

    #[test]
    fn measures_rate_and_loss_of_a_steady_flow() {
        let mut m = ArrivalMeter::new();
        let (mut t, mut pn) = (Instant::now(), 0);
        assert_eq!(m.estimate(), None);
        feed(&mut m, &mut t, &mut pn, 0.8, 10e6, 20);
        assert_eq!(m.estimate(), None, "too few windows");
        feed(&mut m, &mut t, &mut pn, 3.0, 10e6, 20);
        let (rate, loss) = m.estimate().expect("estimate");
        // Every 20th packet number is missing: 5 % loss, and 95 % of the
        // sent rate arrives.
        assert!((rate as f64 / 9.5e6 - 1.0).abs() < 0.02, "{rate}");
        assert!((loss - 0.05).abs() < 0.005, "{loss}");
    }

    #[test]
    fn a_slow_start_and_an_overflow_burst_do_not_set_the_estimate() {
        let mut m = ArrivalMeter::new();
        let (mut t, mut pn) = (Instant::now(), 0);
        // A ramp, then a second of heavy (overflow) loss, then the path.
        for r in [1e6, 2e6, 4e6, 8e6] {
            feed(&mut m, &mut t, &mut pn, 0.25, r, 0);
        }
        feed(&mut m, &mut t, &mut pn, 0.5, 12e6, 3);
        feed(&mut m, &mut t, &mut pn, 5.0, 12e6, 50);
        let (rate, loss) = m.estimate().expect("estimate");
        assert!((rate as f64 / (12e6 * 0.98) - 1.0).abs() < 0.02, "{rate}");
        assert!((loss - 0.02).abs() < 0.005, "{loss}");
    }

    #[test]
    fn silences_and_trickles_are_not_windows() {
        let mut m = ArrivalMeter::new();
        let (mut t, mut pn) = (Instant::now(), 0);
        // Keep-alives every 2 s: never a window.
        for _ in 0..20 {
            t += Duration::from_secs(2);
            pn += 1;
            m.on_packet(t, pn, 60);
        }
        assert_eq!(m.estimate(), None);
    }
}
