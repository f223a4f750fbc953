//! The file-transfer protocol: what `vfer-send` and `vfer-recv` say to each
//! other over a session's reliable, ordered, encrypted byte stream.
//!
//! Two roles, independent of who opened the connection: the **source**
//! ([`send`]) walks its files and streams them; the **sink** ([`receive`])
//! checks every path, writes each file to `NAME.vfer-part`, verifies its
//! BLAKE3 hash, sets mode and mtime and renames it into place. Interrupted
//! files resume from their verified prefix. Both sides work over any
//! `AsyncRead + AsyncWrite` stream, so they are tested over
//! `tokio::io::duplex`. The wire format is `docs/PROTOCOL.md`, section 6.
//!
//! One file per job: [`frame`] (the codec, sans-IO), `wire` (frames over a
//! stream), [`path`] (validating the peer's paths), `walk` (the source's
//! manifest), `source` and `sourcefile` (the source's session and one
//! file), `sink` and `sinkfile` (the sink's session and one file),
//! `sinkfs` (the no-follow file system operations), [`beneath`] (a
//! daemon's root descriptor and resolving paths beneath it), `hashing`
//! (BLAKE3 of files and prefixes).

pub mod beneath;
mod error;
pub mod frame;
mod hashing;
pub mod path;
mod sink;
mod sinkfile;
mod sinkfs;
mod sinkwrite;
mod source;
mod sourcefile;
mod walk;
mod wire;

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};

pub use beneath::RootDir;
pub use error::TransferError;
pub use frame::Role;
pub use sink::{receive, receive_split};
pub use source::{send, send_split};

/// What to send: a path, or a stream (stdin for `-`).
pub enum Source {
    /// A file, directory or symlink (followed at the top level, like scp).
    Path(PathBuf),
    /// Standard input, sent as one file of unknown length.
    Stdin,
    /// Any reader, sent as one file of unknown length called `name`.
    Reader {
        /// The name to send (the sink renames it to DEST anyway).
        name: OsString,
        /// Where the bytes come from.
        reader: Box<dyn AsyncRead + Unpin + Send>,
    },
    /// A daemon's source: `path` beneath `root` (the root itself when
    /// `None`), resolved through the descriptor with no symlink followed
    /// anywhere, the top level included.
    Beneath {
        /// The daemon's root.
        root: RootDir,
        /// The requested path.
        path: Option<path::RelPath>,
    },
}

impl Source {
    /// Maps a command-line argument: `-` is stdin, anything else a path.
    pub fn from_arg(arg: impl AsRef<OsStr>) -> Source {
        let a = arg.as_ref();
        if a == "-" {
            Source::Stdin
        } else {
            Source::Path(PathBuf::from(a))
        }
    }
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Path(p) => write!(f, "Path({p:?})"),
            Source::Stdin => f.write_str("Stdin"),
            Source::Reader { name, .. } => write!(f, "Reader({name:?})"),
            Source::Beneath { path, .. } => write!(f, "Beneath({path:?})"),
        }
    }
}

/// Where received files go: a path with scp's rules, or a byte stream
/// (stdout for `-`) that receives the contents of the files in order.
pub enum Dest {
    /// An existing directory receives the sources inside it; otherwise the
    /// path is the new name of the single source.
    Path(PathBuf),
    /// Standard output.
    Stdout,
    /// Any writer.
    Writer(Box<dyn AsyncWrite + Unpin + Send>),
    /// A daemon's destination: `path` beneath `root` (the root itself when
    /// `None`), with scp's rules, resolved through the descriptor with no
    /// symlink followed anywhere.
    Beneath {
        /// The daemon's root.
        root: RootDir,
        /// The requested path.
        path: Option<path::RelPath>,
    },
}

impl Dest {
    /// Maps a command-line argument: `-` is stdout, anything else a path.
    pub fn from_arg(arg: impl AsRef<OsStr>) -> Dest {
        let a = arg.as_ref();
        if a == "-" {
            Dest::Stdout
        } else {
            Dest::Path(PathBuf::from(a))
        }
    }
}

impl fmt::Debug for Dest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dest::Path(p) => write!(f, "Path({p:?})"),
            Dest::Stdout => f.write_str("Stdout"),
            Dest::Writer(_) => f.write_str("Writer"),
            Dest::Beneath { path, .. } => write!(f, "Beneath({path:?})"),
        }
    }
}

/// A progress report. `Bytes` comes at most once per 256 KiB chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The manifest is known: totals for the whole job.
    Started {
        /// Regular files and streams in the job.
        files: u64,
        /// Sum of their sizes (streams count 0).
        total_bytes: u64,
    },
    /// A file begins; `offset` bytes are already in place (resume).
    FileStarted {
        /// Path relative to the transfer root.
        path: String,
        /// Its size, `None` for a stream.
        size: Option<u64>,
        /// Bytes not sent because they were already there.
        offset: u64,
    },
    /// Bytes moved.
    Bytes {
        /// Position in the current file (including a resumed prefix).
        file_done: u64,
        /// Bytes of the job done (including resumed and skipped bytes).
        job_done: u64,
    },
    /// A file (or directory or symlink) is finished.
    FileFinished {
        /// Path relative to the transfer root.
        path: String,
        /// Written and verified (or already identical).
        ok: bool,
    },
}

