//! The standing server's endpoint, sans-IO (as quinn-proto's `Endpoint`):
//! every datagram that reaches the shared UDP port goes through
//! [`Endpoint::handle`], which says what it is — for a connection already
//! known by its address, maybe for one whose peer moved (a NAT
//! rebinding), a new connection, or a stateless reply such as BUSY — and
//! keeps the admission state and replay memory that decide it. The
//! socket loop around it (`super::listen`) only moves datagrams.
//!
//! Addresses: a connection is known by every address its peer's
//! authentic packets came from (the REQUEST's, and new ones its session
//! reports, at most [`MAX_ADDRESSES`]). A DATA datagram from an unknown
//! address may be a known peer whose NAT rebound: it is offered to at most
//! [`MAX_CANDIDATES`] connections of the same host whose peers' packet
//! numbers are nearest (or, if the host has none, connections anywhere
//! whose numbers are within the replay window), at most
//! [`GUESSES_PER_SECOND`] times a second; each connection authenticates it
//! under its own keys, and only the one it belongs to acts on it (and
//! validates the address before sending there, PROTOCOL §3.9).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Semaphore;

use super::admission::{BusyReplies, Load};
use super::replay::{ReplayGuard, Stale};
use super::wire::Secret;
use crate::budget;
use crate::transport::handshake::{decode_request, TYPE_DATA, TYPE_REQUEST};
use crate::transport::{Config, Connection, HandshakeRandom};
use crate::vsl::{Header, REPLAY_WINDOW};

/// Most addresses one connection is known by (a new one evicts the oldest).
pub const MAX_ADDRESSES: usize = 4;
/// Most connections one datagram from an unknown address is offered to.
pub const MAX_CANDIDATES: usize = 4;
/// Most datagrams from unknown addresses offered to connections per second.
pub const GUESSES_PER_SECOND: f64 = 1_000.0;
/// At most one clock warning per this long in the log.
const CLOCK_WARNING_EVERY: Duration = Duration::from_secs(60);

/// Settings of the standing server.
#[derive(Debug, Clone)]
pub struct ListenOptions {
    /// Most established sessions at once (a slot is taken when the first
    /// packet under the session keys arrives); also the most handshakes in
    /// progress. REQUESTs beyond either are dropped, the client retries
    /// until its handshake timeout.
    pub max_connections: usize,
    /// Stop accepting after this many sessions and return once they ended
    /// (`None`: serve forever).
    pub max_sessions: Option<u64>,
    /// Most sessions (handshaking or established) from one host: one IPv4
    /// address, or one IPv6 /64 (what one subscriber usually gets).
    /// REQUESTs beyond it are dropped. `usize::MAX`: no per-host limit.
    pub max_per_host: usize,
    /// Drop a client that does not complete its handshake within this.
    pub handshake_timeout: Duration,
    /// Transport settings of each session.
    pub config: Config,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            max_connections: 100,
            max_sessions: None,
            max_per_host: usize::MAX,
            // The client's own handshake timeout (`Config`, 10 s): a client
            // on a loaded host that was answered but is slow to send its
            // first packet under the session keys is not dropped before it
            // would give up itself (issue 19's "session dropped").
            handshake_timeout: Duration::from_secs(10),
            config: Config::default(),
        }
    }
}

/// The host an address belongs to, for per-host limits: the IPv4 address
/// itself (also when IPv4-mapped), or the /64 of an IPv6 address (one
/// subscriber usually holds a whole /64, so limits keyed by full IPv6
/// addresses would not limit anyone).
pub fn host_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

/// The transport settings of a daemon's session: its receive window and
/// send buffer are its fair share of the daemon's memory budget
/// ([`crate::budget`]) as long as it runs, shrinking as sessions arrive and
/// growing as they leave, so bytes pushed by a thousand clients faster than
/// the daemon writes them wait at the clients, and bytes pulled wait in the
/// daemon's files, not in its memory. One client alone keeps the whole
/// configured window.
pub fn session_config(base: &Config) -> Config {
    Config {
        budget: Some(budget::daemon()),
        ..base.clone()
    }
}

