//! Fixed-size records (`--pad`, docs/PROTOCOL.md §8.6): spiped's 1,024-byte
//! messages over a session's stream, so that the lengths of what a program
//! writes do not show on the wire, only how many records it took.
//!
//! Each record is exactly [`RECORD`] bytes: `len u16 || data[len] ||
//! zero[1022 - len]`, `len` in 1..=1022. [`Padded`] wraps any byte stream
//! (the session's) and speaks records on it while its users read and write
//! plain bytes; a record with another length, non-zero padding, or a stream
//! that ends inside a record is an error ([`PadError`]), never data.
//! [`SessionIo`] is the stream a program mode uses: plain (no cost at all)
//! or padded, as the service request negotiated.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::transport::{Session, VferStream};

/// Size of one record on the stream.
pub const RECORD: usize = 1024;
/// Size of a record's length field.
pub const HEADER: usize = 2;
/// Most data bytes in one record.
pub const MAX_DATA: usize = RECORD - HEADER;
/// Records decoded from, or encoded for, one call on the inner stream:
/// enough for a 64 KiB write (the splice's chunk) in one call.
const BATCH: usize = 65;

/// A record the receiver refuses (the session then ends with an error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PadError {
    /// `len` outside 1..=1022.
    #[error(
        "bad padded record: length {0} (want 1 to {MAX_DATA}); is the peer running without --pad?"
    )]
    BadLength(u16),
    /// A padding byte that is not zero.
    #[error("bad padded record: non-zero padding")]
    Padding,
    /// The stream ended after this many bytes of a record.
    #[error("the stream ended inside a padded record ({0} of {RECORD} bytes)")]
    Truncated(usize),
}

