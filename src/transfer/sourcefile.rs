//! One file at the source: open it without following links below the top
//! level, answer the sink's WANT (verify a resumed prefix or an identical
//! copy by hash), then stream it in 256 KiB DATA frames, the next chunk's
//! disk read overlapping the current chunk's send. A file that shrinks or
//! cannot be read is aborted (FILE_ABORT) and the session goes on.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use rustix::fs::OFlags;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

use super::beneath::is_symlink_error;
use super::error::TransferError;
use super::frame::{self, Msg, Want, CHUNK, FRAME_HEADER};
use super::hashing::{blocking, digest, hash_prefix, Check, CheckKind};
use super::walk::SrcEntry;
use super::wire::FrameWriter;
use super::{report, Progress, ProgressFn};
use crate::budget::MemoryBudget;

/// A stream source.
pub(crate) type Reader = Box<dyn AsyncRead + Unpin + Send>;

/// What the writer half did.
#[derive(Default)]
pub(crate) struct Sent {
    pub bytes: u64,
    pub skipped: u64,
}

/// The file being answered.
pub(crate) struct FileCtx<'a> {
    pub index: u64,
    pub entry: &'a SrcEntry,
    pub progress: &'a Option<ProgressFn>,
    /// The FILE_END check agreed in the HELLOs.
    pub check: CheckKind,
    /// A daemon's memory budget (`SendOptions::budget`).
    pub budget: Option<&'static MemoryBudget>,
}

impl FileCtx<'_> {
    async fn abort<W: AsyncWrite + Unpin>(
        &self,
        fw: &mut FrameWriter<W>,
        why: impl std::fmt::Display,
    ) -> Result<(), TransferError> {
        let local = self
            .entry
            .local
            .as_ref()
            .map_or_else(|| self.entry.rel.to_string(), |p| p.display().to_string());
        let message = format!("{local}: {why}");
        fw.send(&Msg::FileAbort {
            index: self.index,
            message: &message,
        })
        .await
    }
}

/// Opens a source file through its origin (no symlink followed below the
/// top level, nor at all beneath a daemon's root; non-blocking, so a FIFO
/// put in its place cannot hang the session) and checks it is still a
/// regular file.
fn open_source(e: &SrcEntry) -> io::Result<(File, u64)> {
    let origin = e
        .origin
        .as_ref()
        .ok_or_else(|| io::Error::other("no path"))?;
    let fd = origin
        .open(OFlags::RDONLY | OFlags::NONBLOCK)
        .map_err(|err| {
            if is_symlink_error(&err) {
                io::Error::other("is now a symlink (or below one); not followed")
            } else {
                err
            }
        })?;
    let f = File::from(fd);
    let md = f.metadata()?;
    if !md.is_file() {
        return Err(io::Error::other("is no longer a regular file"));
    }
    Ok((f, md.len()))
}

/// How a WANT is answered after looking at the file.
enum Plan {
    Same,
    Send { offset: u64, check: Check },
}

fn plan(file: &mut File, size: u64, want: Want, kind: CheckKind) -> io::Result<Plan> {
    let fresh = |file: &mut File| -> io::Result<Plan> {
        file.seek(SeekFrom::Start(0))?;
        Ok(Plan::Send {
            offset: 0,
            check: Check::new(kind),
        })
    };
    match want {
        Want::Resume { offset, hash } if offset <= size => {
            let (h, check, n) = hash_prefix(file, offset, kind)?;
            if n == offset && digest(&h) == hash {
                Ok(Plan::Send { offset, check })
            } else {
                fresh(file)
            }
        }
        Want::Have { hash } => {
            let (h, _, n) = hash_prefix(file, size, CheckKind::Blake3)?;
            if n == size && digest(&h) == hash {
                Ok(Plan::Same)
            } else {
                fresh(file)
            }
        }
        _ => fresh(file),
    }
}

