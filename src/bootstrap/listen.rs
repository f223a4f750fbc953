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
//! Replays: a REQUEST carries no timestamp, so a captured one verifies
//! forever. A REQUEST whose MAC was accepted from another address within
//! [`REPLAY_WINDOW`] is dropped, so an attacker replaying a genuine REQUEST
//! from spoofed addresses cannot fill the connection slots (each would be
//! held for the handshake timeout). The same REQUEST from the same address
//! (a client retransmitting) is not a replay. Older replays still cost one
//! slot for the handshake timeout and never a session (the attacker cannot
//! produce the client's next packet).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use quinn_udp::{RecvMeta, UdpSocketState, BATCH_SIZE};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::wire::Secret;
use crate::transport::handshake::TYPE_REQUEST;
use crate::transport::{socket, Config, Connection, HandshakeRandom, Session, SessionError};
use crate::vsl::{Header, MAC_LEN};

/// Receive buffer per batch slot: one datagram or a GRO train.
const SLOT: usize = 64 * 1024;
/// Datagrams queued per session before the listener drops.
const QUEUE: usize = 4096;
/// The pool datagrams are copied into before they go to a session.
const POOL: usize = 4 << 20;
/// How long accepted REQUESTs are remembered against replays.
pub const REPLAY_WINDOW: Duration = Duration::from_secs(600);
/// Most REQUESTs remembered; beyond it new clients wait for old entries to
/// expire (only genuine REQUESTs are remembered, so only key holders fill it).
const REPLAY_CAP: usize = 65_536;

/// Settings of the standing server.
#[derive(Debug, Clone)]
pub struct ListenOptions {
    /// Most sessions at once (handshaking or established); REQUESTs beyond
    /// it are dropped, the client retries until its handshake timeout.
    pub max_connections: usize,
    /// Stop accepting after this many sessions and return once they ended
    /// (`None`: serve forever).
    pub max_sessions: Option<u64>,
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
            handshake_timeout: Duration::from_secs(5),
            config: Config::default(),
        }
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
    fn other(&mut self, _: SocketAddr, _: &[u8], _: Instant, _: &mut Vec<u8>) {}
}

/// Like [`serve`] with another [`Gate`]: `on_session` receives each
/// session with what the gate knew about its client.
pub async fn serve_gated<G, F, Fut>(
    sock: Arc<UdpSocket>,
    gate: G,
    opts: ListenOptions,
    on_session: F,
) -> Result<(), SessionError>
where
    G: Gate,
    F: Fn(Session, G::Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let state = Arc::new(UdpSocketState::new((&*sock).into())?);
    let on_session = Arc::new(on_session);
    let mut l = Listener {
        sock,
        state,
        gate,
        opts,
        peers: HashMap::new(),
        recent: HashMap::new(),
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
                for (peer, conn, rx, ctx) in l.receive(&mut buf, &mut meta) {
                    let (sock, state) = (l.sock.clone(), l.state.clone());
                    let wait = l.opts.handshake_timeout;
                    let (f, done) = (on_session.clone(), done_tx.clone());
                    tokio::spawn(async move {
                        match Session::accept_demuxed(sock, state, conn, peer, rx, wait).await {
                            Ok(s) => f(s, ctx).await,
                            Err(e) => tracing::debug!("{peer}: handshake not completed: {e}"),
                        }
                        let _ = done.send(peer);
                    });
                }
            }
            Some(peer) = done_rx.recv() => {
                l.peers.remove(&peer);
            }
        }
    }
}

impl<G: Gate> Listener<G> {
    /// Records an authentic REQUEST; false if it is a replay from another
    /// address (or the table is full of fresh entries).
    fn remember(&mut self, mac: [u8; MAC_LEN], from: SocketAddr, now: Instant) -> bool {
        let fresh = |t: &Instant| now.saturating_duration_since(*t) < REPLAY_WINDOW;
        if let Some((addr, t)) = self.recent.get(&mac) {
            if *addr != from && fresh(t) {
                return false;
            }
        }
        if self.recent.len() >= REPLAY_CAP {
            self.recent.retain(|_, (_, t)| fresh(t));
            if self.recent.len() >= REPLAY_CAP {
                return false;
            }
        }
        self.recent.insert(mac, (from, now));
        true
    }
}

type NewSession<C> = (SocketAddr, Connection, mpsc::Receiver<BytesMut>, C);

struct Listener<G> {
    sock: Arc<UdpSocket>,
    state: Arc<UdpSocketState>,
    gate: G,
    /// The gate's answer to the datagram being dispatched.
    reply: Vec<u8>,
    opts: ListenOptions,
    peers: HashMap<SocketAddr, mpsc::Sender<BytesMut>>,
    /// MAC of each recently accepted REQUEST -> (source, when).
    recent: HashMap<[u8; MAC_LEN], (SocketAddr, Instant)>,
    accepted: u64,
    pool: BytesMut,
}

impl<G: Gate> Listener<G> {
    fn finished(&self) -> bool {
        self.opts.max_sessions.is_some_and(|m| self.accepted >= m) && self.peers.is_empty()
    }

    fn accepting(&self) -> bool {
        self.opts.max_sessions.is_none_or(|m| self.accepted < m)
            && self.peers.len() < self.opts.max_connections
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
        if let Some(tx) = self.peers.get(&from) {
            if self.pool.capacity() < d.len() {
                self.pool.reserve(POOL);
            }
            self.pool.extend_from_slice(d);
            let datagram = self.pool.split();
            if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(datagram) {
                self.peers.remove(&from);
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
        if !self.accepting() {
            return None;
        }
        let key = self.gate.secret_for(from, now)?;
        let mut request = d.to_vec();
        let rnd = HandshakeRandom::from_os().ok()?;
        let conn = match Connection::server(
            self.opts.config.clone(),
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
        if !self.remember(header.mac, from, now) {
            tracing::debug!("dropped replayed handshake from {from}");
            return None;
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        self.peers.insert(from, tx);
        self.accepted += 1;
        let ctx = self.gate.admitted(from);
        Some((from, conn, rx, ctx))
    }
}
