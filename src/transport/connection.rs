//! One VFER connection as a sans-IO state machine: datagrams and timer
//! expiries go in, datagrams to send and the next deadline come out, and the
//! application reads and writes one reliable byte stream each way.
//!
//! Receiving is in `receive.rs`, packet assembly in `transmit.rs`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::auth::{Auth, ServerHandshake};
use super::cc::Controller;
use super::closing::{CloseReason, Closing, CLOSE_VIOLATION};
use super::config::{Config, Stats, MAX_ACK_DELAY};
use super::handshake::{self, HandshakeError, HandshakeRandom, Offer, TransportParams};
use super::mtu::PathMtu;
use super::owed::Owed;
use super::pacer::Pacer;
use super::ranges::RangeSet;
use super::recovery::{AckOutcome, Recovery};
use super::stream::{RecvBuffer, SendBuffer};
use crate::vsl::{self, Role, KEY_LEN};

/// Unsent bytes the application may always queue (see
/// [`Connection::send_space`]): one transfer-layer chunk.
pub const WRITE_AHEAD_MIN: u64 = 256 * 1024;

/// Something the application should know about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Keys are agreed; the stream can carry data.
    Connected,
    /// The connection is over.
    Closed(CloseReason),
    /// An authentic packet came from this new address, now being validated
    /// (PROTOCOL §3.9): a standing server routes its datagrams here.
    NewAddress(SocketAddr),
}

pub(super) enum State {
    /// Client: REQUEST sent, waiting for RESPONSE.
    ClientHandshake {
        request: Vec<u8>,
        next_send: Instant,
        interval: Duration,
        first_sent: Option<Instant>,
        retransmitted: bool,
        rnd: HandshakeRandom,
        /// BUSY replies received so far (`busy.rs`).
        busy_count: u32,
        /// The first REQUEST's timestamp (a retry after BUSY moves it on).
        first_timestamp: handshake::Tai64n,
    },
    /// Keys are agreed.
    Established,
    /// We sent CLOSE; resend it a few times, then we are done.
    Closing { until: Instant, resend: bool },
    /// Over.
    Closed,
}

/// Receiver-side acknowledgement state.
#[derive(Default)]
pub(super) struct AckState {
    pub(super) received: RangeSet,
    pub(super) largest: Option<u64>,
    pub(super) largest_time: Option<Instant>,
    pub(super) eliciting_since_ack: u32,
    pub(super) deadline: Option<Instant>,
    pub(super) immediate: bool,
}

/// A VFER connection.
pub struct Connection {
    pub(super) auth: Auth,
    pub(super) config: Config,
    pub(super) state: State,
    pub(super) vsl: Option<vsl::Session>,
    pub(super) send: SendBuffer,
    pub(super) recv: RecvBuffer,
    pub(super) recovery: Recovery,
    pub(super) cc: Box<dyn Controller>,
    pub(super) pacer: Pacer,
    pub(super) pacing_wait: Option<Instant>,
    /// What held the sender back (for `Stats::limited`).
    pub(super) limits: super::limits::LimitClock,
    pub(super) mtu: PathMtu,
    pub(super) ack: AckState,
    /// The receiver's view of the path toward us (`Stats::received_path`).
    pub(super) arrivals: super::arrival::ArrivalMeter,
    /// Frames owed besides stream data.
    pub(super) owed: Owed,
    pub(super) last_recv: Instant,
    pub(super) last_eliciting_sent: Instant,
    pub(super) started: Instant,
    pub(super) events: VecDeque<Event>,
    pub(super) stats: Stats,
    pub(super) outcome: AckOutcome,
    pub(super) closing: Closing,
    /// The peer's validated address, and the one being validated.
    pub(super) path: super::path::Path,
}

