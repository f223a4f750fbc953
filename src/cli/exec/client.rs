//! The client of `--exec`: open the session with the far side running the
//! program, run it ([`crate::service::exec::client`]: the local command,
//! bytes both ways, the far program's frames), report, and exit with the
//! far program's status.
//!
//! Exit status: the far program's status (128 + n if signal n killed it,
//! 127/126 if it could not start); if that is 0 and the local command
//! failed, the local command's status (`set -o pipefail` with the far
//! program rightmost). vfer's own failures keep vfer's codes (99 timeout,
//! 111 session lost, 130 interrupted), see README.md.

use anyhow::{Context, Result};

use crate::bootstrap::ssh_client::RemoteRole;
use crate::cli::args::Common;
use crate::cli::exit;
use crate::cli::session::{self, Far};
use crate::service::exec::client::{self as program, Outcome};
use crate::service::exec::frame::{Exit, How};
use crate::service::request::{Request, Service};
use crate::transport::{CloseReason, Session};
use crate::tunnel::pad::Framing;

/// What `vfer-send --exec` was asked to do.
#[derive(Debug, Clone)]
pub struct ExecRequest {
    /// Where the far program runs (ssh host or `--local`).
    pub far: Far,
    /// The local command (`sh -c`), or `None` for our own stdin/stdout.
    pub local: Option<String>,
    /// The far program's words (one word: run by `sh -c` there).
    pub remote: Vec<String>,
}

/// Runs the request; returns the exit status (see the module docs).
pub async fn run(program: &str, req: ExecRequest, c: &Common) -> Result<i32> {
    let session = open(&req.far, &req.remote, c).await?;
    let framing = Framing::from_pad(c.pad);
    let done = program::run(&session, framing, req.local.as_deref(), c.kill_idle()).await?;
    match &done.outcome {
        Outcome::Idle(limit) => eprintln!("{program}: {}", crate::tunnel::idle::reason(*limit)),
        Outcome::Stopped(sig) => eprintln!("{program}: stopped by {sig}"),
        _ => {}
    }
    program::end(session, &done.outcome).await;
    let remote = match done.outcome {
        Outcome::Exited(e) => e,
        Outcome::Idle(_) => return Ok(exit::TIMEOUT),
        Outcome::Stopped(_) => return Ok(exit::INTERRUPTED),
        Outcome::EndedEarly { reason, why } => return Ok(ended_early(program, reason, why, c.pad)),
    };
    if remote.how != How::Exited && !remote.message.is_empty() {
        eprintln!("{program}: remote: {}", remote.message);
    }
    let local_code = match (&req.local, done.local) {
        (Some(cmd), Some(Ok(st))) if !st.success() => {
            let e = Exit::from_status(st);
            eprintln!(
                "{program}: local command `{cmd}` failed (status {}{})",
                e.status,
                if e.message.is_empty() {
                    String::new()
                } else {
                    format!(", {}", e.message)
                }
            );
            i32::from(e.status)
        }
        (Some(cmd), Some(Err(e))) => {
            eprintln!("{program}: local command `{cmd}`: {e}");
            exit::PARTIAL
        }
        _ => 0,
    };
    Ok(match remote.status {
        0 => local_code,
        s => i32::from(s),
    })
}

/// Reports a session that ended without the far program's status; 99 if
/// the peer fell silent (no progress), 111 otherwise.
fn ended_early(
    program: &str,
    reason: Option<CloseReason>,
    why: Option<anyhow::Error>,
    pad: bool,
) -> i32 {
    let timeout = matches!(
        reason,
        Some(
            CloseReason::IdleTimeout(_)
                | CloseReason::HandshakeTimeout(_)
                | CloseReason::Peer {
                    code: crate::tunnel::idle::CLOSE_IDLE,
                    ..
                }
        )
    );
    let what = match (reason, why) {
        (Some(r), _) => r.to_string(),
        (None, Some(e)) => format!("{e:#}"),
        (None, None) => "the stream ended".to_string(),
    };
    let hint = crate::service::pad::hint(pad, &what);
    eprintln!("{program}: the session ended before the remote program did: {what}{hint}");
    if timeout {
        exit::TIMEOUT
    } else {
        exit::TEMPORARY
    }
}

/// Starts the far side: `vfer-recv --server FLAGS --exec-remote -- ARGV`.
async fn open(far: &Far, remote: &[String], c: &Common) -> Result<Session> {
    let session = match far {
        Far::Ssh(_) | Far::Local => {
            let mut args = c.remote_flags();
            if c.pad {
                // A far side older than --pad refuses the flag (exit 21).
                args.push("--pad".to_string());
            }
            args.push(super::REMOTE_FLAG.to_string());
            args.push("--".to_string());
            args.extend(remote.iter().cloned());
            session::start_child(far, RemoteRole::Recv, args, c).await?
        }
        Far::Daemon { host, port } => {
            // A `vfer-recv --listen --exec` daemon: the request, then the program.
            let session = session::key_file_session(host, *port, c).await?;
            Request::new(Service::Program, c.session_options())
                .write(&mut session.stream())
                .await
                .with_context(|| format!("{host}:{port}: cannot send the request"))?;
            session
        }
        Far::Login { user, host, port } => {
            // A `vfer-recv --listen --users --exec` daemon: log in, the request.
            let request = Request::new(Service::Program, c.session_options());
            crate::cli::login::open(user, host, *port, &request, c).await?
        }
    };
    session::warn_about_socket(&session, c);
    Ok(session)
}
