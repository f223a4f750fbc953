//! Frames over an async byte stream: a reader that checks the length before
//! allocating and tells a clean EOF from a truncated frame, and a buffered
//! writer. The only I/O around the sans-IO codec in [`super::frame`].

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};

use super::error::TransferError;
use super::frame::{self, Msg, CHUNK};
use crate::budget::MemoryBudget;

/// How long [`FrameWriter::fail`] tries to deliver its ERROR frame.
const FAIL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Buffer size for small frames on either side (DATA frames are larger
/// and bypass it; a thousand sessions hold two each).
const BUF: usize = 8 * 1024;
/// The DATA frame type byte.
fn data_type() -> u8 {
    frame::data_header(0)[frame::FRAME_HEADER - 1]
}

/// Reads frames; the buffer grows to the largest frame seen (at most
/// [`frame::MAX_FRAME_LEN`]) and is reused.
pub struct FrameReader<R> {
    r: BufReader<R>,
    buf: Vec<u8>,
    /// Length of the last frame read into `buf` (type byte included).
    last_len: usize,
    /// Bytes of a DATA frame read in pieces still to come.
    data_left: usize,
    /// A daemon's memory budget: DATA frames larger than its piece size
    /// are read and handed on in pieces ([`FrameReader::with_budget`]).
    budget: Option<&'static MemoryBudget>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Wraps a read half.
    pub fn new(r: R) -> Self {
        FrameReader {
            r: BufReader::with_capacity(BUF, r),
            buf: Vec::new(),
            last_len: 0,
            data_left: 0,
            budget: None,
        }
    }

    /// Reads DATA frames larger than `budget`'s piece size as several
    /// DATA messages of at most that size (the same bytes in the same
    /// order, which is all a sink needs), so a daemon's sink holds pieces
    /// of its fair share, not whole 256 KiB chunks, per session.
    pub fn with_budget(mut self, budget: Option<&'static MemoryBudget>) -> Self {
        self.budget = budget;
        self
    }

    /// Makes `buf` hold `len` bytes; under a budget, drops a buffer more
    /// than twice the larger of `len` and a piece (the share shrank).
    fn fit(&mut self, len: usize) {
        if let Some(b) = self.budget {
            let keep = len.max(b.piece(CHUNK) + 1);
            if self.buf.len() > 2 * keep {
                self.buf = Vec::new();
            }
        }
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
    }

    /// Reads the next piece of the DATA frame under way.
    async fn next_piece(&mut self) -> Result<Option<Msg<'_>>, TransferError> {
        let piece = self.budget.map_or(CHUNK, |b| b.piece(CHUNK));
        let n = self.data_left.min(piece);
        self.fit(n + 1);
        self.buf[0] = data_type();
        self.read_body(1, n + 1).await?;
        self.data_left -= n;
        self.last_len = n + 1;
        Ok(Some(frame::decode(&self.buf[..n + 1])?))
    }

    /// Fills `buf[from..to]` from the stream; a frame cut short is
    /// [`TransferError::TruncatedFrame`].
    async fn read_body(&mut self, from: usize, to: usize) -> Result<(), TransferError> {
        match self.r.read_exact(&mut self.buf[from..to]).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                Err(TransferError::TruncatedFrame)
            }
            Err(e) => Err(TransferError::Stream(e)),
        }
    }

    /// True when no received bytes are buffered: the next read may wait for
    /// the peer, so whatever we owe it should be flushed first.
    pub fn is_drained(&self) -> bool {
        self.r.buffer().is_empty()
    }

    /// The next message; `None` at a clean end of stream between frames.
    pub async fn next(&mut self) -> Result<Option<Msg<'_>>, TransferError> {
        if self.data_left > 0 {
            return self.next_piece().await;
        }
        let mut len = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            let n = self
                .r
                .read(&mut len[got..])
                .await
                .map_err(TransferError::Stream)?;
            if n == 0 {
                return if got == 0 {
                    Ok(None)
                } else {
                    Err(TransferError::TruncatedFrame)
                };
            }
            got += n;
        }
        let len = frame::check_len(u32::from_be_bytes(len))?;
        if let Some(b) = self.budget {
            if len > b.piece(CHUNK) + 1 {
                // Large: a DATA frame goes on in pieces.
                self.fit(1);
                self.read_body(0, 1).await?;
                if self.buf[0] == data_type() {
                    self.data_left = len - 1;
                    return self.next_piece().await;
                }
                let ty = self.buf[0];
                self.fit(len);
                self.buf[0] = ty;
                self.read_body(1, len).await?;
                self.last_len = len;
                return Ok(Some(frame::decode(&self.buf[..len])?));
            }
        }
        self.fit(len);
        self.read_body(0, len).await?;
        self.last_len = len;
        Ok(Some(frame::decode(&self.buf[..len])?))
    }

    /// After [`FrameReader::next`] returned a DATA message: hands over the
    /// buffer that holds it, with the data's range in it, and takes `spare`
    /// to read the next frames into. The sink writes the buffer to disk
    /// off the async thread and gives it back later, so a chunk is never
    /// copied between the stream and the file.
    pub fn take_data(&mut self, spare: Vec<u8>) -> (Vec<u8>, std::ops::Range<usize>) {
        let len = std::mem::replace(&mut self.last_len, 0);
        let buf = std::mem::replace(&mut self.buf, spare);
        (buf, 1.min(len)..len)
    }

    /// The next message, treating end of stream as [`TransferError::PeerClosed`].
    pub async fn expect(&mut self) -> Result<Msg<'_>, TransferError> {
        self.next().await?.ok_or(TransferError::PeerClosed)
    }
}