/// Most handshakes in progress at once (they hold no slot yet): twice the
/// slots, plus a few so that `-n 1` still lets a client in beside an
/// unfinished handshake.
pub fn max_handshakes(max_connections: usize) -> usize {
    max_connections.saturating_mul(2).saturating_add(16)
}

/// Decides which REQUESTs from addresses without a session may open one,
/// and answers other datagrams from such addresses (a pre-handshake, as in
/// challenge-response mode). Key-file mode is [`StaticKey`].
pub trait Gate: Send + 'static {
    /// What the session callback receives besides the session.
    type Context: Send + 'static;
    /// The secret a REQUEST from `from` must verify under (`None`: drop it).
    fn secret_for(&mut self, from: SocketAddr, now: Instant) -> Option<Secret>;
    /// A REQUEST from `from` verified and opened a connection.
    fn admitted(&mut self, from: SocketAddr) -> Self::Context;
    /// Every secret a REQUEST from `from` may verify under, tried in turn
    /// (a daemon with one key per client); default: [`Gate::secret_for`]'s.
    fn secrets_for(&mut self, from: SocketAddr, now: Instant) -> Vec<Secret> {
        self.secret_for(from, now).into_iter().collect()
    }
    /// A REQUEST verified under the `index`th secret of
    /// [`Gate::secrets_for`]; default: [`Gate::admitted`].
    fn admitted_as(&mut self, from: SocketAddr, index: usize) -> Self::Context {
        let _ = index;
        self.admitted(from)
    }
    /// True if the secrets this gate hands out verify more than one
    /// REQUEST (key-file mode): the endpoint then refuses replayed and
    /// stale REQUESTs by their timestamps. False if each secret opens one
    /// session only (a replay cannot verify).
    fn reusable_secret(&self) -> bool;
    /// A REQUEST from `from` verified under [`Gate::secret_for`]'s secret
    /// but was answered BUSY: a gate whose secrets are used once keeps
    /// that one for the client's retry. Default: nothing.
    fn busy(&mut self, from: SocketAddr, now: Instant) {
        let _ = (from, now);
    }
    /// Any other datagram from an address without a session; may write a
    /// reply into `reply` (sent to `from` at once, never larger than the
    /// datagram unless `from` has proven its address).
    fn other(&mut self, from: SocketAddr, datagram: &[u8], now: Instant, reply: &mut Vec<u8>);
}

/// Key-file mode's gate: every client holds the same secret.
pub struct StaticKey(pub Secret);

impl Gate for StaticKey {
    type Context = ();
    fn secret_for(&mut self, _: SocketAddr, _: Instant) -> Option<Secret> {
        Some(self.0.clone())
    }
    fn admitted(&mut self, _: SocketAddr) {}
    fn reusable_secret(&self) -> bool {
        true
    }
    fn other(&mut self, _: SocketAddr, _: &[u8], _: Instant, _: &mut Vec<u8>) {}
}

/// A connection's number at the endpoint (never reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// What one datagram is ([`Endpoint::handle`]).
pub enum DatagramEvent<C> {
    /// For this connection (its peer's address).
    Known(ConnId),
    /// From an unknown address, maybe for one of these connections (a NAT
    /// rebinding): give each a copy; each authenticates it.
    Rebinding(Vec<ConnId>),
    /// A verified REQUEST opened this connection; its session runs the
    /// rest of the handshake.
    New(ConnId, Box<Connection>, C),
    /// Send these bytes back to the datagram's source (BUSY, or the
    /// gate's answer), best effort.
    Reply(Vec<u8>),
    /// Nothing to do.
    Drop,
}

/// How a known address is routed.
struct Route {
    id: ConnId,
    /// The highest packet number seen from it (the cleartext header's; a
    /// hint for routing rebound datagrams, never trusted for more).
    msgnr: u64,
}

/// A connection, as the endpoint knows it.
struct Entry {
    /// Where its REQUEST came from.
    origin: SocketAddr,
    /// The host of its REQUEST (its per-host count stays there).
    host: IpAddr,
    /// Addresses routed to it, oldest first.
    addrs: Vec<SocketAddr>,
}

