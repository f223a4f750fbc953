//! The far side of `--exec`: `vfer-recv --server [flags] --exec-remote --
//! ARGV...`, started through ssh (or `--local`). Once the session is up it
//! runs ARGV with stdin fed from the stream and stdout/stderr framed back
//! (§8.2), then sends the exit status and closes.
//!
//! The program inherits nothing secret: the session secret arrived on our
//! stdin (already consumed and wiped), every descriptor above stdio is
//! closed at exec (ours are close-on-exec; inherited ones are marked so
//! just before exec), and its stdio are fresh pipes. It runs in its own process
//! group, which gets SIGTERM (then SIGKILL after [`KILL_GRACE`]) when the
//! session dies under it, and SIGTERM when this server is asked to stop.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, WriteHalf};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use super::frame::{self, Exit, How, HEADER_LEN, MAX_PAYLOAD, TYPE_STDERR, TYPE_STDOUT};
use crate::service::admit::Client;
use crate::transport::Session;
use crate::tunnel::ending as session;
use crate::tunnel::pad::{Framing, SessionIo};
use crate::tunnel::signals;

/// How long a program that lost its session has between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(5);
/// How long we keep reading a program's pipes after it exited (a child it
/// left behind may hold them open).
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// Runs `argv` (one word: through `sh -c`; several: as is) over `session`.
pub async fn serve(session: Session, argv: Vec<String>) {
    let how = Serving::default();
    serve_with(session, argv, super::ProgramEnv::Inherit, how, None).await
}

/// How a program's session runs, besides the program and its environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Serving {
    /// `-K`: end the session (CLOSE code 3) and stop the program when no
    /// data moved either way for this long.
    pub kill_idle: Option<Duration>,
    /// The stream after the request: plain, or `--pad`'s records.
    pub framing: Framing,
}

/// Like [`serve`], the program getting the environment `env` says (and
/// the `client`'s variables, [`Client::env`]: `VFER_CLIENT`, `VFER_USER`),
/// the session run as `how` says.
pub async fn serve_with(
    session: Session,
    argv: Vec<String>,
    env: super::ProgramEnv,
    how: Serving,
    client: Option<Client>,
) {
    let kill_idle = how.kill_idle;
    let activity = crate::tunnel::idle::Activity::default();
    let peer = session.peer();
    let (mut rd, mut wr) = tokio::io::split(how.framing.stream(&session));
    let mut child = match spawn(&argv, peer, env, session.stats().suite, client.as_ref()) {
        Ok(c) => c,
        Err(exit) => {
            let _ = wr.write_all(&frame::encode_exit(&exit)).await;
            flush(&mut wr).await;
            session::close_with(session, 0, &exit.message).await;
            return;
        }
    };
    let pgid = child.id().and_then(|p| i32::try_from(p).ok());
    let (Some(mut stdin), Some(mut out), Some(mut err)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return;
    };
    // The stream -> program direction; `dead` turns true if the session
    // fails, `bad` says why if the client's bytes were at fault (a bad
    // `--pad` record).
    let (dead_tx, mut dead) = watch::channel(false);
    let bad = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
    let bad_in = bad.clone();
    let touch = activity.clone();
    let input = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut open = true;
        loop {
            match rd.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) if open => {
                    touch.touch();
                    // A program that closed its stdin: discard the rest.
                    open = stdin.write_all(&buf[..n]).await.is_ok();
                }
                Ok(_) => touch.touch(),
                Err(e) => {
                    if crate::tunnel::pad::pad_error(&e).is_some() {
                        *bad_in.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                    }
                    let _ = dead_tx.send(true);
                    return;
                }
            }
        }
        drop(stdin); // EOF for the program: the client half-closed.
    });
    // Each buffer is a whole frame: the header, then the payload read
    // behind it, sent in one write.
    let mut obuf = vec![0u8; HEADER_LEN + MAX_PAYLOAD];
    let mut ebuf = vec![0u8; HEADER_LEN + MAX_PAYLOAD];
    let (mut out_open, mut err_open) = (true, true);
    let mut status = None;
    let mut stop = std::pin::pin!(signals::stop_requested());
    let mut stopping = false;
    let mut ok = true;
    let mut watching = true;
    // A session that ends while the program neither reads nor writes
    // (the client closed, or fell silent) is noticed here.
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        if status.is_some() && !out_open && !err_open {
            break;
        }
        let drain = async {
            match status {
                Some(_) => tokio::time::sleep(DRAIN_GRACE).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = out.read(&mut obuf[HEADER_LEN..]), if out_open => {
                ok = match r {
                    Ok(n) if n > 0 => {
                        activity.touch();
                        send(&mut wr, TYPE_STDOUT, &mut obuf[..HEADER_LEN + n]).await
                    }
                    _ => {
                        out_open = false;
                        wr.write_all(&frame::encode_stdout_eof()).await.is_ok()
                            && wr.flush().await.is_ok()
                    }
                };
            }
            r = err.read(&mut ebuf[HEADER_LEN..]), if err_open => {
                ok = match r {
                    Ok(n) if n > 0 => {
                        activity.touch();
                        send(&mut wr, TYPE_STDERR, &mut ebuf[..HEADER_LEN + n]).await
                    }
                    _ => {
                        err_open = false;
                        true
                    }
                };
            }
            st = child.wait(), if status.is_none() => {
                status = Some(match st {
                    Ok(st) => Exit::from_status(st),
                    Err(e) => Exit { status: 255, how: How::Signaled, message: format!("wait: {e}") },
                });
            }
            r = dead.changed(), if watching => match r {
                Ok(()) if *dead.borrow() => ok = false,
                Ok(()) => {}
                Err(_) => watching = false, // the input side ended normally
            },
            _ = &mut stop, if !stopping => {
                stopping = true;
                signal_group(pgid, libc::SIGTERM);
            }
            _ = tick.tick() => {
                if session.close_reason().is_some() {
                    ok = false;
                }
            }
            limit = activity.expired(kill_idle), if status.is_none() => {
                input.abort();
                terminate(&mut child, pgid).await;
                let why = crate::tunnel::idle::reason(limit);
                tracing::info!("{}: {why}", session.peer());
                session.close(crate::tunnel::idle::CLOSE_IDLE, &why).await;
                return;
            }
            _ = drain => break,
        }
        if !ok {
            break;
        }
    }
    if !ok {
        // The session is gone: nobody reads the program's output any more.
        input.abort();
        if status.is_none() {
            terminate(&mut child, pgid).await;
        }
        let why = bad.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(why) = why {
            tracing::warn!("{}: {why}", session.peer());
            session.close(1, &why).await;
        }
        return;
    }
    input.abort();
    let exit = status.unwrap_or_else(|| Exit {
        status: 255,
        how: How::Signaled,
        message: "no exit status".to_string(),
    });
    if out_open {
        let _ = wr.write_all(&frame::encode_stdout_eof()).await;
    }
    let _ = wr.write_all(&frame::encode_exit(&exit)).await;
    flush(&mut wr).await;
    let reason = format!("program exited with status {}", exit.status);
    session::close_with(session, 0, &reason).await;
}

