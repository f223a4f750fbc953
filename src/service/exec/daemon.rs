//! A standing program server (s6-tlsd under a listener): `vfer-recv
//! --listen ADDR {--key-file K | --key-dir D | --users F} --exec CMD [-n N]
//! [-o SECS] [--pidfile F]` runs CMD (`sh -c`) for each admitted session
//! (a key holder, or a user who logged in) that asks for the program
//! service (§5, §8.3), joined to its stream exactly as the ssh-started far
//! side does (§8.2). The daemon, not the client, chooses the program; the
//! program learns the client from `VFER_CLIENT` (and `VFER_USER`).
//!
//! On the [runner](crate::service::runner): a stop refuses new sessions;
//! each running program gets SIGTERM (by [`super::server::serve_with`])
//! and its session ends with its EXIT.

use std::time::Duration;

use anyhow::Result;

use super::server::Serving;
use crate::service::admit::{self, Admission};
use crate::service::request::Offer;
use crate::service::runner::{self, accept_request, refuse, RunnerOptions};

/// Settings of the program daemon.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// What every daemon has.
    pub runner: RunnerOptions,
    /// Who may run it: key holders, or users who log in.
    pub admission: Admission,
    /// The program, run by `sh -c` for each session.
    pub command: String,
    /// Handshake and request timeout (`-o`).
    pub connect_timeout: Duration,
    /// `--keep-env`: CMD gets this process's whole environment (default:
    /// only [`super::KEPT_ENV`] and the session's variables).
    pub keep_env: bool,
    /// `-K`: end a session that carried no data for this long.
    pub kill_idle: Option<Duration>,
    /// `--pad`: refuse clients that do not pad (a client's `--pad` is
    /// honoured either way).
    pub pad: bool,
}

/// Runs until `stop` resolves (or a socket error), then winds down.
pub async fn run(opts: DaemonOptions, stop: impl std::future::Future) -> Result<()> {
    runner::harden();
    let mut r = opts.runner;
    r.handshake_timeout = opts.connect_timeout;
    r.grace = super::server::KILL_GRACE + Duration::from_secs(15);
    r.banner.push(format!(
        "vfer-recv: running `{}` for each session on udp {}",
        opts.command, r.listen
    ));
    let env = if opts.keep_env {
        super::ProgramEnv::Inherit
    } else {
        super::ProgramEnv::Clean
    };
    let (command, wait, kill_idle) = (opts.command, opts.connect_timeout, opts.kill_idle);
    let pad = opts.pad;
    admit::run(r, opts.admission, stop, move |s, client, _stop| {
        let command = command.clone();
        async move {
            let framing = match accept_request(&s, Offer::Program, wait)
                .await
                .and_then(|req| crate::service::pad::framing(&req, pad))
            {
                Ok(f) => f,
                Err(e) => return refuse(s, &e.into()).await,
            };
            let how = Serving { kill_idle, framing };
            super::server::serve_with(s, vec![command], env, how, Some(client)).await
        }
    })
    .await
}
