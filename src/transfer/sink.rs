//! The sink role: check every manifest entry, create directories and
//! symlinks, ask for each file (whole, resumed or checked), and write what
//! arrives through [`super::sinkfile`]. One task, strictly sequential: the
//! source always reads concurrently, so the sink's writes never block it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite};

use super::beneath::{dir_flags, is_symlink_error, open_beneath, symlink_refused};
use super::error::TransferError;
use super::frame::{
    Kind, Msg, Role, Want, WireEntry, FLAG_CHECK_XXH3, FLAG_PRESERVE, MAX_ENTRIES,
    MAX_MANIFEST_PATH_BYTES,
};
use super::hashing::CheckKind;
use super::path::{show, RelPath, PART_SUFFIX};
use super::sinkfile::{Pending, Receiving};
use super::sinkfs;
use super::wire::{FrameReader, FrameWriter};
use super::{report, Dest, Failure, Progress, ReceiveOptions, RootDir, Summary};

/// Receives into `dest` over `stream` as the sink role. Returns when the
/// source has sent END; per-entry failures are in the summary.
pub async fn receive<S>(
    stream: S,
    dest: Dest,
    opts: &ReceiveOptions,
) -> Result<Summary, TransferError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (r, w) = tokio::io::split(stream);
    receive_split(r, w, dest, opts).await
}

