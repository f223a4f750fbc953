//! The source role: send the manifest, answer each WANT with the file's
//! content (whole, the rest after a verified prefix, or FILE_SAME), then
//! collect the sink's results. Reading from the stream runs concurrently
//! with writing to it, so neither side can block the other.

use std::collections::HashSet;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};

use super::error::TransferError;
use super::frame::{Kind, Msg, Role, Want, WireEntry, FLAG_CHECK_XXH3, FLAG_PRESERVE};
use super::hashing::CheckKind;
use super::path::RelPath;
use super::sourcefile::{new_buf, send_file, send_stream, FileCtx, Reader, Sent, BUF_LEN};
use super::walk::{walk_beneath, walk_source, SrcEntry};
use super::wire::{FrameReader, FrameWriter};
use super::{report, Failure, Progress, ProgressFn, SendOptions, Source, Summary};

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
    let mut flags = if opts.preserve { FLAG_PRESERVE } else { 0 };
    if !opts.blake3_only {
        flags |= FLAG_CHECK_XXH3;
    }
    fw.send(&Msg::Hello {
        role: Role::Source,
        flags,
    })
    .await?;
    fw.flush().await?;
    let res = session(&mut fr, &mut fw, sources, opts).await;
    match res {
        Ok(mut s) => {
            // The sink's summary already proves every byte arrived; it may
            // close the session before our end-of-stream is acknowledged,
            // so a failed shutdown here is not a failed transfer.
            let _ = fw.shutdown().await;
            s.seconds = start.elapsed().as_secs_f64();
            Ok(s)
        }
        Err(e) => {
            if !matches!(
                e,
                TransferError::Peer(_)
                    | TransferError::Stream(_)
                    | TransferError::TruncatedFrame
                    | TransferError::PeerClosed
            ) {
                fw.fail(&e).await;
            }
            Err(e)
        }
    }
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
    let (entries, mut readers, mut failures) = collect(sources, opts.recursive).await;
    if let Some(root) = &opts.shown_root {
        for f in &mut failures {
            f.path = shown(root, &f.path);
        }
    }
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
    // The manifest goes out without waiting for the sink's HELLO (§6.4:
    // both HELLOs cross, and nothing in the manifest depends on the
    // sink's flags): on a push that saves a round trip before the data.
    // The check agreed in the HELLOs is needed only at the first file,
    // whose WANT comes after the sink's HELLO on the stream.
    let (check_tx, check) = oneshot::channel();
    let reader = async {
        let _ = check_tx.send(read_hello(fr, opts).await?);
        collect_results(fr, &entries, tx, &opts.progress).await
    };
    let writer = async {
        let r = write_all(
            fw,
            &entries,
            &failures,
            &mut readers,
            rx,
            Plan {
                total,
                progress: &opts.progress,
                check,
                budget: opts.budget,
            },
        )
        .await;
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

/// Reads the sink's HELLO: the FILE_END check both ends agreed on.
async fn read_hello<R: AsyncRead + Unpin + Send>(
    fr: &mut FrameReader<R>,
    opts: &SendOptions,
) -> Result<CheckKind, TransferError> {
    match fr.expect().await? {
        Msg::Hello {
            role: Role::Sink,
            flags,
        } => Ok(if !opts.blake3_only && flags & FLAG_CHECK_XXH3 != 0 {
            CheckKind::Xxh3
        } else {
            CheckKind::Blake3
        }),
        Msg::Hello { .. } => Err(TransferError::protocol(
            "both ends are sources: the far side must run vfer-recv (check --remote-path)",
        )),
        Msg::Error { message } => Err(TransferError::Peer(message.to_owned())),
        m => Err(TransferError::protocol(format!(
            "expected HELLO, got {m:?}"
        ))),
    }
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
            Source::Beneath { root, path } => {
                let shown = path
                    .as_ref()
                    .map_or_else(|| ".".to_owned(), |p| p.to_string());
                match tokio::task::spawn_blocking(move || {
                    walk_beneath(&root, path.as_ref(), recursive)
                })
                .await
                {
                    Ok((e, f)) => (e, f, None),
                    Err(e) => (
                        Vec::new(),
                        vec![Failure {
                            path: shown,
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

/// `path` relative to `root` when it lies below it (else as it is).
fn shown(root: &std::path::Path, path: &str) -> String {
    match std::path::Path::new(path).strip_prefix(root) {
        Ok(rel) if rel.as_os_str().is_empty() => ".".to_string(),
        Ok(rel) => rel.display().to_string(),
        Err(_) => path.to_string(),
    }
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
        origin: None,
        target: Vec::new(),
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

/// What the writer half needs besides the stream and the entries.
struct Plan<'a> {
    /// Bytes of all files, for MANIFEST_BEGIN.
    total: u64,
    progress: &'a Option<ProgressFn>,
    /// The FILE_END check agreed in the HELLOs, once the sink's arrived.
    check: oneshot::Receiver<CheckKind>,
    budget: Option<&'static crate::budget::MemoryBudget>,
}

/// The writer half: manifest, the sources that yield nothing, then each
/// wanted file in order, then END.
async fn write_all<W: AsyncWrite + Unpin + Send>(
    fw: &mut FrameWriter<W>,
    entries: &[SrcEntry],
    failed: &[Failure],
    readers: &mut [Option<Reader>],
    mut rx: mpsc::UnboundedReceiver<(u64, Want)>,
    plan: Plan<'_>,
) -> Result<Sent, TransferError> {
    let Plan {
        total,
        progress,
        check,
        budget,
    } = plan;
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
    for f in failed {
        fw.send(&Msg::SourceFailed {
            path: &f.path,
            message: &f.message,
        })
        .await?;
    }
    // Flushed before the wait, so the manifest crosses the sink's HELLO.
    fw.flush().await?;
    // Without the sink's HELLO the reader half has failed, and its error
    // is the one reported.
    let check = check.await.map_err(|_| TransferError::PeerClosed)?;
    let mut sent = Sent::default();
    // Under a budget the buffers grow to the pieces read into them.
    let mut bufs = match budget {
        None => [new_buf(), new_buf()],
        Some(_) => Default::default(),
    };
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
            if budget.is_none() && b.len() < BUF_LEN {
                *b = new_buf();
            }
        }
        let ctx = FileCtx {
            index,
            entry: e,
            progress,
            check,
            budget,
        };
        match (want, readers.get_mut(i).and_then(Option::take)) {
            (Want::Skip, _) => {}
            (_, Some(reader)) => {
                if bufs[0].len() < BUF_LEN {
                    bufs[0] = new_buf();
                }
                send_stream(fw, &ctx, reader, &mut bufs[0], &mut sent).await?
            }
            (want, None) => send_file(fw, &ctx, want, &mut bufs, &mut sent).await?,
        }
    }
    fw.send(&Msg::End).await?;
    // Nothing follows END: the stream's end goes with it, so it is
    // acknowledged while the sink's DONE is on its way (not a round trip
    // after it, which the session's end would wait for). A peer that
    // closes first after DONE is no error here (see `send_split`).
    let _ = fw.shutdown().await;
    Ok(sent)
}
