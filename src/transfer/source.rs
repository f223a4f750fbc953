//! The source role: send the manifest, answer each WANT with the file's
//! content (whole, the rest after a verified prefix, or FILE_SAME), then
//! collect the sink's results. Reading from the stream runs concurrently
//! with writing to it, so neither side can block the other.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::mpsc;

use super::error::TransferError;
use super::frame::{self, Kind, Msg, Role, Want, WireEntry, CHUNK, FLAG_PRESERVE, FRAME_HEADER};
use super::hashing::{blocking, digest, hash_prefix};
use super::path::RelPath;
use super::walk::{walk_source, SrcEntry};
use super::wire::{FrameReader, FrameWriter};
use super::{report, Failure, Progress, ProgressFn, SendOptions, Source, Summary};

type Reader = Box<dyn AsyncRead + Unpin + Send>;

/// Sends `sources` over `stream` as the source role. Returns when the sink
/// has confirmed every entry; per-entry failures are in the summary.
pub async fn send<S>(
    stream: S,
    sources: Vec<Source>,
    opts: &SendOptions,
) -> Result<Summary, TransferError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (r, w) = tokio::io::split(stream);
    send_split(r, w, sources, opts).await
}

/// [`send`] over separate read and write halves.
pub async fn send_split<R, W>(
    r: R,
    w: W,
    sources: Vec<Source>,
    opts: &SendOptions,
) -> Result<Summary, TransferError>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let start = Instant::now();
    let mut fr = FrameReader::new(r);
    let mut fw = FrameWriter::new(w);
    let flags = if opts.preserve { FLAG_PRESERVE } else { 0 };
    fw.send(&Msg::Hello {
        role: Role::Source,
        flags,
    })
    .await?;
    fw.flush().await?;
    let res = session(&mut fr, &mut fw, sources, opts).await;
    match res {
        Ok(mut s) => {
            fw.shutdown().await?;
            s.seconds = start.elapsed().as_secs_f64();
            Ok(s)
        }
        Err(e) => {
            if !matches!(e, TransferError::Peer(_) | TransferError::Stream(_)) {
                fw.fail(&e).await;
            }
            Err(e)
        }
    }
}

/// What the writer half did.
#[derive(Default)]
struct Sent {
    bytes: u64,
    skipped: u64,
}

async fn session<R, W>(
    fr: &mut FrameReader<R>,
    fw: &mut FrameWriter<W>,
    sources: Vec<Source>,
    opts: &SendOptions,
) -> Result<Summary, TransferError>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    match fr.expect().await? {
        Msg::Hello {
            role: Role::Sink, ..
        } => {}
        Msg::Hello { .. } => return Err(TransferError::protocol("both ends are sources")),
        Msg::Error { message } => return Err(TransferError::Peer(message.to_owned())),
        m => {
            return Err(TransferError::protocol(format!(
                "expected HELLO, got {m:?}"
            )))
        }
    }
    let (entries, mut readers, mut failures) = collect(sources, opts.recursive).await;
    let files = entries
        .iter()
        .filter(|e| matches!(e.kind, Kind::File | Kind::Stream))
        .count() as u64;
    let total: u64 = entries.iter().map(|e| e.size).sum();
    report(&opts.progress, || Progress::Started {
        files,
        total_bytes: total,
    });

    let (tx, rx) = mpsc::unbounded_channel();
    let reader = collect_results(fr, &entries, tx, &opts.progress);
    let writer = async {
        let r = write_all(fw, &entries, &mut readers, rx, total, &opts.progress).await;
        match r {
            // The stream broke: the reader half will tell why (the peer's
            // ERROR frame, or its end of stream).
            Err(TransferError::Stream(_)) => std::future::pending().await,
            r => r,
        }
    };
    let ((mut summary, results), sent) = tokio::try_join!(reader, writer)?;
    failures.append(&mut summary.failures);
    failures.extend(results);
    summary.failures = failures;
    summary.bytes = sent.bytes;
    summary.bytes_skipped = sent.skipped;
    Ok(summary)
}

