//! A standing server on one UDP port (key-file mode, and challenge-response
//! mode through a [`Gate`]): many clients over time and at once,
//! demultiplexed by source address.
//!
//! The listener task owns the socket's receive side. A datagram from a
//! known peer goes to that session's channel (dropped if the channel is
//! full, as a full socket buffer would). A datagram from an unknown
//! address creates state only if it is a REQUEST that verifies under the
//! key and the connection limit allows it; anything else is dropped without
//! an answer, so spoofed or wrong-key traffic costs one HMAC and no memory.
//! Which secret a REQUEST must verify under, and what other datagrams from
//! unknown addresses get back, is the [`Gate`]'s decision: key-file mode's
//! [`StaticKey`] has one secret for everyone and answers nothing; the login
//! gate (`bootstrap::login::server`) has one pending secret per address.
//! Each session's driver sends directly on the shared socket.
//!
//! Replays: a REQUEST carries the client's TAI64N timestamp under its MAC.
//! Where the secret is reused (key-file mode, [`Gate::reusable_secret`]) a
//! [`ReplayGuard`] refuses a REQUEST whose timestamp is outside
//! [`TIMESTAMP_WINDOW`] of this host's clock or was accepted before, so a
//! recorded REQUEST opens nothing, from any address, ever. Where every
//! secret is used once (the login gate) a replay cannot verify anyway, and
//! clocks are not consulted.
//!
//! Slots: a handshake in progress reserves one of the `max_connections`
//! slots, and the session holds it from its client's first packet under
//! the session keys until it ends; an unconfirmed handshake is forgotten
//! after the handshake timeout. So every handshake answered has a slot
//! waiting: a REQUEST beyond the slots (or while the daemon is short of CPU
//! or memory) gets a stateless BUSY ([`super::admission`]; in
//! challenge-response mode under the address's pending secret, which the
//! gate keeps for the retry) and the client retries later, rather than
//! being admitted and then turned away.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use quinn_udp::{RecvMeta, UdpSocketState, BATCH_SIZE};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::sync::Semaphore;

use super::admission::Admission;
use super::replay::{ReplayGuard, Stale};
use super::wire::Secret;
use crate::budget;
use crate::transport::handshake::{decode_request, TYPE_REQUEST};
use crate::transport::{socket, Config, Connection, HandshakeRandom, Session, SessionError};
use crate::vsl::Header;

pub use super::replay::TIMESTAMP_WINDOW;

/// Receive buffer per batch slot: one datagram or a GRO train.
const SLOT: usize = 64 * 1024;
/// Datagrams queued per session before the listener drops.
pub const QUEUE: usize = 4096;
/// Bytes queued per session before the listener drops (a session whose
/// driver falls behind cannot make the listener hold more; datagrams may
/// be up to 64 KiB each, so the count alone would allow 256 MiB).
pub const QUEUE_BYTES: usize = 8 << 20;
/// All sessions' queues together hold about this many bytes at most: each
/// session's byte bound is this divided by the number of sessions, between
/// [`QUEUE_BYTES_MIN`] and [`QUEUE_BYTES`]. One fast session keeps its
/// 8 MiB of slack; a thousand sessions whose drivers fall behind (a busy
/// CPU) cannot queue 8 GiB between them.
pub const QUEUE_BYTES_ALL: usize = 64 << 20;
/// The least byte bound of one session's queue.
pub const QUEUE_BYTES_MIN: usize = 256 << 10;
/// The pool datagrams are copied into before they go to a session (a
/// datagram still queued keeps its whole chunk allocated, so chunks are
/// small: with a thousand sessions, 1 MiB chunks each pinned by one
/// queued datagram held 56 MiB).
const POOL: usize = 256 << 10;

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

/// One session's queue bound in bytes when `sessions` share the listener.
pub fn queue_bytes(sessions: usize) -> usize {
    (QUEUE_BYTES_ALL / sessions.max(1)).clamp(QUEUE_BYTES_MIN, QUEUE_BYTES)
}
/// Close reason of a session that completed its handshake while every
/// slot was taken.
pub const BUSY_REASON: &str =
    "the daemon is serving its maximum number of sessions (-n); try again later";
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

/// Binds `addr` and serves clients holding `key`, each in its own task
/// running `on_session`. Returns only on a socket error, or after
/// `max_sessions` sessions ended.
pub async fn listen<F, Fut>(
    addr: SocketAddr,
    key: &Secret,
    opts: ListenOptions,
    on_session: F,
) -> Result<(), SessionError>
where
    F: Fn(Session) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (sock, warning) = socket::bind(addr)?;
    if let Some(w) = warning {
        tracing::warn!("{w}");
    }
    serve(Arc::new(sock), key, opts, on_session).await
}

