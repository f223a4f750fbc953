//! The peer's address, and path validation before following a new one
//! (PROTOCOL §3.9), sans-IO.
//!
//! A connection sends to one *validated* address: the one its handshake
//! ran over. An authentic packet newer than any before that arrives from
//! another address (the peer's NAT rebound, or the peer moved) does not
//! move it: the connection sends a PATH_CHALLENGE with 8 unpredictable
//! bytes to the new address, and switches only when a PATH_RESPONSE
//! echoing them arrives authenticated *from that address*. A forged
//! datagram never authenticates, a replayed one is refused by the VSL
//! replay window, and a packet copied by an on-path attacker and raced
//! from elsewhere gets a challenge the attacker can neither read nor
//! answer; meanwhile everything else still goes to the validated address.
//!
//! Anti-amplification: an unvalidated address receives only challenges,
//! at most [`MAX_CHALLENGES`] per new address and never more than three
//! times the bytes of authentic packets that came from it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::config::MAX_ACK_DELAY;
use super::connection::{Connection, Event};
use super::frame::Writer;
use super::mtu::PathMtu;
use crate::vsl::HEADER_LEN;

/// Challenges sent to one new address before giving up on it.
pub(super) const MAX_CHALLENGES: u8 = 3;
/// An unvalidated address receives at most this many times the bytes
/// that came from it (QUIC's factor, RFC 9000 §8).
pub(super) const AMPLIFICATION: u64 = 3;
/// Least time between two challenges to one address.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// Where the connection sends, and the address being validated.
#[derive(Debug, Default)]
pub(super) struct Path {
    /// The validated address everything is sent to (`None`: not told yet;
    /// the first authentic packet's source is taken).
    pub(super) current: Option<SocketAddr>,
    /// The address validated before `current`: the peer may return to it
    /// (a packet raced from elsewhere moved us) without a new challenge.
    previous: Option<SocketAddr>,
    /// The address being validated.
    challenge: Option<Challenge>,
    /// Data of the newest PATH_CHALLENGE received: a PATH_RESPONSE is owed.
    pub(super) respond: Option<[u8; 8]>,
    /// Where the datagram being handled came from (`None`: not told).
    pub(super) from: Option<SocketAddr>,
    /// Times the validated address changed.
    pub(super) changes: u64,
}

#[derive(Debug)]
struct Challenge {
    addr: SocketAddr,
    token: [u8; 8],
    /// Challenges sent so far, and when the next may go.
    sent: u8,
    next: Instant,
    interval: Duration,
    /// Authentic bytes received from `addr`, and bytes sent to it.
    credit_in: u64,
    credit_out: u64,
}

/// Same host and port (an IPv4-mapped IPv6 address is its IPv4 address).
pub(super) fn same(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && a.ip().to_canonical() == b.ip().to_canonical()
}

/// What [`Path::on_authentic`] decided.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Moved {
    /// Nothing changed.
    No,
    /// Back to the address validated before (no challenge needed).
    Back,
    /// A challenge to a new address starts.
    Validating,
}

impl Path {
    /// The address to send to.
    pub(super) fn current(&self) -> Option<SocketAddr> {
        self.current
    }

    /// An authentic packet of `len` bytes arrived from `from`; `newest`:
    /// it is newer than every packet before it.
    pub(super) fn on_authentic(
        &mut self,
        now: Instant,
        from: SocketAddr,
        len: usize,
        newest: bool,
        pto: Duration,
    ) -> Moved {
        let Some(cur) = self.current else {
            self.current = Some(from);
            return Moved::No;
        };
        if same(cur, from) {
            return Moved::No;
        }
        if let Some(c) = &mut self.challenge {
            if same(c.addr, from) {
                c.credit_in += len as u64;
                return Moved::No;
            }
        }
        if !newest {
            // A late packet from an old address, or a copy: not a move.
            return Moved::No;
        }
        if self.previous.is_some_and(|p| same(p, from)) {
            self.previous = Some(cur);
            self.current = Some(from);
            self.challenge = None;
            self.changes += 1;
            return Moved::Back;
        }
        let mut token = [0u8; 8];
        if getrandom::fill(&mut token).is_err() {
            // No OS randomness: a token from the clock still binds the
            // response to this challenge (the packet carrying it is
            // sealed under the session keys, so no outsider reads it).
            let t = now.elapsed().as_nanos() as u64 ^ (len as u64) << 48;
            token = t.to_le_bytes();
        }
        self.challenge = Some(Challenge {
            addr: from,
            token,
            sent: 0,
            next: now,
            interval: pto.max(MIN_INTERVAL),
            credit_in: len as u64,
            credit_out: 0,
        });
        Moved::Validating
    }

