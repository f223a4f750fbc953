//! A standing daemon's memory budget for data in flight (issue 19).
//!
//! Every session of a daemon holds its stream windows and its transfer
//! buffers as a fair share of one daemon-wide total ([`TOTAL`]): the share
//! is the total divided by the sessions there *now*, so it shrinks as
//! sessions arrive and grows back as they leave, for every session alike
//! (not first come, first served). A session's receive window and send
//! buffer ([`MemoryBudget::window`]) and the pieces its file data moves in
//! ([`MemoryBudget::piece`]) follow the share, between floors that keep a
//! session moving. One client alone gets the whole configured window and
//! full-size chunks.
//!
//! Reading the share is one relaxed atomic load: no lock, no allocation;
//! callers read it once per window update or file chunk, not per datagram.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The daemon-wide total the shares come out of.
pub const TOTAL: usize = 64 << 20;
/// The least receive window or send buffer a budgeted session gets.
pub const WINDOW_MIN: usize = 64 << 10;
/// The least piece of file data a budgeted session reads or writes at once.
pub const PIECE_MIN: usize = 16 << 10;

/// A total shared fairly by the sessions that joined it.
#[derive(Debug)]
pub struct MemoryBudget {
    total: usize,
    sessions: AtomicUsize,
}

/// The daemon's budget (one per process: a process serves one daemon).
static DAEMON: MemoryBudget = MemoryBudget::new(TOTAL);

/// The process's daemon budget, which the standing server's sessions join.
pub fn daemon() -> &'static MemoryBudget {
    &DAEMON
}

impl MemoryBudget {
    /// A budget of `total` bytes with no session yet.
    pub const fn new(total: usize) -> MemoryBudget {
        MemoryBudget {
            total,
            sessions: AtomicUsize::new(0),
        }
    }

    /// Counts one more session until the returned guard is dropped.
    pub fn join(&self) -> Member<'_> {
        self.sessions.fetch_add(1, Ordering::Relaxed);
        Member(self)
    }

    /// Sessions holding a share now.
    pub fn sessions(&self) -> usize {
        self.sessions.load(Ordering::Relaxed)
    }

    /// One session's fair share of the total now.
    pub fn share(&self) -> usize {
        self.total / self.sessions().max(1)
    }

    /// A session's receive window (or send buffer) now: a quarter of its
    /// share (a ring is allocated in powers of two, up to twice that),
    /// between [`WINDOW_MIN`] and `max` (the configured size).
    pub fn window(&self, max: usize) -> usize {
        (self.share() / 4).max(WINDOW_MIN).min(max)
    }

    /// The most file bytes a session moves in one piece now: an eighth of
    /// its share (a sink holds about three pieces: one arriving, one being
    /// written, one spare), between [`PIECE_MIN`] and `max` (one chunk).
    pub fn piece(&self, max: usize) -> usize {
        (self.share() / 8).max(PIECE_MIN).min(max)
    }
}

/// One session's membership in a [`MemoryBudget`]; leaves it when dropped.
#[derive(Debug)]
pub struct Member<'a>(&'a MemoryBudget);

impl Drop for Member<'_> {
    fn drop(&mut self) {
        self.0.sessions.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_follow_the_sessions_there_now() {
        let b = MemoryBudget::new(TOTAL);
        let chunk = 256 << 10;
        let cfg = 16 << 20;
        // Alone (or before anyone joined): the configured window, full chunks.
        assert_eq!(b.window(cfg), cfg);
        let first = b.join();
        assert_eq!(b.window(cfg), cfg);
        assert_eq!(b.piece(chunk), chunk);
        let many: Vec<_> = (0..999).map(|_| b.join()).collect();
        assert_eq!(b.sessions(), 1000);
        // The first session's share shrank with everyone else's.
        assert_eq!(b.window(cfg), WINDOW_MIN);
        assert_eq!(b.piece(chunk), PIECE_MIN);
        drop(many);
        assert_eq!(b.sessions(), 1);
        assert_eq!(b.window(cfg), cfg);
        drop(first);
        assert_eq!(b.sessions(), 0);
    }

    #[test]
    fn a_hundred_sessions_share_the_total() {
        let b = MemoryBudget::new(TOTAL);
        let _m: Vec<_> = (0..100).map(|_| b.join()).collect();
        let w = b.window(16 << 20);
        let p = b.piece(256 << 10);
        assert!(100 * (w + 3 * p) <= TOTAL, "window {w}, piece {p}");
        assert!(w > WINDOW_MIN && p > PIECE_MIN);
    }
}