impl Connection {
    fn new(config: Config, role: Role, secret: &[u8; KEY_LEN], now: Instant) -> Connection {
        let config = config.sized_for_hint();
        let mtu = PathMtu::new(config.max_udp_payload);
        let cc = config.cc.build(u64::from(mtu.current()), config.path_hint);
        let window = config
            .budget
            .map_or(config.recv_window, |b| b.window(config.recv_window));
        Connection {
            auth: Auth::new(role, secret),
            send: SendBuffer::new(config.send_buffer),
            recv: RecvBuffer::with_window(config.recv_window, window),
            config,
            state: State::Closed,
            vsl: None,
            recovery: Recovery::new(),
            cc,
            pacer: Pacer::new(),
            pacing_wait: None,
            limits: Default::default(),
            mtu,
            ack: AckState::default(),
            arrivals: Default::default(),
            owed: Owed::default(),
            last_recv: now,
            last_eliciting_sent: now,
            started: now,
            events: VecDeque::new(),
            stats: Stats::default(),
            outcome: AckOutcome::default(),
            closing: Closing::default(),
            path: Default::default(),
        }
    }

    pub(super) fn our_params(&self) -> TransportParams {
        TransportParams {
            max_udp_payload: u32::from(self.config.max_udp_payload),
            initial_max_data: self.recv.max_data(),
            idle_timeout_ms: self.config.idle_timeout.as_millis().min(u32::MAX as u128) as u32,
        }
    }

    /// The suites we offer as a client (`Config::cipher`, preference order).
    pub(super) fn our_offer(&self) -> Offer {
        Offer::new(self.config.cipher.suites())
    }

    /// Starts a client connection: its first `poll_transmit` is the REQUEST.
    pub fn client(
        config: Config,
        secret: &[u8; KEY_LEN],
        rnd: HandshakeRandom,
        now: Instant,
    ) -> Connection {
        let mut c = Connection::new(config, Role::Client, secret, now);
        let request = handshake::encode_request(secret, &rnd, &c.our_params(), &c.our_offer());
        c.state = State::ClientHandshake {
            request,
            next_send: now,
            interval: Duration::from_millis(500),
            first_sent: None,
            retransmitted: false,
            first_timestamp: rnd.timestamp,
            rnd,
            busy_count: 0,
        };
        c
    }

    /// Accepts a client whose REQUEST is `request` (authenticated here with
    /// the secret). The connection answers with RESPONSE on its first
    /// `poll_transmit`.
    pub fn server(
        config: Config,
        secret: &[u8; KEY_LEN],
        rnd: HandshakeRandom,
        now: Instant,
        request: &mut [u8],
    ) -> Result<Connection, HandshakeError> {
        let req = handshake::decode_request(secret, request)?;
        let Some(suite) = req.offer.choose(config.cipher.suites()) else {
            tracing::warn!(
                "refusing a client that offers only {}; this side accepts {:?} (--cipher)",
                req.offer,
                config.cipher
            );
            return Err(HandshakeError::NoCommonSuite);
        };
        tracing::info!("VSL suite {suite} chosen; the client offered {}", req.offer);
        let mut c = Connection::new(config, Role::Server, secret, now);
        let keys = handshake::session_keys(
            secret,
            &req.nonce,
            &rnd.nonce,
            &rnd.dh_secret,
            &req.public,
            &req.offer,
            suite,
        )?;
        let response = handshake::encode_response(secret, &req.nonce, &rnd, &c.our_params(), suite);
        c.vsl = Some(vsl::Session::new(&keys, Role::Server, 0));
        c.apply_peer_params(req.params);
        c.auth.server = Some(ServerHandshake {
            client_nonce: req.nonce,
            response,
            response_pending: true,
            sent_at: None,
        });
        c.state = State::Established;
        Ok(c)
    }