/// Like [`listen`] on an already bound socket (lets the caller learn an
/// OS-chosen port first).
pub async fn serve<F, Fut>(
    sock: Arc<UdpSocket>,
    key: &Secret,
    opts: ListenOptions,
    on_session: F,
) -> Result<(), SessionError>
where
    F: Fn(Session) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let gate = StaticKey(key.clone());
    serve_gated(sock, gate, opts, move |s, ()| on_session(s)).await
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
    /// REQUEST (key-file mode): the listener then refuses replayed and
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

/// Like [`serve`] with another [`Gate`]: `on_session` receives each
/// session with what the gate knew about its client.
pub async fn serve_gated<G, F, Fut>(
    sock: Arc<UdpSocket>,
    gate: G,
    mut opts: ListenOptions,
    on_session: F,
) -> Result<(), SessionError>
where
    G: Gate,
    F: Fn(Session, G::Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let state = Arc::new(UdpSocketState::new((&*sock).into())?);
    let on_session = Arc::new(on_session);
    opts.max_connections = opts.max_connections.min(Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(opts.max_connections));
    let mut l = Listener {
        sock,
        state,
        gate,
        opts,
        peers: HashMap::new(),
        per_host: HashMap::new(),
        replay: ReplayGuard::new(),
        clock_warned: None,
        slots: slots.clone(),
        admission: Admission::start(),
        accepted: 0,
        pool: BytesMut::with_capacity(POOL),
        reply: Vec::with_capacity(2048),
    };
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<SocketAddr>();
    let mut buf = vec![0u8; SLOT * BATCH_SIZE];
    let mut meta = vec![RecvMeta::default(); BATCH_SIZE];
    loop {
        if l.finished() {
            return Ok(());
        }
        tokio::select! {
            r = l.sock.readable() => {
                r?;
                for (peer, conn, rx, ctx, member) in l.receive(&mut buf, &mut meta) {
                    let (sock, state) = (l.sock.clone(), l.state.clone());
                    let wait = l.opts.handshake_timeout;
                    let (f, done) = (on_session.clone(), done_tx.clone());
                    let slots = slots.clone();
                    tokio::spawn(async move {
                        match Session::accept_demuxed(sock, state, conn, peer, rx, wait).await {
                            // The client holds the session keys: now it
                            // takes a slot, for as long as it is served.
                            Ok(s) => match slots.try_acquire_owned() {
                                Ok(_slot) => f(s, ctx).await,
                                Err(_) => {
                                    tracing::info!("{peer}: refused, every slot is taken");
                                    s.close(1, BUSY_REASON).await;
                                }
                            },
                            Err(e) => tracing::debug!("{peer}: handshake not completed: {e}"),
                        }
                        drop(member);
                        let _ = done.send(peer);
                    });
                }
            }
            Some(peer) = done_rx.recv() => {
                l.forget(peer);
                if l.peers.is_empty() {
                    // Idle: a fresh batch buffer, whose pages are not
                    // resident until used (the old one, every page
                    // touched by GRO trains, goes back to the OS).
                    buf = vec![0u8; SLOT * BATCH_SIZE];
                }
            }
        }
    }
}

/// Most handshakes in progress at once (they hold no slot yet): twice the
/// slots, plus a few so that `-n 1` still lets a client in beside an
/// unfinished handshake.
pub fn max_handshakes(max_connections: usize) -> usize {
    max_connections.saturating_mul(2).saturating_add(16)
}

/// A session's queue, as the listener sees it.
struct Peer {
    tx: mpsc::Sender<BytesMut>,
    /// Sizes of the datagrams sent into the queue that may still be in it,
    /// oldest first, and their sum.
    sizes: VecDeque<u32>,
    bytes: usize,
}

impl Peer {
    fn new(tx: mpsc::Sender<BytesMut>) -> Self {
        Peer {
            tx,
            sizes: VecDeque::new(),
            bytes: 0,
        }
    }

    /// Would `len` more bytes fit the byte bound? The channel's free
    /// capacity says how many datagrams are still queued; the ones taken
    /// out are the oldest.
    fn room_for(&mut self, len: usize, bound: usize) -> bool {
        let queued = QUEUE.saturating_sub(self.tx.capacity());
        while self.sizes.len() > queued {
            if let Some(n) = self.sizes.pop_front() {
                self.bytes -= n as usize;
            }
        }
        self.bytes + len <= bound
    }

    fn sent(&mut self, len: usize) {
        self.sizes.push_back(len as u32);
        self.bytes += len;
    }
}

type NewSession<C> = (
    SocketAddr,
    Connection,
    mpsc::Receiver<BytesMut>,
    C,
    budget::Member<'static>,
);