/// Reads up to `want` bytes into `buf[FRAME_HEADER..]` (fewer only at end
/// of file), hashing them.
fn read_chunk(file: &mut File, h: &mut Check, buf: &mut [u8], want: usize) -> io::Result<usize> {
    let dst = &mut buf[FRAME_HEADER..FRAME_HEADER + want];
    let mut n = 0;
    while n < want {
        match file.read(&mut dst[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    h.update(&dst[..n]);
    Ok(n)
}

/// DATA chunks in circulation while a file is sent: the one going out and
/// those the reader has ready or is reading. With two (one read overlapping
/// one send) the sender ran dry 14-18 % of a fast copy whenever the reading
/// thread was scheduled late. Four (1 MiB, 2 ms at 4 Gbit/s) still left the
/// sender waiting for the application ~25 % of a veth copy, in hundreds of
/// 0.5-2 ms gaps; sixteen (4 MiB) halved that and moved 4.68 against 4.00
/// Gbit/s (4 interleaved pairs, `netem/fastpath --paths veth1500`).
const READ_AHEAD: usize = 16;

/// What the reader hands over: a DATA frame buffer and how much it read.
type ReadChunk = (Vec<u8>, io::Result<usize>);

/// Most chunks one blocking task reads: the buffers free at once are read
/// together, so a reader that fell behind catches up with one hand-off to
/// a blocking thread and back, not one per chunk.
const READ_BATCH: usize = 4;

/// Reads and hashes `remaining` bytes of `file` in chunks, each into a buffer
/// taken from `free` (so at most that many chunks are ever read ahead), and
/// hands them over in order. Each batch of reads is its own blocking task,
/// so a daemon's thousand sessions do not each hold a blocking thread for a
/// whole file. Stops after a short read, an error, or when the sender goes
/// away; returns the hash so far (`None` if a read task died) and the pool.
fn spawn_reader(
    file: File,
    h: Check,
    mut remaining: u64,
    budget: Option<&'static MemoryBudget>,
    ready: tokio::sync::mpsc::Sender<ReadChunk>,
    mut free: tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
) -> tokio::task::JoinHandle<(Option<Check>, tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>)> {
    tokio::spawn(async move {
        let mut held = (file, h);
        while remaining > 0 {
            let Some(first) = free.recv().await else {
                break;
            };
            let mut batch = vec![first];
            while batch.len() < READ_BATCH {
                match free.try_recv() {
                    Ok(b) => batch.push(b),
                    Err(_) => break,
                }
            }
            let piece = piece(budget) as u64;
            let (mut file, mut h) = held;
            let left = remaining;
            let read = tokio::task::spawn_blocking(move || {
                let mut left = left;
                let mut out = Vec::with_capacity(batch.len());
                for mut buf in batch {
                    let want = left.min(piece) as usize;
                    if want == 0 {
                        break;
                    }
                    if buf.len() < FRAME_HEADER + want {
                        // A budgeted session's buffers start empty and grow to its pieces.
                        buf.resize(FRAME_HEADER + want, 0);
                    }
                    let r = read_chunk(&mut file, &mut h, &mut buf, want);
                    let go_on = matches!(r, Ok(n) if n == want);
                    if let Ok(n) = r {
                        left -= n as u64;
                    }
                    out.push((buf, r));
                    if !go_on {
                        break;
                    }
                }
                (file, h, out)
            })
            .await;
            let Ok((file, h, out)) = read else {
                return (None, free);
            };
            held = (file, h);
            for (buf, r) in out {
                let go_on = matches!(r, Ok(n) if n > 0);
                if let Ok(n) = r {
                    remaining -= n as u64;
                }
                if ready.send((buf, r)).await.is_err() || !go_on {
                    return (Some(held.1), free);
                }
            }
        }
        (Some(held.1), free)
    })
}

pub(crate) async fn send_file<W: AsyncWrite + Unpin>(
    fw: &mut FrameWriter<W>,
    ctx: &FileCtx<'_>,
    want: Want,
    bufs: &mut [Vec<u8>; 2],
    sent: &mut Sent,
) -> Result<(), TransferError> {
    let e = ctx.entry.clone();
    let kind = ctx.check;
    let opened = blocking(move || {
        let (mut f, size) = open_source(&e)?;
        let p = plan(&mut f, size, want, kind)?;
        Ok((f, size, p))
    })
    .await;
    let (file, size, plan) = match opened {
        Ok(x) => x,
        Err(err) => return ctx.abort(fw, err).await,
    };
    let (offset, hasher) = match plan {
        Plan::Same => {
            sent.skipped += size;
            return fw.send(&Msg::FileSame { index: ctx.index }).await;
        }
        Plan::Send { offset, check } => (offset, check),
    };
    sent.skipped += offset;
    fw.send(&Msg::FileBegin {
        index: ctx.index,
        offset,
        size,
    })
    .await?;
    report(ctx.progress, || Progress::FileStarted {
        path: ctx.entry.rel.to_string(),
        size: Some(size),
        offset,
    });
    let remaining = size - offset;
    let mut done = offset;
    // The buffers this file circulates: the caller's two, and more only if
    // the file spans more pieces than that and no daemon budget holds the
    // session to two.
    let depth = if ctx.budget.is_some() { 2 } else { READ_AHEAD };
    let pieces = remaining.div_ceil(piece(ctx.budget) as u64).max(1) as usize;
    let (free_tx, free_rx) = tokio::sync::mpsc::unbounded_channel();
    for b in bufs.iter_mut() {
        let _ = free_tx.send(std::mem::take(b));
    }
    for _ in bufs.len()..depth.min(pieces) {
        let _ = free_tx.send(Vec::new());
    }
    let (ready_tx, mut ready) = tokio::sync::mpsc::channel(READ_AHEAD);
    let reader = spawn_reader(file, hasher, remaining, ctx.budget, ready_tx, free_rx);
    let mut failure = None;
    while done < size {
        let Some((mut buf, res)) = ready.recv().await else {
            failure = Some("the file reader stopped".to_string());
            break;
        };
        let n = match res {
            Ok(0) => {
                failure = Some(format!(
                    "shrank from {size} to {done} bytes during the transfer"
                ));
                let _ = free_tx.send(buf);
                break;
            }
            Ok(n) => n,
            Err(err) => {
                failure = Some(err.to_string());
                let _ = free_tx.send(buf);
                break;
            }
        };
        done += n as u64;
        buf[..FRAME_HEADER].copy_from_slice(&frame::data_header(n));
        fw.send_raw(&buf[..FRAME_HEADER + n]).await?;
        sent.bytes += n as u64;
        report(ctx.progress, || Progress::Bytes {
            file_done: done,
            job_done: sent.bytes + sent.skipped,
        });
        let _ = free_tx.send(buf);
    }
    drop(ready);
    let (hasher, mut free_rx) = reader
        .await
        .map_err(|e| TransferError::Stream(io::Error::other(e.to_string())))?;
    // Give the caller two buffers back for the next file.
    drop(free_tx);
    for b in bufs.iter_mut() {
        if let Ok(spare) = free_rx.try_recv() {
            *b = spare;
        }
    }
    let hasher = match hasher {
        Some(h) => h,
        None => {
            failure.get_or_insert_with(|| "the file reader failed".to_string());
            Check::new(ctx.check)
        }
    };
    if let Some(why) = failure {
        return ctx.abort(fw, why).await;
    }
    let hash = hasher.digest();
    fw.send(&Msg::FileEnd {
        index: ctx.index,
        hash,
    })
    .await
}

/// Length of a DATA frame buffer: header room plus one chunk.
pub(crate) const BUF_LEN: usize = FRAME_HEADER + CHUNK;

/// A DATA frame buffer.
pub(crate) fn new_buf() -> Vec<u8> {
    vec![0u8; BUF_LEN]
}

/// Most bytes to read next: a chunk, or under a daemon's budget this
/// session's current piece (it shrinks as sessions arrive).
fn piece(budget: Option<&MemoryBudget>) -> usize {
    budget.map_or(CHUNK, |b| b.piece(CHUNK))
}

pub(crate) async fn send_stream<W: AsyncWrite + Unpin>(
    fw: &mut FrameWriter<W>,
    ctx: &FileCtx<'_>,
    mut reader: Reader,
    buf: &mut [u8],
    sent: &mut Sent,
) -> Result<(), TransferError> {
    fw.send(&Msg::FileBegin {
        index: ctx.index,
        offset: 0,
        size: u64::MAX,
    })
    .await?;
    report(ctx.progress, || Progress::FileStarted {
        path: ctx.entry.rel.to_string(),
        size: None,
        offset: 0,
    });
    let mut h = Check::new(ctx.check);
    let mut done = 0u64;
    loop {
        let n = match reader.read(&mut buf[FRAME_HEADER..]).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return ctx.abort(fw, e).await,
        };
        h.update(&buf[FRAME_HEADER..FRAME_HEADER + n]);
        buf[..FRAME_HEADER].copy_from_slice(&frame::data_header(n));
        fw.send_raw(&buf[..FRAME_HEADER + n]).await?;
        done += n as u64;
        sent.bytes += n as u64;
        report(ctx.progress, || Progress::Bytes {
            file_done: done,
            job_done: sent.bytes + sent.skipped,
        });
    }
    fw.send(&Msg::FileEnd {
        index: ctx.index,
        hash: h.digest(),
    })
    .await
}
