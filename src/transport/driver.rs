//! The thin tokio driver around a [`Connection`]: moves datagrams between
//! the connection and a UDP socket (GSO/GRO batches through `quinn-udp`),
//! fires its timers, and exposes its stream as `AsyncRead + AsyncWrite`.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use quinn_udp::{RecvMeta, Transmit, UdpSocketState, BATCH_SIZE};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, Notify};

use super::closing::CloseReason;
use super::config::Stats;
use super::connection::{Connection, Event};

/// Largest GSO batch in bytes (the kernel limit is 64 KiB per send).
pub(super) const GSO_BATCH_BYTES: usize = 65_000;
/// Receive buffer per batch slot: one maximal datagram or a GRO train.
const RECV_SLOT: usize = 96 * 1024;

/// Why a session could not be set up or ended in error.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// A socket operation failed.
    #[error("UDP socket error: {0}")]
    Io(#[from] io::Error),
    /// The connection ended abnormally.
    #[error(transparent)]
    Closed(#[from] CloseReason),
    /// No client arrived in time (server side).
    #[error("no authenticated client arrived within {0:?}")]
    AcceptTimeout(Duration),
}

struct Inner {
    conn: Connection,
    read_waker: Option<Waker>,
    write_waker: Option<Waker>,
    connected: bool,
    closed: Option<CloseReason>,
    peer: SocketAddr,
}

struct Shared {
    inner: Mutex<Inner>,
    wake_driver: Notify,
    state_changed: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock is a bug; keep going with the data.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// An established VFER session: a reliable, encrypted byte stream to the
/// peer, driven by a background task.
pub struct Session {
    shared: Arc<Shared>,
    driver: tokio::task::JoinHandle<()>,
    pub(super) warning: Option<String>,
}

impl Session {
    pub(super) fn spawn(
        socket: Arc<UdpSocket>,
        state: Option<Arc<UdpSocketState>>,
        mut conn: Connection,
        peer: SocketAddr,
        demux: Option<Demux>,
    ) -> io::Result<Session> {
        conn.set_remote(peer);
        let state = match state {
            Some(s) => s,
            None => Arc::new(UdpSocketState::new((&*socket).into())?),
        };
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                conn,
                read_waker: None,
                write_waker: None,
                connected: false,
                closed: None,
                peer,
            }),
            wake_driver: Notify::new(),
            state_changed: Notify::new(),
        });
        let driver = Driver {
            socket,
            state,
            shared: shared.clone(),
            demux,
        };
        let handle = tokio::spawn(driver.run());
        Ok(Session {
            shared,
            driver: handle,
            warning: None,
        })
    }

    /// A warning about capped socket buffers, if the kernel capped them.
    pub fn socket_warning(&self) -> Option<&str> {
        self.warning.as_deref()
    }

    pub(super) async fn wait_connected(&self) -> Result<(), SessionError> {
        loop {
            let notified = self.shared.state_changed.notified();
            {
                let inner = self.shared.lock();
                if let Some(r) = &inner.closed {
                    return Err(r.clone().into());
                }
                if inner.connected {
                    return Ok(());
                }
            }
            notified.await;
        }
    }

    /// The peer's current address.
    pub fn peer(&self) -> SocketAddr {
        self.shared.lock().peer
    }

    /// Connection statistics so far.
    pub fn stats(&self) -> Stats {
        self.shared.lock().conn.stats()
    }

    /// Stream bytes written but not yet acknowledged by the peer.
    pub fn unconfirmed(&self) -> u64 {
        self.shared.lock().conn.send_unconfirmed()
    }

    /// The byte stream (clone-free handle; read and write halves via `tokio::io::split`).
    pub fn stream(&self) -> VferStream {
        VferStream {
            shared: self.shared.clone(),
        }
    }

    /// Closes the session (code 0 = success) and waits until the CLOSE has
    /// been sent; returns the final statistics.
    pub async fn close(mut self, code: u64, reason: &str) -> Stats {
        {
            let mut inner = self.shared.lock();
            inner.conn.close(Instant::now(), code, reason);
        }
        self.shared.wake_driver.notify_one();
        let _ = (&mut self.driver).await;
        self.shared.lock().conn.stats()
    }

    /// Why the session ended, if it has.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.shared.lock().closed.clone()
    }

    /// Lowers this side's sending rate cap to `bytes_per_sec` (never
    /// raises it; [`Connection::cap_rate`]).
    pub fn cap_rate(&self, bytes_per_sec: u64) {
        self.shared.lock().conn.cap_rate(bytes_per_sec);
        self.shared.wake_driver.notify_one();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let mut inner = self.shared.lock();
        if !inner.conn.is_closed() {
            inner.conn.close(Instant::now(), 1, "session dropped");
            drop(inner);
            self.shared.wake_driver.notify_one();
        }
    }
}

/// The session's byte stream. `shutdown` ends our direction and resolves
/// once the peer has acknowledged every byte.
pub struct VferStream {
    shared: Arc<Shared>,
}

