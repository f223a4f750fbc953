//! How a connection ends: the CLOSE frame we owe the peer, and the reason
//! the application is told (PROTOCOL §3.8).

use std::time::Duration;

use super::handshake::HandshakeError;

/// CLOSE code for a peer that broke the transport's rules (PROTOCOL §3.8):
/// stream data past the advertised limit or past the end of the stream, an
/// ACK of a packet number never sent, a stream split into too many pieces.
pub const CLOSE_VIOLATION: u64 = 4;

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloseReason {
    /// We closed it (`code` 0 is a normal close).
    #[error("connection closed locally (code {code})")]
    Local {
        /// Our close code.
        code: u64,
    },
    /// The peer closed it.
    #[error("peer closed the connection (code {code}){}", if reason.is_empty() { String::new() } else { format!(": {reason}") })]
    Peer {
        /// The peer's close code (0 = normal).
        code: u64,
        /// The peer's reason text.
        reason: String,
    },
    /// The peer broke the transport's rules; we closed with
    /// [`CLOSE_VIOLATION`] and this reason.
    #[error("closed the connection: the peer broke the transport protocol ({0}); a bug or a tampered build on the far side")]
    Violation(String),
    /// Nothing arrived from the peer for the idle timeout.
    #[error("no packet from the peer for {0:?}: peer dead or path lost")]
    IdleTimeout(Duration),
    /// The handshake did not complete in time.
    #[error("no handshake response within {0:?}: wrong address or port, blocked UDP, wrong secret/key, or no cipher suite in common (--cipher)")]
    HandshakeTimeout(Duration),
    /// The handshake failed.
    #[error("handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
    /// The server answered BUSY (it serves its most sessions, or is short
    /// of CPU or memory) until our timeout ran out.
    #[error("the server was busy (serving its maximum number of sessions, or short of CPU or memory): it answered {replies} times \"busy, try later\" over {waited:?}; try again later, with a longer --timeout, or ask its operator to raise -n")]
    Busy {
        /// How long we tried.
        waited: Duration,
        /// BUSY replies received.
        replies: u32,
    },
    /// This side exhausted its packet numbers.
    #[error("packet numbers exhausted")]
    Exhausted,
}

/// The end of a connection, once one is known.
#[derive(Default)]
pub(super) struct Closing {
    /// Our CLOSE frame (code, reason text), once we close.
    frame: Option<(u64, Vec<u8>)>,
    /// Why the connection ended (or is ending).
    reason: Option<CloseReason>,
}

impl Closing {
    /// We close with `code` and `text` for the peer.
    pub(super) fn local(&mut self, code: u64, text: &str) {
        self.frame = Some((code, text.as_bytes().to_vec()));
        self.reason = Some(CloseReason::Local { code });
    }

    /// Records `reason` as why the connection ended, over any earlier one
    /// (a peer's CLOSE, or the violation behind our own CLOSE).
    pub(super) fn set_reason(&mut self, reason: CloseReason) {
        self.reason = Some(reason);
    }

    /// Why the connection ended, if it has.
    pub(super) fn reason(&self) -> Option<&CloseReason> {
        self.reason.as_ref()
    }

    /// The CLOSE frame to (re)send: code and reason text.
    pub(super) fn frame(&self) -> Option<(u64, &[u8])> {
        self.frame.as_ref().map(|(c, r)| (*c, r.as_slice()))
    }

    /// The reason to report now the connection is over: the one recorded,
    /// or else `otherwise` (which is then recorded).
    pub(super) fn finish(&mut self, otherwise: CloseReason) -> CloseReason {
        self.reason.get_or_insert(otherwise).clone()
    }
}