/// [`receive`] over separate read and write halves.
pub async fn receive_split<R, W>(
    r: R,
    w: W,
    dest: Dest,
    opts: &ReceiveOptions,
) -> Result<Summary, TransferError>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let start = Instant::now();
    let mut fr = FrameReader::new(r).with_budget(opts.budget);
    let mut fw = FrameWriter::new(w);
    let mut flags = if opts.preserve { FLAG_PRESERVE } else { 0 };
    if !opts.blake3_only {
        flags |= FLAG_CHECK_XXH3;
    }
    let res = async {
        fw.send(&Msg::Hello {
            role: Role::Sink,
            flags,
        })
        .await?;
        fw.flush().await?;
        session(&mut fr, &mut fw, dest, opts).await
    }
    .await;
    match res {
        Ok(mut s) => {
            s.seconds = start.elapsed().as_secs_f64();
            let _ = fw.shutdown().await;
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

/// Where entries land.
pub(crate) enum Target {
    /// Inside this directory (DEST existed as a directory).
    Into(Arc<OwnedFd>),
    /// In this directory, with the single root renamed to `name`.
    As {
        parent: Arc<OwnedFd>,
        name: OsString,
    },
    /// File contents, in order, to a byte stream (DEST `-`).
    Writer,
}

/// The sink's state for one session.
pub(crate) struct Sink<'o> {
    pub opts: &'o ReceiveOptions,
    pub preserve: bool,
    /// The FILE_END check agreed in the HELLOs.
    pub check: CheckKind,
    pub umask: u32,
    /// Cleared from preserved modes: a daemon's umask, else 0 (scp -p).
    pub preserved_mask: u32,
    pub target: Target,
    pub out: Option<Box<dyn AsyncWrite + Unpin + Send>>,
    entries: u64,
    roots: u32,
    next_index: u64,
    roots_seen: u32,
    files: u64,
    /// Declared directories (wire paths) and whether they are usable.
    dirs: HashMap<RelPath, bool>,
    seen: HashSet<RelPath>,
    /// Directories whose mode and mtime are set at the end (`-p`).
    dir_fixups: Vec<(RelPath, u32, i64, u32)>,
    pub pending: VecDeque<Pending>,
    pub current: Option<Receiving>,
    pub summary: Summary,
    pub job_done: u64,
    /// Sum of the sizes in `pending`.
    pending_bytes: u64,
    /// Sum of the manifest's path lengths so far (bounded by
    /// [`MAX_MANIFEST_PATH_BYTES`]: the sets above keep every path).
    path_bytes: u64,
    fd_cache: Option<(RelPath, Arc<OwnedFd>)>,
}

async fn session<R, W>(
    fr: &mut FrameReader<R>,
    fw: &mut FrameWriter<W>,
    dest: Dest,
    opts: &ReceiveOptions,
) -> Result<Summary, TransferError>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let peer_flags = match fr.expect().await? {
        Msg::Hello {
            role: Role::Source,
            flags,
        } => flags,
        Msg::Hello { .. } => {
            return Err(TransferError::protocol(
                "both ends are sinks: the far side must run vfer-send (check --remote-path)",
            ))
        }
        Msg::Error { message } => return Err(TransferError::Peer(message.to_owned())),
        m => {
            return Err(TransferError::protocol(format!(
                "expected HELLO, got {m:?}"
            )))
        }
    };
    let (roots, entries, total) = match fr.expect().await? {
        Msg::ManifestBegin {
            roots,
            entries,
            total_bytes,
        } => (roots, entries, total_bytes),
        Msg::Error { message } => return Err(TransferError::Peer(message.to_owned())),
        m => {
            return Err(TransferError::protocol(format!(
                "expected MANIFEST_BEGIN, got {m:?}"
            )))
        }
    };
    if u64::from(roots) > entries {
        return Err(TransferError::protocol("more roots than entries"));
    }
    if entries > MAX_ENTRIES {
        return Err(TransferError::protocol(format!(
            "the manifest announces {entries} entries, more than the {MAX_ENTRIES} one \
             session takes (copy the tree in parts)"
        )));
    }
    let (target, out) = resolve(dest, roots)?;
    let mut sink = Sink {
        opts,
        preserve: opts.preserve || peer_flags & FLAG_PRESERVE != 0,
        check: if !opts.blake3_only && peer_flags & FLAG_CHECK_XXH3 != 0 {
            CheckKind::Xxh3
        } else {
            CheckKind::Blake3
        },
        umask: opts.umask.unwrap_or_else(sinkfs::umask),
        preserved_mask: opts.umask.unwrap_or(0),
        target,
        out,
        entries,
        roots,
        next_index: 0,
        roots_seen: 0,
        files: 0,
        dirs: HashMap::new(),
        seen: HashSet::new(),
        dir_fixups: Vec::new(),
        pending: VecDeque::new(),
        current: None,
        summary: Summary::default(),
        job_done: 0,
        pending_bytes: 0,
        path_bytes: 0,
        fd_cache: None,
    };
    let mut manifest_done = false;
    let r = async {
        loop {
            if fr.is_drained() {
                fw.flush().await?;
            }
            let msg = fr.expect().await?;
            if matches!(msg, Msg::Data(_)) {
                // The chunk moves from the reader's buffer to the disk
                // write without a copy.
                let (buf, range) = fr.take_data(sink.take_spare());
                sink.on_data(buf, range).await?;
                continue;
            }
            match msg {
                Msg::Entry(e) if !manifest_done => sink.on_entry(fw, &e).await?,
                Msg::ManifestEnd { entries } if !manifest_done => {
                    if entries != sink.entries || sink.next_index != entries {
                        return Err(TransferError::protocol(format!(
                            "manifest announced {} entries but {} arrived",
                            sink.entries, sink.next_index
                        )));
                    }
                    manifest_done = true;
                    report(&opts.progress, || Progress::Started {
                        files: sink.files,
                        total_bytes: total,
                    });
                }
                Msg::SourceFailed { path, message } => {
                    sink.summary.failures.push(Failure {
                        path: path.to_owned(),
                        message: message.to_owned(),
                    });
                }
                Msg::FileBegin {
                    index,
                    offset,
                    size,
                } => sink.on_begin(index, offset, size).await?,
                Msg::FileEnd { index, hash } => sink.on_end(fw, index, hash).await?,
                Msg::FileSame { index } => sink.on_same(fw, index).await?,
                Msg::FileAbort { index, message } => sink.on_abort(fw, index, message).await?,
                Msg::End if manifest_done => {
                    if sink.current.is_some() || !sink.pending.is_empty() {
                        return Err(TransferError::protocol("END while files were outstanding"));
                    }
                    sink.finish_dirs();
                    if let Some(o) = sink.out.as_mut() {
                        use tokio::io::AsyncWriteExt;
                        o.flush().await.map_err(TransferError::Stream)?;
                    }
                    let s = &sink.summary;
                    fw.send(&Msg::Done {
                        ok: s.files + s.dirs + s.symlinks,
                        failed: s.failures.len() as u64,
                        bytes: s.bytes,
                    })
                    .await?;
                    fw.flush().await?;
                    return Ok(std::mem::take(&mut sink.summary));
                }
                Msg::Error { message } => return Err(TransferError::Peer(message.to_owned())),
                m => {
                    return Err(TransferError::protocol(format!(
                        "unexpected message from the source: {m:?}"
                    )))
                }
            }
        }
    }
    .await;
    if r.is_err() {
        sink.abandon().await;
    }
    r
}

/// Does DEST end with `/` (the user means a directory)?
fn names_a_dir(p: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    p.as_os_str().as_bytes().ends_with(b"/")
}

