//! The one daemon runner: every standing daemon (key-file files, login,
//! program, forward) is this loop with another service. It owns what they
//! share: hardening the process, binding the port, the pidfile, the
//! connection and per-host limits (through the listener,
//! [`crate::bootstrap::listen`]), dropping privileges once bound (`--user`,
//! [`crate::tunnel::privdrop`]), reading the service request (§5) and
//! applying the client's rate cap, refusing new sessions once stopping,
//! and winding the running ones down before it returns.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::{watch, Notify};

use super::request::{Offer, Request, RequestError};
use crate::bootstrap::listen::{serve_gated, Gate, ListenOptions};
use crate::bootstrap::Secret;
use crate::transport::{Config, Session};
use crate::tunnel::ending;
use crate::tunnel::keys::Keys;
use crate::tunnel::pidfile::PidFile;

/// Close reason of a session that arrives while the daemon is stopping.
pub const SHUTTING_DOWN: &str = "the daemon is shutting down";

/// Settings every daemon has.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// UDP address to listen on.
    pub listen: SocketAddr,
    /// Most sessions at once (`-n`).
    pub max_connections: usize,
    /// Most sessions of one host (IPv4 address or IPv6 /64):
    /// `usize::MAX` for none (key-file daemons, whose clients all hold the
    /// key), [`per_host_limit`] where strangers may knock (login).
    pub max_per_host: usize,
    /// Drop a client whose handshake takes longer (`-o`).
    pub handshake_timeout: Duration,
    /// Write our process id here once the port is bound.
    pub pidfile: Option<PathBuf>,
    /// Lines printed on stderr once the port is bound ("serving ...").
    pub banner: Vec<String>,
    /// How long running sessions may take to end after a stop.
    pub grace: Duration,
    /// Transport settings of each session (the daemon's own rate cap).
    pub config: Config,
}

impl RunnerOptions {
    /// Defaults for a daemon on `listen`.
    pub fn new(listen: SocketAddr, config: Config) -> Self {
        RunnerOptions {
            listen,
            max_connections: 100,
            max_per_host: usize::MAX,
            handshake_timeout: Duration::from_secs(5),
            pidfile: None,
            banner: Vec::new(),
            grace: Duration::from_secs(15),
            config,
        }
    }
}

/// Most sessions and most pending pre-handshakes of one host for a daemon
/// with `-n max_connections`: half of `-n`, at least 1, so one host never
/// takes every slot (with `-n` ≥ 2) while one busy host (a script, a NAT)
/// may still run many sessions at once.
pub fn per_host_limit(max_connections: usize) -> usize {
    (max_connections / 2).max(1)
}

/// The process hardening every daemon gets before it holds a key: core
/// dumps off and the process not dumpable (a dump would show keys,
/// session secrets and passwords).
pub fn harden() {
    crate::bootstrap::coredump::disable();
}

