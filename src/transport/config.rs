//! Connection settings and statistics.

use std::time::Duration;

use super::cc::CcChoice;
use super::pathcache::PathHint;
use crate::vsl::CipherChoice;

/// The most a receiver holds back before acknowledging an ack-eliciting packet.
/// Both sides assume this value for the peer (it is part of the protocol).
pub const MAX_ACK_DELAY: Duration = Duration::from_millis(5);

/// Tunables of one connection. `Default` suits transfers on paths up to
/// ~1 Gbit/s x 100 ms.
#[derive(Debug, Clone)]
pub struct Config {
    /// Congestion controller.
    pub cc: CcChoice,
    /// Never pace faster than this many bytes per second (`--limit`).
    pub rate_cap: Option<u64>,
    /// Receive window in bytes: the most stream data held for the application.
    pub recv_window: usize,
    /// Send buffer in bytes: the most unacknowledged stream data kept.
    pub send_buffer: usize,
    /// Close after this long without hearing from the peer.
    pub idle_timeout: Duration,
    /// Send a PING after this long without sending anything ack-eliciting.
    pub keepalive: Duration,
    /// Give up a handshake after this long.
    pub handshake_timeout: Duration,
    /// Largest UDP payload this side may send or accept (PLPMTUD's ceiling).
    pub max_udp_payload: u16,
    /// Acknowledge at least every this many ack-eliciting packets.
    pub ack_every: u32,
    /// Cap on the probe timeout after backoff, so a path back from a
    /// blackout is noticed quickly.
    pub max_pto: Duration,
    /// VSL suites offered (client) or accepted (server), `--cipher`.
    pub cipher: CipherChoice,
    /// What a previous transfer measured about this path (the path cache):
    /// the sender starts near that rate and checks it in the first round
    /// trips instead of ramping up from an initial window.
    pub path_hint: Option<PathHint>,
    /// A daemon's memory budget (`crate::budget`): the receive window and
    /// send buffer in use are this session's fair share of it now, at most
    /// `recv_window` and `send_buffer`. `None`: those sizes, fixed.
    pub budget: Option<&'static crate::budget::MemoryBudget>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            cc: CcChoice::Vfer,
            rate_cap: None,
            recv_window: 16 << 20,
            send_buffer: 16 << 20,
            idle_timeout: Duration::from_secs(30),
            keepalive: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            max_udp_payload: 65_465,
            ack_every: 4,
            max_pto: Duration::from_secs(2),
            cipher: CipherChoice::Auto,
            path_hint: None,
            budget: None,
        }
    }
}

/// Most memory a remembered path may ask for, per buffer.
pub const MAX_HINTED_BUFFER: usize = 1 << 30;
/// Buffers hold this many remembered bandwidth-delay products: one in
/// flight, and while a hole waits for its retransmission (one RTT or more
/// if that is lost too), what arrives behind it.
const HINTED_BUFFER_BDPS: u64 = 8;

impl Config {
    /// With a path hint, the send buffer and receive window grow to
    /// [`HINTED_BUFFER_BDPS`] of the remembered path's bandwidth-delay
    /// product (at most [`MAX_HINTED_BUFFER`]); they never shrink. A long
    /// fast path (1 Gbit/s x 1 s is 125 MB in flight) needs more than the
    /// defaults, which suit ~1 Gbit/s x 100 ms.
    pub fn sized_for_hint(mut self) -> Config {
        if let Some(h) = self.path_hint {
            let want =
                (h.bdp().saturating_mul(HINTED_BUFFER_BDPS)).min(MAX_HINTED_BUFFER as u64) as usize;
            self.recv_window = self.recv_window.max(want);
            self.send_buffer = self.send_buffer.max(want);
        }
        self
    }
}

/// Counters of one connection, for `--json` and tests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Datagrams sent.
    pub packets_sent: u64,
    /// Datagrams received and authenticated.
    pub packets_received: u64,
    /// UDP payload bytes sent.
    pub bytes_sent: u64,
    /// UDP payload bytes received and authenticated.
    pub bytes_received: u64,
    /// Stream bytes sent more than once.
    pub stream_bytes_retransmitted: u64,
    /// Packets declared lost.
    pub packets_lost: u64,
    /// Datagrams dropped: not a VSL packet of this connection.
    pub dropped_malformed: u64,
    /// Datagrams dropped: MAC did not verify.
    pub dropped_auth: u64,
    /// Datagrams dropped: replayed or too old.
    pub dropped_replay: u64,
    /// Authenticated packets with frames that broke the protocol.
    pub protocol_errors: u64,
    /// Smoothed RTT.
    pub srtt: Duration,
    /// Minimum RTT.
    pub min_rtt: Duration,
    /// Current path MTU (UDP payload bytes).
    pub path_mtu: u16,
    /// Congestion window in bytes.
    pub cwnd: u64,
    /// Pacing rate in bytes per second.
    pub pacing_rate: u64,
    /// Congestion controller name.
    pub cc: &'static str,
    /// The negotiated VSL suite; `None` before the handshake.
    pub suite: Option<crate::vsl::Suite>,
    /// Time the controller spent competing with a flow that held the
    /// bottleneck's queue (a TCP flow, say) rather than keeping it short.
    pub cc_time_competing: Duration,
    /// What held the sender back, and for how long.
    pub limited: super::LimitedTimes,
    /// The sender's model of the path (bottleneck rate, base RTT, random
    /// loss), once it has one worth remembering; `None` on a receiver.
    pub path_estimate: Option<PathHint>,
    /// The peer's highest packet number received plus one: about how many
    /// packets it sent, so `1 - packets_received / peer_packets_seen` is the
    /// loss on the way here (a receiver's view of the path).
    pub peer_packets_seen: u64,
    /// The path toward this side as its receiver measured it (arrival
    /// rate, base RTT, loss of the peer's packet numbers; see
    /// [`super::arrival`]): what a client that pulled remembers.
    pub received_path: Option<PathHint>,
    /// Times the peer's validated address changed (a NAT rebinding, or the
    /// peer moved; PROTOCOL §3.9).
    pub path_changes: u64,
    /// A path hint was given and the controller used it: `Some(true)` it
    /// held, `Some(false)` the path had changed and it was abandoned.
    pub path_hint_held: Option<bool>,
}