fn closed_error(reason: &Option<CloseReason>) -> io::Error {
    match reason {
        Some(r) => io::Error::new(io::ErrorKind::ConnectionAborted, r.to_string()),
        None => io::Error::new(io::ErrorKind::NotConnected, "connection closed"),
    }
}

/// Most bytes one read or write copies while it holds the connection's
/// lock: a 256 KiB chunk copied in one go kept the driver (which seals,
/// sends, receives and opens under the same lock) waiting for tens of
/// microseconds; in pieces the driver gets the lock between them.
const COPY_UNDER_LOCK: usize = 64 * 1024;

impl AsyncRead for VferStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut inner = self.shared.lock();
        let due_before = inner.conn.window_update_due();
        let want = buf.remaining().min(COPY_UNDER_LOCK);
        let n = inner.conn.read(&mut buf.initialize_unfilled()[..want]);
        if n > 0 {
            buf.advance(n);
            // Wake the driver only when this read made a window update
            // (MAX_DATA) due: waking it for every read cost a context switch
            // per receive batch for nothing to send.
            let wake = !due_before && inner.conn.window_update_due();
            drop(inner);
            if wake {
                self.shared.wake_driver.notify_one();
            }
            return Poll::Ready(Ok(()));
        }
        if inner.conn.is_read_finished() {
            return Poll::Ready(Ok(()));
        }
        if inner.closed.is_some() {
            return Poll::Ready(Err(closed_error(&inner.closed)));
        }
        inner.read_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl AsyncWrite for VferStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut inner = self.shared.lock();
        if inner.closed.is_some() {
            return Poll::Ready(Err(closed_error(&inner.closed)));
        }
        let n = inner.conn.write(&data[..data.len().min(COPY_UNDER_LOCK)]);
        if n > 0 || data.is_empty() {
            drop(inner);
            self.shared.wake_driver.notify_one();
            return Poll::Ready(Ok(n));
        }
        inner.write_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut inner = self.shared.lock();
        if inner.conn.is_send_complete() {
            return Poll::Ready(Ok(()));
        }
        if inner.closed.is_some() {
            return Poll::Ready(Err(closed_error(&inner.closed)));
        }
        inner.conn.finish();
        inner.write_waker = Some(cx.waker().clone());
        drop(inner);
        self.shared.wake_driver.notify_one();
        Poll::Pending
    }
}

/// A datagram from a demultiplexer, with its source address.
pub type Demuxed = (SocketAddr, bytes::BytesMut);
/// Told each new address the peer's authentic packets came from.
pub type OnAddress = Box<dyn Fn(SocketAddr) + Send + Sync>;

/// A session's side of a demultiplexer: its datagrams, and who to tell
/// of the peer's new addresses.
pub(super) struct Demux {
    pub(super) rx: mpsc::Receiver<Demuxed>,
    pub(super) on_address: OnAddress,
}

struct Driver {
    socket: Arc<UdpSocket>,
    state: Arc<UdpSocketState>,
    shared: Arc<Shared>,
    /// Datagrams from a demultiplexer, when the socket is shared.
    demux: Option<Demux>,
}

