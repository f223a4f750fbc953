//! The forwarding client: `vfer-send --key-file K --forward-from ADDR
//! vfer://HOST[:PORT]` (or `vfer://USER@HOST[:PORT]`, logging in for each
//! connection). One vfer session per accepted TCP connection (spiped's
//! model: a slow or broken connection never holds up another).
//!
//! SIGINT/SIGTERM/SIGHUP: stop accepting, let every connection stop
//! reading, send what it has and its EOF, wait [`super::STOP_GRACE`] for
//! the far side's rest, close cleanly, exit 0.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::{watch, Semaphore};

use crate::bootstrap::{keyfile, Secret};
use crate::service::request::{Request, Service, SessionOptions};
use crate::service::runner::Active;
use crate::transport::{Config, Session};
use crate::tunnel::ending as session;
use crate::tunnel::local::{LocalListener, LocalStream};
use crate::tunnel::pad::Framing;
use crate::tunnel::signals;

/// Settings of the forwarding client.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Where to accept TCP connections.
    pub from: String,
    /// The daemon's UDP address.
    pub daemon: SocketAddr,
    /// How each connection's session is opened.
    pub auth: Auth,
    /// Most connections at once.
    pub max_connections: usize,
    /// Handshake timeout of each session.
    pub connect_timeout: Duration,
    /// Write our pid here.
    pub pidfile: Option<std::path::PathBuf>,
    /// Transport settings (the handshake timeout is replaced).
    pub config: Config,
    /// No messages on stderr.
    pub quiet: bool,
    /// `-K`: end a connection that carried no data for this long.
    pub kill_idle: Option<Duration>,
    /// Negotiated with each session (`-l`, `--rate`: the daemon's sending cap).
    pub options: SessionOptions,
}

/// How the forwarder opens each connection's session.
#[derive(Clone)]
pub enum Auth {
    /// With the daemon's key file (loaded once, at start).
    KeyFile(std::path::PathBuf),
    /// Some other way (a login, which lives with the command line's
    /// questions): it opens a session and sends the request.
    Other(Arc<dyn Opener>),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::KeyFile(p) => f.debug_tuple("KeyFile").field(p).finish(),
            Auth::Other(_) => f.write_str("Other"),
        }
    }
}

/// A future that opens one session.
pub type Opening<'a> = Pin<Box<dyn Future<Output = Result<Session>> + Send + 'a>>;

/// Opens one forwarded connection's session with the daemon and sends it
/// `request` (the session is then ready for the bytes).
pub trait Opener: Send + Sync {
    /// Opens the session, `config` its transport settings.
    fn open<'a>(&'a self, request: &'a Request, config: Config) -> Opening<'a>;
}

/// The key-file way: the handshake under the key, then the request.
struct KeyOpener {
    daemon: SocketAddr,
    key: Secret,
}

impl Opener for KeyOpener {
    fn open<'a>(&'a self, request: &'a Request, config: Config) -> Opening<'a> {
        Box::pin(async move {
            let daemon = self.daemon;
            let session = keyfile::connect(daemon, &self.key, config)
                .await
                .with_context(|| {
                    format!("no session with {daemon} (wrong key, or no daemon there?)")
                })?;
            if let Err(e) = request.write(&mut session.stream()).await {
                session.close(1, "cannot send the request").await;
                return Err(e.into());
            }
            Ok(session)
        })
    }
}

/// Runs until a stop signal; returns after the connections wound down.
pub async fn run(opts: ClientOptions) -> Result<()> {
    let opener: Arc<dyn Opener> = match &opts.auth {
        Auth::KeyFile(path) => Arc::new(KeyOpener {
            daemon: opts.daemon,
            key: keyfile::load(path)?,
        }),
        Auth::Other(o) => o.clone(),
    };
    let listener = LocalListener::bind(&opts.from)
        .await
        .with_context(|| format!("cannot listen on {}", opts.from))?;
    // Removed when we return (a stop signal), as spiped does.
    let _pidfile = match &opts.pidfile {
        Some(p) => Some(crate::tunnel::pidfile::PidFile::create(p)?),
        None => None,
    };
    if !opts.quiet {
        eprintln!(
            "vfer-send: forwarding {} to vfer://{}",
            listener.name(),
            opts.daemon
        );
    }
    // Listening: `--daemon` goes to the background now.
    crate::tunnel::background::ready();
    let config = Config {
        handshake_timeout: opts.connect_timeout,
        ..opts.config.clone()
    };
    let slots = Arc::new(Semaphore::new(opts.max_connections.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let active = Active::default();
    let mut stop = std::pin::pin!(signals::stop_requested());
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.context("connection slots closed")?,
            _ = &mut stop => break,
        };
        let (tcp, from) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: wait, then go on.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let guard = active.enter();
        let (opener, config, stop_rx) = (opener.clone(), config.clone(), stop_rx.clone());
        let (daemon, quiet, kill_idle) = (opts.daemon, opts.quiet, opts.kill_idle);
        let request = Request::new(Service::Forward, opts.options);
        tokio::spawn(async move {
            let to = Far {
                daemon,
                opener: &*opener,
                request: &request,
            };
            if let Err(e) = one(tcp, to, config, stop_rx, kill_idle).await {
                if !quiet {
                    eprintln!("vfer-send: {from}: {e:#}");
                }
            }
            drop(permit);
            drop(guard);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let wind_down = super::STOP_GRACE + opts.connect_timeout + Duration::from_secs(10);
    let _ = tokio::time::timeout(wind_down, active.idle()).await;
    Ok(())
}

/// The daemon a connection goes to, how, and what it asks for.
struct Far<'a> {
    daemon: SocketAddr,
    opener: &'a dyn Opener,
    request: &'a Request,
}

/// Carries one TCP connection over a fresh session.
async fn one(
    tcp: LocalStream,
    to: Far<'_>,
    config: Config,
    stop: watch::Receiver<bool>,
    kill_idle: Option<Duration>,
) -> Result<()> {
    let daemon = to.daemon;
    let pad = to.request.options.pad;
    let session = to.opener.open(to.request, config).await?;
    let result = tcp
        .splice(&session, Framing::from_pad(pad), stop, kill_idle)
        .await;
    match result {
        Ok(m) => {
            tracing::info!("{daemon}: connection done, {} up, {} down", m.up, m.down);
            session::close(session, 0).await;
            Ok(())
        }
        Err(e) => {
            let (peer, code) = match crate::tunnel::splice::idle_kill(&e) {
                Some(_) => (None, crate::tunnel::idle::CLOSE_IDLE),
                None => (session::peer_reason(&session).await, 1),
            };
            session.close(code, &e.to_string()).await;
            match peer {
                Some(why) => Err(anyhow::anyhow!(
                    "the daemon says: {why}{}",
                    crate::service::pad::hint(pad, &why)
                )),
                None => Err(e.into()),
            }
        }
    }
}
