//! The server's side of `--ucspi` authenticated by a login instead of a
//! key file (docs/PROTOCOL.md §8.5, UPGRADE version 2): `vfer-recv --ucspi
//! --users F [--host-key HK]` runs challenge-response mode (§7) on the UDP
//! port it bound for this connection and admits one client, the one whose
//! LOGIN its users file accepts. (The client's side, which asks the
//! questions, is `cli::login::ucspi`.) Nothing sent in clear on the
//! connection is trusted.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::{mpsc, oneshot};

use super::admit;
use super::login_check::{LoginPolicy, LOGIN_TIMEOUT};
use crate::bootstrap::listen::{serve_gated, ListenOptions};
use crate::bootstrap::login::server::LoginGate;
use crate::transport::{Config, Session};
use crate::tunnel::ucspi::auth::{Authenticator, Opening};
use crate::tunnel::ucspi::wire::{Mode, Upgrade};

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
    async fn serve_one(
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
                        crate::tunnel::ending::close_with(s, 1, "login refused").await;
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

impl Authenticator for ServerLogin {
    fn mode(&self) -> Mode {
        Mode::Login
    }

    fn accept(
        &self,
        socket: std::net::UdpSocket,
        _ours: Upgrade,
        _theirs: Upgrade,
        config: Config,
        wait: Duration,
    ) -> Opening<'_> {
        // The nonces are not used: the login's own handshake makes the
        // session's keys.
        Box::pin(self.serve_one(socket, config, wait))
    }

    fn connect(&self, addr: SocketAddr, _: Upgrade, _: Upgrade, _: Config) -> Opening<'_> {
        Box::pin(async move { anyhow::bail!("{addr}: a --ucspi server does not log in") })
    }

    fn described(&self) -> Vec<(&'static str, String)> {
        // As a program daemon's program learns it.
        self.user()
            .map(|u| admit::Client::User(u).env())
            .unwrap_or_default()
    }
}
