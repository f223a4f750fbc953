//! Refusing recorded REQUESTs at a standing server whose secret is reused
//! (key-file mode), sans-IO: the caller passes the wall clock in.
//!
//! Every REQUEST carries the client's TAI64N timestamp (docs/PROTOCOL.md
//! §2.2), inside the MAC. The server keeps, per key, the newest timestamp
//! and every timestamp it accepted that is still inside the window, and
//! refuses a REQUEST whose timestamp is outside the window around its own
//! clock or equal to one it accepted (a replay). WireGuard's rule ("newer
//! than the newest") is the special case of one client per key; a key
//! file is often shared by several clients (or by parallel runs on one
//! host) whose REQUESTs may cross on the way, so an older timestamp that is
//! inside the window and not yet seen is accepted too. Memory is bounded:
//! timestamps that left the window are forgotten (the window refuses them
//! anyway), and at most [`REPLAY_CAP`] are kept.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use crate::transport::handshake::Tai64n;

/// How far a REQUEST's timestamp may be from the server's clock, either
/// way. Allows that much clock difference between hosts (NTP keeps hosts
/// within milliseconds; an unsynchronised clock drifts seconds per day).
pub const TIMESTAMP_WINDOW: Duration = Duration::from_secs(120);
/// Most timestamps remembered per key (12 bytes each plus the tree's
/// overhead: about 3 MB at most). When full of timestamps still inside
/// the window (more than ~270 new sessions per second for two minutes, all
/// by key holders), new REQUESTs are refused until some leave it.
pub const REPLAY_CAP: usize = 65_536;

/// Why a REQUEST was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Stale {
    /// Older than the window: recorded, or the client's clock is behind.
    #[error("REQUEST timestamp {0:?} behind this host's clock (window {TIMESTAMP_WINDOW:?}): a replay, or the client's clock is wrong")]
    TooOld(Duration),
    /// Newer than the window: the client's clock is ahead.
    #[error("REQUEST timestamp {0:?} ahead of this host's clock (window {TIMESTAMP_WINDOW:?}): the client's clock is wrong")]
    TooNew(Duration),
    /// This exact timestamp was accepted before.
    #[error("replayed REQUEST (timestamp already used)")]
    Replayed,
    /// Too many timestamps inside the window to remember another.
    #[error("too many handshakes within the replay window; try again shortly")]
    Full,
}

/// The timestamps accepted under one key.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    seen: BTreeSet<Tai64n>,
    newest: Option<Tai64n>,
}

impl ReplayGuard {
    /// Nothing seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of timestamps remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// The newest timestamp accepted so far.
    pub fn newest(&self) -> Option<Tai64n> {
        self.newest
    }

    /// Accepts `ts` (and remembers it) or says why not. `now` is the
    /// server's wall clock.
    pub fn check(&mut self, ts: Tai64n, now: SystemTime) -> Result<(), Stale> {
        let now = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let when = ts.to_unix().ok_or(Stale::TooOld(now))?;
        if when + TIMESTAMP_WINDOW < now {
            return Err(Stale::TooOld(now - when));
        }
        if when > now + TIMESTAMP_WINDOW {
            return Err(Stale::TooNew(when - now));
        }
        let lower = Tai64n::from_unix(now.saturating_sub(TIMESTAMP_WINDOW));
        if self.seen.first().is_some_and(|f| *f < lower) {
            self.seen = self.seen.split_off(&lower);
        }
        if self.seen.contains(&ts) {
            return Err(Stale::Replayed);
        }
        if self.seen.len() >= REPLAY_CAP {
            return Err(Stale::Full);
        }
        self.seen.insert(ts);
        if self.newest.is_none_or(|n| ts > n) {
            self.newest = Some(ts);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, nanos: u32) -> Tai64n {
        Tai64n::from_unix(Duration::new(secs, nanos))
    }

    fn clock(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    const T: u64 = 1_800_000_000;

    #[test]
    fn replays_and_stale_timestamps_are_refused() {
        let mut g = ReplayGuard::new();
        assert_eq!(g.check(at(T, 5), clock(T)), Ok(()));
        assert_eq!(g.check(at(T, 5), clock(T + 1)), Err(Stale::Replayed));
        // An older timestamp not seen before (a second client whose
        // REQUEST was overtaken) is fine inside the window.
        assert_eq!(g.check(at(T - 3, 0), clock(T + 1)), Ok(()));
        assert_eq!(g.newest(), Some(at(T, 5)));
        // Outside the window either way.
        assert!(matches!(
            g.check(at(T - 200, 0), clock(T)),
            Err(Stale::TooOld(_))
        ));
        assert!(matches!(
            g.check(at(T + 200, 0), clock(T)),
            Err(Stale::TooNew(_))
        ));
        // Clock skew up to the window is accepted.
        assert_eq!(g.check(at(T + 119, 0), clock(T)), Ok(()));
        assert_eq!(g.check(at(T - 119, 0), clock(T)), Ok(()));
        // Garbage that is no timestamp.
        assert!(g.check(Tai64n([0; 12]), clock(T)).is_err());
        assert!(g.check(Tai64n([0xff; 12]), clock(T)).is_err());
    }

    #[test]
    fn memory_is_bounded_by_the_window_and_the_cap() {
        let mut g = ReplayGuard::new();
        for i in 0..1000u32 {
            assert_eq!(g.check(at(T, i), clock(T)), Ok(()));
        }
        assert_eq!(g.len(), 1000);
        // Three minutes later everything old has left the window.
        assert_eq!(g.check(at(T + 180, 0), clock(T + 180)), Ok(()));
        assert_eq!(g.len(), 1);
        // The cap.
        let mut g = ReplayGuard::new();
        for i in 0..REPLAY_CAP as u32 {
            g.check(at(T, i), clock(T)).unwrap();
        }
        assert_eq!(g.check(at(T + 1, 0), clock(T)), Err(Stale::Full));
        assert_eq!(g.check(at(T, 0), clock(T)), Err(Stale::Replayed));
    }
}