/// Walks every source, in order, and gives streams their entries.
async fn collect(
    sources: Vec<Source>,
    recursive: bool,
) -> (Vec<SrcEntry>, Vec<Option<Reader>>, Vec<Failure>) {
    let mut entries = Vec::new();
    let mut readers: Vec<Option<Reader>> = Vec::new();
    let mut failures = Vec::new();
    let mut roots = HashSet::new();
    for src in sources {
        let (mut got, mut fails, reader): (Vec<SrcEntry>, Vec<Failure>, Option<Reader>) = match src
        {
            Source::Path(p) => {
                let p2 = p.clone();
                match tokio::task::spawn_blocking(move || walk_source(&p2, recursive)).await {
                    Ok((e, f)) => (e, f, None),
                    Err(e) => (
                        Vec::new(),
                        vec![Failure {
                            path: p.display().to_string(),
                            message: format!("walking failed: {e}"),
                        }],
                        None,
                    ),
                }
            }
            Source::Stdin => (
                stream_entry("stdin"),
                Vec::new(),
                Some(Box::new(tokio::io::stdin())),
            ),
            Source::Reader { name, reader } => {
                let n = name.to_string_lossy().into_owned();
                (stream_entry(&n), Vec::new(), Some(reader))
            }
        };
        failures.append(&mut fails);
        if let Some(first) = got.first() {
            if !roots.insert(first.rel.clone()) {
                failures.push(Failure {
                    path: first.rel.to_string(),
                    message: "another source has the same name, skipped".into(),
                });
                continue;
            }
        }
        let base = entries.len();
        readers.resize_with(base + got.len(), || None);
        if !got.is_empty() {
            readers[base] = reader;
        }
        entries.append(&mut got);
    }
    (entries, readers, failures)
}

fn stream_entry(name: &str) -> Vec<SrcEntry> {
    let rel = RelPath::from_name(name.as_ref()).unwrap_or_else(|_| RelPath::stdin());
    vec![SrcEntry {
        rel,
        kind: Kind::Stream,
        mode: 0o644,
        size: 0,
        mtime_sec: 0,
        mtime_nsec: 0,
        local: None,
        target: Vec::new(),
        top: true,
    }]
}

/// The reader half: routes WANTs to the writer, records RESULTs, ends at DONE.
async fn collect_results<R: AsyncRead + Unpin + Send>(
    fr: &mut FrameReader<R>,
    entries: &[SrcEntry],
    tx: mpsc::UnboundedSender<(u64, Want)>,
    progress: &Option<ProgressFn>,
) -> Result<(Summary, Vec<Failure>), TransferError> {
    let mut s = Summary::default();
    let mut reported = vec![false; entries.len()];
    let mut next_file = entries.iter().position(is_file);
    loop {
        match fr.expect().await? {
            Msg::Want { index, want } => {
                if Some(index as usize) != next_file {
                    return Err(TransferError::protocol(format!(
                        "WANT for entry {index} out of order"
                    )));
                }
                next_file = entries
                    .iter()
                    .skip(index as usize + 1)
                    .position(is_file)
                    .map(|p| p + index as usize + 1);
                // The writer may already be gone if it failed; its error wins.
                let _ = tx.send((index, want));
            }
            Msg::Result { index, ok, message } => {
                let i = index as usize;
                let Some(e) = entries.get(i) else {
                    return Err(TransferError::protocol(format!(
                        "RESULT for unknown entry {index}"
                    )));
                };
                if std::mem::replace(&mut reported[i], true) {
                    return Err(TransferError::protocol(format!(
                        "second RESULT for entry {index}"
                    )));
                }
                if ok {
                    match e.kind {
                        Kind::Dir => s.dirs += 1,
                        Kind::Symlink => s.symlinks += 1,
                        Kind::File | Kind::Stream => s.files += 1,
                    }
                } else {
                    s.failures.push(Failure {
                        path: e.rel.to_string(),
                        message: message.to_owned(),
                    });
                }
                report(progress, || Progress::FileFinished {
                    path: e.rel.to_string(),
                    ok,
                });
            }
            Msg::Done { .. } => break,
            Msg::Error { message } => return Err(TransferError::Peer(message.to_owned())),
            m => {
                return Err(TransferError::protocol(format!(
                    "unexpected message from the sink: {m:?}"
                )))
            }
        }
    }
    let missing = entries
        .iter()
        .zip(&reported)
        .filter(|(_, r)| !**r)
        .map(|(e, _)| Failure {
            path: e.rel.to_string(),
            message: "the sink reported no result".into(),
        })
        .collect();
    Ok((s, missing))
}

