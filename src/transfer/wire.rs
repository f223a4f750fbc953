//! Frames over an async byte stream: a reader that checks the length before
//! allocating and tells a clean EOF from a truncated frame, and a buffered
//! writer. The only I/O around the sans-IO codec in [`super::frame`].

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};

use super::error::TransferError;
use super::frame::{self, Msg};

/// How long [`FrameWriter::fail`] tries to deliver its ERROR frame.
const FAIL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Buffer size for small frames on either side.
const BUF: usize = 64 * 1024;

/// Reads frames; the buffer grows to the largest frame seen (at most
/// [`frame::MAX_FRAME_LEN`]) and is reused.
pub struct FrameReader<R> {
    r: BufReader<R>,
    buf: Vec<u8>,
    /// Length of the last frame read into `buf` (type byte included).
    last_len: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Wraps a read half.
    pub fn new(r: R) -> Self {
        FrameReader {
            r: BufReader::with_capacity(BUF, r),
            buf: Vec::new(),
            last_len: 0,
        }
    }

    /// True when no received bytes are buffered: the next read may wait for
    /// the peer, so whatever we owe it should be flushed first.
    pub fn is_drained(&self) -> bool {
        self.r.buffer().is_empty()
    }

    /// The next message; `None` at a clean end of stream between frames.
    pub async fn next(&mut self) -> Result<Option<Msg<'_>>, TransferError> {
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
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
        match self.r.read_exact(&mut self.buf[..len]).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(TransferError::TruncatedFrame)
            }
            Err(e) => return Err(TransferError::Stream(e)),
        }
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
