//! The server side of the pre-handshake (docs/PROTOCOL.md §7.6), sans-IO:
//! a [`Gate`] for the standing server's demultiplexer. It keeps no state for
//! an address that has not echoed a valid cookie, keeps at most
//! `max_handshakes` pending secrets, and hands the transport handshake the
//! secret S agreed with that address.
//!
//! Replays: each S verifies one transport REQUEST (the pending entry goes
//! when the session is admitted), so a recorded REQUEST never opens a
//! session. A recorded HELLO with its cookie, replayed from the recorded
//! address while the cookie lives, would make a new pending entry (two
//! X25519 and a pending slot for its lifetime) although nobody can use it;
//! so the gate remembers the `e_c` of every ACCEPT for the cookie lifetime
//! ([`USED_EPH_TTL`], at most [`USED_EPH_CAP`]) and drops a HELLO that
//! repeats one whose pending entry is gone.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use x25519_dalek::StaticSecret;
use zeroize::Zeroizing;

use super::cookie::{CookieJar, COOKIE_ROTATION};
use super::crypto::server_derive;
use super::hostkey::HostKey;
use super::wire::{Accept, Cookie, Hello};
use crate::bootstrap::listen::{host_of, Gate};
use crate::bootstrap::wire::Secret;

/// Limits of the pre-handshake.
#[derive(Debug, Clone)]
pub struct GateOptions {
    /// Most addresses with a pending secret at once; HELLOs beyond it are
    /// dropped (the client retries).
    pub max_handshakes: usize,
    /// A pending secret is forgotten if no REQUEST uses it within this.
    pub pending_ttl: Duration,
    /// Most pending secrets of one host (IPv4 address or IPv6 /64,
    /// [`host_of`]); a new one beyond it replaces that host's oldest.
    pub max_per_host: usize,
}

impl Default for GateOptions {
    fn default() -> Self {
        GateOptions {
            max_handshakes: 256,
            pending_ttl: Duration::from_secs(10),
            max_per_host: usize::MAX,
        }
    }
}

/// How long the `e_c` of an ACCEPT is remembered: the longest a cookie
/// for it stays valid (two rotations).
pub const USED_EPH_TTL: Duration = Duration::from_secs(2 * COOKIE_ROTATION.as_secs());
/// Most `e_c` remembered (32 bytes each); beyond it the oldest is forgotten
/// (only HELLOs from proven addresses are remembered).
pub const USED_EPH_CAP: usize = 65_536;

/// Longest a pending secret is kept for a client that the daemon keeps
/// answering BUSY (the REQUEST timestamp window: longer than any
/// `--timeout` a client would wait).
pub const BUSY_KEEP: Duration = crate::bootstrap::listen::TIMESTAMP_WINDOW;
/// How long after a BUSY a pending secret is kept for the retry: longer
/// than a client's longest backoff (8 s times a jitter below 1.5,
/// PROTOCOL §2.6).
pub const BUSY_RETRY_KEEP: Duration = Duration::from_secs(16);

/// Counters, for tests and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GateStats {
    /// COOKIE replies sent.
    pub cookies: u64,
    /// ACCEPT replies sent (first and repeated).
    pub accepts: u64,
    /// Datagrams dropped: not a HELLO, malformed, low-order, or over the cap.
    pub dropped: u64,
}

struct Pending {
    client_eph: [u8; 32],
    accept: Vec<u8>,
    secret: Secret,
    binding: [u8; 32],
    /// When the ACCEPT was made.
    created: Instant,
    /// Kept at least until then for a client answered BUSY ([`Gate::busy`]).
    kept: Option<Instant>,
}

impl Pending {
    fn live(&self, now: Instant, ttl: Duration) -> bool {
        now.saturating_duration_since(self.created) < ttl || self.kept.is_some_and(|k| now < k)
    }
}

/// What the login handler learns about a session's client from its
/// pre-handshake.
#[derive(Debug, Clone)]
pub struct LoginContext {
    /// The value the client's login message must repeat (`None`: the
    /// session did not come through this gate's pre-handshake).
    pub binding: Option<[u8; 32]>,
}

/// The challenge-response [`Gate`].
pub struct LoginGate {
    key: HostKey,
    jar: CookieJar,
    pending: HashMap<SocketAddr, Pending>,
    /// `e_c` of ACCEPTs made, oldest first, and the same as a set.
    used: VecDeque<([u8; 32], Instant)>,
    used_set: HashSet<[u8; 32]>,
    opts: GateOptions,
    stats: GateStats,
}

