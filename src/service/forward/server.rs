//! The forwarding daemon: `vfer-recv --listen ADDR {--key-file K |
//! --key-dir D | --users F} --forward TARGET [-n N] [-o SECS] [--pidfile
//! F]`. Each admitted session (a key holder, or a user who logged in; the
//! log names which) that asks for the forwarding service (§5, §8.4) gets a
//! fresh connection to TARGET (TCP, resolved once at start like spiped, or
//! a UNIX-domain socket); the bytes go through unchanged, EOF included.
//!
//! On the [runner](crate::service::runner): a stop refuses new sessions,
//! lets the open ones stop reading from TARGET, flush, wait
//! [`super::STOP_GRACE`] for the clients' rest, close cleanly.

use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::watch;

use crate::service::admit::{self, Admission};
use crate::service::request::Offer;
use crate::service::runner::{self, accept_request, refuse, RunnerOptions};
use crate::transport::Session;
use crate::tunnel::ending;
use crate::tunnel::local::Endpoint;

/// Settings of the forwarding daemon.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// What every daemon has.
    pub runner: RunnerOptions,
    /// Who may forward: key holders, or users who log in.
    pub admission: Admission,
    /// `HOST:PORT` (or a UNIX socket's path) to connect each session to.
    pub target: String,
    /// Handshake, request and connect timeout (`-o`).
    pub connect_timeout: Duration,
    /// `-K`: end a session that carried no data for this long.
    pub kill_idle: Option<Duration>,
    /// `--pad`: refuse clients that do not pad (a client's `--pad` is
    /// honoured either way).
    pub pad: bool,
}

/// Runs until `stop` resolves (or a socket error), then winds down.
pub async fn run(opts: ServerOptions, stop: impl std::future::Future) -> Result<()> {
    runner::harden();
    let target = Endpoint::resolve(&opts.target).await.with_context(|| {
        format!(
            "--forward {}: cannot resolve (want HOST:PORT, or a UNIX socket's path)",
            opts.target
        )
    })?;
    let mut r = opts.runner;
    r.handshake_timeout = opts.connect_timeout;
    r.grace = super::STOP_GRACE + Duration::from_secs(10);
    r.banner.push(format!(
        "vfer-recv: forwarding udp {} to {target}",
        r.listen
    ));
    let (wait, kill_idle, pad) = (opts.connect_timeout, opts.kill_idle, opts.pad);
    admit::run(r, opts.admission, stop, move |s, _client, stop| {
        let target = target.clone();
        async move {
            match one(&s, &target, (wait, pad), stop, kill_idle).await {
                Ok(()) => {
                    ending::close(s, 0).await;
                }
                Err(e)
                    if e.downcast_ref::<std::io::Error>()
                        .and_then(crate::tunnel::splice::idle_kill)
                        .is_some() =>
                {
                    tracing::info!("{}: {e:#}", s.peer());
                    s.close(crate::tunnel::idle::CLOSE_IDLE, &format!("{e:#}"))
                        .await;
                }
                // No FIN first: the client must see a failure, not an
                // empty but complete stream.
                Err(e) => refuse(s, &e).await,
            }
        }
    })
    .await
}

/// Checks the request (within `wait`; padded if it or `pad` says so),
/// connects to the target, carries the bytes.
async fn one(
    session: &Session,
    target: &Endpoint,
    (wait, pad): (Duration, bool),
    stop: watch::Receiver<bool>,
    kill_idle: Option<Duration>,
) -> Result<()> {
    let req = accept_request(session, Offer::Forward, wait).await?;
    let framing = crate::service::pad::framing(&req, pad)?;
    let local = tokio::time::timeout(wait, target.connect())
        .await
        .map_err(|_| anyhow::anyhow!("cannot connect to {target}: timed out after {wait:?}"))?
        .with_context(|| format!("cannot connect to {target}"))?;
    let m = local.splice(session, framing, stop, kill_idle).await?;
    tracing::info!(
        "{}: done, {} to {target}, {} back",
        session.peer(),
        m.up,
        m.down
    );
    Ok(())
}
