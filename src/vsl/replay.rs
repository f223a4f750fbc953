//! Sliding replay window (RFC 6479 style, as in WireGuard's `counter.c`).
//!
//! A bitmap of `REPLAY_BLOCKS` 64-bit words used as a ring; the newest
//! accepted packet number sets the window's top. Packets older than the
//! window, or already seen, are rejected, and so is any number above
//! `MSGNR_LIMIT`, which no honest sender uses. Memory is fixed (1 KiB).

use super::packet::MSGNR_LIMIT;

const BLOCKS: usize = 128;
const BITS_PER_BLOCK: u64 = 64;
const TOTAL_BITS: u64 = BLOCKS as u64 * BITS_PER_BLOCK;

/// How many packet numbers below the highest accepted one are still accepted
/// (once each): 8128 packets.
pub const REPLAY_WINDOW: u64 = TOTAL_BITS - BITS_PER_BLOCK;

/// Accepts each packet number at most once, within a window of the newest.
#[derive(Clone)]
pub struct ReplayWindow {
    /// Highest accepted packet number plus one (0: nothing accepted yet).
    top: u64,
    bitmap: [u64; BLOCKS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplayWindow {
    /// An empty window: every packet number is new.
    pub fn new() -> Self {
        ReplayWindow {
            top: 0,
            bitmap: [0; BLOCKS],
        }
    }

    /// Would `msgnr` be accepted? Does not change the window: call it before
    /// the MAC check, and `update` after.
    pub fn check(&self, msgnr: u64) -> bool {
        if msgnr > MSGNR_LIMIT {
            return false;
        }
        let n = msgnr + 1; // MSGNR_LIMIT < u64::MAX: cannot overflow.
        if n.saturating_add(REPLAY_WINDOW) < self.top {
            return false;
        }
        if n > self.top {
            return true;
        }
        let (block, bit) = Self::slot(n);
        self.bitmap[block] & (1 << bit) == 0
    }

    /// Marks `msgnr` as seen; returns false (and changes nothing) if it was
    /// already seen or is too old.
    pub fn update(&mut self, msgnr: u64) -> bool {
        if !self.check(msgnr) {
            return false;
        }
        let n = msgnr + 1; // check() passed, so msgnr <= MSGNR_LIMIT.
        if n > self.top {
            let current = self.top / BITS_PER_BLOCK;
            let newest = n / BITS_PER_BLOCK;
            let clear = (newest - current).min(BLOCKS as u64);
            for i in 1..=clear {
                self.bitmap[((current + i) % BLOCKS as u64) as usize] = 0;
            }
            self.top = n;
        }
        let (block, bit) = Self::slot(n);
        self.bitmap[block] |= 1 << bit;
        true
    }

    /// Highest packet number accepted so far, if any.
    pub fn highest(&self) -> Option<u64> {
        self.top.checked_sub(1)
    }

    fn slot(n: u64) -> (usize, u64) {
        (
            ((n / BITS_PER_BLOCK) % BLOCKS as u64) as usize,
            n % BITS_PER_BLOCK,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic() {
        let mut w = ReplayWindow::new();
        assert!(w.update(0));
        assert!(!w.update(0));
        assert!(w.update(5));
        assert!(w.update(3));
        assert!(!w.update(3));
        assert!(w.update(REPLAY_WINDOW + 5));
        assert!(w.update(6));
        assert!(!w.update(4));
        assert!(!w.update(u64::MAX));
        assert!(!w.update(MSGNR_LIMIT + 1));
        assert!(w.update(MSGNR_LIMIT));
        assert!(!w.update(MSGNR_LIMIT));
    }
}