/// The next demultiplexed datagram; never resolves without a demultiplexer
/// or after it went away (the idle timeout then ends the connection).
async fn next_demuxed(rx: &mut Option<mpsc::Receiver<Demuxed>>) -> Demuxed {
    match rx {
        Some(r) => match r.recv().await {
            Some(d) => d,
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

impl Driver {
    async fn run(mut self) {
        let (mut demux, on_address) = match self.demux.take() {
            Some(d) => (Some(d.rx), Some(d.on_address)),
            None => (None, None),
        };
        let own_socket = demux.is_none();
        // A session on a shared socket (a standing server's) gets its
        // datagrams from the demultiplexer: no receive batch (3 MiB) of its
        // own. The send batch is lent per transmit (`scratch`), so a
        // server's thousand sessions do not each hold one.
        let mut recv_buf = if own_socket {
            vec![0u8; RECV_SLOT * BATCH_SIZE]
        } else {
            Vec::new()
        };
        let mut meta = vec![RecvMeta::default(); BATCH_SIZE];
        loop {
            let mut send_buf = super::scratch::take();
            if let Err(e) = self.transmit(&mut send_buf).await {
                tracing::warn!("UDP send failed: {e}");
            }
            super::scratch::give(send_buf);
            let deadline = {
                let mut inner = self.shared.lock();
                self.publish(&mut inner, on_address.as_ref());
                if inner.conn.is_closed() {
                    return;
                }
                inner.conn.poll_timeout()
            };
            let sleep = async {
                match deadline {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                r = self.socket.readable(), if own_socket => {
                    if r.is_ok() {
                        self.receive(&mut recv_buf, &mut meta);
                    }
                }
                d = next_demuxed(&mut demux) => {
                    self.receive_demuxed(d, &mut demux);
                }
                _ = sleep => {}
                _ = self.shared.wake_driver.notified() => {}
            }
            let now = Instant::now();
            let mut inner = self.shared.lock();
            if inner.conn.poll_timeout().is_some_and(|t| t <= now) {
                inner.conn.handle_timeout(now);
            }
        }
    }

    /// Wakes the application when its stream can make progress.
    fn publish(&self, inner: &mut Inner, on_address: Option<&OnAddress>) {
        let mut changed = false;
        while let Some(ev) = inner.conn.poll_event() {
            match ev {
                Event::Connected => inner.connected = true,
                Event::Closed(r) => inner.closed = Some(r),
                Event::NewAddress(a) => {
                    if let Some(f) = on_address {
                        f(a);
                    }
                    continue;
                }
            }
            changed = true;
        }
        let closed = inner.closed.is_some();
        if closed || inner.conn.readable() > 0 || inner.conn.is_read_finished() {
            if let Some(w) = inner.read_waker.take() {
                w.wake();
            }
        }
        if closed || inner.conn.send_space() > 0 || inner.conn.is_send_complete() {
            if let Some(w) = inner.write_waker.take() {
                w.wake();
            }
        }
        if changed {
            self.shared.state_changed.notify_waiters();
        }
    }

    /// Handles `first` and whatever else the demultiplexer has queued.
    fn receive_demuxed(&self, first: Demuxed, rx: &mut Option<mpsc::Receiver<Demuxed>>) {
        let now = Instant::now();
        let mut inner = self.shared.lock();
        let (from, mut d) = first;
        inner.conn.handle_datagram_from(now, from, &mut d);
        if let Some(rx) = rx {
            for _ in 0..BATCH_SIZE * 4 {
                match rx.try_recv() {
                    Ok((from, mut d)) => inner.conn.handle_datagram_from(now, from, &mut d),
                    Err(_) => break,
                }
            }
        }
        if let Some(a) = inner.conn.remote() {
            inner.peer = a;
        }
    }

    fn receive(&self, buf: &mut [u8], meta: &mut [RecvMeta]) {
        loop {
            // One slot per batch entry, on the stack: no allocation per
            // receive call.
            let mut chunks = buf.chunks_mut(RECV_SLOT);
            let mut slices: [IoSliceMut<'_>; BATCH_SIZE] =
                std::array::from_fn(|_| IoSliceMut::new(chunks.next().unwrap_or_default()));
            let res = self.socket.try_io(tokio::io::Interest::READABLE, || {
                self.state.recv((&self.socket).into(), &mut slices, meta)
            });
            let n = match res {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::debug!("UDP receive error: {e}");
                    return;
                }
            };
            let now = Instant::now();
            let mut inner = self.shared.lock();
            for (m, slice) in meta.iter().zip(slices.iter_mut()).take(n) {
                let stride = m.stride.max(1);
                for d in slice[..m.len].chunks_mut(stride) {
                    inner.conn.handle_datagram_from(now, m.addr, d);
                }
            }
            // The validated address: follow a peer that moved (NAT
            // rebinding) once it answered there (PROTOCOL §3.9).
            if let Some(a) = inner.conn.remote() {
                inner.peer = a;
            }
        }
    }

    async fn transmit(&self, buf: &mut [u8]) -> io::Result<()> {
        let challenge = self
            .shared
            .lock()
            .conn
            .poll_path_transmit(Instant::now(), buf);
        if let Some((n, to)) = challenge {
            // Best effort, as UDP: a lost challenge is sent again.
            let _ = self.socket.try_send_to(&buf[..n], to);
        }
        let max_segments = self.state.max_gso_segments().max(1);
        loop {
            let (len, segment, dest) = {
                let mut inner = self.shared.lock();
                let now = Instant::now();
                let mut pos = 0;
                let mut segment = 0;
                let mut count = 0;
                while count < max_segments {
                    let room = if count == 0 {
                        buf.len().min(65_536)
                    } else {
                        segment.min(GSO_BATCH_BYTES.saturating_sub(pos))
                    };
                    if room < crate::transport::mtu::BASE_PLPMTU as usize {
                        break;
                    }
                    let Some(n) = inner.conn.poll_transmit(now, &mut buf[pos..pos + room]) else {
                        break;
                    };
                    if count == 0 {
                        segment = n;
                    }
                    pos += n;
                    count += 1;
                    if n < segment {
                        break; // a short datagram ends a GSO batch
                    }
                }
                (pos, segment, inner.peer)
            };
            if len == 0 {
                return Ok(());
            }
            let t = Transmit {
                destination: dest,
                ecn: None,
                contents: &buf[..len],
                segment_size: (len > segment).then_some(segment),
                src_ip: None,
            };
            loop {
                let r = self.socket.try_io(tokio::io::Interest::WRITABLE, || {
                    self.state.try_send((&self.socket).into(), &t)
                });
                match r {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.socket.writable().await?;
                    }
                    // EMSGSIZE (a PLPMTUD probe too big for the interface)
                    // and transient errors: the packet counts as lost.
                    Err(e) => {
                        tracing::debug!("UDP send error: {e}");
                        break;
                    }
                }
            }
        }
    }
}