    pub(super) fn apply_peer_params(&mut self, p: TransportParams) {
        self.send.raise_limit(p.initial_max_data);
        let peer_max = p.max_udp_payload.min(u32::from(u16::MAX)) as u16;
        if peer_max < self.config.max_udp_payload {
            self.config.max_udp_payload = peer_max.max(mtu_floor());
            self.mtu = PathMtu::new(self.config.max_udp_payload);
        }
        if p.idle_timeout_ms > 0 {
            let peer = Duration::from_millis(u64::from(p.idle_timeout_ms));
            self.config.idle_timeout = self.config.idle_timeout.min(peer);
        }
    }

    /// Is the handshake complete (keys agreed)?
    pub fn is_established(&self) -> bool {
        matches!(self.state, State::Established) && self.vsl.is_some()
    }

    /// Is the connection over (nothing more to send or receive)?
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Why the connection ended, once it has.
    pub fn close_reason(&self) -> Option<&CloseReason> {
        self.closing.reason()
    }

    /// Has a packet under the session keys arrived from the peer? (The
    /// server's sign that the client holds the secret and got our RESPONSE.)
    /// For tests: the driver learns it from [`Event::Connected`].
    #[cfg(test)]
    pub fn is_confirmed(&self) -> bool {
        self.auth.confirmed
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Queues stream bytes; returns how many fit in the send buffer.
    pub fn write(&mut self, data: &[u8]) -> usize {
        if matches!(self.state, State::Closing { .. } | State::Closed) {
            return 0;
        }
        if let Some(b) = self.config.budget {
            self.send.shrink_to(b.window(self.config.send_buffer));
        }
        let n = data.len().min(self.send_space());
        self.send.write(&data[..n])
    }

    /// Room in the send buffer for the application: the buffer's free space,
    /// but unsent bytes only up to [`WRITE_AHEAD_MIN`] or twice the
    /// congestion window, whichever is more. The application stays that
    /// far ahead of the wire, so the buffer's memory follows what is in
    /// flight rather than the configured size (a thousand slow sessions do
    /// not each buffer 16 MiB of a file), while a fast path still has a
    /// window's worth queued.
    pub fn send_space(&self) -> usize {
        let ahead = (2 * self.cc.window()).max(WRITE_AHEAD_MIN);
        let unsent = self.send.written() - self.send.max_offset();
        let room = match self.config.budget {
            Some(b) => self.send.space_below(b.window(self.config.send_buffer)),
            None => self.send.space(),
        };
        room.min(ahead.saturating_sub(unsent) as usize)
    }

    /// Ends our direction of the stream after what was written.
    pub fn finish(&mut self) {
        self.send.finish();
    }

    /// Has the peer acknowledged all our stream data and the end of stream?
    pub fn is_send_complete(&self) -> bool {
        self.send.is_fully_acked()
    }

    /// Reads in-order stream bytes; 0 means nothing is ready (check `is_read_finished`).
    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        let n = self.recv.read(buf);
        if n > 0 {
            if let Some(b) = self.config.budget {
                let w = b.window(self.config.recv_window);
                self.recv.set_window(w);
                self.recv.shrink_to_window();
            }
            let window = self.recv.window();
            if self.recv.max_data() >= self.recv.advertised() + window / 4 {
                self.owed.max_data = true;
            }
        }
        n
    }

    /// Is a window update (MAX_DATA) waiting to be sent? `read` makes one
    /// due once the application has taken a quarter of the window.
    pub fn window_update_due(&self) -> bool {
        self.owed.max_data
    }

    /// Bytes ready for `read`.
    pub fn readable(&self) -> u64 {
        self.recv.readable()
    }

    /// Has the peer ended its stream and have we read all of it?
    pub fn is_read_finished(&self) -> bool {
        self.recv.is_finished()
    }