    /// A PATH_RESPONSE with `data` arrived from `from` (authenticated):
    /// true if it validates the address being challenged, which becomes
    /// the one we send to.
    pub(super) fn on_response(&mut self, data: [u8; 8], from: Option<SocketAddr>) -> bool {
        let (Some(c), Some(from)) = (&self.challenge, from) else {
            return false;
        };
        if c.token != data || !same(c.addr, from) {
            return false;
        }
        self.previous = self.current;
        self.current = Some(c.addr);
        self.challenge = None;
        self.changes += 1;
        true
    }

    /// The next challenge to send now, if one is due and the address's
    /// credit allows `size` more bytes: its destination and token.
    pub(super) fn challenge_due(&self, now: Instant, size: usize) -> Option<(SocketAddr, [u8; 8])> {
        let c = self.challenge.as_ref()?;
        let allowed = c.credit_in.saturating_mul(AMPLIFICATION);
        (c.sent < MAX_CHALLENGES && now >= c.next && c.credit_out + size as u64 <= allowed)
            .then_some((c.addr, c.token))
    }

    /// A challenge of `size` bytes went out.
    pub(super) fn on_challenge_sent(&mut self, now: Instant, size: usize) {
        if let Some(c) = &mut self.challenge {
            c.sent += 1;
            c.credit_out += size as u64;
            c.next = now + c.interval;
            c.interval *= 2;
        }
    }

    /// When a challenge is next due, or the last one times out.
    pub(super) fn timeout(&self) -> Option<Instant> {
        self.challenge.as_ref().map(|c| c.next)
    }

    /// Timers: the last challenge went unanswered for its interval, or the
    /// next one is due but the address's credit does not allow it; the
    /// address is given up (a new authentic packet from it starts again).
    pub(super) fn on_timeout(&mut self, now: Instant, size: usize) {
        if self.challenge.as_ref().is_some_and(|c| {
            let blocked = c.credit_out + size as u64 > c.credit_in.saturating_mul(AMPLIFICATION);
            now >= c.next && (c.sent >= MAX_CHALLENGES || blocked)
        }) {
            if let Some(c) = self.challenge.take() {
                tracing::debug!(
                    "{}: no PATH_RESPONSE; staying on the validated address",
                    c.addr
                );
            }
        }
    }
}

/// Bytes of a packet with one PATH_CHALLENGE or PATH_RESPONSE frame.
pub(super) const PATH_PACKET: usize = HEADER_LEN + 9;

impl Connection {
    /// Tells the connection the peer's address (the one its handshake ran
    /// over): packets go there until the peer proves another (§3.9).
    pub fn set_remote(&mut self, addr: SocketAddr) {
        self.path.current = Some(addr);
    }

    /// The peer's validated address: where packets go (`None` before
    /// [`set_remote`](Self::set_remote) or the first authentic packet
    /// through [`handle_datagram_from`](Self::handle_datagram_from)).
    pub fn remote(&self) -> Option<SocketAddr> {
        self.path.current()
    }

    /// An authentic packet of `len` bytes came from `from`, which is not
    /// the validated address (or none is known yet).
    pub(super) fn on_authentic_from(
        &mut self,
        now: Instant,
        from: SocketAddr,
        len: usize,
        newest: bool,
    ) {
        let old = self.path.current;
        let pto = self
            .recovery
            .pto_duration(MAX_ACK_DELAY, self.config.max_pto);
        match self.path.on_authentic(now, from, len, newest, pto) {
            Moved::No => {}
            Moved::Back => self.on_path_switched(now, old),
            Moved::Validating => {
                tracing::debug!("authentic packet from {from}: validating the new address");
                self.events.push_back(Event::NewAddress(from));
            }
        }
    }

    /// A PATH_RESPONSE arrived (frames of the datagram being handled).
    pub(super) fn on_path_response(&mut self, now: Instant, data: [u8; 8]) {
        let old = self.path.current;
        if self.path.on_response(data, self.path.from) {
            self.on_path_switched(now, old);
        }
    }

    /// The validated address changed from `old`: on another host the path
    /// is another, so its packet size and rate are learned again; and the
    /// peer, which heard nothing from us a while, gets an ACK at once.
    fn on_path_switched(&mut self, now: Instant, old: Option<SocketAddr>) {
        let (Some(old), Some(new)) = (old, self.path.current) else {
            return;
        };
        tracing::info!("the peer moved from {old} to {new}: following it");
        // A standing server routes the new address here (again, if it
        // had forgotten it).
        self.events.push_back(Event::NewAddress(new));
        if old.ip().to_canonical() != new.ip().to_canonical() {
            self.mtu = PathMtu::new(self.config.max_udp_payload);
            self.cc.set_mtu(u64::from(self.mtu.current()));
            self.cc.on_persistent_congestion(now);
        }
        self.ack.immediate = true;
    }