fn is_file(e: &SrcEntry) -> bool {
    matches!(e.kind, Kind::File | Kind::Stream)
}

/// The writer half: manifest, then each wanted file in order, then END.
async fn write_all<W: AsyncWrite + Unpin + Send>(
    fw: &mut FrameWriter<W>,
    entries: &[SrcEntry],
    readers: &mut [Option<Reader>],
    mut rx: mpsc::UnboundedReceiver<(u64, Want)>,
    total: u64,
    progress: &Option<ProgressFn>,
) -> Result<Sent, TransferError> {
    let roots = entries.iter().filter(|e| e.rel.depth() == 1).count() as u32;
    fw.send(&Msg::ManifestBegin {
        roots,
        entries: entries.len() as u64,
        total_bytes: total,
    })
    .await?;
    for (i, e) in entries.iter().enumerate() {
        fw.send(&Msg::Entry(WireEntry {
            index: i as u64,
            kind: e.kind,
            mode: e.mode,
            size: e.size,
            mtime_sec: e.mtime_sec,
            mtime_nsec: e.mtime_nsec,
            path: e.rel.as_bytes(),
            target: &e.target,
        }))
        .await?;
    }
    fw.send(&Msg::ManifestEnd {
        entries: entries.len() as u64,
    })
    .await?;
    let mut sent = Sent::default();
    let mut bufs = [new_buf(), new_buf()];
    for (i, e) in entries.iter().enumerate().filter(|(_, e)| is_file(e)) {
        let (index, want) = match rx.try_recv() {
            Ok(w) => w,
            Err(_) => {
                fw.flush().await?;
                rx.recv().await.ok_or(TransferError::PeerClosed)?
            }
        };
        debug_assert_eq!(index, i as u64);
        for b in bufs.iter_mut() {
            if b.len() < FRAME_HEADER + CHUNK {
                *b = new_buf();
            }
        }
        let ctx = FileCtx {
            index,
            entry: e,
            progress,
        };
        match (want, readers.get_mut(i).and_then(Option::take)) {
            (Want::Skip, _) => {}
            (_, Some(reader)) => send_stream(fw, &ctx, reader, &mut bufs[0], &mut sent).await?,
            (want, None) => send_file(fw, &ctx, want, &mut bufs, &mut sent).await?,
        }
    }
    fw.send(&Msg::End).await?;
    fw.flush().await?;
    Ok(sent)
}

struct FileCtx<'a> {
    index: u64,
    entry: &'a SrcEntry,
    progress: &'a Option<ProgressFn>,
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

/// Opens a source file without following a symlink below the top level,
/// and checks it is still a regular file.
fn open_source(e: &SrcEntry) -> io::Result<(File, u64)> {
    let path = e
        .local
        .as_ref()
        .ok_or_else(|| io::Error::other("no path"))?;
    let flags = if e.top { 0 } else { libc::O_NOFOLLOW };
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)?;
    let md = f.metadata()?;
    if !md.is_file() {
        return Err(io::Error::other("is no longer a regular file"));
    }
    Ok((f, md.len()))
}

/// How a WANT is answered after looking at the file.
enum Plan {
    Same,
    Send { offset: u64, hasher: blake3::Hasher },
}

