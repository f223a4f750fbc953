//! The transfer layer's error type.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

use super::frame::FrameError;
use super::path::PathProblem;

/// Why a transfer session failed as a whole. Failures of single files do
/// not end a session; they are listed in [`super::Summary::failures`].
#[derive(Debug, Error)]
pub enum TransferError {
    /// Reading from or writing to the byte stream failed.
    #[error("connection failed: {0}")]
    Stream(#[source] io::Error),
    /// The stream ended inside a frame (the peer died mid-message).
    #[error("the peer closed the connection in the middle of a frame")]
    TruncatedFrame,
    /// The stream ended cleanly between frames, but before the session was over.
    #[error("the peer closed the connection before the transfer was complete")]
    PeerClosed,
    /// A frame that does not decode.
    #[error("bad frame from the peer: {0}")]
    Frame(#[from] FrameError),
    /// A well-formed message at the wrong time or with inconsistent fields.
    #[error("protocol violation by the peer: {0}")]
    Protocol(String),
    /// The peer sent ERROR.
    #[error("the far side says: {0}")]
    Peer(String),
    /// The peer sent a path that could escape the destination.
    #[error("refusing unsafe path from the peer {path}: {problem}")]
    UnsafePath {
        /// The path as received (escaped).
        path: String,
        /// What is wrong with it.
        problem: PathProblem,
    },
    /// A local file or directory operation failed fatally.
    #[error("{}: {source}", path.display())]
    Local {
        /// The local path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The destination cannot take what was sent (e.g. several sources but
    /// the destination is not an existing directory).
    #[error("{0}")]
    Destination(String),
    /// The destination file system is full. The `.vfer-part` is kept so that
    /// re-running the same command resumes.
    #[error(
        "disk full writing {}: {needed} more bytes are needed to finish the transfer \
         but only {available} are free (free at least {} bytes, then re-run to resume)",
        path.display(), needed.saturating_sub(*available)
    )]
    DiskFull {
        /// The file being written.
        path: PathBuf,
        /// Bytes still to write for this file and the files after it.
        needed: u64,
        /// Bytes free for an unprivileged user on that file system.
        available: u64,
    },
    /// Bad arguments from the caller.
    #[error("{0}")]
    Usage(String),
}

impl TransferError {
    /// A protocol violation with a message.
    pub(crate) fn protocol(s: impl Into<String>) -> TransferError {
        TransferError::Protocol(s.into())
    }
}
