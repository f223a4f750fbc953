//! Frames owed to the peer that no stream byte carries: a PING (keep-alive,
//! or the client's confirmation of the handshake), probe-timeout probes, and
//! a MAX_DATA window update. `transmit.rs` pays them.

/// What the next ack-eliciting packets owe the peer besides stream data.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Owed {
    /// A PING (or any ack-eliciting frame) is due.
    pub(super) ping: bool,
    /// Probe packets still to send after a probe timeout; they go out
    /// whatever the congestion window and pacer say.
    pub(super) probes: u8,
    /// A MAX_DATA frame is due (a window update, or one lost).
    pub(super) max_data: bool,
}

impl Owed {
    /// A probe timeout fired: the next two packets are probes (RFC 9002 §6.2.4).
    pub(super) fn probe(&mut self) {
        self.probes = 2;
    }

    /// Is a probe owed?
    pub(super) fn probing(&self) -> bool {
        self.probes > 0
    }

    /// An ack-eliciting packet went out: it served as the PING and as one probe.
    pub(super) fn on_eliciting_sent(&mut self) {
        self.ping = false;
        self.probes = self.probes.saturating_sub(1);
    }
}