/// Writes frames through a buffer; call [`FrameWriter::flush`] before
/// waiting for the peer.
pub struct FrameWriter<W> {
    w: BufWriter<W>,
    scratch: Vec<u8>,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// Wraps a write half.
    pub fn new(w: W) -> Self {
        FrameWriter {
            w: BufWriter::with_capacity(BUF, w),
            scratch: Vec::with_capacity(512),
        }
    }

    /// Queues one message.
    pub async fn send(&mut self, msg: &Msg<'_>) -> Result<(), TransferError> {
        self.scratch.clear();
        frame::encode(msg, &mut self.scratch);
        self.w
            .write_all(&self.scratch)
            .await
            .map_err(TransferError::Stream)
    }

    /// Queues an already encoded frame (a DATA frame built in place).
    pub async fn send_raw(&mut self, frame: &[u8]) -> Result<(), TransferError> {
        self.w.write_all(frame).await.map_err(TransferError::Stream)
    }

    /// Pushes everything queued to the stream.
    pub async fn flush(&mut self) -> Result<(), TransferError> {
        self.w.flush().await.map_err(TransferError::Stream)
    }

    /// Flushes and closes our direction of the stream.
    pub async fn shutdown(&mut self) -> Result<(), TransferError> {
        self.w.shutdown().await.map_err(TransferError::Stream)
    }

    /// Best effort: tell the peer why we stop, then close our direction.
    /// Bounded in time: a peer that no longer reads cannot hold us here.
    pub async fn fail(&mut self, err: &TransferError) {
        let text = err.to_string();
        let _ = tokio::time::timeout(FAIL_TIMEOUT, async {
            if self.send(&Msg::Error { message: &text }).await.is_ok() {
                let _ = self.shutdown().await;
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::MemoryBudget;

    #[tokio::test]
    async fn a_budget_reads_large_data_frames_in_pieces() {
        // A thousand sessions: pieces of the least size.
        static B: MemoryBudget = MemoryBudget::new(crate::budget::TOTAL);
        let _m: Vec<_> = (0..1000).map(|_| B.join()).collect();
        let piece = B.piece(CHUNK);
        assert!(piece < CHUNK);
        let data: Vec<u8> = (0..CHUNK + 3).map(|i| (i % 251) as u8).collect();
        let mut wire = Vec::new();
        frame::encode(&Msg::Data(&data[..CHUNK]), &mut wire);
        frame::encode(&Msg::Data(&data[CHUNK..]), &mut wire);
        let long = "x".repeat(frame::MAX_TEXT);
        frame::encode(&Msg::Error { message: &long }, &mut wire);
        let mut fr = FrameReader::new(&wire[..]).with_budget(Some(&B));
        let mut got = Vec::new();
        let mut pieces = 0;
        loop {
            match fr.expect().await.unwrap() {
                Msg::Data(d) => {
                    assert!(d.len() <= piece);
                    pieces += 1;
                    let (buf, range) = fr.take_data(Vec::new());
                    got.extend_from_slice(&buf[range]);
                }
                Msg::Error { message } => {
                    assert_eq!(message, long);
                    break;
                }
                m => panic!("unexpected {m:?}"),
            }
        }
        assert_eq!(got, data, "the same bytes in the same order");
        assert_eq!(pieces, CHUNK.div_ceil(piece) + 1);
        assert!(fr.next().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_data_frame_cut_short_between_pieces_is_truncated() {
        static B: MemoryBudget = MemoryBudget::new(crate::budget::TOTAL);
        let _m: Vec<_> = (0..1000).map(|_| B.join()).collect();
        let mut wire = Vec::new();
        frame::encode(&Msg::Data(&vec![5u8; CHUNK]), &mut wire);
        wire.truncate(wire.len() - 1);
        let mut fr = FrameReader::new(&wire[..]).with_budget(Some(&B));
        let e = loop {
            match fr.next().await {
                Ok(Some(_)) => {}
                Ok(None) => panic!("a cut frame is not a clean end"),
                Err(e) => break e,
            }
        };
        assert!(matches!(e, TransferError::TruncatedFrame), "{e}");
    }
}
