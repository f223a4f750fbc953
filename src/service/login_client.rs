//! The client's challenge-response sequence (docs/PROTOCOL.md §7): the
//! pre-handshake, the host-key check, the password, the transport session,
//! the LOGIN and its verdict, then the service request. Nothing is sent
//! under the agreed secret — least of all the password — before the
//! daemon's key is confirmed and trusted. The questions a person may have
//! to answer (trust this key? the password?) go through [`LoginUi`].

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Result;
use zeroize::Zeroizing;

use super::request::Request;
use crate::bootstrap::login::client::{self, Accepted};
use crate::bootstrap::login::hostkey::fingerprint;
use crate::bootstrap::login::{auth, LoginError};
use crate::transport::{Config, Session};
use crate::tunnel::ending::peer_reason;

/// How long the client waits for the login verdict (the daemon may queue
/// Argon2 runs when many clients log in at once).
pub const VERDICT_TIMEOUT: Duration = Duration::from_secs(120);

/// Where the login asks its questions (a terminal, files, flags).
pub trait LoginUi {
    /// Decides whether the daemon's static key `key` may be trusted for
    /// `name` (`host:port` as known_hosts keys it): `Ok(true)` if a person
    /// was asked (and took time), `Ok(false)` if not, an error to stop.
    fn trust(&mut self, name: &str, key: &[u8; 32]) -> Result<bool>;
    /// The password, asked now if it was not given beforehand; the flag
    /// says whether a person was asked.
    fn password(&mut self) -> Result<(Zeroizing<Vec<u8>>, bool)>;
}

/// Where to log in.
#[derive(Debug, Clone)]
pub struct LoginTarget<'a> {
    /// The daemon's address.
    pub addr: SocketAddr,
    /// Host name as the user gave it (for known_hosts and messages).
    pub host: &'a str,
    /// UDP port.
    pub port: u16,
    /// Login name.
    pub user: &'a str,
}

/// Logs in as `t.user` and sends `request` (none for `--ucspi`, whose
/// server serves nothing else); returns the session ready for the service.
pub async fn open(
    t: &LoginTarget<'_>,
    config: Config,
    ui: &mut (dyn LoginUi + Send),
    request: Option<&Request>,
) -> Result<Session> {
    let (host, port, addr) = (t.host, t.port, t.addr);
    let bind: SocketAddr = if addr.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let (sock, warning) = crate::transport::socket::bind(bind)?;
    let wait = config.handshake_timeout;
    let mut accepted = client::handshake(&sock, addr, wait).await?;
    let name = crate::bootstrap::login::known_hosts::host_key(host, port);
    let asked = ui.trust(&name, &accepted.server_static)?;
    let (password, prompted) = ui.password()?;
    if asked || prompted {
        // A person answered a prompt: the daemon may have forgotten our
        // pending secret meanwhile. Agree on a fresh one, with the same key.
        let again = client::handshake(&sock, addr, wait).await?;
        if again.server_static != accepted.server_static {
            return Err(LoginError::HostKey(format!(
                "{name}: the daemon's host key changed during the login ({} then {}); \
                 someone may be intercepting this connection. Nothing was sent.",
                fingerprint(&accepted.server_static),
                fingerprint(&again.server_static)
            ))
            .into());
        }
        accepted = again;
    }
    let Accepted {
        secret, binding, ..
    } = accepted;
    let session = Session::connect_on(sock, warning, addr, secret.bytes(), config)
        .await
        .map_err(|source| LoginError::Session { addr, source })?;
    let mut stream = session.stream();
    auth::write_login(&mut stream, &binding, t.user, &password)
        .await
        .map_err(|e| LoginError::Exchange(e.to_string()))?;
    drop(password);
    let verdict = tokio::time::timeout(VERDICT_TIMEOUT, auth::read_verdict(&mut stream)).await;
    match verdict {
        Ok(Ok(auth::Verdict::Ok)) => {}
        Ok(Ok(auth::Verdict::Refused)) => return Err(LoginError::Refused.into()),
        Ok(Ok(auth::Verdict::RateLimited(s))) => return Err(LoginError::RateLimited(s).into()),
        Ok(Err(e)) => {
            let why = peer_reason(&session).await;
            return Err(LoginError::Exchange(why.unwrap_or_else(|| e.to_string())).into());
        }
        Err(_) => {
            return Err(LoginError::Exchange(format!(
                "{host}:{port}: no login verdict within {VERDICT_TIMEOUT:?}"
            ))
            .into())
        }
    }
    if let Some(request) = request {
        request
            .write(&mut stream)
            .await
            .map_err(|e| anyhow::anyhow!("{host}:{port}: cannot send the request: {e}"))?;
    }
    Ok(session)
}