fn random32() -> Option<Zeroizing<[u8; 32]>> {
    let mut b = Zeroizing::new([0u8; 32]);
    getrandom::fill(&mut b[..]).ok()?;
    Some(b)
}

impl LoginGate {
    /// A gate for a server with host key `key`.
    pub fn new(key: HostKey, opts: GateOptions, now: Instant) -> std::io::Result<Self> {
        let fresh = random32().ok_or_else(|| std::io::Error::other("no OS randomness"))?;
        Ok(LoginGate {
            key,
            jar: CookieJar::new(now, *fresh),
            pending: HashMap::new(),
            used: VecDeque::new(),
            used_set: HashSet::new(),
            opts,
            stats: GateStats::default(),
        })
    }

    /// Counters so far.
    pub fn stats(&self) -> GateStats {
        self.stats
    }

    /// Number of addresses with a pending secret.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Handles a datagram from `from` (an address without a session);
    /// writes the answer, if any, into `reply`.
    pub fn handle(&mut self, from: SocketAddr, d: &[u8], now: Instant, reply: &mut Vec<u8>) {
        let Some(hello) = Hello::decode(d) else {
            self.stats.dropped += 1;
            return;
        };
        if self.jar.due(now) {
            if let Some(fresh) = random32() {
                self.jar.rotate(now, *fresh);
            }
        }
        let proven = hello
            .cookie
            .is_some_and(|c| self.jar.check(from, &hello.client_eph, &c));
        if !proven {
            let c = Cookie {
                client_eph: hello.client_eph,
                cookie: self.jar.make(from, &hello.client_eph),
            };
            c.encode_into(reply);
            self.stats.cookies += 1;
            return;
        }
        let ttl = self.opts.pending_ttl;
        if let Some(p) = self.pending.get(&from) {
            if p.client_eph == hello.client_eph && p.live(now, ttl) {
                reply.extend_from_slice(&p.accept);
                self.stats.accepts += 1;
                return;
            }
        }
        if self.used_before(&hello.client_eph, now) {
            // A replayed HELLO: its pending entry was used or expired.
            self.stats.dropped += 1;
            return;
        }
        self.limit_host(from);
        if self.pending.len() >= self.opts.max_handshakes && !self.make_room(from, now) {
            self.stats.dropped += 1;
            return;
        }
        let Some(eph) = random32() else {
            self.stats.dropped += 1;
            return;
        };
        let eph = StaticSecret::from(*eph);
        let Ok((derived, server_eph)) = server_derive(&eph, self.key.secret(), &hello.client_eph)
        else {
            self.stats.dropped += 1;
            return;
        };
        let accept = Accept {
            client_eph: hello.client_eph,
            server_eph,
            server_static: *self.key.public(),
            confirm: derived.confirm,
        }
        .encode();
        reply.extend_from_slice(&accept);
        self.stats.accepts += 1;
        self.remember_used(hello.client_eph, now);
        self.pending.insert(
            from,
            Pending {
                client_eph: hello.client_eph,
                accept,
                secret: derived.secret,
                binding: derived.binding,
                created: now,
                kept: None,
            },
        );
    }
}

impl LoginGate {
    /// Was an ACCEPT made for `eph` within [`USED_EPH_TTL`]?
    fn used_before(&mut self, eph: &[u8; 32], now: Instant) -> bool {
        while let Some((old, t)) = self.used.front() {
            if now.saturating_duration_since(*t) < USED_EPH_TTL {
                break;
            }
            self.used_set.remove(old);
            self.used.pop_front();
        }
        self.used_set.contains(eph)
    }

    fn remember_used(&mut self, eph: [u8; 32], now: Instant) {
        if self.used.len() >= USED_EPH_CAP {
            if let Some((old, _)) = self.used.pop_front() {
                self.used_set.remove(&old);
            }
        }
        if self.used_set.insert(eph) {
            self.used.push_back((eph, now));
        }
    }

    /// Keeps `from`'s host below its limit before it gets another pending
    /// entry: its own oldest entries go (it only churns its own).
    fn limit_host(&mut self, from: SocketAddr) {
        let host = host_of(from.ip());
        loop {
            let mine = self
                .pending
                .iter()
                .filter(|(a, _)| **a != from && host_of(a.ip()) == host);
            let (count, oldest) =
                mine.fold((0usize, None::<(SocketAddr, Instant)>), |(n, o), (a, p)| {
                    let o = match o {
                        Some((_, t)) if t <= p.created => o,
                        _ => Some((*a, p.created)),
                    };
                    (n + 1, o)
                });
            match oldest {
                Some((a, _)) if count >= self.opts.max_per_host => {
                    self.pending.remove(&a);
                }
                _ => return,
            }
        }
    }