/// Sends the frame `f` (its payload after [`HEADER_LEN`] bytes left for
/// the header) in one write: with `--pad`, one run of records, not one
/// record for the header and more for the data.
async fn send(wr: &mut WriteHalf<SessionIo>, kind: u8, f: &mut [u8]) -> bool {
    let header = frame::encode_header(kind, f.len() - HEADER_LEN);
    f[..HEADER_LEN].copy_from_slice(&header);
    wr.write_all(f).await.is_ok() && wr.flush().await.is_ok()
}

/// Hands buffered records to the stream before the session is closed
/// (bounded: a dead peer must not hold us).
async fn flush(wr: &mut WriteHalf<SessionIo>) {
    let _ = tokio::time::timeout(Duration::from_secs(10), wr.flush()).await;
}

/// Starts the program, or says why not (status 127: not found, 126: not
/// executable, as shells do).
fn spawn(
    argv: &[String],
    peer: SocketAddr,
    env: super::ProgramEnv,
    suite: Option<crate::vsl::Suite>,
    client: Option<&Client>,
) -> Result<Child, Exit> {
    let mut cmd = match argv {
        [] => {
            return Err(Exit {
                status: 2,
                how: How::NotStarted,
                message: "no remote command given".to_string(),
            })
        }
        [line] => {
            let mut c = Command::new("sh");
            c.arg("-c").arg(line);
            c
        }
        [program, args @ ..] => {
            let mut c = Command::new(program);
            c.args(args);
            c
        }
    };
    if env == super::ProgramEnv::Clean {
        cmd.env_clear();
        for name in super::KEPT_ENV {
            if let Some(v) = std::env::var_os(name) {
                cmd.env(name, v);
            }
        }
    }
    if let Some(client) = client {
        cmd.envs(client.env());
    }
    cmd.envs(super::session_env(peer, suite))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    #[cfg(target_os = "linux")]
    // SAFETY: the closure runs between fork and exec and only makes one
    // async-signal-safe system call.
    unsafe {
        cmd.pre_exec(|| {
            // Descriptors we inherited without close-on-exec (from sshd or
            // whoever started us) are not the program's business: mark all
            // above stdio close-on-exec (Linux >= 5.11; older kernels skip
            // it; ours are close-on-exec already).
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
            // Ignored signals survive exec: give the program the default
            // disposition of every signal, and none blocked.
            for sig in 1..libc::SIGRTMAX() {
                if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                    libc::signal(sig, libc::SIG_DFL);
                }
            }
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            Ok(())
        });
    }
    cmd.spawn().map_err(|e| Exit {
        status: if e.kind() == std::io::ErrorKind::NotFound {
            127
        } else {
            126
        },
        how: How::NotStarted,
        message: format!("cannot run `{}`: {e}", argv.join(" ")),
    })
}

fn signal_group(pgid: Option<i32>, sig: i32) {
    if let Some(p) = pgid.filter(|p| *p > 0) {
        // SAFETY: plain syscall; the group is the one we created.
        unsafe { libc::killpg(p, sig) };
    }
}

/// SIGTERM to the program's group, SIGKILL after [`KILL_GRACE`].
async fn terminate(child: &mut Child, pgid: Option<i32>) {
    signal_group(pgid, libc::SIGTERM);
    if tokio::time::timeout(KILL_GRACE, child.wait())
        .await
        .is_err()
    {
        signal_group(pgid, libc::SIGKILL);
        let _ = child.wait().await;
    }
}