/// The standing server's demultiplexer and admission control, sans-IO:
/// the caller passes the clocks in and moves the datagrams.
pub struct Endpoint<G: Gate> {
    gate: G,
    opts: ListenOptions,
    /// One permit per established session (taken by the session itself).
    slots: Arc<Semaphore>,
    load: Box<dyn Load>,
    routes: HashMap<SocketAddr, Route>,
    conns: HashMap<ConnId, Entry>,
    /// Connections per host ([`host_of`]).
    per_host: HashMap<IpAddr, Vec<ConnId>>,
    /// Timestamps of accepted REQUESTs (used if the gate's secret is reusable).
    replay: ReplayGuard,
    /// When a REQUEST outside the timestamp window was last logged.
    clock_warned: Option<Instant>,
    busy: BusyReplies,
    /// The budget of datagrams offered to connections on a guess.
    guesses: f64,
    guessed: Instant,
    accepted: u64,
    next_id: u64,
}

impl<G: Gate> Endpoint<G> {
    /// An endpoint admitting through `gate` under `opts`; `slots` holds
    /// one permit per session that may be established at once, `load`
    /// says when the machine is short of CPU or memory.
    pub fn new(
        gate: G,
        opts: ListenOptions,
        slots: Arc<Semaphore>,
        load: Box<dyn Load>,
        now: Instant,
    ) -> Self {
        Endpoint {
            gate,
            opts,
            slots,
            load,
            routes: HashMap::new(),
            conns: HashMap::new(),
            per_host: HashMap::new(),
            replay: ReplayGuard::new(),
            clock_warned: None,
            busy: BusyReplies::new(now),
            guesses: GUESSES_PER_SECOND,
            guessed: now,
            accepted: 0,
            next_id: 0,
        }
    }

    /// Connections open (handshaking or established).
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// True when no connection is open.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// True once `max_sessions` were accepted and all of them ended.
    pub fn finished(&self) -> bool {
        self.opts.max_sessions.is_some_and(|m| self.accepted >= m) && self.conns.is_empty()
    }

    /// What the datagram `d` from `from` is. `now` is the monotonic clock,
    /// `wall` the wall clock (REQUEST timestamps are checked against it).
    pub fn handle(
        &mut self,
        now: Instant,
        wall: SystemTime,
        from: SocketAddr,
        d: &[u8],
    ) -> DatagramEvent<G::Context> {
        if let Some(r) = self.routes.get_mut(&from) {
            if let Some(m) = d.get(..8) {
                let m = u64::from_be_bytes(m.try_into().unwrap_or_default());
                r.msgnr = r.msgnr.max(m);
            }
            let id = r.id;
            // A REQUEST goes to a connection only from the address its own
            // REQUEST came from (a retransmission): an address a session
            // learned later can still open a new one.
            if d.get(28) != Some(&TYPE_REQUEST)
                || self.conns.get(&id).is_some_and(|e| e.origin == from)
            {
                return DatagramEvent::Known(id);
            }
        }
        let Some(header) = Header::parse(d) else {
            return DatagramEvent::Drop;
        };
        match header.ptype {
            TYPE_REQUEST => self.request(now, wall, from, d),
            TYPE_DATA => match self.candidates(now, from, header.msgnr) {
                Some(c) => DatagramEvent::Rebinding(c),
                None => self.other(now, from, d),
            },
            _ => self.other(now, from, d),
        }
    }