    /// Frees a pending slot for a newcomer from `from`: expired entries go
    /// first; then, so that one host cannot hold every slot, the oldest
    /// entry of the IP address holding the most, if it holds more than the
    /// newcomer's address would after admission. False if no room.
    fn make_room(&mut self, from: SocketAddr, now: Instant) -> bool {
        let ttl = self.opts.pending_ttl;
        self.pending.retain(|_, p| p.live(now, ttl));
        if self.pending.len() < self.opts.max_handshakes {
            return true;
        }
        let mut per_ip: HashMap<std::net::IpAddr, usize> = HashMap::new();
        for a in self.pending.keys() {
            *per_ip.entry(host_of(a.ip())).or_default() += 1;
        }
        let mine = per_ip.get(&host_of(from.ip())).copied().unwrap_or(0);
        let Some((&heavy, &most)) = per_ip.iter().max_by_key(|(_, n)| **n) else {
            return false;
        };
        if most <= mine + 1 {
            return false;
        }
        let oldest = self
            .pending
            .iter()
            .filter(|(a, _)| host_of(a.ip()) == heavy)
            .min_by_key(|(_, p)| p.created)
            .map(|(a, _)| *a);
        match oldest {
            Some(a) => {
                self.pending.remove(&a);
                true
            }
            None => false,
        }
    }
}

impl Gate for LoginGate {
    type Context = LoginContext;

    fn secret_for(&mut self, from: SocketAddr, now: Instant) -> Option<Secret> {
        let p = self.pending.get(&from)?;
        if !p.live(now, self.opts.pending_ttl) {
            self.pending.remove(&from);
            return None;
        }
        Some(p.secret.clone())
    }

    fn admitted(&mut self, from: SocketAddr) -> LoginContext {
        LoginContext {
            binding: self.pending.remove(&from).map(|p| p.binding),
        }
    }

    fn reusable_secret(&self) -> bool {
        // Each pending S verifies one REQUEST: `admitted` removes it.
        false
    }

    fn busy(&mut self, from: SocketAddr, now: Instant) {
        // The client backs off (at most 12 s) and retries with the same S:
        // keep it that long again, up to BUSY_KEEP after the ACCEPT.
        if let Some(p) = self.pending.get_mut(&from) {
            let until = (now + BUSY_RETRY_KEEP).min(p.created + BUSY_KEEP);
            p.kept = Some(until.max(p.kept.unwrap_or(until)));
        }
    }

    fn other(&mut self, from: SocketAddr, d: &[u8], now: Instant, reply: &mut Vec<u8>) {
        self.handle(from, d, now, reply);
    }
}

#[cfg(test)]
mod tests {
    use super::super::client::{ClientHandshake, Progress};
    use super::*;

