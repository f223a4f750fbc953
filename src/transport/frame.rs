//! VFER frames: the payload of a VSL DATA packet is a sequence of frames.
//! Integers are QUIC variable-length integers (RFC 9000 §16).

use std::ops::Range;

/// Most ACK ranges one ACK frame may carry; more is a malformed frame.
pub const MAX_ACK_RANGES: u64 = 256;
/// Longest reason text in a CLOSE frame.
pub const MAX_REASON_LEN: u64 = 512;

/// Frame type bytes.
pub mod kind {
    /// One byte of padding.
    pub const PADDING: u8 = 0x00;
    /// Asks for an acknowledgement; carries nothing.
    pub const PING: u8 = 0x01;
    /// Acknowledges packet numbers.
    pub const ACK: u8 = 0x02;
    /// Raises the peer's flow-control limit.
    pub const MAX_DATA: u8 = 0x04;
    /// Ends the connection.
    pub const CLOSE: u8 = 0x05;
    /// Asks the peer to echo 8 bytes (path validation, PROTOCOL §3.9).
    pub const PATH_CHALLENGE: u8 = 0x06;
    /// Echoes a PATH_CHALLENGE's 8 bytes.
    pub const PATH_RESPONSE: u8 = 0x07;
    /// Stream data without FIN.
    pub const STREAM: u8 = 0x08;
    /// Stream data that ends the stream (FIN).
    pub const STREAM_FIN: u8 = 0x09;
}

/// A decoding failure: the frame is malformed (the packet is dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed VFER frame")]
pub struct FrameError;

/// Largest value a varint can hold.
pub const VARINT_MAX: u64 = (1 << 62) - 1;

/// Bytes needed to encode `v` as a varint.
pub fn varint_len(v: u64) -> usize {
    match v {
        0..=63 => 1,
        64..=16_383 => 2,
        16_384..=1_073_741_823 => 4,
        _ => 8,
    }
}

/// Appends `v` (must be <= VARINT_MAX) to `out` at `*pos`; returns false if it does not fit.
pub fn put_varint(out: &mut [u8], pos: &mut usize, v: u64) -> bool {
    debug_assert!(v <= VARINT_MAX);
    let n = varint_len(v);
    let Some(dst) = out.get_mut(*pos..*pos + n) else {
        return false;
    };
    match n {
        1 => dst[0] = v as u8,
        2 => dst.copy_from_slice(&((v as u16) | 0x4000).to_be_bytes()),
        4 => dst.copy_from_slice(&((v as u32) | 0x8000_0000).to_be_bytes()),
        _ => dst.copy_from_slice(&(v | 0xc000_0000_0000_0000).to_be_bytes()),
    }
    *pos += n;
    true
}

/// A cursor over received bytes.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Reads from the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Reads one byte.
    pub fn u8(&mut self) -> Result<u8, FrameError> {
        let b = *self.buf.get(self.pos).ok_or(FrameError)?;
        self.pos += 1;
        Ok(b)
    }

    /// Reads `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        let end = self.pos.checked_add(n).ok_or(FrameError)?;
        let s = self.buf.get(self.pos..end).ok_or(FrameError)?;
        self.pos = end;
        Ok(s)
    }

    /// Reads 8 bytes.
    pub fn array8(&mut self) -> Result<[u8; 8], FrameError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.bytes(8)?);
        Ok(a)
    }

    /// Reads a varint.
    pub fn varint(&mut self) -> Result<u64, FrameError> {
        let first = self.u8()?;
        let len = 1usize << (first >> 6);
        let mut v = u64::from(first & 0x3f);
        for _ in 1..len {
            v = (v << 8) | u64::from(self.u8()?);
        }
        Ok(v)
    }
}

/// A decoded ACK frame; ranges are read lazily from the packet bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack<'a> {
    /// Largest packet number acknowledged.
    pub largest: u64,
    /// Microseconds the receiver held the largest before acknowledging it.
    pub delay_us: u64,
    first_range: u64,
    count: u64,
    rest: &'a [u8],
}

impl Ack<'_> {
    /// The acknowledged ranges, highest first, as half-open ranges.
    pub fn ranges(&self) -> AckRanges<'_> {
        AckRanges {
            reader: Reader::new(self.rest),
            next_largest: Some(self.largest),
            first: Some(self.first_range),
            left: self.count,
        }
    }
}