    /// An authentic packet of connection `id` came from `addr`: route that
    /// address to it from now on.
    pub fn learned(&mut self, id: ConnId, addr: SocketAddr) {
        let Some(e) = self.conns.get_mut(&id) else {
            return;
        };
        let msgnr = e
            .addrs
            .iter()
            .filter_map(|a| self.routes.get(a).map(|r| r.msgnr))
            .max()
            .unwrap_or(0);
        e.addrs.retain(|a| *a != addr);
        e.addrs.push(addr);
        let evicted = if e.addrs.len() > MAX_ADDRESSES {
            Some(e.addrs.remove(0))
        } else {
            None
        };
        if let Some(a) = evicted {
            if self.routes.get(&a).is_some_and(|r| r.id == id) {
                self.routes.remove(&a);
            }
        }
        if let Some(old) = self.routes.insert(addr, Route { id, msgnr }) {
            if old.id != id {
                // The address moved from another connection (a NAT reused
                // the port): it is no longer that one's.
                if let Some(e) = self.conns.get_mut(&old.id) {
                    e.addrs.retain(|a| *a != addr);
                }
            }
        }
    }

    /// Connection `id` ended: forget its addresses.
    pub fn forget(&mut self, id: ConnId, now: Instant) {
        let Some(e) = self.conns.remove(&id) else {
            return;
        };
        for a in &e.addrs {
            if self.routes.get(a).is_some_and(|r| r.id == id) {
                self.routes.remove(a);
            }
        }
        if let Some(v) = self.per_host.get_mut(&e.host) {
            v.retain(|c| *c != id);
            if v.is_empty() {
                self.per_host.remove(&e.host);
            }
        }
        self.load.session_ended(self.conns.len(), now);
        if self.conns.is_empty() {
            // Idle: the tables' room for a thousand sessions goes too.
            self.routes.shrink_to_fit();
            self.conns.shrink_to_fit();
            self.per_host.shrink_to_fit();
        }
    }

    /// Connections a DATA datagram with packet number `msgnr` from the
    /// unknown address `from` may belong to (`None`: none, or the guess
    /// budget is spent).
    fn candidates(&mut self, now: Instant, from: SocketAddr, msgnr: u64) -> Option<Vec<ConnId>> {
        if self.conns.is_empty() {
            return None;
        }
        let elapsed = now.saturating_duration_since(self.guessed).as_secs_f64();
        self.guessed = now;
        self.guesses = (self.guesses + elapsed * GUESSES_PER_SECOND).min(GUESSES_PER_SECOND);
        if self.guesses < 1.0 {
            return None;
        }
        let distance = |e: &Entry| {
            e.addrs
                .iter()
                .filter_map(|a| self.routes.get(a))
                .map(|r| r.msgnr.abs_diff(msgnr))
                .min()
                .unwrap_or(u64::MAX)
        };
        let mut ranked: Vec<(u64, ConnId)> = match self.per_host.get(&host_of(from.ip())) {
            Some(ids) => ids
                .iter()
                .filter_map(|id| Some((distance(self.conns.get(id)?), *id)))
                .collect(),
            None => self
                .conns
                .iter()
                .map(|(id, e)| (distance(e), *id))
                .filter(|(d, _)| *d <= REPLAY_WINDOW)
                .collect(),
        };
        if ranked.is_empty() {
            return None;
        }
        ranked.sort_unstable();
        ranked.truncate(MAX_CANDIDATES);
        self.guesses -= 1.0;
        Some(ranked.into_iter().map(|(_, id)| id).collect())
    }

    fn other(&mut self, now: Instant, from: SocketAddr, d: &[u8]) -> DatagramEvent<G::Context> {
        let mut reply = Vec::new();
        self.gate.other(from, d, now, &mut reply);
        if reply.is_empty() {
            DatagramEvent::Drop
        } else {
            DatagramEvent::Reply(reply)
        }
    }

    fn host_full(&self, from: SocketAddr) -> bool {
        self.per_host
            .get(&host_of(from.ip()))
            .is_some_and(|v| v.len() >= self.opts.max_per_host)
    }

    /// Room for another handshake: every connection (established or
    /// handshaking) holds or reserves a slot.
    fn accepting(&self) -> bool {
        let max = self.opts.max_connections;
        let free = self.slots.available_permits();
        let established = max.saturating_sub(free);
        let handshaking = self.conns.len().saturating_sub(established);
        self.conns.len() < max && free > 0 && handshaking < max_handshakes(max)
    }