/// scp's destination rules.
fn resolve(
    dest: Dest,
    roots: u32,
) -> Result<(Target, Option<Box<dyn AsyncWrite + Unpin + Send>>), TransferError> {
    let p = match dest {
        Dest::Stdout => return Ok((Target::Writer, Some(Box::new(tokio::io::stdout())))),
        Dest::Writer(w) => return Ok((Target::Writer, Some(w))),
        Dest::Beneath { root, path } => return resolve_beneath(&root, path, roots),
        Dest::Path(p) => p,
    };
    let local = |path: &std::path::Path, source| TransferError::Local {
        path: path.to_owned(),
        source,
    };
    match std::fs::metadata(&p) {
        Ok(md) if md.is_dir() => {
            let fd = sinkfs::open_dir_path(&p).map_err(|e| local(&p, e))?;
            return Ok((Target::Into(Arc::new(fd)), None));
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && names_a_dir(&p) => {
            // `DEST/` that does not exist is a directory to create (as
            // rsync does), never a file called DEST.
            std::fs::create_dir(&p).map_err(|e| {
                TransferError::Destination(format!(
                    "{}: cannot create the directory: {}",
                    p.display(),
                    super::walk::plain_os_error(e.to_string())
                ))
            })?;
            let fd = sinkfs::open_dir_path(&p).map_err(|e| local(&p, e))?;
            return Ok((Target::Into(Arc::new(fd)), None));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(local(&p, e)),
    }
    if roots > 1 {
        return Err(TransferError::Destination(format!(
            "{}: not an existing directory, but {roots} sources were sent \
             (several sources need an existing directory)",
            p.display()
        )));
    }
    let name = p.file_name().ok_or_else(|| {
        TransferError::Destination(format!("{}: not a usable destination name", p.display()))
    })?;
    let parent = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => std::path::PathBuf::from("."),
    };
    let fd = sinkfs::open_dir_path(&parent).map_err(|e| {
        TransferError::Destination(format!(
            "{}: cannot use the parent directory {}: {}",
            p.display(),
            parent.display(),
            super::walk::plain_os_error(e.to_string())
        ))
    })?;
    Ok((
        Target::As {
            parent: Arc::new(fd),
            name: name.to_owned(),
        },
        None,
    ))
}

/// scp's destination rules for `path` beneath a daemon's root, resolved
/// through its descriptor with no symlink followed anywhere (a symlink on
/// the way is refused, never replaced or followed).
fn resolve_beneath(
    root: &RootDir,
    path: Option<RelPath>,
    roots: u32,
) -> Result<(Target, Option<Box<dyn AsyncWrite + Unpin + Send>>), TransferError> {
    let Some(rel) = path else {
        return Ok((Target::Into(root.fd().clone()), None));
    };
    let local = |source| TransferError::Local {
        path: rel.to_string().into(),
        source,
    };
    match open_beneath(root.fd().as_fd(), &rel, dir_flags()) {
        Ok(fd) => return Ok((Target::Into(Arc::new(fd)), None)),
        Err(e) if is_symlink_error(&e) => {
            return Err(TransferError::Destination(symlink_refused(&rel)))
        }
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {}
        Err(e) => return Err(local(e)),
    }
    if roots > 1 {
        return Err(TransferError::Destination(format!(
            "{rel}: not an existing directory, but {roots} sources were sent \
             (several sources need an existing directory)"
        )));
    }
    let parent = match rel.parent() {
        None => root.fd().clone(),
        Some(up) => match open_beneath(root.fd().as_fd(), &up, dir_flags()) {
            Ok(fd) => Arc::new(fd),
            Err(e) if is_symlink_error(&e) => {
                return Err(TransferError::Destination(symlink_refused(&rel)))
            }
            Err(e) => {
                return Err(TransferError::Destination(format!(
                    "{rel}: cannot use the parent directory {up}: {e}"
                )))
            }
        },
    };
    match sinkfs::lstat_at(parent.as_fd(), rel.file_name()) {
        Ok(Some(m)) if m.kind == rustix::fs::FileType::Symlink => {
            return Err(TransferError::Destination(symlink_refused(&rel)))
        }
        Ok(_) => {}
        Err(e) => return Err(local(e)),
    }
    Ok((
        Target::As {
            parent,
            name: rel.file_name().to_owned(),
        },
        None,
    ))
}

impl Sink<'_> {
    /// The local path (relative to the base directory) of a wire path.
    pub fn local(&self, rel: &RelPath) -> RelPath {
        let Target::As { name, .. } = &self.target else {
            return rel.clone();
        };
        let mut out = match RelPath::from_name(name) {
            Ok(p) => p,
            Err(_) => return rel.clone(),
        };
        for c in rel.components().skip(1) {
            match out.join(c) {
                Ok(p) => out = p,
                Err(_) => return rel.clone(),
            }
        }
        out
    }

    /// The base directory descriptor, if writing to a file system.
    fn base(&self) -> Option<&Arc<OwnedFd>> {
        match &self.target {
            Target::Into(fd) | Target::As { parent: fd, .. } => Some(fd),
            Target::Writer => None,
        }
    }

    /// Opens (no-follow, component by component) the directory holding
    /// `local`, caching the last one.
    pub fn parent_fd(&mut self, local: &RelPath) -> std::io::Result<Arc<OwnedFd>> {
        let base = self
            .base()
            .cloned()
            .ok_or_else(|| std::io::Error::other("no destination directory"))?;
        let Some(parent) = local.parent() else {
            return Ok(base);
        };
        if let Some((p, fd)) = &self.fd_cache {
            if *p == parent {
                return Ok(fd.clone());
            }
        }
        let mut fd = base;
        for c in parent.components() {
            fd = Arc::new(sinkfs::open_subdir(fd.as_fd(), c)?);
        }
        self.fd_cache = Some((parent, fd.clone()));
        Ok(fd)
    }

    /// Records a failed entry and tells the source.
    pub async fn fail<W: AsyncWrite + Unpin>(
        &mut self,
        fw: &mut FrameWriter<W>,
        index: u64,
        rel: &RelPath,
        message: String,
    ) -> Result<(), TransferError> {
        tracing::warn!(path = %rel, %message, "transfer entry failed");
        fw.send(&Msg::Result {
            index,
            ok: false,
            message: &message,
        })
        .await?;
        report(&self.opts.progress, || Progress::FileFinished {
            path: rel.to_string(),
            ok: false,
        });
        self.summary.failures.push(Failure {
            path: rel.to_string(),
            message,
        });
        Ok(())
    }

    /// Records a completed entry and tells the source.
    pub async fn succeed<W: AsyncWrite + Unpin>(
        &mut self,
        fw: &mut FrameWriter<W>,
        index: u64,
        rel: &RelPath,
        kind: Kind,
    ) -> Result<(), TransferError> {
        fw.send(&Msg::Result {
            index,
            ok: true,
            message: "",
        })
        .await?;
        match kind {
            Kind::Dir => self.summary.dirs += 1,
            Kind::Symlink => self.summary.symlinks += 1,
            Kind::File | Kind::Stream => self.summary.files += 1,
        }
        report(&self.opts.progress, || Progress::FileFinished {
            path: rel.to_string(),
            ok: true,
        });
        Ok(())
    }

    /// Validates one manifest entry and acts on it.
    async fn on_entry<W: AsyncWrite + Unpin>(
        &mut self,
        fw: &mut FrameWriter<W>,
        e: &WireEntry<'_>,
    ) -> Result<(), TransferError> {
        if e.index != self.next_index || e.index >= self.entries {
            return Err(TransferError::protocol(format!(
                "entry {} out of order or beyond the announced {}",
                e.index, self.entries
            )));
        }
        self.next_index += 1;
        self.path_bytes += e.path.len() as u64;
        if self.path_bytes > MAX_MANIFEST_PATH_BYTES {
            return Err(TransferError::protocol(format!(
                "the manifest's paths exceed {} MiB, more than one session takes \
                 (copy the tree in parts)",
                MAX_MANIFEST_PATH_BYTES >> 20
            )));
        }
        let rel = RelPath::parse(e.path).map_err(|problem| TransferError::UnsafePath {
            path: show(e.path),
            problem,
        })?;
        if !self.seen.insert(rel.clone()) {
            return Err(TransferError::protocol(format!("{rel:?} sent twice")));
        }
        let parent_ok = match rel.parent() {
            None => {
                self.roots_seen += 1;
                if self.roots_seen > self.roots {
                    return Err(TransferError::protocol(
                        "more top-level entries than announced",
                    ));
                }
                true
            }
            Some(p) => match self.dirs.get(&p) {
                Some(ok) => *ok,
                None => {
                    return Err(TransferError::protocol(format!(
                        "{rel:?} arrived before its directory"
                    )))
                }
            },
        };
        if matches!(e.kind, Kind::File | Kind::Stream) {
            self.files += 1;
        }
        let problem = if !parent_ok {
            Some("its directory could not be created".to_owned())
        } else if rel
            .file_name()
            .as_encoded_bytes()
            .ends_with(PART_SUFFIX.as_bytes())
        {
            Some(format!("refusing a name ending in {PART_SUFFIX}"))
        } else {
            None
        };
        if let Some(why) = problem {
            match e.kind {
                Kind::Dir => {
                    self.dirs.insert(rel.clone(), false);
                }
                Kind::File | Kind::Stream => {
                    fw.send(&Msg::Want {
                        index: e.index,
                        want: Want::Skip,
                    })
                    .await?;
                }
                Kind::Symlink => {}
            }
            return self.fail(fw, e.index, &rel, why).await;
        }
        match e.kind {
            Kind::Dir => {
                let r = self.make_dir(&rel, e);
                self.dirs.insert(rel.clone(), r.is_ok());
                match r {
                    Ok(()) => self.succeed(fw, e.index, &rel, Kind::Dir).await,
                    Err(why) => self.fail(fw, e.index, &rel, why).await,
                }
            }
            Kind::Symlink => match self.make_symlink(&rel, e) {
                Ok(()) => self.succeed(fw, e.index, &rel, Kind::Symlink).await,
                Err(why) => self.fail(fw, e.index, &rel, why).await,
            },
            Kind::File | Kind::Stream => {
                let prepared = Pending::prepare(self, rel.clone(), e).await;
                match prepared {
                    Ok(p) => {
                        fw.send(&Msg::Want {
                            index: e.index,
                            want: p.want,
                        })
                        .await?;
                        self.pending_bytes += p.size;
                        self.pending.push_back(p);
                        Ok(())
                    }
                    Err(why) => {
                        fw.send(&Msg::Want {
                            index: e.index,
                            want: Want::Skip,
                        })
                        .await?;
                        self.fail(fw, e.index, &rel, why).await
                    }
                }
            }
        }
    }

    fn make_dir(&mut self, rel: &RelPath, e: &WireEntry<'_>) -> Result<(), String> {
        if matches!(self.target, Target::Writer) {
            return Err("cannot write a directory to a stream destination".into());
        }
        let local = self.local(rel);
        let parent = self.parent_fd(&local).map_err(|e| e.to_string())?;
        sinkfs::make_dir(parent.as_fd(), local.file_name()).map_err(|e| e.to_string())?;
        if self.preserve {
            self.dir_fixups
                .push((local, self.file_mode(e.mode), e.mtime_sec, e.mtime_nsec));
        }
        Ok(())
    }

    fn make_symlink(&mut self, rel: &RelPath, e: &WireEntry<'_>) -> Result<(), String> {
        if matches!(self.target, Target::Writer) {
            return Err("cannot write a symlink to a stream destination".into());
        }
        let local = self.local(rel);
        let parent = self.parent_fd(&local).map_err(|e| e.to_string())?;
        let name = local.file_name();
        sinkfs::make_symlink(parent.as_fd(), name, e.target).map_err(|e| e.to_string())?;
        if self.preserve {
            sinkfs::set_mtime_at(parent.as_fd(), name, e.mtime_sec, e.mtime_nsec)
                .map_err(|e| format!("setting its mtime: {e}"))?;
        }
        Ok(())
    }

    /// `-p` on directories: deepest first, after their contents are written.
    fn finish_dirs(&mut self) {
        let fixups = std::mem::take(&mut self.dir_fixups);
        for (local, mode, sec, nsec) in fixups.into_iter().rev() {
            let r = self.parent_fd(&local).and_then(|p| {
                let fd = sinkfs::open_subdir(p.as_fd(), local.file_name())?;
                sinkfs::set_mode_fd(&fd, mode)?;
                sinkfs::set_mtime_fd(&fd, sec, nsec)
            });
            if let Err(e) = r {
                tracing::warn!(path = %local, error = %e, "could not set directory mode/mtime");
                self.summary.failures.push(Failure {
                    path: local.to_string(),
                    message: format!("setting mode and mtime: {e}"),
                });
            }
        }
    }

    /// The mode a received file gets.
    pub fn file_mode(&self, mode: u32) -> u32 {
        if self.preserve {
            mode & 0o777 & !self.preserved_mask
        } else {
            mode & 0o777 & !self.umask
        }
    }

    /// Bytes still to come for the files after the current one.
    pub fn bytes_after_current(&self) -> u64 {
        self.pending_bytes
    }

    /// Takes the pending file `index` (it must be next).
    pub fn take_pending(&mut self, index: u64) -> Result<Pending, TransferError> {
        match self.pending.front() {
            Some(p) if p.index == index => {}
            _ => {
                return Err(TransferError::protocol(format!(
                    "file {index} was not asked for, or not next"
                )))
            }
        }
        let p = self
            .pending
            .pop_front()
            .ok_or_else(|| TransferError::protocol("no pending file"))?;
        self.pending_bytes -= p.size;
        Ok(p)
    }
}