/// Receives progress reports (e.g. to drive an indicatif bar). Called on
/// the transfer task: keep it quick.
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// Source options; the CLI flags of `vfer-send` map onto them.
#[derive(Clone, Default)]
pub struct SendOptions {
    /// `-r`: copy directories recursively (without it, a directory source fails).
    pub recursive: bool,
    /// `-p`: ask the sink to preserve mode and mtime.
    pub preserve: bool,
    /// Progress reports, if wanted.
    pub progress: Option<ProgressFn>,
    /// Paths under this directory are named to the peer relative to it (a
    /// daemon does not show its `--root` to clients).
    pub shown_root: Option<PathBuf>,
    /// Check files with BLAKE3 even if the sink offers XXH3-128 (do not set
    /// HELLO's CHECK_XXH3; PROTOCOL §6.7). For interoperability tests.
    pub blake3_only: bool,
    /// A daemon's memory budget: files are read and sent in pieces of this
    /// session's share (`crate::budget`) instead of whole chunks.
    pub budget: Option<&'static crate::budget::MemoryBudget>,
}

/// Sink options; the CLI flags of `vfer-recv` map onto them.
#[derive(Clone)]
pub struct ReceiveOptions {
    /// `-p`: preserve mode (`& 0o777`, and `& !umask` when
    /// [`ReceiveOptions::umask`] is set) and mtime. Either side can ask.
    pub preserve: bool,
    /// Resume from `NAME.vfer-part` files (default true).
    pub resume: bool,
    /// Skip a file when the destination already has one with the same size,
    /// mtime and BLAKE3 hash (default true; mtimes match only after `-p`).
    pub skip_identical: bool,
    /// Progress reports, if wanted.
    pub progress: Option<ProgressFn>,
    /// A daemon's umask, read once at its start, applied to every mode,
    /// preserved ones included: `-p` through a daemon never gives a file
    /// more permission than the daemon's umask allows. `None` (ssh-started
    /// and local modes): the process umask without `-p`, and with it the
    /// sent mode exactly, as `scp -p`.
    pub umask: Option<u32>,
    /// Check files with BLAKE3 even if the source offers XXH3-128 (do not
    /// set HELLO's CHECK_XXH3; PROTOCOL §6.7). For interoperability tests.
    pub blake3_only: bool,
    /// A daemon's memory budget: large DATA frames are taken in pieces of
    /// this session's share (`crate::budget`) instead of whole chunks.
    pub budget: Option<&'static crate::budget::MemoryBudget>,
}

impl Default for ReceiveOptions {
    fn default() -> Self {
        ReceiveOptions {
            preserve: false,
            resume: true,
            skip_identical: true,
            progress: None,
            umask: None,
            blake3_only: false,
            budget: None,
        }
    }
}

/// The process umask, read without changing it (Linux `/proc`), else
/// 0o022. A daemon reads it once at start for [`ReceiveOptions::umask`].
pub fn process_umask() -> u32 {
    sinkfs::umask()
}

impl fmt::Debug for SendOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendOptions")
            .field("recursive", &self.recursive)
            .field("preserve", &self.preserve)
            .field("progress", &self.progress.is_some())
            .field("shown_root", &self.shown_root)
            .finish()
    }
}

impl fmt::Debug for ReceiveOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceiveOptions")
            .field("preserve", &self.preserve)
            .field("resume", &self.resume)
            .field("skip_identical", &self.skip_identical)
            .field("umask", &self.umask)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// One entry that failed while the session went on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// The path (relative to the transfer root, or the local source path).
    pub path: String,
    /// Why.
    pub message: String,
}

/// What a session did; serializes to the CLI's `--json` object.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Regular files and streams now complete at the sink.
    pub files: u64,
    /// Directories created or already there.
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// File bytes that crossed the stream in this session.
    pub bytes: u64,
    /// File bytes not sent: resumed prefixes and identical files.
    pub bytes_skipped: u64,
    /// Wall-clock seconds of the session.
    pub seconds: f64,
    /// Entries that failed (a non-empty list means partial failure, exit 1).
    pub failures: Vec<Failure>,
}

impl Summary {
    /// True when nothing failed.
    pub fn is_complete(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Calls the progress callback if there is one.
pub(crate) fn report(p: &Option<ProgressFn>, ev: impl FnOnce() -> Progress) {
    if let Some(f) = p {
        f(&ev());
    }
}