    fn addr(p: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], p))
    }

    #[test]
    fn full_exchange_and_no_state_before_cookie() {
        let t = Instant::now();
        let key = HostKey::from_bytes([4; 32]);
        let mut gate = LoginGate::new(key.clone(), GateOptions::default(), t).unwrap();
        let mut client = ClientHandshake::new([9; 32], t);
        let hello = client.poll_transmit(t).unwrap();
        let mut reply = Vec::new();
        gate.handle(addr(1), &hello, t, &mut reply);
        assert_eq!(gate.pending(), 0, "no state before the cookie");
        assert!(reply.len() * 3 <= hello.len());
        // The cookie only works from the address it was sent to.
        assert!(matches!(client.handle(&reply), Progress::Continue));
        let hello2 = client.poll_transmit(t).unwrap();
        let mut r2 = Vec::new();
        gate.handle(addr(2), &hello2, t, &mut r2);
        assert_eq!(gate.pending(), 0);
        assert!(Cookie::decode(&r2).is_some());
        let mut r3 = Vec::new();
        gate.handle(addr(1), &hello2, t, &mut r3);
        assert_eq!(gate.pending(), 1);
        assert!(r3.len() * 3 <= hello2.len());
        let Progress::Done(acc) = client.handle(&r3) else {
            panic!("accept refused")
        };
        assert_eq!(&acc.server_static, key.public());
        let s = gate.secret_for(addr(1), t).unwrap();
        assert_eq!(s.bytes(), acc.secret.bytes());
        assert!(gate.secret_for(addr(2), t).is_none());
        // A retransmitted HELLO gets the same ACCEPT without new state.
        let mut r4 = Vec::new();
        gate.handle(addr(1), &hello2, t, &mut r4);
        assert_eq!(r3, r4);
        let ctx = gate.admitted(addr(1));
        assert_eq!(ctx.binding, Some(acc.binding));
        assert_eq!(gate.pending(), 0);
    }

    #[test]
    fn a_recorded_hello_makes_no_new_pending_entry() {
        let t = Instant::now();
        let mut gate =
            LoginGate::new(HostKey::from_bytes([4; 32]), GateOptions::default(), t).unwrap();
        let mut client = ClientHandshake::new([9; 32], t);
        let mut r = Vec::new();
        gate.handle(addr(1), &client.poll_transmit(t).unwrap(), t, &mut r);
        client.handle(&r);
        // The HELLO with its cookie, as an observer records it.
        let recorded = client.poll_transmit(t).unwrap();
        let mut r = Vec::new();
        gate.handle(addr(1), &recorded, t, &mut r);
        assert!(Accept::decode(&r).is_some());
        gate.admitted(addr(1));
        // Replayed from the same (spoofed) address, inside the cookie's
        // life, after the session began, and after the entry expired.
        for later in [1, 30, 200] {
            let at = t + Duration::from_secs(later);
            let mut r = Vec::new();
            gate.handle(addr(1), &recorded, at, &mut r);
            assert!(r.is_empty(), "replayed HELLO answered after {later} s");
            assert_eq!(gate.pending(), 0, "replayed HELLO made state");
        }
        // The entry expires with the cookie (which no longer verifies).
        assert!(!gate.used_before(&[0; 32], t + USED_EPH_TTL));
        assert!(gate.used.is_empty());
    }

    #[test]
    fn pending_cap_and_expiry() {
        let t = Instant::now();
        let opts = GateOptions {
            max_handshakes: 2,
            pending_ttl: Duration::from_secs(10),
            ..GateOptions::default()
        };
        let mut gate = LoginGate::new(HostKey::from_bytes([4; 32]), opts, t).unwrap();
        let open = |gate: &mut LoginGate, port: u16, at: Instant| {
            let mut c = ClientHandshake::new([port as u8; 32], at);
            let mut r = Vec::new();
            gate.handle(addr(port), &c.poll_transmit(at).unwrap(), at, &mut r);
            c.handle(&r);
            let mut r = Vec::new();
            gate.handle(addr(port), &c.poll_transmit(at).unwrap(), at, &mut r);
            Accept::decode(&r).is_some()
        };
        assert!(open(&mut gate, 1, t));
        assert!(open(&mut gate, 2, t));
        assert!(!open(&mut gate, 3, t), "over the cap");
        let later = t + Duration::from_secs(11);
        assert!(gate.secret_for(addr(1), later).is_none(), "expired");
        assert!(open(&mut gate, 3, later), "room again after expiry");
    }

    /// A gate that has just made an ACCEPT for `addr(1)`.
    fn gate_with_pending(t: Instant) -> LoginGate {
        let mut gate =
            LoginGate::new(HostKey::from_bytes([4; 32]), GateOptions::default(), t).unwrap();
        let mut c = ClientHandshake::new([1; 32], t);
        let mut r = Vec::new();
        gate.handle(addr(1), &c.poll_transmit(t).unwrap(), t, &mut r);
        c.handle(&r);
        let mut r = Vec::new();
        gate.handle(addr(1), &c.poll_transmit(t).unwrap(), t, &mut r);
        assert!(Accept::decode(&r).is_some());
        gate
    }

    #[test]
    fn a_client_answered_busy_keeps_its_pending_secret_for_the_retry() {
        let t = Instant::now();
        let s =
            |gate: &mut LoginGate, secs| gate.secret_for(addr(1), t + Duration::from_secs(secs));
        // BUSY at 9 s: the retry up to 12 s later still finds S.
        let mut gate = gate_with_pending(t);
        gate.busy(addr(1), t + Duration::from_secs(9));
        assert!(s(&mut gate, 20).is_some(), "kept for the retry");
        assert!(s(&mut gate, 26).is_none(), "not longer");
        // Kept at most BUSY_KEEP after the ACCEPT however often BUSY comes.
        let mut gate = gate_with_pending(t);
        for k in 1..20 {
            gate.busy(addr(1), t + Duration::from_secs(8 * k));
        }
        let end = BUSY_KEEP.as_secs();
        assert!(s(&mut gate, end - 1).is_some());
        assert!(s(&mut gate, end).is_none());
    }

    #[test]
    fn one_host_cannot_hold_every_pending_slot() {
        let t = Instant::now();
        let opts = GateOptions {
            max_handshakes: 4,
            pending_ttl: Duration::from_secs(10),
            ..GateOptions::default()
        };
        let mut gate = LoginGate::new(HostKey::from_bytes([4; 32]), opts, t).unwrap();
        let open = |gate: &mut LoginGate, from: SocketAddr| {
            // A fresh e_c per client, as real clients draw.
            let mut eph = [from.port() as u8; 32];
            if let std::net::IpAddr::V4(v4) = from.ip() {
                eph[1] = v4.octets()[3];
            }
            let mut c = ClientHandshake::new(eph, t);
            let mut r = Vec::new();
            gate.handle(from, &c.poll_transmit(t).unwrap(), t, &mut r);
            c.handle(&r);
            let mut r = Vec::new();
            gate.handle(from, &c.poll_transmit(t).unwrap(), t, &mut r);
            Accept::decode(&r).is_some()
        };
        let hog = |p: u16| SocketAddr::from(([198, 51, 100, 9], p));
        for p in 1..=4 {
            assert!(open(&mut gate, hog(p)));
        }
        assert!(!open(&mut gate, hog(5)), "the hog gets no fifth slot");
        // Another host still gets in, at the hog's expense.
        assert!(open(&mut gate, addr(1)));
        assert!(open(&mut gate, addr(2)));
        assert_eq!(gate.pending(), 4);
        assert!(gate.secret_for(addr(1), t).is_some());
    }

    #[test]
    fn one_ipv6_slash_64_is_one_host() {
        let t = Instant::now();
        let opts = GateOptions {
            max_handshakes: 100,
            pending_ttl: Duration::from_secs(10),
            max_per_host: 3,
        };
        let mut gate = LoginGate::new(HostKey::from_bytes([4; 32]), opts, t).unwrap();
        let mut n = 0u8;
        let mut open = |gate: &mut LoginGate, from: SocketAddr| {
            n += 1;
            let mut c = ClientHandshake::new([n; 32], t);
            let mut r = Vec::new();
            gate.handle(from, &c.poll_transmit(t).unwrap(), t, &mut r);
            c.handle(&r);
            let mut r = Vec::new();
            gate.handle(from, &c.poll_transmit(t).unwrap(), t, &mut r);
            assert!(Accept::decode(&r).is_some());
        };
        // Forty addresses of one /64 hold at most three entries.
        for i in 1..=40u16 {
            let a: std::net::Ipv6Addr = format!("2001:db8:0:7::{i:x}").parse().unwrap();
            open(&mut gate, SocketAddr::from((a, 4000)));
        }
        assert_eq!(gate.pending(), 3);
        // The newest stay: a genuine retry from that /64 still works.
        let last: std::net::Ipv6Addr = "2001:db8:0:7::28".parse().unwrap();
        assert!(gate.secret_for(SocketAddr::from((last, 4000)), t).is_some());
        // Another /64 is another host.
        open(
            &mut gate,
            SocketAddr::from(("2001:db8:0:8::1".parse::<std::net::Ipv6Addr>().unwrap(), 1)),
        );
        assert_eq!(gate.pending(), 4);
    }

    #[test]
    fn junk_is_dropped_silently() {
        let t = Instant::now();
        let mut gate =
            LoginGate::new(HostKey::from_bytes([4; 32]), GateOptions::default(), t).unwrap();
        let mut r = Vec::new();
        for len in [0, 10, 33, 1199, 1200, 1201] {
            gate.handle(addr(1), &vec![0x10; len], t, &mut r);
        }
        assert!(r.is_empty());
        assert_eq!(gate.stats().dropped, 6);
        // A HELLO with a forged cookie gets a fresh cookie, never an ACCEPT.
        let forged = Hello {
            client_eph: [5; 32],
            cookie: Some([6; 32]),
        };
        gate.handle(addr(1), &forged.encode(), t, &mut r);
        assert!(Cookie::decode(&r).is_some());
        assert_eq!(gate.pending(), 0);
    }
}
