//! How a [`Session`] comes to be: a client connects, an ssh-started
//! server accepts one client on its own socket, a standing server's
//! session is accepted from its demultiplexer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn_udp::UdpSocketState;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::config::Config;
use super::connection::Connection;
use super::driver::{Demux, Demuxed, OnAddress, Session, SessionError};
use super::handshake::{HandshakeRandom, TYPE_REQUEST};
use crate::vsl::{Header, KEY_LEN};

impl Session {
    /// Connects to a server at `peer` that holds `secret`.
    pub async fn connect(
        peer: SocketAddr,
        secret: &[u8; KEY_LEN],
        config: Config,
    ) -> Result<Session, SessionError> {
        let bind: SocketAddr = if peer.is_ipv4() {
            "0.0.0.0:0".parse().expect("valid literal")
        } else {
            "[::]:0".parse().expect("valid literal")
        };
        let (socket, warning) = super::socket::bind(bind)?;
        let rnd = HandshakeRandom::from_os()?;
        let conn = Connection::client(config, secret, rnd, Instant::now());
        let mut s = Session::spawn(Arc::new(socket), None, conn, peer, None)?;
        s.warning = warning;
        s.wait_connected().await?;
        Ok(s)
    }

    /// Like [`Session::connect`] on a socket the caller already bound (and
    /// maybe used: challenge-response mode's pre-handshake must come from
    /// the same address as the REQUEST). `warning` is what
    /// [`Session::socket_warning`] will report.
    pub async fn connect_on(
        socket: UdpSocket,
        warning: Option<String>,
        peer: SocketAddr,
        secret: &[u8; KEY_LEN],
        config: Config,
    ) -> Result<Session, SessionError> {
        let rnd = HandshakeRandom::from_os()?;
        let conn = Connection::client(config, secret, rnd, Instant::now());
        let mut s = Session::spawn(Arc::new(socket), None, conn, peer, None)?;
        s.warning = warning;
        s.wait_connected().await?;
        Ok(s)
    }

    /// Waits on `socket` for a client whose REQUEST verifies under `secret`,
    /// then until its first packet under the session keys (which proves it
    /// received our RESPONSE). Gives up after `wait`.
    pub async fn accept(
        socket: UdpSocket,
        secret: &[u8; KEY_LEN],
        config: Config,
        wait: Duration,
    ) -> Result<Session, SessionError> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut buf = vec![0u8; 65_536];
        let (conn, peer) = loop {
            let (n, from) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf))
                .await
                .map_err(|_| SessionError::AcceptTimeout(wait))??;
            let d = &mut buf[..n];
            if Header::parse(d).is_none_or(|h| h.ptype != TYPE_REQUEST) {
                continue;
            }
            let rnd = HandshakeRandom::from_os()?;
            match Connection::server(config.clone(), secret, rnd, Instant::now(), d) {
                Ok(c) => break (c, from),
                Err(e) => tracing::debug!("dropped handshake from {from}: {e}"),
            }
        };
        let s = Session::spawn(Arc::new(socket), None, conn, peer, None)?;
        tokio::time::timeout_at(deadline, s.wait_connected())
            .await
            .map_err(|_| SessionError::AcceptTimeout(wait))??;
        Ok(s)
    }

    /// The server side of one client on a socket shared with other
    /// sessions (a standing server). A demultiplexer owns the socket's
    /// receive side and feeds this session the datagrams meant for it,
    /// each with its source address, through `rx`; sends go straight out
    /// on `socket` (batched with `state`). `conn` is the server connection
    /// built from the client's verified REQUEST from `peer`. `on_address`
    /// hears of every new address an authentic packet came from (the
    /// demultiplexer then routes that address here; PROTOCOL §3.9).
    /// Returns once the client's first packet under the session keys
    /// arrived; gives up after `wait`.
    pub async fn accept_demuxed(
        socket: Arc<UdpSocket>,
        state: Arc<UdpSocketState>,
        conn: Connection,
        peer: SocketAddr,
        rx: mpsc::Receiver<Demuxed>,
        on_address: OnAddress,
        wait: Duration,
    ) -> Result<Session, SessionError> {
        let demux = Demux { rx, on_address };
        let s = Session::spawn(socket, Some(state), conn, peer, Some(demux))?;
        tokio::time::timeout(wait, s.wait_connected())
            .await
            .map_err(|_| SessionError::AcceptTimeout(wait))??;
        Ok(s)
    }
}
