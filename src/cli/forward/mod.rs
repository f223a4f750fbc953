//! TCP port forwarding over vfer, spiped style (docs/PROTOCOL.md §8.3):
//! `vfer-send --forward-from ADDR vfer://HOST:PORT` accepts local TCP
//! connections and carries each over its own key-file session to a
//! `vfer-recv --listen ADDR --key-file K --forward TARGET` daemon, which
//! connects it to TARGET. Half-close is carried both ways (TCP FIN <->
//! STREAM_FIN).
//!
//! - [`client`]: the accepting side (`vfer-send --forward-from`).
//! - [`server`]: the daemon (`vfer-recv --listen --forward`).
//! - here: the options, the HELLO message and [`splice`].

pub mod client;
pub mod server;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify};

use crate::transport::Session;

/// The client's first bytes on a forwarding session: magic and version.
pub const HELLO: &[u8; 5] = b"VFFW\x01";
/// How long a connection may take to wind down after a stop signal: the
/// peer's remaining data still arrives for this long.
pub const STOP_GRACE: Duration = crate::tunnel::splice::STOP_GRACE;

/// `vfer-send` options of the forwarding client.
#[derive(Args, Debug, Clone, Default)]
pub struct ForwardFromArgs {
    /// Accept connections on ADDR:PORT (TCP) or on a UNIX-domain socket
    /// (a path starting with / or .) and carry each over vfer to the
    /// vfer:// daemon's --forward target (like spiped -e, ssh -L).
    #[arg(long, value_name = "ADDR:PORT|PATH", requires = "key_file")]
    pub forward_from: Option<String>,
    /// With --forward-from: most connections at once (more wait in the backlog).
    #[arg(short = 'n', long = "max-connections", value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// With --forward-from: give up a connection whose handshake takes longer (seconds).
    #[arg(short = 'o', long = "connect-timeout", value_name = "SECS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub connect_timeout: u64,
    /// With --forward-from: write our process id to this file.
    #[arg(long, value_name = "FILE")]
    pub pidfile: Option<PathBuf>,
}

/// `vfer-recv --listen` options of the forwarding daemon.
#[derive(Args, Debug, Clone, Default)]
pub struct ForwardToArgs {
    /// With --listen: connect each session to this TCP HOST:PORT, or to a
    /// UNIX-domain socket (a path starting with / or .), and carry the
    /// bytes (like spiped -d) instead of serving files.
    #[arg(
        long,
        value_name = "HOST:PORT|PATH",
        requires = "listen",
        conflicts_with = "root"
    )]
    pub forward: Option<String>,
    /// With --listen (every daemon): give up a session whose handshake (or
    /// HELLO, or connection to the --forward target) takes longer (seconds).
    #[arg(short = 'o', long = "connect-timeout", value_name = "SECS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub connect_timeout: u64,
}

pub use crate::tunnel::splice::{stopped, Moved};

/// Joins a TCP connection to the session's stream until both directions
/// ended ([`crate::tunnel::splice::splice`]: EOF goes through as EOF, a
/// stop signal winds it down, `kill_idle` is `-K`).
pub async fn splice(
    tcp: TcpStream,
    session: &Session,
    stop: watch::Receiver<bool>,
    kill_idle: Option<Duration>,
) -> std::io::Result<Moved> {
    let _ = tcp.set_nodelay(true);
    let (tr, tw) = tcp.into_split();
    crate::tunnel::splice::splice(tr, tw, session, stop, kill_idle).await
}

/// Counts connections in progress, so a stopping process can wait for them.
#[derive(Debug, Clone, Default)]
pub struct Active {
    n: Arc<AtomicUsize>,
    idle: Arc<Notify>,
}

/// One counted connection; uncounted on drop.
#[derive(Debug)]
pub struct ActiveGuard(Active);

impl Active {
    /// Counts one more connection until the guard drops.
    pub fn enter(&self) -> ActiveGuard {
        self.n.fetch_add(1, Ordering::SeqCst);
        ActiveGuard(self.clone())
    }

    /// Connections in progress.
    pub fn count(&self) -> usize {
        self.n.load(Ordering::SeqCst)
    }

    /// Resolves when no connection is in progress.
    pub async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.count() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        if self.0.n.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Writes `pid` to `path` (with a newline).
pub fn write_pidfile(path: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context;
    std::fs::write(path, format!("{}\n", std::process::id()))
        .with_context(|| format!("cannot write --pidfile {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn active_counts_and_wakes_when_idle() {
        let a = Active::default();
        let g1 = a.enter();
        let g2 = a.enter();
        assert_eq!(a.count(), 2);
        let waiter = tokio::spawn({
            let a = a.clone();
            async move { a.idle().await }
        });
        drop(g1);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(g2);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("idle() woke")
            .expect("task");
        assert_eq!(a.count(), 0);
        a.idle().await; // already idle: returns at once
    }
}
