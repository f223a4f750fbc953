//! Turning the ssh-started server into a daemon once the client is in.
//!
//! Why fork, and why here: ssh only ends (and the client's `ssh` only
//! exits) when the remote command has exited *and* closed its stdout and
//! stderr. The command must exit with the status of the *setup* (0, 20 or
//! 21) while the session goes on, so the session needs a second process.
//! Forking a process that runs tokio threads is unsafe (only the forking
//! thread survives), so everything before the fork is plain blocking code on
//! one thread: read the secret, bind, reply. Then:
//!
//! ```text
//! parent (ssh's command)              child
//!   fork ------------------------------> setsid, stdio -> /dev/null,
//!   wait on status pipe                  start tokio, Session::accept
//!                                        first authenticated datagram:
//!   <------------- byte 0 -------------- "connected"   (or 20/21 + message)
//!   exit 0  (or write message, exit 20/21)
//!                                        serve the session, exit
//! ```
//!
//! So ssh reports a meaningful status only once the client really is
//! connected, and the error message (at most 512 bytes) is written by the
//! parent, still attached to ssh, "before daemonizing".

use std::fs::File;
use std::future::Future;
use std::io::{Read, Write};
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;

use tokio::io::AsyncWriteExt;

use super::ssh_server::{prepare, Prepared, ServerError, ServerOptions};
use crate::transport::{Session, SessionError};

/// Status byte the child sends when the client is connected.
const STATUS_CONNECTED: u8 = 0;

/// The whole ssh-started server: harden the process, read the secret, bind,
/// reply, fork, and in the child accept the client and run `on_session`.
///
/// Call it from `main` *before* starting any runtime or thread (so no
/// `#[tokio::main]`; it refuses with exit 21 if threads exist) and before
/// writing anything to stdout or stderr (no logging first), and exit with
/// the status it returns: `run` returns in both processes (the parent
/// with the setup status 0/20/21, the daemon with 0 after `on_session`
/// ended, or 20 if it failed). `options` is the parse result of the
/// server's arguments; an error is reported (exit 21) only after the secret
/// was read. `program` prefixes error messages (e.g. "vfer-recv").
pub fn run<F, Fut>(program: &str, options: Result<ServerOptions, String>, on_session: F) -> i32
where
    F: FnOnce(Session) -> Fut,
    Fut: Future<Output = ()>,
{
    // Core dumps off: a dump of the server would hold the session secret.
    super::coredump::disable();
    // Unbuffered, exactly-sized I/O on the real descriptors: std's stdin
    // would read ahead past the 36 bytes, its stdout would buffer.
    // SAFETY: fds 0 and 1 exist for the life of the process; ManuallyDrop
    // keeps them open.
    let mut stdin = ManuallyDrop::new(unsafe { File::from_raw_fd(0) });
    let mut stdout = ManuallyDrop::new(unsafe { File::from_raw_fd(1) });
    let ssh_connection = std::env::var("SSH_CONNECTION").ok();
    // fork() copies only the calling thread: a runtime started before
    // `run` would be broken in the child. A wiring bug; refuse it (checked
    // with the arguments, i.e. after the secret was read).
    let options = options.and_then(|o| match thread_count() {
        Some(n) if n > 1 => Err(format!(
            "internal error: --server must start before any thread ({n} running)"
        )),
        _ => Ok(o),
    });
    match prepare(
        options,
        &mut *stdin,
        &mut *stdout,
        ssh_connection.as_deref(),
    ) {
        Ok(p) => fork_and_serve(program, p, on_session),
        Err(e) => report(program, &e),
    }
}

fn report(program: &str, e: &ServerError) -> i32 {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(e.stderr_text(program).as_bytes());
    let _ = err.flush();
    e.exit_code()
}

