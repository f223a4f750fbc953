//! The byte stream's buffers: what we sent but the peer has not yet
//! acknowledged (`SendBuffer`), and what arrived out of order and is waiting
//! for the application (`RecvBuffer`). Both are rings bounded by their
//! configured size (the send buffer, the receive window), so memory stays
//! bounded whatever the transfer size; within that bound each ring holds
//! only what is in flight: it grows (doubling) as the live bytes need and is
//! freed when the connection idles with nothing in it ([`SendBuffer::trim`],
//! [`RecvBuffer::trim`]). A server with a thousand mostly quiet sessions
//! then holds kilobytes per session, not twice the 16 MiB window.

use std::ops::Range;

use super::ranges::RangeSet;

/// Smallest allocation of a ring that holds anything.
const RING_MIN: usize = 16 * 1024;

/// A ring addressed by absolute stream offset, holding at most `limit`
/// bytes; its allocation follows the live bytes (see the module doc).
struct Ring {
    buf: Vec<u8>,
    limit: usize,
}

impl Ring {
    fn new(limit: usize) -> Ring {
        Ring {
            buf: Vec::new(),
            limit: limit.max(1),
        }
    }

    /// The most bytes the ring may hold (what flow control is based on).
    fn cap(&self) -> u64 {
        self.limit as u64
    }

    /// Makes room for bytes up to offset `hi` while keeping `live` (the
    /// bytes still needed); `hi - live.start` is at most `limit`.
    fn reserve(&mut self, live: Range<u64>, hi: u64) {
        let need = (hi.saturating_sub(live.start) as usize).min(self.limit);
        if need <= self.buf.len() {
            return;
        }
        let new_len = need
            .next_power_of_two()
            .max(RING_MIN)
            .max(self.buf.len() * 2)
            .min(self.limit);
        let mut grown = Ring {
            buf: vec![0u8; new_len],
            limit: self.limit,
        };
        if live.end > live.start && !self.buf.is_empty() {
            let mut tmp = vec![0u8; (live.end - live.start) as usize];
            self.read(live.start, &mut tmp);
            grown.write(live.start, &tmp);
        }
        *self = grown;
    }

    /// Reallocates smaller when the allocation is more than twice what
    /// `live` and a ring of `target` bytes need (a daemon's share shrank).
    fn shrink(&mut self, live: Range<u64>, target: usize) {
        let keep = ((live.end - live.start) as usize)
            .max(target)
            .next_power_of_two()
            .max(RING_MIN);
        if self.buf.len() <= 2 * keep {
            return;
        }
        let mut small = Ring {
            buf: vec![0u8; keep],
            limit: self.limit,
        };
        if live.end > live.start {
            let mut tmp = vec![0u8; (live.end - live.start) as usize];
            self.read(live.start, &mut tmp);
            small.write(live.start, &tmp);
        }
        *self = small;
    }

    /// Frees the allocation (only when no byte in it is live).
    fn release(&mut self) {
        self.buf = Vec::new();
    }

    /// Bytes allocated now.
    fn allocated(&self) -> usize {
        self.buf.len()
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let cap = self.buf.len();
        let start = (offset % cap as u64) as usize;
        let first = data.len().min(cap - start);
        self.buf[start..start + first].copy_from_slice(&data[..first]);
        self.buf[..data.len() - first].copy_from_slice(&data[first..]);
    }

    fn read(&self, offset: u64, out: &mut [u8]) {
        if out.is_empty() {
            return;
        }
        let cap = self.buf.len();
        let start = (offset % cap as u64) as usize;
        let first = out.len().min(cap - start);
        out[..first].copy_from_slice(&self.buf[start..start + first]);
        let rest = out.len() - first;
        out[first..].copy_from_slice(&self.buf[..rest]);
    }
}

/// Outgoing stream bytes from the application until the peer acknowledges them.
pub struct SendBuffer {
    ring: Ring,
    /// Everything below is acknowledged and forgotten.
    base: u64,
    /// End of what the application wrote.
    written: u64,
    /// Highest offset ever sent (new data starts here).
    sent: u64,
    /// The application has finished the stream.
    finished: bool,
    fin_sent: bool,
    fin_acked: bool,
    fin_lost: bool,
    acked: RangeSet,
    lost: RangeSet,
    /// Retransmissions made after the last new byte went out, to be sent
    /// once more while nothing else waits (see [`SendBuffer::next_chunk`]).
    again: RangeSet,
    /// The peer's flow-control limit: new bytes go only below it.
    limit: u64,
}

