//! The client's half of a program session (`vfer-send --exec`, PROTOCOL
//! §8): the local end (a `sh -c` command, or our own stdin/stdout), bytes
//! both ways with half-close, the far program's frames, and how the
//! session is closed. Reporting and exit codes are the command line's
//! (`crate::cli::exec`).
//!
//! SIGINT/SIGTERM/SIGHUP (minssl-tunnel's manner): stop reading input, send
//! what is buffered and the EOF, give the far program [`SIGNAL_GRACE`] to
//! finish and deliver its output; [`end`] then closes the session (the far
//! side then stops the program).

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use super::frame::{self, Exit, Frame, HEADER_LEN, MAX_PAYLOAD};
use super::stdin::ThreadStdin;
use crate::transport::{CloseReason, Session};
use crate::tunnel::idle::{self, Activity};
use crate::tunnel::pad::{Framing, SessionIo};
use crate::tunnel::{ending, signals};

/// How long the far program may take to finish after we were signalled.
pub const SIGNAL_GRACE: Duration = Duration::from_secs(5);
/// How long a local command may take to exit after we were signalled.
const LOCAL_GRACE: Duration = Duration::from_secs(5);
const CHUNK: usize = 64 * 1024;

type Input = Box<dyn AsyncRead + Unpin + Send>;
type Output = Box<dyn AsyncWrite + Unpin + Send>;

/// How the program session ended.
#[derive(Debug)]
pub enum Outcome {
    /// The far program's EXIT frame arrived.
    Exited(Exit),
    /// `-K`: no data either way for this long.
    Idle(Duration),
    /// A stop signal (its name) arrived.
    Stopped(&'static str),
    /// The stream ended, or failed, before the far program's EXIT.
    EndedEarly {
        /// The transport's reason, if the session is over.
        reason: Option<CloseReason>,
        /// The stream's error, if it failed.
        why: Option<anyhow::Error>,
    },
}

/// What [`run`] returns: how the session ended, and the local command's
/// status (`None` when we joined our own stdin/stdout).
#[derive(Debug)]
pub struct Finished {
    /// How the session ended.
    pub outcome: Outcome,
    /// The local command's exit status.
    pub local: Option<std::io::Result<ExitStatus>>,
}

/// Joins the local end (`sh -c local`, or our stdin/stdout for `None`) to
/// the program session on `session` (its stream in `framing`: plain, or
/// `--pad`'s records) until the far program's EXIT, `-K` (`kill_idle`), a
/// stop signal or the end of the stream. The session stays open: [`end`]
/// closes it as the outcome says.
pub async fn run(
    session: &Session,
    framing: Framing,
    local: Option<&str>,
    kill_idle: Option<Duration>,
) -> Result<Finished> {
    let peer = session.peer();
    let (rd, wr) = tokio::io::split(framing.stream(session));
    let suite = session.stats().suite;
    let (input, output, mut child) = local_end(local, peer, suite)?;
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
            limit = activity.expired(kill_idle) => {
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
    let local = match child.as_mut() {
        Some(ch) => Some(wait_local(ch, signalled.is_some() || idled.is_some()).await),
        None => None,
    };
    let outcome = match (idled, signalled, result) {
        (Some(limit), _, _) => Outcome::Idle(limit),
        (None, Some(sig), _) => Outcome::Stopped(sig),
        (None, None, Ok(Some(e))) => Outcome::Exited(e),
        (None, None, r) => Outcome::EndedEarly {
            reason: session.close_reason(),
            why: r.err(),
        },
    };
    Ok(Finished { outcome, local })
}

/// Closes the session as §8 says for `outcome`: code 0 after EXIT,
/// [`idle::CLOSE_IDLE`] for `-K`, 2 after a stop signal, 1 when the stream
/// failed.
pub async fn end(session: Session, outcome: &Outcome) {
    match outcome {
        Outcome::Exited(_) => {
            ending::close(session, 0).await;
        }
        Outcome::Idle(limit) => {
            session.close(idle::CLOSE_IDLE, &idle::reason(*limit)).await;
        }
        Outcome::Stopped(sig) => {
            ending::close_with(session, 2, &format!("client stopped by {sig}")).await;
        }
        Outcome::EndedEarly { .. } => {
            ending::close_with(session, 1, "exec stream failed").await;
        }
    }
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
    mut wr: WriteHalf<SessionIo>,
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
        wr.flush().await?; // records wait in the padded writer until then
    }
    drop(input); // the local command sees EPIPE if it writes on
    wr.shutdown().await
}

/// The stream -> our output and stderr, until the far side's EOF. Returns
/// the EXIT frame's content, `None` if the stream ended without one.
async fn download(
    mut rd: ReadHalf<SessionIo>,
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
async fn read_header(rd: &mut ReadHalf<SessionIo>, h: &mut [u8; HEADER_LEN]) -> Result<bool> {
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