    /// A PATH_CHALLENGE to the address being validated, when one is due:
    /// its length in `buf` and where it goes (not the validated address
    /// [`poll_transmit`](Self::poll_transmit) sends to).
    pub fn poll_path_transmit(
        &mut self,
        now: Instant,
        buf: &mut [u8],
    ) -> Option<(usize, SocketAddr)> {
        if self.path.challenge.is_none() || !self.is_established() || buf.len() < PATH_PACKET {
            return None;
        }
        let (to, token) = self.path.challenge_due(now, PATH_PACKET)?;
        let mut w = Writer::new(&mut buf[HEADER_LEN..PATH_PACKET]);
        w.path(false, token);
        self.seal(buf, PATH_PACKET)?;
        self.path.on_challenge_sent(now, PATH_PACKET);
        Some((PATH_PACKET, to))
    }

    /// The PATH_RESPONSE owed, if any, for the validated address.
    pub(super) fn build_path_response(&mut self, buf: &mut [u8]) -> Option<usize> {
        if buf.len() < PATH_PACKET {
            return None;
        }
        let data = self.path.respond.take()?;
        let mut w = Writer::new(&mut buf[HEADER_LEN..PATH_PACKET]);
        w.path(true, data);
        self.seal(buf, PATH_PACKET)?;
        Some(PATH_PACKET)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_new_address_is_followed_only_after_its_response() {
        let t = Instant::now();
        let pto = Duration::from_millis(300);
        let mut p = Path::default();
        assert_eq!(
            p.on_authentic(t, a("192.0.2.1:1"), 100, true, pto),
            Moved::No
        );
        assert_eq!(p.current(), Some(a("192.0.2.1:1")));
        // Mapped and plain IPv4 are one address.
        assert_eq!(
            p.on_authentic(t, a("[::ffff:192.0.2.1]:1"), 100, true, pto),
            Moved::No
        );
        // Not newest: nothing.
        assert_eq!(
            p.on_authentic(t, a("192.0.2.1:2"), 100, false, pto),
            Moved::No
        );
        assert_eq!(
            p.on_authentic(t, a("192.0.2.1:2"), 40, true, pto),
            Moved::Validating
        );
        assert_eq!(
            p.current(),
            Some(a("192.0.2.1:1")),
            "not before the response"
        );
        let (to, token) = p.challenge_due(t, 42).expect("a challenge");
        assert_eq!(to, a("192.0.2.1:2"));
        // 3 x 40 bytes of credit: two challenges of 42, not three.
        p.on_challenge_sent(t, 42);
        assert!(p.challenge_due(t, 42).is_none(), "spaced");
        p.on_challenge_sent(t + pto, 42);
        assert!(p.challenge_due(t + pto * 10, 42).is_none(), "credit spent");
        // A wrong token, or the right one from elsewhere: no move.
        let mut wrong = token;
        wrong[0] ^= 1;
        assert!(!p.on_response(wrong, Some(a("192.0.2.1:2"))));
        assert!(!p.on_response(token, Some(a("198.51.100.1:2"))));
        assert!(!p.on_response(token, None));
        assert_eq!(p.current(), Some(a("192.0.2.1:1")));
        assert!(p.on_response(token, Some(a("192.0.2.1:2"))));
        assert_eq!(p.current(), Some(a("192.0.2.1:2")));
        // Back to the previous address at once.
        assert_eq!(
            p.on_authentic(t, a("192.0.2.1:1"), 40, true, pto),
            Moved::Back
        );
        assert_eq!(p.current(), Some(a("192.0.2.1:1")));
        assert_eq!(p.changes, 2);
    }

    #[test]
    fn an_unanswered_address_is_given_up() {
        let t = Instant::now();
        let pto = Duration::from_millis(100);
        let mut p = Path::default();
        p.on_authentic(t, a("192.0.2.1:1"), 1000, true, pto);
        p.on_authentic(t, a("192.0.2.1:2"), 1000, true, pto);
        let mut now = t;
        for _ in 0..MAX_CHALLENGES {
            assert!(p.challenge_due(now, 42).is_some());
            p.on_challenge_sent(now, 42);
            now = p.timeout().unwrap();
            p.on_timeout(now, 42);
        }
        assert!(p.timeout().is_none(), "given up");
        assert_eq!(p.current(), Some(a("192.0.2.1:1")));
    }
}