/// A piece of stream to put in the next packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// Stream offset of the first byte.
    pub offset: u64,
    /// Number of bytes.
    pub len: usize,
    /// Carries the FIN.
    pub fin: bool,
    /// This is a retransmission of bytes declared lost.
    pub retransmit: bool,
}

impl SendBuffer {
    /// A buffer holding at most `cap` unacknowledged bytes.
    pub fn new(cap: usize) -> SendBuffer {
        SendBuffer {
            ring: Ring::new(cap),
            base: 0,
            written: 0,
            sent: 0,
            finished: false,
            fin_sent: false,
            fin_acked: false,
            fin_lost: false,
            acked: RangeSet::new(),
            lost: RangeSet::new(),
            again: RangeSet::new(),
            limit: 0,
        }
    }

    /// Free space for `write`.
    pub fn space(&self) -> usize {
        self.space_below(self.ring.limit)
    }

    /// Free space for `write` if the buffer may hold only `cap` bytes now
    /// (a daemon's share, `crate::budget`; at most the configured size).
    pub fn space_below(&self, cap: usize) -> usize {
        if self.finished {
            return 0;
        }
        (cap.min(self.ring.limit) as u64).saturating_sub(self.written - self.base) as usize
    }

    /// Appends application bytes; returns how many were taken.
    pub fn write(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.space());
        self.ring
            .reserve(self.base..self.written, self.written + n as u64);
        self.ring.write(self.written, &data[..n]);
        self.written += n as u64;
        n
    }

    /// The application will write no more.
    pub fn finish(&mut self) {
        self.finished = true;
    }

    /// Has the application finished the stream?
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Has the peer acknowledged every byte and the FIN?
    pub fn is_fully_acked(&self) -> bool {
        self.finished && self.fin_acked && self.base == self.written
    }

    /// Bytes written by the application so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Bytes written by the application that the peer has not yet
    /// acknowledged (buffered, in flight or lost).
    pub fn unconfirmed(&self) -> u64 {
        self.written - self.base
    }

    /// The peer allows stream bytes up to `limit` (its initial_max_data,
    /// then each MAX_DATA); a lower value than before changes nothing.
    pub fn raise_limit(&mut self, limit: u64) {
        self.limit = self.limit.max(limit);
    }

    /// Is anything waiting to be (re)sent, within the peer's flow-control limit?
    pub fn has_pending(&self) -> bool {
        self.pending_below(self.limit)
    }

    /// Whether anything is waiting to be sent, flow control aside.
    pub fn has_unsent(&self) -> bool {
        self.pending_below(u64::MAX)
    }

    fn pending_below(&self, limit: u64) -> bool {
        !self.lost.is_empty()
            || (self.sent < self.written && self.sent < limit)
            || self.fin_pending()
            || !self.again.is_empty()
    }

    fn fin_pending(&self) -> bool {
        self.finished && self.sent == self.written && (!self.fin_sent || self.fin_lost)
    }

    /// Picks the next piece to send, at most `max` bytes: lost bytes first,
    /// then new bytes below the peer's flow-control limit. Marks it as sent.
    ///
    /// At the tail (every byte and the FIN sent) each retransmission goes
    /// out twice, the second copy once nothing else waits: the path would
    /// otherwise idle, and a lost retransmission there costs the whole
    /// transfer a round trip (at 5 % loss, a last round trip's hundred
    /// retransmissions almost surely lose one; both copies of one, 0.25 %).
    pub fn next_chunk(&mut self, max: usize) -> Option<Chunk> {
        let tail = self.finished && self.sent == self.written && self.fin_sent;
        while let Some(r) = self.lost.first() {
            // Skip bytes acknowledged since they were declared lost.
            let start = r.start.max(self.base);
            if start >= r.end || self.acked.contains_range(start..r.end) {
                self.lost.remove(r);
                continue;
            }
            let len = ((r.end - start) as usize).min(max);
            if len == 0 {
                return None;
            }
            self.lost.remove(start..start + len as u64);
            let fin = self.finished && start + len as u64 == self.written && self.fin_lost;
            if fin {
                self.fin_lost = false;
            }
            if tail {
                self.again.insert(start..start + len as u64);
            }
            return Some(Chunk {
                offset: start,
                len,
                fin,
                retransmit: true,
            });
        }
        let avail = self.written.min(self.limit).saturating_sub(self.sent);
        let len = (avail as usize).min(max);
        let fin_now = self.finished && self.sent + len as u64 == self.written;
        if len == 0 && !(fin_now && self.fin_pending()) {
            return self.next_again(max);
        }
        let c = Chunk {
            offset: self.sent,
            len,
            fin: fin_now,
            retransmit: len == 0 && self.fin_lost,
        };
        self.sent += len as u64;
        if fin_now {
            self.fin_sent = true;
            self.fin_lost = false;
        }
        Some(c)
    }

    /// The second copy of a tail retransmission (see [`Self::next_chunk`]),
    /// skipping bytes acknowledged since.
    fn next_again(&mut self, max: usize) -> Option<Chunk> {
        while let Some(r) = self.again.first() {
            let start = r.start.max(self.base);
            if start >= r.end || self.acked.contains_range(start..r.end) {
                self.again.remove(r);
                continue;
            }
            let len = ((r.end - start) as usize).min(max);
            if len == 0 {
                return None;
            }
            let end = start + len as u64;
            self.again.remove(start..end);
            return Some(Chunk {
                offset: start,
                len,
                fin: end == self.written && !self.fin_acked,
                retransmit: true,
            });
        }
        None
    }

    /// The highest offset a chunk can start at (new data starts here,
    /// retransmissions below): bounds the STREAM header's size.
    pub fn max_offset(&self) -> u64 {
        self.sent
    }

    /// Copies sent bytes `[offset, offset + out.len())` for (re)transmission.
    pub fn read(&self, offset: u64, out: &mut [u8]) {
        self.ring.read(offset, out);
    }

    /// The peer acknowledged `range` (and the FIN if `fin`).
    pub fn on_acked(&mut self, range: Range<u64>, fin: bool) {
        if fin {
            self.fin_acked = true;
            self.fin_lost = false;
        }
        if range.end <= self.base {
            return;
        }
        self.acked.insert(range.start.max(self.base)..range.end);
        if !self.again.is_empty() {
            self.again.remove(range.start..range.end);
        }
        while let Some(first) = self.acked.first() {
            if first.start > self.base {
                break;
            }
            self.base = first.end;
            self.acked.pop_first();
        }
    }

    /// The packet carrying `range` (and the FIN if `fin`) was lost.
    pub fn on_lost(&mut self, range: Range<u64>, fin: bool) {
        if fin && !self.fin_acked {
            self.fin_lost = true;
        }
        let start = range.start.max(self.base);
        if start < range.end {
            self.lost.insert(start..range.end);
        }
    }

    /// Frees the ring's memory if every byte written was acknowledged (call
    /// when the connection idles; the next write allocates again).
    pub fn trim(&mut self) {
        if self.base == self.written {
            self.ring.release();
        }
    }

    /// Bytes of memory the ring holds now.
    #[cfg(test)]
    pub fn allocated(&self) -> usize {
        self.ring.allocated()
    }

    /// Gives memory back if the ring is more than twice what its live
    /// bytes and a buffer of `cap` need (a daemon's share shrank).
    pub fn shrink_to(&mut self, cap: usize) {
        if self.ring.allocated() > 2 * cap {
            self.ring.shrink(self.base..self.written, cap);
        }
    }
}