/// Binds `opts.listen`, writes the pidfile, prints the banner and serves:
/// each session admitted by `gate` runs `on_session` in its own task,
/// with a receiver that turns true when the daemon is stopping. When
/// `stop` resolves, new sessions are refused ([`SHUTTING_DOWN`]) and the
/// runner returns once the running ones ended (or after `opts.grace`).
pub async fn run<G, S, F, Fut>(opts: RunnerOptions, gate: G, stop: S, on_session: F) -> Result<()>
where
    G: Gate,
    S: Future,
    F: Fn(Session, G::Context, watch::Receiver<bool>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    harden();
    let (sock, warning) = crate::transport::socket::bind(opts.listen)
        .with_context(|| format!("cannot listen on {}", opts.listen))?;
    if let Some(w) = warning {
        tracing::warn!("{w}");
    }
    // Removed when we return (a stop), as spiped does.
    let _pidfile = match &opts.pidfile {
        Some(p) => Some(PidFile::create(p)?),
        None => None,
    };
    // Bound, keys read: `--user` takes effect now.
    crate::tunnel::privdrop::apply_pending()?;
    for line in &opts.banner {
        eprintln!("{line}");
    }
    // Listening: `--daemon` goes to the background now.
    crate::tunnel::background::ready();
    let listen = ListenOptions {
        max_connections: opts.max_connections,
        max_per_host: opts.max_per_host,
        handshake_timeout: opts.handshake_timeout,
        config: opts.config.clone(),
        ..ListenOptions::default()
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let active = Active::default();
    let act = active.clone();
    let on_session = Arc::new(on_session);
    let serve = serve_gated(Arc::new(sock), gate, listen, move |s, ctx| {
        let (stop, guard, f) = (stop_rx.clone(), act.enter(), on_session.clone());
        async move {
            if *stop.borrow() {
                s.close(1, SHUTTING_DOWN).await;
            } else {
                f(s, ctx, stop).await;
            }
            drop(guard);
        }
    });
    let mut serve = std::pin::pin!(serve);
    let addr = opts.listen;
    tokio::select! {
        r = &mut serve => return r.with_context(|| format!("cannot listen on {addr}")),
        _ = stop => {}
    }
    let _ = stop_tx.send(true);
    // The listener keeps running: it hands the sessions their datagrams.
    tokio::select! {
        r = &mut serve => r.with_context(|| format!("cannot listen on {addr}")),
        _ = tokio::time::timeout(opts.grace, active.idle()) => Ok(()),
    }
}

/// Reads the session's service request within `wait`, refuses one for a
/// service other than `served`, and applies the client's rate cap to our
/// sending side (the daemon's own cap, in its config, still holds: the
/// lower one wins).
pub async fn accept_request(
    session: &Session,
    served: Offer,
    wait: Duration,
) -> Result<Request, RequestError> {
    let mut stream = session.stream();
    let req = tokio::time::timeout(wait, Request::read(&mut stream))
        .await
        .map_err(|_| RequestError::NoRequest(wait))??;
    req.check_offer(served)?;
    if let Some(cap) = req.options.send_cap() {
        session.cap_rate(cap);
    }
    Ok(req)
}

/// Ends a served session: CLOSE 0 after the stream drained on success,
/// CLOSE 1 with the error as reason otherwise (logged with the peer).
pub async fn finish(session: Session, result: Result<()>) {
    match result {
        Ok(()) => {
            ending::close(session, 0).await;
        }
        Err(e) => {
            let why = ending::describe(&e);
            tracing::warn!("{}: {why}", session.peer());
            ending::close_with(session, 1, &why).await;
        }
    }
}

/// Refuses a session before its service starts: CLOSE 1 with `why`,
/// without finishing the stream first (a refusal never looks like an
/// empty, complete stream).
pub async fn refuse(session: Session, why: &anyhow::Error) {
    let why = ending::describe(why);
    tracing::warn!("{}: {why}", session.peer());
    session.close(1, &why).await;
}

/// A key-file daemon's gate over its loaded keys: one key for every
/// client (the session's context is `None`), or one per client (`--key-dir`:
/// the client's name).
pub struct KeyGate(pub Keys);

impl Gate for KeyGate {
    type Context = Option<String>;
    fn secret_for(&mut self, from: SocketAddr, now: Instant) -> Option<Secret> {
        match &mut self.0 {
            Keys::One(k) => Some(k.clone()),
            Keys::Dir(d) => d.secret_for(from, now),
        }
    }
    fn secrets_for(&mut self, from: SocketAddr, now: Instant) -> Vec<Secret> {
        match &mut self.0 {
            Keys::One(k) => vec![k.clone()],
            Keys::Dir(d) => d.secrets_for(from, now),
        }
    }
    fn admitted(&mut self, from: SocketAddr) -> Option<String> {
        match &mut self.0 {
            Keys::One(_) => None,
            Keys::Dir(d) => d.admitted(from),
        }
    }
    fn admitted_as(&mut self, from: SocketAddr, index: usize) -> Option<String> {
        match &mut self.0 {
            Keys::One(_) => None,
            Keys::Dir(d) => d.admitted_as(from, index),
        }
    }
    fn reusable_secret(&self) -> bool {
        true
    }
    fn other(&mut self, _: SocketAddr, _: &[u8], _: Instant, _: &mut Vec<u8>) {}
}

/// Counts sessions (or connections) in progress, so a stopping process
/// can wait for them.
#[derive(Debug, Clone, Default)]
pub struct Active {
    n: Arc<AtomicUsize>,
    idle: Arc<Notify>,
}

/// One counted session; uncounted on drop.
#[derive(Debug)]
pub struct ActiveGuard(Active);

impl Active {
    /// Counts one more until the guard drops.
    pub fn enter(&self) -> ActiveGuard {
        self.n.fetch_add(1, Ordering::SeqCst);
        ActiveGuard(self.clone())
    }

    /// How many are in progress.
    pub fn count(&self) -> usize {
        self.n.load(Ordering::SeqCst)
    }

    /// Resolves when none is in progress.
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

    #[test]
    fn per_host_is_half_at_least_one() {
        assert_eq!(per_host_limit(1), 1);
        assert_eq!(per_host_limit(100), 50);
    }
}
