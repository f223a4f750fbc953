//! One file at the sink: decide what to ask for (whole, resume after a
//! verified `.vfer-part` prefix, or "I have it"), write the content to the
//! part file off the async threads, then fsync, verify the BLAKE3 hash, set
//! mode and mtime, and rename into place. A failure leaves the part behind
//! for resume and never a file that looks complete.

use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::task::JoinHandle;

use super::error::TransferError;
use super::frame::{Kind, Want, WireEntry, CHUNK, HASH_LEN};
use super::hashing::{blocking, digest, hash_prefix, Check, CheckKind};
use super::path::RelPath;
use super::sink::{Sink, Target};
use super::sinkfs::{self, part_name};
use super::sinkwrite::{Queued, WriteDone};
use super::wire::FrameWriter;
use super::{report, Progress};

/// A file the sink asked for and has not yet received.
pub(crate) struct Pending {
    pub index: u64,
    pub rel: RelPath,
    pub local: RelPath,
    pub kind: Kind,
    pub size: u64,
    pub mode: u32,
    pub mtime: (i64, u32),
    pub want: Want,
    /// The FILE_END check's state after the kept prefix (for
    /// `Want::Resume`; boxed inside, as every file of the manifest waits here).
    pub prefix: Option<Check>,
}

/// Where the current file's bytes go.
pub(crate) enum Out {
    /// The part file (`None` while a write is in flight).
    File(Option<File>),
    /// The sink's byte-stream destination.
    Stream,
    /// Nowhere: the file already failed; its data is drained.
    Discard,
}

/// The file being received.
pub(crate) struct Receiving {
    pub(super) p: Pending,
    pub(super) parent: Option<Arc<OwnedFd>>,
    pub(super) out: Out,
    /// `None` while a write (which updates it) is in flight.
    pub(super) hasher: Option<Check>,
    pub(super) inflight: Option<JoinHandle<WriteDone>>,
    /// Chunks received while a write was in flight, in order.
    pub(super) queued: Vec<Queued>,
    /// Buffers back from finished writes, for the frame reader.
    pub(super) spares: Vec<Vec<u8>>,
    pub(super) offset: u64,
    pub(super) size: Option<u64>,
    pub(super) received: u64,
    /// Part-file offset up to which writeback to disk has been started.
    pub(super) written_back: u64,
    pub(super) failed: Option<String>,
}

