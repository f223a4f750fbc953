//! How a `--ucspi` helper authenticates the session it upgrades to, once
//! the two UPGRADE messages are exchanged ([`Authenticator`]): by the key
//! file both ends hold ([`KeyFile`], UPGRADE version 1), or by a login
//! (version 2), whose two sides live in the layers that know logins
//! (`service::ucspi_login` for the server, `cli::login` for the client's
//! questions) and are handed to the helper as an [`Authenticator`].

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use anyhow::{Context, Result};

use super::wire::{self, Mode, Upgrade};
use crate::bootstrap::{keyfile, Secret};
use crate::transport::{Config, Session};

/// A future that opens the upgraded session.
pub type Opening<'a> = Pin<Box<dyn Future<Output = Result<Session>> + Send + 'a>>;

/// Opens the upgraded session on one side, given both UPGRADE messages.
pub trait Authenticator: Send + Sync {
    /// The UPGRADE version this side sends and wants.
    fn mode(&self) -> Mode;
    /// Server: accept the one client on `socket` (the UDP port our
    /// UPGRADE named), within `wait` for its handshake.
    fn accept(
        &self,
        socket: std::net::UdpSocket,
        ours: Upgrade,
        theirs: Upgrade,
        config: Config,
        wait: Duration,
    ) -> Opening<'_>;
    /// Client: open the session with the server at `addr`.
    fn connect(
        &self,
        addr: SocketAddr,
        ours: Upgrade,
        theirs: Upgrade,
        config: Config,
    ) -> Opening<'_>;
    /// Client: the server's host when neither `--connect` nor
    /// `TCPREMOTEIP` names it (a login URL's).
    fn host(&self) -> Option<String> {
        None
    }
    /// Server: what the `Y` answer adds once the session is up (who
    /// logged in).
    fn described(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
}

/// Key-file mode: the session secret from the key and both nonces
/// ([`wire::session_secret`]), then the ordinary handshake (§2).
pub struct KeyFile(pub Secret);

impl Authenticator for KeyFile {
    fn mode(&self) -> Mode {
        Mode::KeyFile
    }

    fn accept(
        &self,
        socket: std::net::UdpSocket,
        ours: Upgrade,
        theirs: Upgrade,
        config: Config,
        wait: Duration,
    ) -> Opening<'_> {
        Box::pin(async move {
            let secret = wire::session_secret(&self.0, &theirs, &ours);
            let socket = tokio::net::UdpSocket::from_std(socket)?;
            Session::accept(socket, secret.bytes(), config, wait)
                .await
                .context("no vfer client arrived over UDP (is UDP blocked, or the key wrong?)")
        })
    }

    fn connect(
        &self,
        addr: SocketAddr,
        ours: Upgrade,
        theirs: Upgrade,
        config: Config,
    ) -> Opening<'_> {
        Box::pin(async move {
            let secret = wire::session_secret(&self.0, &ours, &theirs);
            keyfile::connect(addr, &secret, config)
                .await
                .with_context(|| format!("{addr}: no vfer session (wrong key, or UDP blocked?)"))
        })
    }
}
