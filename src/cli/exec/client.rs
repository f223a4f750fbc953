//! The client of `--exec`: open the session with the far side running the
//! program, start the local command (or use our own stdin/stdout), move
//! bytes both ways with half-close, and exit with the far program's status.
//!
//! Exit status: the far program's status (128 + n if signal n killed it,
//! 127/126 if it could not start); if that is 0 and the local command
//! failed, the local command's status (`set -o pipefail` with the far
//! program rightmost). vfer's own failures keep vfer's codes (99 timeout,
//! 111 session lost, 130 interrupted), see README.md.
//!
//! SIGINT/SIGTERM/SIGHUP (minssl-tunnel's manner): stop reading input, send
//! what is buffered and the EOF, give the far program [`SIGNAL_GRACE`] to
//! finish and deliver its output, then close the session (the far side
//! then stops the program) and exit 130.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use super::stdin::ThreadStdin;
use crate::bootstrap::ssh_client::RemoteRole;
use crate::cli::args::Common;
use crate::cli::session::{self, Far};
use crate::cli::{exit, signals};
use crate::service::exec::frame::{self, Exit, Frame, How, HEADER_LEN, MAX_PAYLOAD};
use crate::service::request::{Request, Service};
use crate::transport::{CloseReason, Session, VferStream};
use crate::tunnel::idle::Activity;

/// How long the far program may take to finish after we were signalled.
pub const SIGNAL_GRACE: Duration = Duration::from_secs(5);
/// How long a local command may take to exit after we were signalled.
const LOCAL_GRACE: Duration = Duration::from_secs(5);
const CHUNK: usize = 64 * 1024;

type Input = Box<dyn AsyncRead + Unpin + Send>;
type Output = Box<dyn AsyncWrite + Unpin + Send>;

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
    let peer = session.peer();
    let (rd, wr) = tokio::io::split(session.stream());
    let suite = session.stats().suite;
    let (input, output, mut child) = local_end(req.local.as_deref(), peer, suite)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let activity = Activity::default();
    let upload = tokio::spawn(upload(input, wr, stop_rx, activity.clone()));
    let mut output = Some(output);
    let mut signalled = None;
    let mut idled = None;
    let result = {
        let down = download(rd, &mut output, &activity);
        tokio::pin!(down);
        tokio::select! {
            r = &mut down => r,
            limit = activity.expired(c.kill_idle()) => {
                idled = Some(limit);
                Ok(None)
            }
            sig = signals::stop_requested() => {
                signalled = Some(sig);
                let _ = stop_tx.send(true);
                match tokio::time::timeout(SIGNAL_GRACE, down).await {
                    Ok(r) => r,
                    Err(_) => Ok(None),
                }
            }
        }
    };
    upload.abort();
    if let Some(mut o) = output.take() {
        let _ = o.flush().await;
    }
    let local_status = match child.as_mut() {
        Some(ch) => Some(wait_local(ch, signalled.is_some() || idled.is_some()).await),
        None => None,
    };
    if let Some(limit) = idled {
        let why = crate::tunnel::idle::reason(limit);
        eprintln!("{program}: {why}");
        session.close(crate::tunnel::idle::CLOSE_IDLE, &why).await;
        return Ok(exit::TIMEOUT);
    }
    if let Some(sig) = signalled {
        eprintln!("{program}: stopped by {sig}");
        session::close_with(session, 2, &format!("client stopped by {sig}")).await;
        return Ok(exit::INTERRUPTED);
    }
    let remote = match result {
        Ok(Some(e)) => e,
        Ok(None) | Err(_) => {
            let reason = session.close_reason();
            let why = result.err();
            session::close_with(session, 1, "exec stream failed").await;
            return Ok(ended_early(program, reason, why));
        }
    };
    session::close(session, 0).await;
    if remote.how != How::Exited && !remote.message.is_empty() {
        eprintln!("{program}: remote: {}", remote.message);
    }
    let local_code = match (&req.local, local_status) {
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
fn ended_early(program: &str, reason: Option<CloseReason>, why: Option<anyhow::Error>) -> i32 {
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
    eprintln!("{program}: the session ended before the remote program did: {what}");
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

/// The local end: `sh -c CMD` with piped stdin/stdout (stderr inherited),
/// or our own stdin/stdout.
fn local_end(
    cmd: Option<&str>,
    peer: std::net::SocketAddr,
    suite: Option<crate::vsl::Suite>,
) -> Result<(Input, Output, Option<Child>)> {
    let Some(line) = cmd else {
        let stdin = ThreadStdin::start().context("cannot read stdin")?;
        return Ok((Box::new(stdin), Box::new(tokio::io::stdout()), None));
    };
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(line)
        .envs(super::session_env(peer, suite))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start the local command `{line}`"))?;
    match (child.stdout.take(), child.stdin.take()) {
        (Some(i), Some(o)) => Ok((Box::new(i), Box::new(o), Some(child))),
        _ => anyhow::bail!("the local command `{line}` has no pipes"),
    }
}

/// Our input -> the stream; at its end (or when told to stop) sends the
/// FIN and waits until the far side has everything.
async fn upload(
    mut input: Input,
    mut wr: WriteHalf<VferStream>,
    mut stop: watch::Receiver<bool>,
    activity: Activity,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = tokio::select! {
            r = input.read(&mut buf) => match r {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!("reading local input: {e}");
                    0
                }
            },
            _ = stop.changed() => 0,
        };
        if n == 0 {
            break;
        }
        activity.touch();
        wr.write_all(&buf[..n]).await?;
    }
    drop(input); // the local command sees EPIPE if it writes on
    wr.shutdown().await
}