    /// Answers a REQUEST that may not start a handshake now with BUSY,
    /// under the secret it verifies with: the key in key-file mode, the
    /// address's pending secret in challenge-response mode (which the gate
    /// then keeps for the retry, [`Gate::busy`]).
    fn refuse(
        &mut self,
        from: SocketAddr,
        d: &[u8],
        now: Instant,
        wall: SystemTime,
    ) -> DatagramEvent<G::Context> {
        let reusable = self.gate.reusable_secret();
        let Some(key) = self.gate.secret_for(from, now) else {
            return DatagramEvent::Drop;
        };
        match self.busy.reply(&key, d, now, reusable.then_some(wall)) {
            Some(reply) => {
                if !reusable {
                    self.gate.busy(from, now);
                }
                tracing::debug!("{from}: answered BUSY (no free slot or short of resources)");
                DatagramEvent::Reply(reply)
            }
            None => DatagramEvent::Drop,
        }
    }

    /// Refuses a replayed or stale REQUEST where the secret is reusable
    /// (`request` is a copy of the datagram, decrypted here).
    fn fresh(
        &mut self,
        key: &Secret,
        request: &mut [u8],
        from: SocketAddr,
        now: Instant,
        wall: SystemTime,
    ) -> bool {
        if !self.gate.reusable_secret() {
            return true;
        }
        let Ok(req) = decode_request(key.bytes(), request) else {
            return false;
        };
        match self.replay.check(req.timestamp, wall) {
            Ok(()) => true,
            Err(e @ (Stale::TooOld(_) | Stale::TooNew(_)))
                if self
                    .clock_warned
                    .is_none_or(|t| now.saturating_duration_since(t) >= CLOCK_WARNING_EVERY) =>
            {
                self.clock_warned = Some(now);
                tracing::warn!("dropped handshake from {from}: {e}");
                false
            }
            Err(e) => {
                tracing::debug!("dropped handshake from {from}: {e}");
                false
            }
        }
    }

    /// A REQUEST from an address without a connection.
    fn request(
        &mut self,
        now: Instant,
        wall: SystemTime,
        from: SocketAddr,
        d: &[u8],
    ) -> DatagramEvent<G::Context> {
        if self.opts.max_sessions.is_some_and(|m| self.accepted >= m) {
            return DatagramEvent::Drop;
        }
        if !self.accepting() || self.host_full(from) || self.load.short_of_resources(now) {
            return self.refuse(from, d, now, wall);
        }
        let keys = self.gate.secrets_for(from, now);
        let mut request = d.to_vec();
        // Authenticates (one HMAC per candidate key) and checks the
        // timestamp before any state exists.
        let mut index = None;
        for (i, key) in keys.iter().enumerate() {
            request.copy_from_slice(d);
            if self.fresh(key, &mut request, from, now, wall) {
                index = Some(i);
                break;
            }
        }
        let Some(index) = index else {
            return DatagramEvent::Drop;
        };
        request.copy_from_slice(d);
        let Ok(rnd) = HandshakeRandom::from_os() else {
            return DatagramEvent::Drop;
        };
        let config = session_config(&self.opts.config);
        let conn = match Connection::server(config, keys[index].bytes(), rnd, now, &mut request) {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!("dropped handshake from {from}: {e}");
                return DatagramEvent::Drop;
            }
        };
        let id = ConnId(self.next_id);
        self.next_id += 1;
        let host = host_of(from.ip());
        self.conns.insert(
            id,
            Entry {
                origin: from,
                host,
                addrs: vec![from],
            },
        );
        if let Some(old) = self.routes.insert(from, Route { id, msgnr: 0 }) {
            // Another session had learned this address; it is this one's.
            if let Some(e) = self.conns.get_mut(&old.id) {
                e.addrs.retain(|a| *a != from);
            }
        }
        self.per_host.entry(host).or_default().push(id);
        self.accepted += 1;
        let ctx = self.gate.admitted_as(from, index);
        DatagramEvent::New(id, Box::new(conn), ctx)
    }
}

#[cfg(test)]
#[path = "endpoint_tests.rs"]
mod tests;