fn fork_and_serve<F, Fut>(program: &str, prepared: Prepared, on_session: F) -> i32
where
    F: FnOnce(Session) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut fds = [0i32; 2];
    // SAFETY: fds is a valid 2-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        let e = std::io::Error::last_os_error();
        return report(program, &ServerError::temporary(format!("pipe: {e}")));
    }
    // SAFETY: the process is single-threaded here (the documented contract
    // of `run`), so the child may run arbitrary code.
    match unsafe { libc::fork() } {
        -1 => {
            let e = std::io::Error::last_os_error();
            report(program, &ServerError::temporary(format!("fork: {e}")))
        }
        0 => {
            // SAFETY: fds[0] is ours to close; fds[1] is ours to own.
            unsafe { libc::close(fds[0]) };
            let status = unsafe { File::from_raw_fd(fds[1]) };
            detach();
            child_main(prepared, status, on_session)
        }
        _child => {
            // SAFETY: fds[1] is ours to close; fds[0] is ours to own.
            unsafe { libc::close(fds[1]) };
            let status = unsafe { File::from_raw_fd(fds[0]) };
            drop(prepared); // the child has the socket and the secret now
            parent_wait(program, status)
        }
    }
}

/// Threads of this process (Linux; `None` where unknown).
fn thread_count() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
}

/// New session (no controlling terminal, no SIGHUP when ssh goes), stdio on
/// /dev/null so ssh sees EOF on the channel once the parent exits.
fn detach() {
    // SAFETY: plain syscalls; the path is a valid C string.
    unsafe {
        libc::setsid();
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
            if null > 2 {
                libc::close(null);
            }
        }
    }
}

fn parent_wait(program: &str, status: File) -> i32 {
    let mut buf = Vec::new();
    let _ = status.take(4096).read_to_end(&mut buf);
    match buf.split_first() {
        Some((&STATUS_CONNECTED, _)) => 0,
        Some((&code, msg)) => {
            let e = ServerError {
                temporary: code != super::EXIT_PERMANENT as u8,
                message: String::from_utf8_lossy(msg).into_owned(),
            };
            report(program, &e)
        }
        None => report(
            program,
            &ServerError::temporary("the server process ended before a client connected"),
        ),
    }
}

fn child_main<F, Fut>(prepared: Prepared, mut status: File, on_session: F) -> i32
where
    F: FnOnce(Session) -> Fut,
    Fut: Future<Output = ()>,
{
    let fail = |status: &mut File, e: ServerError| {
        let mut m = vec![e.exit_code() as u8];
        m.extend_from_slice(e.message.as_bytes());
        let _ = status.write_all(&m);
        e.exit_code()
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&mut status, ServerError::temporary(format!("tokio: {e}"))),
    };
    rt.block_on(async move {
        let Prepared {
            secret,
            socket,
            options,
        } = prepared;
        let session = match accept(socket, &secret, &options).await {
            Ok(s) => s,
            Err(e) => return fail(&mut status, e),
        };
        drop(secret);
        let _ = status.write_all(&[STATUS_CONNECTED]);
        drop(status);
        if options.echo {
            echo(session).await;
        } else {
            on_session(session).await;
        }
        0
    })
}

async fn accept(
    socket: std::net::UdpSocket,
    secret: &super::Secret,
    options: &ServerOptions,
) -> Result<Session, ServerError> {
    let socket = tokio::net::UdpSocket::from_std(socket)
        .map_err(|e| ServerError::temporary(format!("UDP socket: {e}")))?;
    Session::accept(
        socket,
        secret.bytes(),
        options.config.clone(),
        options.accept_timeout,
    )
    .await
    .map_err(|e| match e {
        SessionError::AcceptTimeout(t) => ServerError::temporary(format!(
            "no client connected over UDP within {}s (is UDP blocked by a firewall?)",
            t.as_secs()
        )),
        other => ServerError::temporary(other.to_string()),
    })
}

/// The `--echo` diagnostic service: send every byte back, then close.
pub(crate) async fn echo(session: Session) {
    let (mut r, mut w) = tokio::io::split(session.stream());
    if tokio::io::copy(&mut r, &mut w).await.is_ok() {
        let _ = w.shutdown().await;
    }
    session.close(0, "echo done").await;
}
