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
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::{splice, write_pidfile, Active, HELLO};
use crate::bootstrap::keyfile;
use crate::bootstrap::listen::{self, ListenOptions};
use crate::cli::{session, signals};
use crate::transport::{Config, Session};

/// Settings of the forwarding daemon.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// UDP address to listen on.
    pub listen: SocketAddr,
    /// The key file.
    pub key_file: std::path::PathBuf,
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
}

/// Runs until a stop signal (or a socket error).
pub async fn run(opts: ServerOptions) -> Result<()> {
    let key = keyfile::load(&opts.key_file)?;
    let target = tokio::net::lookup_host(&opts.target)
        .await
        .with_context(|| format!("--forward {}: cannot resolve (want HOST:PORT)", opts.target))?
        .next()
        .with_context(|| format!("--forward {}: no address", opts.target))?;
    if let Some(p) = &opts.pidfile {
        write_pidfile(p)?;
    }
    let lo = ListenOptions {
        max_connections: opts.max_connections,
        handshake_timeout: opts.connect_timeout,
        config: opts.config.clone(),
        ..ListenOptions::default()
    };
    eprintln!("vfer-recv: forwarding udp {} to tcp {target}", opts.listen);
    let (stop_tx, stop_rx) = watch::channel(false);
    let active = Active::default();
    let (act, wait) = (active.clone(), opts.connect_timeout);
    let serve = listen::listen(opts.listen, &key, lo, move |s| {
        let stop = stop_rx.clone();
        let guard = act.enter();
        async move {
            if *stop.borrow() {
                s.close(1, "the daemon is shutting down").await;
                return;
            }
            let peer = s.peer();
            match one(&s, target, wait, stop).await {
                Ok(()) => {
                    session::close(s, 0).await;
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
    target: SocketAddr,
    wait: Duration,
    stop: watch::Receiver<bool>,
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
    let tcp = tokio::time::timeout(wait, TcpStream::connect(target))
        .await
        .map_err(|_| anyhow::anyhow!("cannot connect to {target}: timed out after {wait:?}"))?
        .with_context(|| format!("cannot connect to {target}"))?;
    let m = splice(tcp, session, stop).await?;
    tracing::info!(
        "{}: done, {} to {target}, {} back",
        session.peer(),
        m.up,
        m.down
    );
    Ok(())
}