fn plan(file: &mut File, size: u64, want: Want) -> io::Result<Plan> {
    let fresh = |file: &mut File| -> io::Result<Plan> {
        file.seek(SeekFrom::Start(0))?;
        Ok(Plan::Send {
            offset: 0,
            hasher: blake3::Hasher::new(),
        })
    };
    match want {
        Want::Resume { offset, hash } if offset <= size => {
            let (h, n) = hash_prefix(file, offset)?;
            if n == offset && digest(&h) == hash {
                Ok(Plan::Send { offset, hasher: h })
            } else {
                fresh(file)
            }
        }
        Want::Have { hash } => {
            let (h, n) = hash_prefix(file, size)?;
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
fn read_chunk(
    file: &mut File,
    h: &mut blake3::Hasher,
    buf: &mut [u8],
    want: usize,
) -> io::Result<usize> {
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

type ReadDone = (File, blake3::Hasher, Vec<u8>, io::Result<usize>);

fn spawn_read(
    mut file: File,
    mut h: blake3::Hasher,
    mut buf: Vec<u8>,
    want: usize,
) -> tokio::task::JoinHandle<ReadDone> {
    tokio::task::spawn_blocking(move || {
        let r = read_chunk(&mut file, &mut h, &mut buf, want);
        (file, h, buf, r)
    })
}

async fn send_file<W: AsyncWrite + Unpin>(
    fw: &mut FrameWriter<W>,
    ctx: &FileCtx<'_>,
    want: Want,
    bufs: &mut [Vec<u8>; 2],
    sent: &mut Sent,
) -> Result<(), TransferError> {
    let e = ctx.entry.clone();
    let opened = blocking(move || {
        let (mut f, size) = open_source(&e)?;
        let p = plan(&mut f, size, want)?;
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
        Plan::Send { offset, hasher } => (offset, hasher),
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
    let mut remaining = size - offset;
    let mut done = offset;
    let mut spare = Some(std::mem::take(&mut bufs[1]));
    let mut last = None;
    let mut pending = None;
    if remaining == 0 {
        last = Some(hasher);
    } else {
        let first = std::mem::take(&mut bufs[0]);
        pending = Some(spawn_read(file, hasher, first, next_len(remaining)));
    }
    let mut failure = None;
    while let Some(h) = pending.take() {
        let (file, hasher, mut buf, res) = h
            .await
            .map_err(|e| TransferError::Stream(io::Error::other(e.to_string())))?;
        let n = match res {
            Ok(0) => {
                failure = Some(format!(
                    "shrank from {size} to {done} bytes during the transfer"
                ));
                bufs[0] = buf;
                break;
            }
            Ok(n) => n,
            Err(err) => {
                failure = Some(err.to_string());
                bufs[0] = buf;
                break;
            }
        };
        remaining -= n as u64;
        done += n as u64;
        if remaining > 0 {
            let next = spare.take().unwrap_or_else(new_buf);
            pending = Some(spawn_read(file, hasher, next, next_len(remaining)));
        } else {
            last = Some(hasher);
        }
        buf[..FRAME_HEADER].copy_from_slice(&frame::data_header(n));
        fw.send_raw(&buf[..FRAME_HEADER + n]).await?;
        sent.bytes += n as u64;
        report(ctx.progress, || Progress::Bytes {
            file_done: done,
            job_done: sent.bytes + sent.skipped,
        });
        if spare.is_none() {
            spare = Some(buf);
        } else {
            bufs[0] = buf;
        }
    }
    if let Some(b) = spare {
        bufs[1] = b;
    }
    if let Some(why) = failure {
        return ctx.abort(fw, why).await;
    }
    let hash = last.map_or_else(|| digest(&blake3::Hasher::new()), |h| digest(&h));
    fw.send(&Msg::FileEnd {
        index: ctx.index,
        hash,
    })
    .await
}

fn new_buf() -> Vec<u8> {
    vec![0u8; FRAME_HEADER + CHUNK]
}

fn next_len(remaining: u64) -> usize {
    remaining.min(CHUNK as u64) as usize
}

async fn send_stream<W: AsyncWrite + Unpin>(
    fw: &mut FrameWriter<W>,
    ctx: &FileCtx<'_>,
    mut reader: Reader,
    buf: &mut Vec<u8>,
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
    let mut h = blake3::Hasher::new();
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
        hash: digest(&h),
    })
    .await
}
