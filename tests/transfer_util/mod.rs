//! Helpers shared by the tests/transfer_*.rs suites: run a source and a
//! sink over an in-memory duplex stream, compare trees, cut a stream.
#![allow(dead_code)]

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use vfer::transfer::{
    receive, receive_split, send, send_split, Dest, ReceiveOptions, SendOptions, Source, Summary,
    TransferError,
};

pub type Res = Result<Summary, TransferError>;

/// Runs both roles over a 64 KiB duplex pipe.
pub async fn run(
    sources: Vec<Source>,
    dest: Dest,
    s: &SendOptions,
    r: &ReceiveOptions,
) -> (Res, Res) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    tokio::join!(send(a, sources, s), receive(b, dest, r))
}

/// Like [`run`], but the source's outgoing bytes stop after `limit`
/// (mid-frame), as if the connection died.
pub async fn run_cut(
    sources: Vec<Source>,
    dest: Dest,
    limit: u64,
    s: &SendOptions,
    r: &ReceiveOptions,
) -> (Res, Res) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let (ar, aw) = tokio::io::split(a);
    let (br, bw) = tokio::io::split(b);
    tokio::join!(
        send_split(
            ar,
            CutAfter {
                inner: aw,
                left: limit
            },
            sources,
            s
        ),
        receive_split(br, bw, dest, r)
    )
}

/// A writer that passes `left` bytes, then shuts the stream and fails.
pub struct CutAfter<W> {
    pub inner: W,
    pub left: u64,
}

impl<W: AsyncWrite + Unpin> AsyncWrite for CutAfter<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.left == 0 {
            let _ = Pin::new(&mut self.inner).poll_shutdown(cx);
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::BrokenPipe, "cut")));
        }
        let n = (buf.len() as u64).min(self.left) as usize;
        let r = Pin::new(&mut self.inner).poll_write(cx, &buf[..n]);
        if let Poll::Ready(Ok(k)) = r {
            self.left -= k as u64;
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// An in-memory writer whose bytes the test can read afterwards.
#[derive(Clone, Default)]
pub struct SharedBuf(pub Arc<Mutex<Vec<u8>>>);

impl AsyncWrite for SharedBuf {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Deterministic pseudo-random bytes.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Asserts two trees hold the same names, kinds, contents and link targets
/// (and the same permission bits and mtimes if `meta`).
pub fn assert_same_tree(a: &Path, b: &Path, meta: bool) {
    let ma = fs::symlink_metadata(a).unwrap();
    let mb = fs::symlink_metadata(b).unwrap_or_else(|e| panic!("{}: {e}", b.display()));
    assert_eq!(ma.file_type(), mb.file_type(), "{}", b.display());
    if ma.file_type().is_symlink() {
        assert_eq!(fs::read_link(a).unwrap(), fs::read_link(b).unwrap());
        return;
    }
    if meta {
        assert_eq!(
            ma.mode() & 0o777,
            mb.mode() & 0o777,
            "mode of {}",
            b.display()
        );
        assert_eq!(ma.mtime(), mb.mtime(), "mtime of {}", b.display());
        assert_eq!(ma.mtime_nsec(), mb.mtime_nsec(), "mtime of {}", b.display());
    }
    if ma.is_file() {
        assert!(
            fs::read(a).unwrap() == fs::read(b).unwrap(),
            "content of {}",
            b.display()
        );
        return;
    }
    let mut na: Vec<_> = fs::read_dir(a)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let mut nb: Vec<_> = fs::read_dir(b)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    na.sort();
    nb.sort();
    assert_eq!(na, nb, "entries of {}", b.display());
    for n in na {
        assert_same_tree(&a.join(&n), &b.join(&n), meta);
    }
}

/// Every `*.vfer-part` under `dir`.
pub fn parts(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if e.file_name().to_string_lossy().ends_with(".vfer-part") {
                out.push(e.path());
            }
        }
    }
    out
}

pub fn recursive() -> SendOptions {
    SendOptions {
        recursive: true,
        ..Default::default()
    }
}
