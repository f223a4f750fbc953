//! What held the sender back, and for how long: the sender's counterpart of
//! Linux's `tcp_info` busy / rwnd-limited / sndbuf-limited times. Tells a
//! user (and us) whether a slow copy was the network's doing (congestion
//! window, pacing), the receiver's (flow control), the send buffer's
//! (full of unacknowledged bytes) or the sending application's (nothing
//! to send).

use std::time::{Duration, Instant};

/// Why the sender was not sending new data at some moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Limit {
    /// Data went out: not held back.
    Sending,
    /// The congestion window was full.
    Cwnd,
    /// The pacer said to wait.
    Pacing,
    /// The peer's receive window (MAX_DATA) was used up.
    Flow,
    /// The send buffer was full of sent, unacknowledged bytes.
    SendBuffer,
    /// The application had written nothing more to send.
    App,
}

/// Time spent in each [`Limit`] state while the connection was established.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitedTimes {
    /// Sending: not held back.
    pub sending: Duration,
    /// Held back by the congestion window.
    pub cwnd: Duration,
    /// Held back by the pacer.
    pub pacing: Duration,
    /// Held back by the peer's flow-control window.
    pub flow: Duration,
    /// Held back by a send buffer full of unacknowledged bytes.
    pub send_buffer: Duration,
    /// Nothing to send (the application was slower than the path).
    pub app: Duration,
}

/// A clock that charges elapsed time to the current [`Limit`].
#[derive(Debug, Default)]
pub(super) struct LimitClock {
    current: Option<(Limit, Instant)>,
    times: LimitedTimes,
}

impl LimitClock {
    /// Enters `limit` at `now`, charging the time since the last change to
    /// the state being left.
    pub(super) fn set(&mut self, now: Instant, limit: Limit) {
        match self.current {
            Some((l, _)) if l == limit => {}
            Some((l, since)) => {
                *self.slot(l) += now.saturating_duration_since(since);
                self.current = Some((limit, now));
            }
            None => self.current = Some((limit, now)),
        }
    }

    /// The totals, with the current state charged up to `now`.
    pub(super) fn times(&self, now: Instant) -> LimitedTimes {
        let mut t = self.times;
        if let Some((l, since)) = self.current {
            let add = now.saturating_duration_since(since);
            match l {
                Limit::Sending => t.sending += add,
                Limit::Cwnd => t.cwnd += add,
                Limit::Pacing => t.pacing += add,
                Limit::Flow => t.flow += add,
                Limit::SendBuffer => t.send_buffer += add,
                Limit::App => t.app += add,
            }
        }
        t
    }

    fn slot(&mut self, l: Limit) -> &mut Duration {
        match l {
            Limit::Sending => &mut self.times.sending,
            Limit::Cwnd => &mut self.times.cwnd,
            Limit::Pacing => &mut self.times.pacing,
            Limit::Flow => &mut self.times.flow,
            Limit::SendBuffer => &mut self.times.send_buffer,
            Limit::App => &mut self.times.app,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_is_charged_to_the_state_being_left() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut c = LimitClock::default();
        c.set(t0, Limit::Sending);
        c.set(t0 + ms(10), Limit::Pacing);
        c.set(t0 + ms(12), Limit::Pacing);
        c.set(t0 + ms(15), Limit::Cwnd);
        c.set(t0 + ms(20), Limit::Sending);
        let t = c.times(t0 + ms(26));
        assert_eq!(t.sending, ms(16));
        assert_eq!(t.pacing, ms(5));
        assert_eq!(t.cwnd, ms(5));
        assert_eq!(t.flow, ms(0));
        assert_eq!(t.app, ms(0));
    }
}