/// Iterator over an ACK frame's ranges (already validated when parsed).
pub struct AckRanges<'a> {
    reader: Reader<'a>,
    next_largest: Option<u64>,
    first: Option<u64>,
    left: u64,
}

impl Iterator for AckRanges<'_> {
    type Item = Range<u64>;
    fn next(&mut self) -> Option<Range<u64>> {
        let len = match self.first.take() {
            Some(f) => f,
            None => {
                if self.left == 0 {
                    return None;
                }
                self.left -= 1;
                let gap = self.reader.varint().ok()?;
                let len = self.reader.varint().ok()?;
                let prev_smallest = self.next_largest?;
                self.next_largest = prev_smallest.checked_sub(gap + 2);
                len
            }
        };
        let largest = self.next_largest?;
        let smallest = largest - len; // validated at parse time
        self.next_largest = Some(smallest);
        Some(smallest..largest + 1)
    }
}

/// One decoded frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// Padding (one or more bytes; all consumed).
    Padding,
    /// Ack-eliciting, nothing else.
    Ping,
    /// Acknowledgement of packet numbers.
    Ack(Ack<'a>),
    /// The sender may send stream bytes up to this offset.
    MaxData(u64),
    /// The peer ends the connection.
    Close {
        /// 0 = normal close; others are errors.
        code: u64,
        /// Human-readable reason (UTF-8, may be empty).
        reason: &'a [u8],
    },
    /// Echo these bytes in a PATH_RESPONSE (PROTOCOL §3.9).
    PathChallenge([u8; 8]),
    /// The echo of a PATH_CHALLENGE.
    PathResponse([u8; 8]),
    /// Stream bytes at `offset`.
    Stream {
        /// Byte offset in the stream.
        offset: u64,
        /// The bytes.
        data: &'a [u8],
        /// These are the last bytes of the stream.
        fin: bool,
    },
}

impl Frame<'_> {
    /// Does receiving this frame oblige the receiver to acknowledge the packet?
    pub fn is_ack_eliciting(&self) -> bool {
        !matches!(
            self,
            Frame::Padding
                | Frame::Ack(_)
                | Frame::Close { .. }
                | Frame::PathChallenge(_)
                | Frame::PathResponse(_)
        )
    }
}

/// Decodes the frames of one packet payload in order.
pub struct Frames<'a> {
    r: Reader<'a>,
}

impl<'a> Frames<'a> {
    /// Iterates over `payload`.
    pub fn new(payload: &'a [u8]) -> Self {
        Frames {
            r: Reader::new(payload),
        }
    }

    fn parse_ack(&mut self) -> Result<Frame<'a>, FrameError> {
        let r = &mut self.r;
        let largest = r.varint()?;
        let delay_us = r.varint()?;
        let count = r.varint()?;
        if count > MAX_ACK_RANGES {
            return Err(FrameError);
        }
        let first_range = r.varint()?;
        let mut smallest = largest.checked_sub(first_range).ok_or(FrameError)?;
        let start = r.pos;
        for _ in 0..count {
            let gap = r.varint()?;
            let len = r.varint()?;
            let next_largest = smallest
                .checked_sub(gap)
                .and_then(|v| v.checked_sub(2))
                .ok_or(FrameError)?;
            smallest = next_largest.checked_sub(len).ok_or(FrameError)?;
        }
        let rest = &r.buf[start..r.pos];
        Ok(Frame::Ack(Ack {
            largest,
            delay_us,
            first_range,
            count,
            rest,
        }))
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<Frame<'a>, FrameError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.r.remaining() == 0 {
            return None;
        }
        let t = match self.r.u8() {
            Ok(t) => t,
            Err(e) => return Some(Err(e)),
        };
        let frame = match t {
            kind::PADDING => {
                while self.r.buf.get(self.r.pos) == Some(&0) {
                    self.r.pos += 1;
                }
                Ok(Frame::Padding)
            }
            kind::PING => Ok(Frame::Ping),
            kind::ACK => self.parse_ack(),
            kind::MAX_DATA => self.r.varint().map(Frame::MaxData),
            kind::PATH_CHALLENGE => self.r.array8().map(Frame::PathChallenge),
            kind::PATH_RESPONSE => self.r.array8().map(Frame::PathResponse),
            kind::CLOSE => (|| {
                let code = self.r.varint()?;
                let len = self.r.varint()?;
                if len > MAX_REASON_LEN {
                    return Err(FrameError);
                }
                let reason = self.r.bytes(len as usize)?;
                Ok(Frame::Close { code, reason })
            })(),
            kind::STREAM | kind::STREAM_FIN => (|| {
                let offset = self.r.varint()?;
                let len = self.r.varint()?;
                let data = self
                    .r
                    .bytes(usize::try_from(len).map_err(|_| FrameError)?)?;
                offset.checked_add(len).ok_or(FrameError)?;
                Ok(Frame::Stream {
                    offset,
                    data,
                    fin: t == kind::STREAM_FIN,
                })
            })(),
            _ => Err(FrameError),
        };
        if frame.is_err() {
            self.r.pos = self.r.buf.len();
        }
        Some(frame)
    }
}

