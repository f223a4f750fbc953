//! A standing program server (s6-tlsd under a listener): `vfer-recv
//! --listen ADDR --key-file K --exec CMD [-n N] [-o SECS] [--pidfile F]`
//! runs CMD (`sh -c`) for each key-file session, joined to its stream
//! exactly as the ssh-started far side does (§8.2). The client is
//! `vfer-send --key-file K --exec LOCAL_CMD vfer://HOST[:PORT]`; the daemon,
//! not the client, chooses the program.
//!
//! SIGINT/SIGTERM/SIGHUP: refuse new sessions; each running program gets
//! SIGTERM (by [`super::server::serve`]) and its session ends with its
//! EXIT; exit 0 once they are done (or after a grace period).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::AsyncReadExt;

use crate::bootstrap::listen::ListenOptions;
use crate::cli::forward::Active;
use crate::cli::signals;
use crate::transport::{Config, Session};

/// The client's first bytes on a session with a program daemon.
pub const HELLO: &[u8; 5] = b"VFEX\x01";

/// Settings of the program daemon.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// UDP address to listen on.
    pub listen: SocketAddr,
    /// The key file, or a directory of per-client keys.
    pub keys: crate::tunnel::keys::KeySource,
    /// The program, run by `sh -c` for each session.
    pub command: String,
    /// Most sessions at once.
    pub max_connections: usize,
    /// Handshake and HELLO timeout.
    pub connect_timeout: Duration,
    /// Write our pid here.
    pub pidfile: Option<std::path::PathBuf>,
    /// `--keep-env`: CMD gets this process's whole environment (default:
    /// only [`super::KEPT_ENV`] and the session's variables).
    pub keep_env: bool,
    /// Transport settings of each session.
    pub config: Config,
    /// `-K`: end a session that carried no data for this long.
    pub kill_idle: Option<Duration>,
}

/// Runs until a stop signal (or a socket error).
pub async fn run(opts: DaemonOptions) -> Result<()> {
    let keys = opts.keys.load()?;
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
    eprintln!(
        "vfer-recv: running `{}` for each session on udp {}",
        opts.command, opts.listen
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let active = Active::default();
    let (act, wait, command) = (active.clone(), opts.connect_timeout, opts.command.clone());
    let kill_idle = opts.kill_idle;
    let env = if opts.keep_env {
        super::ProgramEnv::Inherit
    } else {
        super::ProgramEnv::Clean
    };
    let serve = crate::tunnel::keys::listen(opts.listen, keys, lo, move |s, client| {
        let stop = stop_rx.clone();
        let guard = act.enter();
        let command = command.clone();
        async move {
            if *stop.borrow() {
                s.close(1, "the daemon is shutting down").await;
                return;
            }
            match hello(&s, wait).await {
                Ok(()) => super::server::serve_with(s, vec![command], env, kill_idle, client).await,
                Err(e) => {
                    tracing::warn!("{}: {e:#}", s.peer());
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
    // The listener keeps running: it hands the sessions their datagrams.
    let wind_down = super::server::KILL_GRACE + Duration::from_secs(15);
    tokio::select! {
        r = &mut serve => r.with_context(|| format!("cannot listen on {}", opts.listen)),
        _ = tokio::time::timeout(wind_down, active.idle()) => Ok(()),
    }
}

async fn hello(session: &Session, wait: Duration) -> Result<()> {
    let mut got = [0u8; HELLO.len()];
    tokio::time::timeout(wait, session.stream().read_exact(&mut got))
        .await
        .context("no HELLO in time")?
        .context("reading the HELLO")?;
    if &got == HELLO {
        return Ok(());
    }
    if got.starts_with(crate::service::request::MAGIC) {
        anyhow::bail!("this daemon runs a program (--exec); it serves no files");
    }
    if &got == crate::cli::forward::HELLO {
        anyhow::bail!("this daemon runs a program (--exec); it forwards no TCP connections");
    }
    anyhow::bail!("not an --exec client (bad HELLO)")
}
