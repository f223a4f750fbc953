//! A standing server on one UDP port (key-file mode, and challenge-response
//! mode through a [`Gate`]): many clients over time and at once,
//! demultiplexed by source address.
//!
//! The listener task owns the socket's receive side and is a thin driver
//! around the sans-IO [`Endpoint`](super::endpoint::Endpoint), which says
//! what each datagram is. A datagram from a known peer goes to that
//! session's channel with its source address (dropped if the channel is
//! full, as a full socket buffer would). A datagram from an unknown
//! address creates state only if it is a REQUEST that verifies under the
//! key and the connection limit allows it; a DATA datagram may be a known
//! peer's from a new address (a NAT rebinding: the endpoint offers it to
//! the sessions it may belong to); anything else is dropped without an
//! answer, so spoofed or wrong-key traffic costs one HMAC and no memory.
//! Which secret a REQUEST must verify under, and what other datagrams from
//! unknown addresses get back, is the [`Gate`]'s decision: key-file mode's
//! [`StaticKey`] has one secret for everyone and answers nothing; the login
//! gate (`bootstrap::login::server`) has one pending secret per address.
//! Each session's driver sends directly on the shared socket.
//!
//! Replays (kept by the endpoint): a REQUEST carries the client's TAI64N
//! timestamp under its MAC. Where the secret is reused (key-file mode,
//! [`Gate::reusable_secret`]) a
//! [`ReplayGuard`](super::replay::ReplayGuard) refuses a REQUEST whose timestamp is outside
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
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::BytesMut;
use quinn_udp::{RecvMeta, UdpSocketState, BATCH_SIZE};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::sync::Semaphore;

use super::admission::Admission;
use super::endpoint::{ConnId, DatagramEvent, Endpoint};
use super::wire::Secret;
use crate::budget;
use crate::transport::{socket, Connection, Demuxed, Session, SessionError};

pub use super::endpoint::{
    host_of, max_handshakes, session_config, Gate, ListenOptions, StaticKey,
};
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

/// One session's queue bound in bytes when `sessions` share the listener.
pub fn queue_bytes(sessions: usize) -> usize {
    (QUEUE_BYTES_ALL / sessions.max(1)).clamp(QUEUE_BYTES_MIN, QUEUE_BYTES)
}
/// Close reason of a session that completed its handshake while every
/// slot was taken.
pub const BUSY_REASON: &str =
    "the daemon is serving its maximum number of sessions (-n); try again later";

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
    let wait = opts.handshake_timeout;
    let load = Box::new(Admission::start());
    let mut l = Listener {
        sock,
        state,
        endpoint: Endpoint::new(gate, opts, slots.clone(), load, Instant::now()),
        queues: HashMap::new(),
        pool: BytesMut::with_capacity(POOL),
    };
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<ConnId>();
    let (moved_tx, mut moved_rx) = mpsc::unbounded_channel::<(ConnId, SocketAddr)>();
    let mut buf = vec![0u8; SLOT * BATCH_SIZE];
    let mut meta = vec![RecvMeta::default(); BATCH_SIZE];
    loop {
        if l.endpoint.finished() {
            return Ok(());
        }
        tokio::select! {
            r = l.sock.readable() => {
                r?;
                for (id, peer, conn, rx, ctx, member) in l.receive(&mut buf, &mut meta) {
                    let (sock, state) = (l.sock.clone(), l.state.clone());
                    let (f, done) = (on_session.clone(), done_tx.clone());
                    let moved = moved_tx.clone();
                    let on_address = Box::new(move |a| {
                        let _ = moved.send((id, a));
                    });
                    let slots = slots.clone();
                    tokio::spawn(async move {
                        let accepted =
                            Session::accept_demuxed(sock, state, conn, peer, rx, on_address, wait);
                        match accepted.await {
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
                        let _ = done.send(id);
                    });
                }
            }
            Some((id, addr)) = moved_rx.recv() => l.endpoint.learned(id, addr),
            Some(id) = done_rx.recv() => {
                l.forget(id);
                if l.endpoint.is_empty() {
                    // Idle: a fresh batch buffer, whose pages are not
                    // resident until used (the old one, every page
                    // touched by GRO trains, goes back to the OS).
                    buf = vec![0u8; SLOT * BATCH_SIZE];
                }
            }
        }
    }
}

