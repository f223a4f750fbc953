//! `--ucspi` authenticated by a login instead of a key file
//! (docs/PROTOCOL.md §8.5, UPGRADE version 2): the server
//! (`vfer-recv --ucspi --users F [--host-key HK]`) runs challenge-response
//! mode (§7) on the UDP port it bound for this connection and admits one
//! client, the one whose LOGIN its users file accepts; the client
//! (`vfer-send --ucspi vfer://USER@HOST[:PORT]`) checks the server's host
//! key against known_hosts (or `--host-key-fingerprint`) before its
//! password leaves, exactly as with a login daemon. Nothing sent in clear
//! on the connection is trusted.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::{mpsc, oneshot};

use crate::bootstrap::listen::{serve_gated, ListenOptions};
use crate::bootstrap::login::server::LoginGate;
use crate::cli::args::Common;
use crate::service::admit;
use crate::service::login_check::{LoginPolicy, LOGIN_TIMEOUT};
use crate::transport::{Config, Session};

/// The server's login side: the users and host key, loaded at start so a
/// bad file fails before PROG runs.
pub struct ServerLogin {
    gate: Mutex<Option<LoginGate>>,
    policy: Arc<LoginPolicy>,
    /// Keeps the listener's task serving the session until we are done.
    hold: Mutex<Option<oneshot::Sender<()>>>,
    user: Mutex<Option<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ServerLogin {
    /// Loads `users` and the host key (`host_key`, or `vfer_host_key` next
    /// to the users file; created if missing), logging its fingerprint.
    pub fn load(users: &Path, host_key: Option<&Path>) -> Result<ServerLogin> {
        let login = admit::login_gate(users, host_key.map(Path::to_path_buf), 1, 1)?;
        for line in &login.banner {
            tracing::info!("{line}");
        }
        Ok(ServerLogin {
            gate: Mutex::new(Some(login.gate)),
            policy: login.policy,
            hold: Mutex::new(None),
            user: Mutex::new(None),
        })
    }

    /// The user who logged in, once one did.
    pub fn user(&self) -> Option<String> {
        lock(&self.user).clone()
    }

    /// Serves challenge-response mode on `socket` until one client's
    /// login is accepted (its session) or refused (an error), within
    /// `wait` for the handshake and the login's own limits after it.
    pub async fn accept(
        &self,
        socket: std::net::UdpSocket,
        config: Config,
        wait: Duration,
    ) -> Result<Session> {
        let gate = lock(&self.gate)
            .take()
            .context("one upgrade per connection")?;
        let socket = Arc::new(tokio::net::UdpSocket::from_std(socket)?);
        let listen = ListenOptions {
            max_connections: 1,
            max_sessions: Some(1),
            max_per_host: 1,
            handshake_timeout: wait,
            config,
        };
        let (tx, mut rx) = mpsc::channel(1);
        let policy = self.policy.clone();
        tokio::spawn(serve_gated(socket, gate, listen, move |s, ctx| {
            let (tx, policy) = (tx.clone(), policy.clone());
            async move {
                match policy.check(&s, &ctx).await {
                    Ok(user) => {
                        let (hold, held) = oneshot::channel::<()>();
                        if tx.send(Ok((s, user, hold))).await.is_ok() {
                            // The listener feeds the session until the
                            // helper is done with it.
                            let _ = held.await;
                        }
                    }
                    Err(why) => {
                        crate::service::ending::close_with(s, 1, "login refused").await;
                        let _ = tx.send(Err(why)).await;
                    }
                }
            }
        }));
        // The client's handshake, then its LOGIN and the Argon2 check (the
        // client waits up to its verdict timeout; one check here).
        let limit = wait + LOGIN_TIMEOUT + Duration::from_secs(30);
        let got = tokio::time::timeout(limit, rx.recv())
            .await
            .map_err(|_| {
                anyhow::anyhow!("no vfer client logged in within {limit:?} (is UDP blocked?)")
            })?
            .context("the login listener stopped")?;
        let (session, user, hold) = got?;
        tracing::info!("{}: user {user:?} logged in", session.peer());
        *lock(&self.user) = Some(user);
        *lock(&self.hold) = Some(hold);
        Ok(session)
    }
}

/// The client's login side: who logs in, and the daemon's name for
/// known_hosts.
#[derive(Debug, Clone)]
pub struct ClientLogin {
    /// Login name.
    pub user: String,
    /// The server's host (its known_hosts name with `port`; also where the
    /// session goes when neither `--connect` nor `TCPREMOTEIP` says).
    pub host: String,
    /// The port of its known_hosts name (the URL's, default 7878).
    pub port: u16,
    /// The command line (password file, fingerprint, -q...).
    pub common: Common,
}

impl ClientLogin {
    /// Parses `vfer://USER@HOST[:PORT]`; `None` if `arg` is not a
    /// `vfer://` URL (then it is PROG).
    pub fn parse(arg: &str, common: &Common) -> Option<Result<ClientLogin>> {
        use crate::cli::target::Operand;
        if !arg.starts_with("vfer://") {
            return None;
        }
        Some(match Operand::parse(arg) {
            Ok(Operand::Daemon {
                user: Some(user),
                host,
                port,
                path,
            }) if path.is_empty() || path == "/" => Ok(ClientLogin {
                user,
                host,
                port,
                common: common.clone(),
            }),
            Ok(_) => Err(anyhow::anyhow!(
                "--ucspi takes vfer://USER@HOST[:PORT] (a login, no path), not {arg:?}"
            )),
            Err(e) => Err(e.into()),
        })
    }

    /// Logs in to the server's login listener at `addr`.
    pub async fn connect(&self, addr: SocketAddr) -> Result<Session> {
        crate::cli::login::login_at(&self.user, &self.host, self.port, addr, &self.common).await
    }
}

/// How a helper authenticates the upgraded session (the UPGRADE's
/// [`Mode`](super::wire::Mode)).
pub enum Auth {
    /// The key file both ends hold.
    Key(crate::bootstrap::Secret),
    /// Server: users log in.
    Serve(ServerLogin),
    /// Client: log in as a user.
    Login(ClientLogin),
}

impl Auth {
    /// The UPGRADE mode this authentication needs.
    pub fn mode(&self) -> super::wire::Mode {
        match self {
            Auth::Key(_) => super::wire::Mode::KeyFile,
            Auth::Serve(_) | Auth::Login(_) => super::wire::Mode::Login,
        }
    }
}
