//! The forwarding daemon: `vfer-recv --listen ADDR --key-file K --forward
//! TARGET [-n N] [-o SECS] [--pidfile F]`. Each session that sends the
//! HELLO gets a fresh TCP connection to TARGET (resolved once, at start,
//! like spiped); the bytes go through unchanged, EOF included.
//!
//! SIGINT/SIGTERM/SIGHUP: refuse new sessions, let the open ones stop
//! reading from TARGET, flush, wait [`super::STOP_GRACE`] for the clients'
//! rest, close cleanly, exit 0.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use super::{Active, HELLO};
use crate::bootstrap::listen::ListenOptions;
use crate::cli::{session, signals};
use crate::transport::{Config, Session};
use crate::tunnel::local::Endpoint;

/// Settings of the forwarding daemon.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// UDP address to listen on.
    pub listen: SocketAddr,
    /// The key file, or a directory of per-client keys.
    pub keys: crate::tunnel::keys::KeySource,
    /// `HOST:PORT` to connect each session to.
    pub target: String,
    /// Most sessions at once.
    pub max_connections: usize,
    /// Handshake, HELLO and TCP connect timeout.
    pub connect_timeout: Duration,
    /// Write our pid here.
    pub pidfile: Option<std::path::PathBuf>,
    /// Transport settings of each session.
    pub config: Config,
    /// `-K`: end a session that carried no data for this long.
    pub kill_idle: Option<Duration>,
}

/// Runs until a stop signal (or a socket error).
pub async fn run(opts: ServerOptions) -> Result<()> {
    let keys = opts.keys.load()?;
    let target = Endpoint::resolve(&opts.target).await.with_context(|| {
        format!(
            "--forward {}: cannot resolve (want HOST:PORT, or a UNIX socket's path)",
            opts.target
        )
    })?;
    // Removed when we return (a stop signal), as spiped does.
    let _pidfile = match &opts.pidfile {
        Some(p) => Some(crate::tunnel::pidfile::PidFile::create(p)?),
        None => None,
    };
    let lo = ListenOptions {
        max_connections: opts.max_connections,
        handshake_timeout: opts.connect_timeout,
        config: opts.config.clone(),
        ..ListenOptions::default()
    };
    eprintln!("vfer-recv: forwarding udp {} to {target}", opts.listen);
    let (stop_tx, stop_rx) = watch::channel(false);
    let active = Active::default();
    let (act, wait, kill_idle) = (active.clone(), opts.connect_timeout, opts.kill_idle);
    let serve = crate::tunnel::keys::listen(opts.listen, keys, lo, move |s, client| {
        let stop = stop_rx.clone();
        let guard = act.enter();
        let target = target.clone();
        async move {
            if *stop.borrow() {
                s.close(1, "the daemon is shutting down").await;
                return;
            }
            let peer = match &client {
                Some(name) => format!("{} (key {name})", s.peer()),
                None => s.peer().to_string(),
            };
            match one(&s, &target, wait, stop, kill_idle).await {
                Ok(()) => {
                    session::close(s, 0).await;
                }
                Err(e)
                    if e.downcast_ref::<std::io::Error>()
                        .and_then(crate::tunnel::splice::idle_kill)
                        .is_some() =>
                {
                    tracing::info!("{peer}: {e:#}");
                    s.close(crate::tunnel::idle::CLOSE_IDLE, &format!("{e:#}"))
                        .await;
                }
                Err(e) => {
                    tracing::warn!("{peer}: {e:#}");
                    // No FIN first: the client must see a failure, not an
                    // empty but complete stream.
                    s.close(1, &format!("{e:#}")).await;
                }
            }
            drop(guard);
        }
    });
    let mut serve = std::pin::pin!(serve);
    tokio::select! {
        r = &mut serve => return r.with_context(|| format!("cannot listen on {}", opts.listen)),
        _ = signals::stop_requested() => {}
    }
    let _ = stop_tx.send(true);
    // The listener must keep running: it hands the sessions their datagrams.
    let wind_down = super::STOP_GRACE + Duration::from_secs(10);
    tokio::select! {
        r = &mut serve => r.with_context(|| format!("cannot listen on {}", opts.listen)),
        _ = tokio::time::timeout(wind_down, active.idle()) => Ok(()),
    }
}

/// Checks the HELLO, connects to the target, carries the bytes.
async fn one(
    session: &Session,
    target: &Endpoint,
    wait: Duration,
    stop: watch::Receiver<bool>,
    kill_idle: Option<Duration>,
) -> Result<()> {
    let mut hello = [0u8; HELLO.len()];
    let mut s = session.stream();
    tokio::time::timeout(wait, s.read_exact(&mut hello))
        .await
        .context("no HELLO in time")?
        .context("reading the HELLO")?;
    if &hello != HELLO {
        if hello.starts_with(crate::service::request::MAGIC) {
            anyhow::bail!("this daemon forwards TCP connections (--forward); it serves no files");
        }
        anyhow::bail!("not a forwarding client (bad HELLO)");
    }
    let local = tokio::time::timeout(wait, target.connect())
        .await
        .map_err(|_| anyhow::anyhow!("cannot connect to {target}: timed out after {wait:?}"))?
        .with_context(|| format!("cannot connect to {target}"))?;
    let m = local.splice(session, stop, kill_idle).await?;
    tracing::info!(
        "{}: done, {} to {target}, {} back",
        session.peer(),
        m.up,
        m.down
    );
    Ok(())
}