/// A session's queue, as the listener sees it.
struct Peer {
    tx: mpsc::Sender<Demuxed>,
    /// Sizes of the datagrams sent into the queue that may still be in it,
    /// oldest first, and their sum.
    sizes: VecDeque<u32>,
    bytes: usize,
}

impl Peer {
    fn new(tx: mpsc::Sender<Demuxed>) -> Self {
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
    ConnId,
    SocketAddr,
    Connection,
    mpsc::Receiver<Demuxed>,
    C,
    budget::Member<'static>,
);

struct Listener<G: Gate> {
    sock: Arc<UdpSocket>,
    state: Arc<UdpSocketState>,
    endpoint: Endpoint<G>,
    /// Each session's queue.
    queues: HashMap<ConnId, Peer>,
    pool: BytesMut,
}

impl<G: Gate> Listener<G> {
    fn forget(&mut self, id: ConnId) {
        self.queues.remove(&id);
        self.endpoint.forget(id, Instant::now());
        if self.queues.is_empty() {
            // Idle: the datagram pool and the table's room for a thousand
            // sessions go too.
            self.pool = BytesMut::new();
            self.queues.shrink_to_fit();
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
            let (now, wall) = (Instant::now(), SystemTime::now());
            for (m, slice) in meta.iter().zip(slices.iter()).take(n) {
                let stride = m.stride.max(1);
                for d in slice[..m.len].chunks(stride) {
                    if let Some(s) = self.dispatch(now, wall, m.addr, d) {
                        new.push(s);
                    }
                }
            }
        }
    }

    fn dispatch(
        &mut self,
        now: Instant,
        wall: SystemTime,
        from: SocketAddr,
        d: &[u8],
    ) -> Option<NewSession<G::Context>> {
        match self.endpoint.handle(now, wall, from, d) {
            DatagramEvent::Known(id) => self.enqueue(id, from, d),
            DatagramEvent::Rebinding(ids) => {
                for id in ids {
                    self.enqueue(id, from, d);
                }
            }
            DatagramEvent::Reply(reply) => {
                // Best effort, as UDP: a full socket buffer drops the reply.
                let _ = self.sock.try_send_to(&reply, from);
            }
            DatagramEvent::Drop => {}
            DatagramEvent::New(id, conn, ctx) => {
                let (tx, rx) = mpsc::channel(QUEUE);
                self.queues.insert(id, Peer::new(tx));
                // Counted in the budget from its handshake to its end.
                let member = budget::daemon().join();
                return Some((id, from, *conn, rx, ctx, member));
            }
        }
        None
    }

    /// Queues `d` from `from` for session `id`, unless its queue is full.
    fn enqueue(&mut self, id: ConnId, from: SocketAddr, d: &[u8]) {
        let bound = queue_bytes(self.queues.len());
        let Some(peer) = self.queues.get_mut(&id) else {
            return;
        };
        if !peer.room_for(d.len(), bound) {
            // Full, as a full socket buffer would be.
            return;
        }
        if self.pool.capacity() < d.len() {
            self.pool.reserve(POOL);
        }
        self.pool.extend_from_slice(d);
        let datagram = self.pool.split();
        match peer.tx.try_send((from, datagram)) {
            Ok(()) => peer.sent(d.len()),
            Err(mpsc::error::TrySendError::Closed(_)) => self.forget(id),
            Err(mpsc::error::TrySendError::Full(_)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        "192.0.2.1:9".parse().unwrap()
    }

    #[test]
    fn a_session_queue_is_bounded_in_bytes() {
        let (tx, mut rx) = mpsc::channel(QUEUE);
        let mut p = Peer::new(tx);
        let big = 65_000;
        let mut queued = 0;
        while p.room_for(big, QUEUE_BYTES) {
            p.tx.try_send((addr(), BytesMut::zeroed(big))).unwrap();
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
            p.tx.try_send((addr(), BytesMut::zeroed(1200))).unwrap();
            p.sent(1200);
        }
        assert!(p.tx.try_send((addr(), BytesMut::zeroed(1200))).is_err());
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
