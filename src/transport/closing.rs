//! How a connection ends: the CLOSE frame we owe the peer, and the reason
//! the application is told (PROTOCOL §3.8).

use super::connection::CloseReason;

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