    /// Closes the connection: sends CLOSE (a few times) and stops.
    pub fn close(&mut self, now: Instant, code: u64, reason: &str) {
        match self.state {
            State::Closing { .. } | State::Closed => return,
            State::ClientHandshake { .. } => {
                self.finish_close(CloseReason::Local { code });
                return;
            }
            State::Established => {}
        }
        // Lingering answers a peer that has not seen our CLOSE. After a
        // clean end (the peer has every byte we sent, we have all of its
        // own) it has nothing left to resend but its stream's end, once:
        // on a client one probe timeout covers that, and the user's
        // command does not wait three of them (0.6-0.9 s on a 200 ms path).
        // A server lingers three even then: no user waits for it, and a
        // client whose stream's end is acknowledged only by our CLOSE
        // (a pull's sink) resends it a probe timeout after losing that
        // CLOSE; if nobody answers, it waits out its idle timeout (30 s
        // in several of the lab's pulls at 5 % loss).
        let clean = code == 0
            && self.auth.role == Role::Client
            && self.send.is_fully_acked()
            && self.recv.is_finished();
        let linger = self
            .recovery
            .pto_duration(MAX_ACK_DELAY, self.config.max_pto)
            * if clean { 1 } else { 3 };
        self.state = State::Closing {
            until: now + linger,
            resend: true,
        };
        self.closing.local(code, reason);
    }

    /// The authenticated peer broke the transport's rules (`why`): count it
    /// and close with [`CLOSE_VIOLATION`], so the peer learns why instead
    /// of stalling on a frame we dropped yet acknowledged.
    pub(super) fn violation(&mut self, now: Instant, why: String) {
        self.stats.protocol_errors += 1;
        if let State::Closing { resend, .. } = &mut self.state {
            // Already closing, and saying why: keep that CLOSE, and send it
            // again (the peer has not seen it).
            *resend = true;
            return;
        }
        tracing::warn!("closing: the peer broke the transport protocol: {why}");
        self.close(now, CLOSE_VIOLATION, &format!("protocol error: {why}"));
        self.closing.set_reason(CloseReason::Violation(why));
    }

    pub(super) fn finish_close(&mut self, reason: CloseReason) {
        if matches!(self.state, State::Closed) {
            return;
        }
        self.state = State::Closed;
        let r = self.closing.finish(reason);
        self.events.push_back(Event::Closed(r));
    }

    /// Stream bytes written but not yet acknowledged by the peer (for a
    /// progress bar that shows what the receiver has).
    pub fn send_unconfirmed(&self) -> u64 {
        self.send.unconfirmed()
    }