/// Writes frames into a packet payload buffer.
pub struct Writer<'a> {
    /// The payload buffer.
    pub buf: &'a mut [u8],
    /// Bytes written so far.
    pub pos: usize,
}

impl<'a> Writer<'a> {
    /// Writes into `buf` from its start.
    pub fn new(buf: &'a mut [u8]) -> Self {
        Writer { buf, pos: 0 }
    }

    /// Bytes still free.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn byte(&mut self, b: u8) -> bool {
        match self.buf.get_mut(self.pos) {
            Some(d) => {
                *d = b;
                self.pos += 1;
                true
            }
            None => false,
        }
    }

    /// A PING frame.
    pub fn ping(&mut self) -> bool {
        self.byte(kind::PING)
    }

    /// Pads the rest of the buffer (up to `len` total bytes) with zeros.
    pub fn pad_to(&mut self, len: usize) {
        let len = len.min(self.buf.len());
        if self.pos < len {
            self.buf[self.pos..len].fill(0);
            self.pos = len;
        }
    }

    /// A PATH_CHALLENGE (`response` false) or PATH_RESPONSE frame.
    pub fn path(&mut self, response: bool, data: [u8; 8]) -> bool {
        if self.remaining() < 9 {
            return false;
        }
        self.byte(if response {
            kind::PATH_RESPONSE
        } else {
            kind::PATH_CHALLENGE
        });
        self.buf[self.pos..self.pos + 8].copy_from_slice(&data);
        self.pos += 8;
        true
    }

    /// A MAX_DATA frame.
    pub fn max_data(&mut self, max: u64) -> bool {
        let save = self.pos;
        let ok = self.byte(kind::MAX_DATA) && put_varint(self.buf, &mut self.pos, max);
        if !ok {
            self.pos = save;
        }
        ok
    }

    /// A CLOSE frame (reason truncated to MAX_REASON_LEN).
    pub fn close(&mut self, code: u64, reason: &[u8]) -> bool {
        let save = self.pos;
        let reason = &reason[..reason.len().min(MAX_REASON_LEN as usize)];
        let ok = self.byte(kind::CLOSE)
            && put_varint(self.buf, &mut self.pos, code)
            && put_varint(self.buf, &mut self.pos, reason.len() as u64)
            && self.remaining() >= reason.len();
        if ok {
            self.buf[self.pos..self.pos + reason.len()].copy_from_slice(reason);
            self.pos += reason.len();
        } else {
            self.pos = save;
        }
        ok
    }

    /// An ACK frame for `ranges` (highest first, half-open, disjoint, non-adjacent).
    /// Writes as many ranges as fit (at least the first); returns false if none fit.
    pub fn ack<I: Iterator<Item = Range<u64>>>(&mut self, mut ranges: I, delay_us: u64) -> bool {
        let save = self.pos;
        let Some(first) = ranges.next() else {
            return false;
        };
        let largest = first.end - 1;
        let ok = self.byte(kind::ACK)
            && put_varint(self.buf, &mut self.pos, largest)
            && put_varint(self.buf, &mut self.pos, delay_us.min(VARINT_MAX));
        // Reserve 2 bytes for the range count (a 2-byte varint, patched below).
        let count_pos = self.pos;
        let ok = ok && self.pos + 2 <= self.buf.len() && {
            self.pos += 2;
            put_varint(self.buf, &mut self.pos, largest - first.start)
        };
        if !ok {
            self.pos = save;
            return false;
        }
        let mut smallest = first.start;
        let mut count = 0u64;
        for r in ranges {
            if count >= MAX_ACK_RANGES {
                break;
            }
            let gap = smallest - r.end - 1; // r.end < smallest - 1 for non-adjacent ranges
            let len = r.end - 1 - r.start;
            let mark = self.pos;
            if !(put_varint(self.buf, &mut self.pos, gap)
                && put_varint(self.buf, &mut self.pos, len))
            {
                self.pos = mark;
                break;
            }
            smallest = r.start;
            count += 1;
        }
        let c = (count as u16 | 0x4000).to_be_bytes();
        self.buf[count_pos..count_pos + 2].copy_from_slice(&c);
        true
    }

    /// A STREAM frame header for `len` bytes at `offset`; returns the slice
    /// to fill with the data, or None if it does not fit.
    pub fn stream(&mut self, offset: u64, len: usize, fin: bool) -> Option<&mut [u8]> {
        let save = self.pos;
        let t = if fin { kind::STREAM_FIN } else { kind::STREAM };
        let ok = self.byte(t)
            && put_varint(self.buf, &mut self.pos, offset)
            && put_varint(self.buf, &mut self.pos, len as u64)
            && self.remaining() >= len;
        if !ok {
            self.pos = save;
            return None;
        }
        let start = self.pos;
        self.pos += len;
        Some(&mut self.buf[start..start + len])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn varint_round_trip() {
        for v in [0, 63, 64, 16383, 16384, 1 << 30, VARINT_MAX] {
            let mut b = [0u8; 8];
            let mut p = 0;
            assert!(put_varint(&mut b, &mut p, v));
            assert_eq!(p, varint_len(v));
            assert_eq!(Reader::new(&b[..p]).varint(), Ok(v));
        }
    }

    #[test]
    fn frames_round_trip() {
        let mut buf = [0u8; 200];
        let mut w = Writer::new(&mut buf);
        assert!(w.ping());
        assert!(w.ack([20..25, 10..15, 3..4].into_iter(), 77));
        assert!(w.max_data(1 << 40));
        w.stream(5, 3, true).unwrap().copy_from_slice(b"abc");
        assert!(w.close(0, b"bye"));
        assert!(w.path(false, *b"chalenge"));
        assert!(w.path(true, *b"response"));
        w.pad_to(120);
        let n = w.pos;
        let frames: Vec<_> = Frames::new(&buf[..n]).collect::<Result<_, _>>().unwrap();
        assert_eq!(frames[0], Frame::Ping);
        let Frame::Ack(a) = frames[1] else { panic!() };
        assert_eq!(a.largest, 24);
        assert_eq!(a.delay_us, 77);
        assert_eq!(a.ranges().collect::<Vec<_>>(), vec![20..25, 10..15, 3..4]);
        assert_eq!(frames[2], Frame::MaxData(1 << 40));
        assert_eq!(
            frames[3],
            Frame::Stream {
                offset: 5,
                data: b"abc",
                fin: true
            }
        );
        assert_eq!(
            frames[4],
            Frame::Close {
                code: 0,
                reason: b"bye"
            }
        );
        assert_eq!(frames[5], Frame::PathChallenge(*b"chalenge"));
        assert_eq!(frames[6], Frame::PathResponse(*b"response"));
        assert!(!frames[5].is_ack_eliciting() && !frames[6].is_ack_eliciting());
        assert_eq!(frames[7], Frame::Padding);
        assert_eq!(frames.len(), 8);
    }

    proptest! {
        #[test]
        fn parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            for f in Frames::new(&bytes) {
                if let Ok(Frame::Ack(a)) = f {
                    for r in a.ranges() { prop_assert!(r.start < r.end); }
                }
            }
        }

        #[test]
        fn ack_ranges_round_trip(mut points in proptest::collection::btree_set(0u64..10_000, 1..80)) {
            let mut set = crate::transport::ranges::RangeSet::new();
            for p in std::mem::take(&mut points) { set.insert(p..p + 1); }
            let mut buf = [0u8; 2000];
            let mut w = Writer::new(&mut buf);
            prop_assert!(w.ack(set.iter_rev(), 0));
            let n = w.pos;
            let Some(Ok(Frame::Ack(a))) = Frames::new(&buf[..n]).next() else { panic!() };
            prop_assert_eq!(a.ranges().collect::<Vec<_>>(), set.iter_rev().collect::<Vec<_>>());
        }
    }
}