struct Listener<G> {
    sock: Arc<UdpSocket>,
    state: Arc<UdpSocketState>,
    gate: G,
    /// The gate's answer to the datagram being dispatched.
    reply: Vec<u8>,
    opts: ListenOptions,
    peers: HashMap<SocketAddr, Peer>,
    /// Sessions in `peers` per host ([`host_of`]).
    per_host: HashMap<IpAddr, usize>,
    /// Timestamps of accepted REQUESTs (used if the gate's secret is reusable).
    replay: ReplayGuard,
    /// When a REQUEST outside the timestamp window was last logged.
    clock_warned: Option<Instant>,
    /// One permit per established session.
    slots: Arc<Semaphore>,
    /// BUSY replies, resource checks, memory given back.
    admission: Admission,
    accepted: u64,
    pool: BytesMut,
}

impl<G: Gate> Listener<G> {
    fn finished(&self) -> bool {
        self.opts.max_sessions.is_some_and(|m| self.accepted >= m) && self.peers.is_empty()
    }

    fn forget(&mut self, peer: SocketAddr) {
        if self.peers.remove(&peer).is_some() {
            self.admission
                .session_ended(self.peers.len(), Instant::now());
            if self.peers.is_empty() {
                // Idle: the datagram pool and the tables' room for a
                // thousand sessions go too.
                self.pool = BytesMut::new();
                self.peers.shrink_to_fit();
                self.per_host.shrink_to_fit();
            }
            let host = host_of(peer.ip());
            if let Some(n) = self.per_host.get_mut(&host) {
                *n -= 1;
                if *n == 0 {
                    self.per_host.remove(&host);
                }
            }
        }
    }

    fn host_full(&self, from: SocketAddr) -> bool {
        self.per_host
            .get(&host_of(from.ip()))
            .is_some_and(|&n| n >= self.opts.max_per_host)
    }

    /// Room for another handshake: every session in `peers` (established
    /// or handshaking) holds or reserves a slot.
    fn accepting(&self) -> bool {
        let established = self.opts.max_connections - self.slots.available_permits();
        let handshaking = self.peers.len().saturating_sub(established);
        self.peers.len() < self.opts.max_connections
            && self.slots.available_permits() > 0
            && handshaking < max_handshakes(self.opts.max_connections)
    }

    /// Answers a REQUEST that may not start a handshake now with BUSY,
    /// under the secret it verifies with: the key in key-file mode, the
    /// address's pending secret in challenge-response mode (which the gate
    /// then keeps for the retry, [`Gate::busy`]).
    fn refuse(&mut self, from: SocketAddr, d: &[u8], now: Instant) {
        let reusable = self.gate.reusable_secret();
        let Some(key) = self.gate.secret_for(from, now) else {
            return;
        };
        if let Some(reply) = self.admission.busy_reply(&key, d, now, reusable) {
            if !reusable {
                self.gate.busy(from, now);
            }
            self.admission
                .refused(from, "no free slot or short of resources");
            // Best effort, as UDP.
            let _ = self.sock.try_send_to(&reply, from);
        }
    }

