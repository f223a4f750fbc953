//! The send batch buffer, lent per transmit rather than owned per session.
//!
//! A driver needs ~130 KB to assemble one GSO batch, but only while it
//! transmits. A standing server runs thousands of drivers on a few worker
//! threads, so each thread keeps one spare buffer and lends it to whichever
//! driver transmits on it: memory follows the threads doing work, not the
//! number of sessions. A driver that waits for a full socket while holding
//! the buffer simply makes the next one allocate its own.

use std::cell::RefCell;

/// Bytes of one send batch: a GSO batch plus a maximal first datagram.
pub const SEND_BATCH: usize = super::driver::GSO_BATCH_BYTES + 65_536;

thread_local! {
    static SPARE: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

/// A zero-initialised send batch buffer of [`SEND_BATCH`] bytes (this
/// thread's spare if it has one).
pub fn take() -> Vec<u8> {
    SPARE
        .with(|s| s.borrow_mut().take())
        .unwrap_or_else(|| vec![0u8; SEND_BATCH])
}

/// Returns a buffer from [`take`] as this thread's spare (or frees it if the
/// thread already has one).
pub fn give(buf: Vec<u8>) {
    SPARE.with(|s| {
        let mut s = s.borrow_mut();
        if s.is_none() && buf.len() == SEND_BATCH {
            *s = Some(buf);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_reuses_its_spare() {
        let a = take();
        let p = a.as_ptr();
        give(a);
        let b = take();
        assert_eq!(b.as_ptr(), p);
        let c = take();
        assert_ne!(c.as_ptr(), p, "a second taker gets its own");
        give(b);
        give(c);
        assert_eq!(take().len(), SEND_BATCH);
    }
}