/// Why incoming stream data was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecvError {
    /// Data at or past the limit we advertised (initial_max_data or our
    /// last MAX_DATA).
    #[error("peer sent stream bytes up to offset {end}, past the flow-control limit {limit} it was given")]
    FlowControl {
        /// End of the offending frame's data.
        end: u64,
        /// The limit we had advertised.
        limit: u64,
    },
    /// Data past the FIN, or two different FIN offsets.
    #[error("peer sent data beyond the end of the stream")]
    BeyondFin,
    /// The received bytes are split into more pieces than
    /// [`RecvBuffer::max_pieces`] (tiny frames with gaps between them).
    #[error("peer split the stream into more than {0} pieces with gaps")]
    TooFragmented(usize),
}

/// Fewest disjoint pieces of received data a receive buffer allows.
pub const MIN_RECV_PIECES: usize = 4096;

/// Incoming stream bytes, reassembled in order for the application.
pub struct RecvBuffer {
    ring: Ring,
    /// The window in use now (at most the ring's limit; see
    /// [`RecvBuffer::set_window`]).
    window: u64,
    /// The application has read everything below.
    read: u64,
    received: RangeSet,
    fin_at: Option<u64>,
    /// The highest offset we told the peer it may send up to.
    advertised: u64,
}

impl RecvBuffer {
    /// Most disjoint pieces of received data (with gaps between) held at
    /// once: one per KiB of window, at least [`MIN_RECV_PIECES`]. A genuine
    /// sender sends packet-sized frames, so even with every other packet
    /// lost it stays far below; a peer sending 1-byte frames at
    /// alternating offsets would otherwise grow the set by ~32 bytes per
    /// gap (65 MB for 2 M gaps).
    pub fn max_pieces(&self) -> usize {
        (self.ring.limit / 1024).max(MIN_RECV_PIECES)
    }