    /// Refuses a replayed or stale REQUEST where the secret is reusable
    /// (`request` is a copy of the datagram, decrypted here).
    fn fresh(&mut self, key: &Secret, request: &mut [u8], from: SocketAddr, now: Instant) -> bool {
        if !self.gate.reusable_secret() {
            return true;
        }
        let Ok(req) = decode_request(key.bytes(), request) else {
            return false;
        };
        match self
            .replay
            .check(req.timestamp, std::time::SystemTime::now())
        {
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

    /// Reads what the socket has; returns the new sessions to start.
    fn receive(&mut self, buf: &mut [u8], meta: &mut [RecvMeta]) -> Vec<NewSession<G::Context>> {
        let mut new = Vec::new();
        loop {
            let mut slices: Vec<std::io::IoSliceMut<'_>> =
                buf.chunks_mut(SLOT).map(std::io::IoSliceMut::new).collect();
            let res = self.sock.try_io(tokio::io::Interest::READABLE, || {
                self.state.recv((&*self.sock).into(), &mut slices, meta)
            });
            let n = match res {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return new,
                Err(e) => {
                    tracing::debug!("UDP receive error: {e}");
                    return new;
                }
            };
            for (m, slice) in meta.iter().zip(slices.iter()).take(n) {
                let stride = m.stride.max(1);
                for d in slice[..m.len].chunks(stride) {
                    if let Some(s) = self.dispatch(m.addr, d) {
                        new.push(s);
                    }
                }
            }
        }
    }

    fn dispatch(&mut self, from: SocketAddr, d: &[u8]) -> Option<NewSession<G::Context>> {
        let bound = queue_bytes(self.peers.len());
        if let Some(peer) = self.peers.get_mut(&from) {
            if !peer.room_for(d.len(), bound) {
                // Full, as a full socket buffer would be.
                return None;
            }
            if self.pool.capacity() < d.len() {
                self.pool.reserve(POOL);
            }
            self.pool.extend_from_slice(d);
            let datagram = self.pool.split();
            match peer.tx.try_send(datagram) {
                Ok(()) => peer.sent(d.len()),
                Err(mpsc::error::TrySendError::Closed(_)) => self.forget(from),
                Err(mpsc::error::TrySendError::Full(_)) => {}
            }
            return None;
        }
        let now = Instant::now();
        let header = Header::parse(d)?;
        if header.ptype != TYPE_REQUEST {
            self.reply.clear();
            self.gate.other(from, d, now, &mut self.reply);
            if !self.reply.is_empty() {
                // Best effort, as UDP: a full socket buffer drops the reply.
                let _ = self.sock.try_send_to(&self.reply, from);
            }
            return None;
        }
        if self.opts.max_sessions.is_some_and(|m| self.accepted >= m) {
            return None;
        }
        if !self.accepting() || self.host_full(from) || self.admission.short_of_resources(now) {
            self.refuse(from, d, now);
            return None;
        }
        let keys = self.gate.secrets_for(from, now);
        let mut request = d.to_vec();
        // Authenticates (one HMAC per candidate key) and checks the
        // timestamp before any state exists.
        let mut index = None;
        for (i, key) in keys.iter().enumerate() {
            request.copy_from_slice(d);
            if self.fresh(key, &mut request, from, now) {
                index = Some(i);
                break;
            }
        }
        let index = index?;
        let key = &keys[index];
        request.copy_from_slice(d);
        let rnd = HandshakeRandom::from_os().ok()?;
        let conn = match Connection::server(
            session_config(&self.opts.config),
            key.bytes(),
            rnd,
            now,
            &mut request,
        ) {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!("dropped handshake from {from}: {e}");
                return None;
            }
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        self.peers.insert(from, Peer::new(tx));
        *self.per_host.entry(host_of(from.ip())).or_default() += 1;
        self.accepted += 1;
        let ctx = self.gate.admitted_as(from, index);
        // Counted in the budget from its handshake to its end.
        let member = budget::daemon().join();
        Some((from, conn, rx, ctx, member))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_queue_is_bounded_in_bytes() {
        let (tx, mut rx) = mpsc::channel(QUEUE);
        let mut p = Peer::new(tx);
        let big = 65_000;
        let mut queued = 0;
        while p.room_for(big, QUEUE_BYTES) {
            p.tx.try_send(BytesMut::zeroed(big)).unwrap();
            p.sent(big);
            queued += 1;
        }
        assert_eq!(
            queued,
            QUEUE_BYTES / big,
            "bounded by bytes, not by the 4096 count"
        );
        // Once the session took some out, there is room again.
        rx.try_recv().unwrap();
        rx.try_recv().unwrap();
        assert!(p.room_for(big, QUEUE_BYTES));
        assert_eq!(p.bytes, (queued - 2) * big);
        // Small datagrams are bounded by the count.
        let (tx, _rx) = mpsc::channel(QUEUE);
        let mut p = Peer::new(tx);
        for _ in 0..QUEUE {
            assert!(p.room_for(1200, QUEUE_BYTES));
            p.tx.try_send(BytesMut::zeroed(1200)).unwrap();
            p.sent(1200);
        }
        assert!(p.tx.try_send(BytesMut::zeroed(1200)).is_err());
    }

    #[test]
    fn queues_share_a_total_bound() {
        assert_eq!(queue_bytes(1), QUEUE_BYTES);
        assert_eq!(queue_bytes(8), QUEUE_BYTES);
        assert_eq!(queue_bytes(64), 1 << 20);
        assert_eq!(queue_bytes(1000), QUEUE_BYTES_MIN);
        assert_eq!(queue_bytes(0), QUEUE_BYTES);
    }

    #[test]
    fn hosts_are_ipv4_addresses_and_ipv6_slash_64s() {
        let h = |s: &str| host_of(s.parse().unwrap());
        assert_eq!(h("192.0.2.7"), h("::ffff:192.0.2.7"));
        assert_ne!(h("192.0.2.7"), h("192.0.2.8"));
        assert_eq!(h("2001:db8:1:2:aaaa::1"), h("2001:db8:1:2:ffff:1:2:3"));
        assert_eq!(h("2001:db8:1:2:aaaa::1"), h("2001:db8:1:2::"));
        assert_ne!(h("2001:db8:1:2::1"), h("2001:db8:1:3::1"));
    }
}