/// The stream -> our output and stderr, until the far side's EOF. Returns
/// the EXIT frame's content, `None` if the stream ended without one.
async fn download(
    mut rd: ReadHalf<VferStream>,
    output: &mut Option<Output>,
    activity: &Activity,
) -> Result<Option<Exit>> {
    let mut buf = vec![0u8; MAX_PAYLOAD];
    let mut stderr = tokio::io::stderr();
    let mut exit = None;
    loop {
        let mut h = [0u8; HEADER_LEN];
        if !read_header(&mut rd, &mut h).await? {
            return Ok(exit);
        }
        if exit.is_some() {
            anyhow::bail!("protocol error: a frame after the far program's EXIT");
        }
        let len = frame::check_header(&h)?;
        rd.read_exact(&mut buf[..len]).await?;
        activity.touch();
        match frame::parse(h[0], &buf[..len])? {
            Frame::Stdout(d) => {
                if let Some(o) = output {
                    if o.write_all(d).await.is_err() {
                        // Nobody reads our output any more (EPIPE): drop
                        // the rest, as a pipe would, but keep stderr and
                        // the exit status coming.
                        *output = None;
                    }
                }
            }
            Frame::Stderr(d) => {
                let _ = stderr.write_all(d).await;
            }
            Frame::StdoutEof => {
                if let Some(mut o) = output.take() {
                    let _ = o.flush().await;
                    let _ = o.shutdown().await;
                }
            }
            Frame::Exit(e) => exit = Some(e),
        }
    }
}

/// Reads a whole header; `false` at a clean EOF before its first byte.
async fn read_header(rd: &mut ReadHalf<VferStream>, h: &mut [u8; HEADER_LEN]) -> Result<bool> {
    let mut got = 0;
    while got < HEADER_LEN {
        let n = rd.read(&mut h[got..]).await?;
        if n == 0 {
            if got == 0 {
                return Ok(false);
            }
            anyhow::bail!("protocol error: the stream ended inside a frame");
        }
        got += n;
    }
    Ok(true)
}

/// Waits for the local command; after a signal (before or while
/// waiting), SIGTERM then SIGKILL.
async fn wait_local(
    child: &mut Child,
    signalled: bool,
) -> std::io::Result<std::process::ExitStatus> {
    if !signalled {
        tokio::select! {
            r = child.wait() => return r,
            _ = signals::stop_requested() => {}
        }
    }
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        // SAFETY: plain syscall on our own child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    match tokio::time::timeout(LOCAL_GRACE, child.wait()).await {
        Ok(r) => r,
        Err(_) => {
            let _ = child.start_kill();
            child.wait().await
        }
    }
}