impl From<PadError> for io::Error {
    fn from(e: PadError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

/// Appends `data` as `ceil(len / 1022)` records to `out` (nothing for
/// empty `data`).
pub fn encode(data: &[u8], out: &mut Vec<u8>) {
    for chunk in data.chunks(MAX_DATA) {
        out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        out.extend_from_slice(chunk);
        out.resize(out.len() + MAX_DATA - chunk.len(), 0);
    }
}

/// Checks one record and returns its data.
pub fn decode(record: &[u8; RECORD]) -> Result<&[u8], PadError> {
    let len = u16::from_be_bytes([record[0], record[1]]);
    let n = usize::from(len);
    if n == 0 || n > MAX_DATA {
        return Err(PadError::BadLength(len));
    }
    let (data, padding) = record[HEADER..].split_at(n);
    if padding.iter().any(|&b| b != 0) {
        return Err(PadError::Padding);
    }
    Ok(data)
}

/// A byte stream carried as fixed-size records on `S`. Writes are
/// buffered as whole records: flush (or shut down) before handing the
/// stream's end to anyone else.
pub struct Padded<S> {
    inner: S,
    /// Encoded records not yet taken by `inner`, from `out_pos`.
    out: Vec<u8>,
    out_pos: usize,
    /// Bytes read from `inner`: `raw[start..end]` not yet decoded; the
    /// current record's data still to hand out is `raw[p0..p1]`. Allocated
    /// at the first read (a daemon's idle sessions hold none).
    raw: Box<[u8]>,
    start: usize,
    end: usize,
    p0: usize,
    p1: usize,
    /// A bad record seen: every later read fails the same way.
    broken: Option<PadError>,
}

impl<S> Padded<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Padded<S> {
        Padded {
            inner,
            out: Vec::new(),
            out_pos: 0,
            raw: Box::default(),
            start: 0,
            end: 0,
            p0: 0,
            p1: 0,
            broken: None,
        }
    }
}

impl<S: AsyncWrite + Unpin> Padded<S> {
    /// Writes out every encoded byte.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.out_pos < self.out.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out[self.out_pos..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out_pos += n;
        }
        self.out.clear();
        self.out_pos = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Padded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        if let Some(e) = me.broken {
            return Poll::Ready(Err(e.into()));
        }
        let mut copied = false;
        loop {
            if me.p0 < me.p1 {
                let n = buf.remaining().min(me.p1 - me.p0);
                buf.put_slice(&me.raw[me.p0..me.p0 + n]);
                me.p0 += n;
                copied |= n > 0;
                if buf.remaining() == 0 {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            if me.end - me.start >= RECORD {
                let at = me.start;
                let record: &[u8; RECORD] = me.raw[at..at + RECORD]
                    .try_into()
                    .expect("a slice of RECORD bytes");
                match decode(record) {
                    Ok(data) => {
                        me.p0 = at + HEADER;
                        me.p1 = me.p0 + data.len();
                        me.start += RECORD;
                        continue;
                    }
                    Err(e) => {
                        me.broken = Some(e);
                        return Poll::Ready(Err(e.into()));
                    }
                }
            }
            if copied {
                return Poll::Ready(Ok(()));
            }
            // Less than a record left, none of it handed out: keep it at
            // the front and read more behind it.
            if me.raw.is_empty() {
                me.raw = vec![0u8; BATCH * RECORD].into_boxed_slice();
            }
            me.raw.copy_within(me.start..me.end, 0);
            me.end -= me.start;
            me.start = 0;
            me.p0 = 0;
            me.p1 = 0;
            let mut rb = ReadBuf::new(&mut me.raw[me.end..]);
            ready!(Pin::new(&mut me.inner).poll_read(cx, &mut rb))?;
            let n = rb.filled().len();
            if n == 0 {
                if me.end == 0 {
                    return Poll::Ready(Ok(())); // EOF between records
                }
                let e = PadError::Truncated(me.end);
                me.broken = Some(e);
                return Poll::Ready(Err(e.into()));
            }
            me.end += n;
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Padded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        ready!(me.poll_drain(cx))?;
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let n = data.len().min(BATCH * MAX_DATA);
        encode(&data[..n], &mut me.out);
        // Taken: hand what fits to the stream now, the rest on the next
        // write or flush.
        match me.poll_drain(cx) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            _ => Poll::Ready(Ok(n)),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        ready!(me.poll_drain(cx))?;
        Pin::new(&mut me.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        ready!(me.poll_drain(cx))?;
        Pin::new(&mut me.inner).poll_shutdown(cx)
    }
}

/// How a program mode's bytes travel on the stream, as negotiated (§5).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Framing {
    /// Unchanged (the default; costs nothing).
    #[default]
    Plain,
    /// In fixed-size records (`--pad`).
    Padded,
}

impl Framing {
    /// `Padded` if `pad`.
    pub fn from_pad(pad: bool) -> Framing {
        if pad {
            Framing::Padded
        } else {
            Framing::Plain
        }
    }

    /// The session's stream in this framing.
    pub fn stream(self, session: &Session) -> SessionIo {
        match self {
            Framing::Plain => SessionIo::Plain(session.stream()),
            Framing::Padded => SessionIo::Padded(Box::new(Padded::new(session.stream()))),
        }
    }
}

/// A session's stream as a program mode reads and writes it.
pub enum SessionIo {
    /// The stream itself.
    Plain(VferStream),
    /// The stream in records.
    Padded(Box<Padded<VferStream>>),
}

impl AsyncRead for SessionIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            SessionIo::Plain(s) => Pin::new(s).poll_read(cx, buf),
            SessionIo::Padded(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for SessionIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            SessionIo::Plain(s) => Pin::new(s).poll_write(cx, data),
            SessionIo::Padded(s) => Pin::new(&mut **s).poll_write(cx, data),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            SessionIo::Plain(s) => Pin::new(s).poll_flush(cx),
            SessionIo::Padded(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            SessionIo::Plain(s) => Pin::new(s).poll_shutdown(cx),
            SessionIo::Padded(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }
}

/// The padded record a bad peer's bytes fail with, if that is what `e` is.
pub fn pad_error(e: &io::Error) -> Option<PadError> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<PadError>())
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// docs/PROTOCOL.md §8.6's example.
    #[test]
    fn the_documented_records() {
        let mut out = Vec::new();
        encode(b"hi", &mut out);
        assert_eq!(out.len(), RECORD);
        assert_eq!(&out[..4], &[0x00, 0x02, b'h', b'i']);
        assert!(out[4..].iter().all(|&b| b == 0));
        assert_eq!(decode(out[..].try_into().unwrap()).unwrap(), b"hi");
        let mut big = Vec::new();
        encode(&[7u8; 1023], &mut big);
        assert_eq!(big.len(), 2 * RECORD);
        assert_eq!(&big[..2], &[0x03, 0xfe]);
        assert_eq!(&big[RECORD..RECORD + 3], &[0x00, 0x01, 7]);
        let mut none = Vec::new();
        encode(b"", &mut none);
        assert!(none.is_empty());
    }

    #[test]
    fn bad_records_are_refused() {
        let mut r = [0u8; RECORD];
        assert_eq!(decode(&r), Err(PadError::BadLength(0)));
        r[0] = 0x03;
        r[1] = 0xff;
        assert_eq!(decode(&r), Err(PadError::BadLength(1023)));
        r[0] = 0xff;
        assert_eq!(decode(&r), Err(PadError::BadLength(0xffff)));
        r[0] = 0;
        r[1] = 1;
        r[RECORD - 1] = 1;
        assert_eq!(decode(&r), Err(PadError::Padding));
        r[RECORD - 1] = 0;
        assert_eq!(decode(&r).unwrap(), &[0]);
    }

    /// Writes `data` through a padded duplex and reads it back; returns
    /// what came out and the raw bytes on the wire.
    fn through(data: &[u8], write_chunk: usize, read_chunk: usize) -> (Vec<u8>, usize) {
        rt().block_on(async {
            let (a, b) = tokio::io::duplex(5000);
            let mut w = Padded::new(a);
            let (mut r, mut tap_w) = {
                // A tap between the two ends counts the wire bytes.
                let (c, d) = tokio::io::duplex(5000);
                (Padded::new(c), d)
            };
            let data2 = data.to_vec();
            let writer = tokio::spawn(async move {
                for c in data2.chunks(write_chunk.max(1)) {
                    w.write_all(c).await.unwrap();
                }
                w.shutdown().await.unwrap();
            });
            let tap = tokio::spawn(async move {
                let mut b = b;
                let mut n = 0usize;
                let mut buf = vec![0u8; 3000];
                loop {
                    let k = b.read(&mut buf).await.unwrap();
                    if k == 0 {
                        break;
                    }
                    n += k;
                    tap_w.write_all(&buf[..k]).await.unwrap();
                }
                tap_w.shutdown().await.unwrap();
                n
            });
            let mut got = Vec::new();
            let mut buf = vec![0u8; read_chunk];
            loop {
                let k = r.read(&mut buf).await.unwrap();
                if k == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..k]);
            }
            writer.await.unwrap();
            (got, tap.await.unwrap())
        })
    }

    #[test]
    fn every_size_arrives_intact_in_whole_records() {
        let big: Vec<u8> = (0..1_048_576u32)
            .map(|i| (i * 7 + i / 1000) as u8)
            .collect();
        for n in [0, 1, 1021, 1022, 1023, 1024, 1025, 65_536, big.len()] {
            for (wc, rc) in [(n.max(1), 65_536), (1, 7), (1000, 1), (4096, 1500)] {
                if n > 70_000 && (wc < 1000 || rc < 1000) {
                    continue;
                }
                let (got, wire) = through(&big[..n], wc, rc);
                assert_eq!(got, &big[..n], "n={n} write={wc} read={rc}");
                assert_eq!(wire % RECORD, 0, "n={n}: the wire is whole records");
                let records = n.div_ceil(MAX_DATA);
                if wc >= n.max(1) {
                    assert_eq!(wire, records * RECORD, "n={n}");
                }
            }
        }
    }

    fn read_all(wire: Vec<u8>) -> io::Result<Vec<u8>> {
        rt().block_on(async {
            let mut r = Padded::new(&wire[..]);
            let mut got = Vec::new();
            r.read_to_end(&mut got).await.map(|_| got)
        })
    }

    #[test]
    fn hostile_streams_fail_not_deliver() {
        let mut good = Vec::new();
        encode(b"hello", &mut good);
        assert_eq!(read_all(good.clone()).unwrap(), b"hello");
        // A stream that stops inside a record.
        let e = read_all(good[..RECORD - 1].to_vec()).unwrap_err();
        assert_eq!(pad_error(&e), Some(PadError::Truncated(RECORD - 1)));
        // Unpadded bytes (a peer without --pad): "GET / HTTP/1.0" ...
        let mut plain = b"GET / HTTP/1.0\r\n\r\n".to_vec();
        plain.resize(RECORD, b'x');
        let e = read_all(plain).unwrap_err();
        assert_eq!(pad_error(&e), Some(PadError::BadLength(0x4745)));
        // A length beyond the record, after a good record.
        let mut two = good.clone();
        two.extend_from_slice(&[0x04, 0x00]);
        two.resize(2 * RECORD, 0);
        let e = read_all(two).unwrap_err();
        assert_eq!(pad_error(&e), Some(PadError::BadLength(1024)));
        // Non-zero padding.
        let mut dirty = good;
        dirty[RECORD - 1] = 0x80;
        let e = read_all(dirty).unwrap_err();
        assert_eq!(pad_error(&e), Some(PadError::Padding));
        assert!(e.to_string().contains("non-zero padding"), "{e}");
    }

    #[test]
    fn an_error_sticks() {
        rt().block_on(async {
            let wire = vec![0u8; RECORD];
            let mut r = Padded::new(&wire[..]);
            let mut b = [0u8; 10];
            assert!(r.read(&mut b).await.is_err());
            assert!(r.read(&mut b).await.is_err());
        });
    }
}