    /// A receive window of `cap` bytes.
    pub fn new(cap: usize) -> RecvBuffer {
        RecvBuffer::with_window(cap, cap)
    }

    /// A receive window of `window` bytes that may grow up to `cap`
    /// ([`RecvBuffer::set_window`]).
    pub fn with_window(cap: usize, window: usize) -> RecvBuffer {
        let ring = Ring::new(cap);
        RecvBuffer {
            window: (window.max(1) as u64).min(ring.cap()),
            ring,
            read: 0,
            received: RangeSet::new(),
            fin_at: None,
            advertised: (window.max(1) as u64).min(cap.max(1) as u64),
        }
    }

    /// The highest offset the peer could be allowed to send up to now
    /// (what the next MAX_DATA advertises).
    pub fn max_data(&self) -> u64 {
        (self.read + self.window).max(self.advertised)
    }

    /// The window in use now.
    pub fn window(&self) -> u64 {
        self.window
    }

    /// Uses a window of `window` bytes (at most the configured size) from
    /// now on. A smaller window never takes back what was advertised, it
    /// only stops the advertised offset from moving until the reads catch up.
    pub fn set_window(&mut self, window: usize) {
        self.window = (window.max(1) as u64).min(self.ring.cap());
    }

    /// The highest offset the peer has been allowed to send up to: the
    /// initial window, or the last [`set_advertised`](Self::set_advertised).
    pub fn advertised(&self) -> u64 {
        self.advertised
    }

    /// A MAX_DATA carrying `limit` was sent: the peer may now send up to it.
    pub fn set_advertised(&mut self, limit: u64) {
        self.advertised = self.advertised.max(limit.min(self.max_data()));
    }

    /// Stores bytes that arrived; duplicates are harmless. Returns the number of new bytes.
    pub fn insert(&mut self, offset: u64, data: &[u8], fin: bool) -> Result<u64, RecvError> {
        let end = offset + data.len() as u64;
        if end > self.advertised {
            return Err(RecvError::FlowControl {
                end,
                limit: self.advertised,
            });
        }
        if let Some(f) = self.fin_at {
            if end > f || (fin && end != f) {
                return Err(RecvError::BeyondFin);
            }
        }
        if fin {
            if self.received.last().is_some_and(|r| r.end > end) {
                return Err(RecvError::BeyondFin);
            }
            self.fin_at = Some(end);
        }
        if end <= self.read {
            return Ok(0);
        }
        let skip = self.read.saturating_sub(offset) as usize;
        let start = offset + skip as u64;
        let live_end = self.received.last().map_or(self.read, |r| r.end);
        self.ring.reserve(self.read..live_end, end.max(live_end));
        self.ring.write(start, &data[skip..]);
        let new = self.received.insert(start..end);
        if self.received.len() > self.max_pieces() {
            return Err(RecvError::TooFragmented(self.max_pieces()));
        }
        Ok(new)
    }

    /// Bytes ready to read in order.
    pub fn readable(&self) -> u64 {
        match self.received.first() {
            Some(r) if r.start <= self.read => r.end - self.read,
            _ => 0,
        }
    }

    /// Reads in-order bytes into `out`; returns how many.
    pub fn read(&mut self, out: &mut [u8]) -> usize {
        let n = (self.readable() as usize).min(out.len());
        if n == 0 {
            return 0;
        }
        self.ring.read(self.read, &mut out[..n]);
        self.read += n as u64;
        self.received.remove(0..self.read);
        n
    }

    /// Has the application read everything up to the FIN?
    pub fn is_finished(&self) -> bool {
        self.fin_at == Some(self.read)
    }

    /// Frees the ring's memory if nothing received waits in it (call when
    /// the connection idles; the next data allocates again).
    pub fn trim(&mut self) {
        if self.received.is_empty() {
            self.ring.release();
        }
    }

    /// Bytes of memory the ring holds now.
    #[cfg(test)]
    pub fn allocated(&self) -> usize {
        self.ring.allocated()
    }

    /// Gives memory back if the ring is more than twice what the bytes
    /// waiting in it and the window need (a daemon's share shrank).
    pub fn shrink_to_window(&mut self) {
        let window = self.window as usize;
        if self.ring.allocated() > 2 * window {
            let live_end = self.received.last().map_or(self.read, |r| r.end);
            self.ring.shrink(self.read..live_end, window);
        }
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