impl Pending {
    /// Looks at the destination and decides what to ask for. An `Err` is a
    /// per-file failure (the file is skipped).
    pub async fn prepare(
        sink: &mut Sink<'_>,
        rel: RelPath,
        e: &WireEntry<'_>,
    ) -> Result<Pending, String> {
        let local = sink.local(&rel);
        let mut p = Pending {
            index: e.index,
            rel,
            local,
            kind: e.kind,
            size: e.size,
            mode: e.mode,
            mtime: (e.mtime_sec, e.mtime_nsec),
            want: Want::Full,
            prefix: None,
        };
        if matches!(sink.target, Target::Writer) {
            return Ok(p);
        }
        if e.kind == Kind::Stream && matches!(sink.target, Target::Into(_)) {
            return Err(
                "a stream (-) needs a file name as its destination, not a directory".into(),
            );
        }
        let parent = sink.parent_fd(&p.local).map_err(|e| e.to_string())?;
        let name = p.local.file_name().to_owned();
        let existing = sinkfs::lstat_at(parent.as_fd(), &name).map_err(|e| e.to_string())?;
        if let Some(m) = existing {
            if m.kind == rustix::fs::FileType::Directory {
                return Err("a directory with this name is in the way".into());
            }
        }
        if e.kind == Kind::Stream {
            return Ok(p);
        }
        if let Some(m) = existing {
            // Same size: compare hashes (rsync's quick check would also
            // want the same mtime, but without -p every copy has a new
            // one, and reading a file is far cheaper than sending it).
            if sink.opts.skip_identical
                && m.kind == rustix::fs::FileType::RegularFile
                && m.size == e.size
            {
                let (par, n, size) = (parent.clone(), name.clone(), e.size);
                let r = blocking(move || {
                    let mut f = sinkfs::open_existing(par.as_fd(), &n)?;
                    hash_prefix(&mut f, size, CheckKind::Blake3)
                })
                .await;
                if let Ok((h, _, got)) = r {
                    if got == size {
                        p.want = Want::Have { hash: digest(&h) };
                        return Ok(p);
                    }
                }
            }
        }
        if !sink.opts.resume {
            return Ok(p);
        }
        let part = part_name(&name);
        match sinkfs::lstat_at(parent.as_fd(), &part).map_err(|e| e.to_string())? {
            Some(m) if m.kind != rustix::fs::FileType::RegularFile => Err(format!(
                "{} exists and is not a regular file",
                show_os(&part)
            )),
            Some(m) if m.nlink > 1 => Err(format!(
                "{} {}",
                show_os(&part),
                sinkfs::hard_linked(m.nlink)
            )),
            Some(m) if m.size > 0 && m.size <= e.size => {
                let kind = sink.check;
                let r = blocking(move || {
                    let mut f = sinkfs::open_part(parent.as_fd(), &part)?;
                    hash_prefix(&mut f, m.size, kind)
                })
                .await;
                match r {
                    Ok((h, check, got)) if got == m.size => {
                        p.want = Want::Resume {
                            offset: got,
                            hash: digest(&h),
                        };
                        p.prefix = Some(check);
                    }
                    _ => {}
                }
                Ok(p)
            }
            _ => Ok(p),
        }
    }
}

fn show_os(s: &std::ffi::OsStr) -> String {
    format!("{:?}", s.to_string_lossy())
}

