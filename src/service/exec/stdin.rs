//! Our own stdin as an `AsyncRead`, read on a plain thread.
//!
//! Why not `tokio::io::stdin`: its blocking read runs on tokio's blocking
//! pool and cannot be cancelled, and a runtime does not shut down while
//! one is pending — `vfer-send --exec - host -- cmd` would hang after the
//! remote program ended while the terminal still waits for input. A
//! detached thread simply dies with the process. Buffers are recycled
//! between the thread and the reader: nothing is allocated per read.

use std::io::Read;
use std::pin::Pin;
use std::sync::mpsc as std_mpsc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;

const BUF: usize = 64 * 1024;
const BUFFERS: usize = 4;

/// Reads file descriptor 0 on a background thread.
pub struct ThreadStdin {
    full: mpsc::Receiver<std::io::Result<Vec<u8>>>,
    free: std_mpsc::Sender<Vec<u8>>,
    current: Option<(Vec<u8>, usize)>,
    eof: bool,
}

impl ThreadStdin {
    /// Starts the reading thread.
    pub fn start() -> std::io::Result<ThreadStdin> {
        let (full_tx, full) = mpsc::channel(BUFFERS);
        let (free, free_rx) = std_mpsc::channel::<Vec<u8>>();
        for _ in 0..BUFFERS {
            let _ = free.send(Vec::with_capacity(BUF));
        }
        std::thread::Builder::new()
            .name("vfer-stdin".into())
            .spawn(move || {
                let mut stdin = std::io::stdin();
                while let Ok(mut buf) = free_rx.recv() {
                    buf.resize(BUF, 0);
                    let r = loop {
                        match stdin.read(&mut buf) {
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                            r => break r,
                        }
                    };
                    let done = !matches!(r, Ok(n) if n > 0);
                    let msg = r.map(|n| {
                        buf.truncate(n);
                        buf
                    });
                    if full_tx.blocking_send(msg).is_err() || done {
                        return;
                    }
                }
            })?;
        Ok(ThreadStdin {
            full,
            free,
            current: None,
            eof: false,
        })
    }
}

impl AsyncRead for ThreadStdin {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        loop {
            if let Some((buf, pos)) = &mut self.current {
                let n = (buf.len() - *pos).min(out.remaining());
                out.put_slice(&buf[*pos..*pos + n]);
                *pos += n;
                if *pos == buf.len() {
                    if let Some((b, _)) = self.current.take() {
                        let _ = self.free.send(b);
                    }
                }
                if n > 0 {
                    return Poll::Ready(Ok(()));
                }
            }
            if self.eof {
                return Poll::Ready(Ok(()));
            }
            match self.full.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    self.eof = true;
                }
                Poll::Ready(Some(Err(e))) => {
                    self.eof = true;
                    return Poll::Ready(Err(e));
                }
                Poll::Ready(Some(Ok(b))) if b.is_empty() => self.eof = true,
                Poll::Ready(Some(Ok(b))) => self.current = Some((b, 0)),
            }
        }
    }
}