    /// Statistics so far.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats.clone();
        s.srtt = self.recovery.rtt.smoothed();
        s.min_rtt = self.recovery.rtt.min();
        s.path_mtu = self.mtu.current();
        s.cwnd = self.cc.window();
        s.pacing_rate = self.pacing_rate();
        s.cc = self.cc.name();
        s.suite = self.vsl.as_ref().map(|v| v.suite());
        s.cc_time_competing = self.cc.time_competing();
        s.path_estimate = self.cc.path_estimate();
        s.path_hint_held = self.cc.path_hint_held();
        s.peer_packets_seen = self.ack.largest.map_or(0, |l| l + 1);
        s.received_path = self.arrivals.estimate().and_then(|(rate, loss)| {
            super::pathcache::PathHint::new(rate, s.min_rtt, loss.clamp(0.0, 0.49))
        });
        s.packets_lost = self.recovery.lost_packets;
        s.limited = self.limits.times(Instant::now());
        s.path_changes = self.path.changes;
        s
    }

    pub(super) fn pacing_rate(&self) -> u64 {
        let r = self.cc.pacing_rate();
        self.config.rate_cap.map_or(r, |cap| r.min(cap.max(1)))
    }

    /// Lowers the pacing cap to `bytes_per_sec` (never raises it): a
    /// daemon applies the rate cap its client asked for on the wire.
    pub fn cap_rate(&mut self, bytes_per_sec: u64) {
        let cap = self
            .config
            .rate_cap
            .map_or(bytes_per_sec, |c| c.min(bytes_per_sec));
        self.config.rate_cap = Some(cap.max(1));
    }

    /// The earliest time `handle_timeout` must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut add = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        match &self.state {
            State::Closed => return None,
            State::Closing { until, .. } => return Some(*until),
            State::ClientHandshake {
                next_send,
                busy_count,
                ..
            } => {
                add(Some(*next_send));
                add(Some(self.started + self.handshake_deadline(*busy_count)));
                return t;
            }
            State::Established => {}
        }
        add(self.recovery.timeout(MAX_ACK_DELAY, self.config.max_pto));
        add(self.ack.deadline);
        add(self.pacing_wait);
        add(Some(self.last_recv + self.config.idle_timeout));
        add(Some(self.last_eliciting_sent + self.config.keepalive));
        add(self.path.timeout());
        t
    }

    /// Processes timers that expired at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        match &mut self.state {
            State::Closed => return,
            State::Closing { until, .. } => {
                if now >= *until {
                    self.finish_close(CloseReason::Local { code: 0 });
                }
                return;
            }
            State::ClientHandshake { busy_count, .. } => {
                let replies = *busy_count;
                let d = self.handshake_deadline(replies);
                if now >= self.started + d {
                    self.finish_close(if replies > 0 {
                        CloseReason::Busy { waited: d, replies }
                    } else {
                        CloseReason::HandshakeTimeout(d)
                    });
                }
                return;
            }
            State::Established => {}
        }
        if now >= self.last_recv + self.config.idle_timeout {
            let d = self.config.idle_timeout;
            self.finish_close(CloseReason::IdleTimeout(d));
            return;
        }
        if self.pacing_wait.is_some_and(|t| now >= t) {
            self.pacing_wait = None;
        }
        if now >= self.last_eliciting_sent + self.config.keepalive {
            self.owed.ping = true;
            // Idle: give back the stream rings' memory if they are empty.
            self.send.trim();
            self.recv.trim();
        }
        if self
            .recovery
            .timeout(MAX_ACK_DELAY, self.config.max_pto)
            .is_some_and(|t| now >= t)
        {
            let mut out = std::mem::take(&mut self.outcome);
            let pto = self.recovery.on_timeout(now, &mut out);
            self.on_lost_packets(now, &out);
            self.outcome = out;
            if pto {
                self.owed.probe();
                if self.recovery.pto_count >= 3 {
                    self.cc.on_persistent_congestion(now);
                    self.mtu.on_black_hole(now);
                    self.cc.set_mtu(u64::from(self.mtu.current()));
                }
            }
        }
        self.mtu.poll(now);
        self.path.on_timeout(now, super::path::PATH_PACKET);
    }

    /// How long a client tries to connect: the handshake timeout, or once
    /// the server answered BUSY, the whole `--timeout` (idle timeout).
    fn handshake_deadline(&self, busy_count: u32) -> Duration {
        if busy_count > 0 {
            self.config.handshake_timeout.max(self.config.idle_timeout)
        } else {
            self.config.handshake_timeout
        }
    }

    /// Reacts to packets declared lost: their contents go back in the queue.
    pub(super) fn on_lost_packets(&mut self, now: Instant, out: &AckOutcome) {
        let mut lost_bytes = 0;
        let mut newest: Option<Instant> = None;
        for p in &out.lost {
            if p.mtu_probe {
                self.mtu.on_lost(now, p.pn);
                continue;
            }
            lost_bytes += u64::from(p.size);
            newest = Some(newest.map_or(p.time_sent, |n| n.max(p.time_sent)));
            if let Some(r) = &p.stream {
                self.send.on_lost(r.clone(), p.fin);
            } else if p.fin {
                self.send.on_lost(0..0, true);
            }
            if p.max_data {
                self.owed.max_data = true;
            }
        }
        if let Some(t) = newest {
            self.cc.on_loss(now, lost_bytes, t);
        }
    }
}

/// The smallest max_udp_payload we accept from a peer.
fn mtu_floor() -> u16 {
    super::mtu::BASE_PLPMTU
}