impl Sink<'_> {
    /// FILE_BEGIN: open the part (or the stream) at `offset`.
    pub async fn on_begin(
        &mut self,
        index: u64,
        offset: u64,
        size: u64,
    ) -> Result<(), TransferError> {
        if self.current.is_some() {
            return Err(TransferError::protocol("FILE_BEGIN inside another file"));
        }
        let mut p = self.take_pending(index)?;
        let stream = p.kind == Kind::Stream;
        if stream != (size == u64::MAX) {
            return Err(TransferError::protocol(format!(
                "file {index}: size {size} does not fit its kind"
            )));
        }
        let resumed = match p.want {
            Want::Resume { offset: o, .. } if o == offset => true,
            _ if offset == 0 => false,
            _ => {
                return Err(TransferError::protocol(format!(
                    "file {index}: offset {offset} was not offered"
                )))
            }
        };
        let fresh = Check::new(self.check);
        let hasher = if resumed {
            p.prefix.take().unwrap_or(fresh)
        } else {
            fresh
        };
        let (out, parent, failed) = if matches!(self.target, Target::Writer) {
            (Out::Stream, None, None)
        } else {
            match self.open_part(&p, offset) {
                Ok((f, parent)) => (Out::File(Some(f)), Some(parent), None),
                Err(e) => (Out::Discard, None, Some(e.to_string())),
            }
        };
        self.summary.bytes_skipped += offset;
        self.job_done += offset;
        report(&self.opts.progress, || Progress::FileStarted {
            path: p.rel.to_string(),
            size: (!stream).then_some(size),
            offset,
        });
        self.current = Some(Receiving {
            p,
            parent,
            out,
            hasher: Some(hasher),
            inflight: None,
            queued: Vec::new(),
            // Under a budget the reader sizes it to the pieces.
            spares: match self.opts.budget {
                None => vec![Vec::with_capacity(CHUNK)],
                Some(_) => Vec::new(),
            },
            offset,
            size: (!stream).then_some(size),
            received: 0,
            written_back: offset,
            failed,
        });
        Ok(())
    }

    fn open_part(&mut self, p: &Pending, offset: u64) -> io::Result<(File, Arc<OwnedFd>)> {
        let parent = self.parent_fd(&p.local)?;
        let part = part_name(p.local.file_name());
        let mut f = sinkfs::open_part(parent.as_fd(), &part)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", show_os(&part))))?;
        if offset == 0 {
            f.set_len(0)?;
        } else if f.metadata()?.len() != offset {
            return Err(io::Error::other(
                "the .vfer-part changed after it was checked",
            ));
        }
        f.seek(SeekFrom::Start(offset))?;
        Ok((f, parent))
    }

    /// A buffer for the frame reader to read the next frames into: one a
    /// finished disk write gave back (buffers rotate between the reader,
    /// the queue, the write in flight and these spares).
    pub fn take_spare(&mut self) -> Vec<u8> {
        self.current
            .as_mut()
            .and_then(|c| c.spares.pop())
            .unwrap_or_default()
    }

    /// DATA (`buf[range]`): hash and write one chunk (the disk writes of
    /// earlier chunks overlap with receiving this one). The buffer itself
    /// goes to the write, so the chunk is not copied.
    pub async fn on_data(
        &mut self,
        buf: Vec<u8>,
        range: std::ops::Range<usize>,
    ) -> Result<(), TransferError> {
        let d = &buf[range.clone()];
        let depth = self.write_queue();
        let Some(cur) = self.current.as_mut() else {
            return Err(TransferError::protocol("DATA outside a file"));
        };
        let n = d.len() as u64;
        if let Some(size) = cur.size {
            if cur.offset + cur.received + n > size {
                return Err(TransferError::protocol(format!(
                    "more data than announced for {}",
                    cur.p.rel
                )));
            }
        }
        cur.received += n;
        self.summary.bytes += n;
        self.job_done += n;
        if cur.failed.is_none() {
            match &mut cur.out {
                Out::Stream => {
                    if let Some(h) = cur.hasher.as_mut() {
                        h.update(d);
                    }
                    if let Some(o) = self.out.as_mut() {
                        o.write_all(d).await.map_err(|e| TransferError::Local {
                            path: PathBuf::from("-"),
                            source: e,
                        })?;
                    }
                }
                Out::File(_) => {
                    cur.queued.push((buf, range));
                    let full = cur.queued.len() > depth;
                    let busy = cur.inflight.as_ref().is_some_and(|h| !h.is_finished());
                    if !busy || full {
                        self.settle_write().await?;
                        self.start_write();
                    }
                    self.report_bytes();
                    return Ok(());
                }
                Out::Discard => {}
            }
        }
        if let Some(c) = self.current.as_mut() {
            c.spares.push(buf);
        }
        self.report_bytes();
        Ok(())
    }

    fn report_bytes(&self) {
        let (file_done, job_done) = match &self.current {
            Some(c) => (c.offset + c.received, self.job_done),
            None => (0, self.job_done),
        };
        report(&self.opts.progress, || Progress::Bytes {
            file_done,
            job_done,
        });
    }

    /// FILE_END: finish, verify, set mode and mtime, rename into place.
    pub async fn on_end<W: AsyncWrite + Unpin>(
        &mut self,
        fw: &mut FrameWriter<W>,
        index: u64,
        hash: [u8; HASH_LEN],
    ) -> Result<(), TransferError> {
        match &self.current {
            Some(c) if c.p.index == index => {}
            _ => {
                return Err(TransferError::protocol(format!(
                    "FILE_END for {index} unexpected"
                )))
            }
        }
        self.drain_writes().await?;
        let Some(cur) = self.current.take() else {
            return Err(TransferError::protocol("no current file"));
        };
        let rel = cur.p.rel.clone();
        match self.complete(cur, hash).await {
            Ok(()) => self.succeed(fw, index, &rel, Kind::File).await,
            Err(why) => self.fail(fw, index, &rel, why).await,
        }
    }

    async fn complete(&mut self, cur: Receiving, hash: [u8; HASH_LEN]) -> Result<(), String> {
        if let Some(why) = cur.failed {
            return Err(why);
        }
        if let Some(size) = cur.size {
            let got = cur.offset + cur.received;
            if got != size {
                return Err(format!(
                    "the source ended the file at {got} of {size} bytes"
                ));
            }
        }
        let Some(check) = cur.hasher else {
            return Err("no check state".into());
        };
        let good = check.digest() == hash;
        let Out::File(Some(file)) = cur.out else {
            return if good {
                Ok(())
            } else {
                Err(format!(
                    "{} mismatch: the data written to the stream is corrupt",
                    check.name()
                ))
            };
        };
        let Some(parent) = cur.parent else {
            return Err("no directory".into());
        };
        let name = cur.p.local.file_name().to_owned();
        let part = part_name(&name);
        if !good {
            drop(file);
            let _ = sinkfs::remove(parent.as_fd(), &part);
            return Err(format!(
                "{} mismatch (corrupted in transit, or the source changed): \
                 the partial file was removed",
                check.name()
            ));
        }
        let mode = self.file_mode(cur.p.mode);
        let mtime = self.preserve.then_some(cur.p.mtime);
        let size = cur.offset + cur.received;
        blocking(move || {
            // A run of zeros at the end was skipped, not written.
            if file.metadata()?.len() < size {
                file.set_len(size)?;
            }
            file.sync_all()?;
            sinkfs::set_mode_fd(&file, mode)?;
            if let Some((s, ns)) = mtime {
                sinkfs::set_mtime_fd(&file, s, ns)?;
            }
            sinkfs::rename_in(parent.as_fd(), &part, &name)
        })
        .await
        .map_err(|e| e.to_string())
    }

    /// FILE_SAME: the destination's copy is identical.
    pub async fn on_same<W: AsyncWrite + Unpin>(
        &mut self,
        fw: &mut FrameWriter<W>,
        index: u64,
    ) -> Result<(), TransferError> {
        if self.current.is_some() {
            return Err(TransferError::protocol("FILE_SAME inside another file"));
        }
        let p = self.take_pending(index)?;
        if !matches!(p.want, Want::Have { .. }) {
            return Err(TransferError::protocol(format!(
                "FILE_SAME for {index}, which was not offered as present"
            )));
        }
        self.summary.bytes_skipped += p.size;
        self.job_done += p.size;
        if self.preserve {
            if let Err(e) = self.restamp(&p).await {
                return self
                    .fail(fw, index, &p.rel, format!("setting mode and mtime: {e}"))
                    .await;
            }
        }
        self.succeed(fw, index, &p.rel, Kind::File).await
    }

    /// `-p` on a file that was already there: give it the source's mode
    /// and mtime.
    async fn restamp(&mut self, p: &Pending) -> std::io::Result<()> {
        let parent = self.parent_fd(&p.local)?;
        let name = p.local.file_name().to_owned();
        let mode = self.file_mode(p.mode);
        let (sec, nsec) = p.mtime;
        blocking(move || {
            let f = sinkfs::open_existing(parent.as_fd(), &name)?;
            sinkfs::set_mode_fd(&f, mode)?;
            sinkfs::set_mtime_fd(&f, sec, nsec)
        })
        .await
    }

    /// FILE_ABORT: the source failed on this file; the part is kept.
    pub async fn on_abort<W: AsyncWrite + Unpin>(
        &mut self,
        fw: &mut FrameWriter<W>,
        index: u64,
        message: &str,
    ) -> Result<(), TransferError> {
        let rel = match &self.current {
            Some(c) if c.p.index == index => {
                self.drain_writes().await?;
                let c = self.current.take();
                c.map(|c| c.p.rel)
            }
            Some(_) => None,
            None => Some(self.take_pending(index)?.rel),
        };
        let Some(rel) = rel else {
            return Err(TransferError::protocol(format!(
                "FILE_ABORT for {index} unexpected"
            )));
        };
        self.fail(fw, index, &rel, format!("failed at the source: {message}"))
            .await
    }
}
