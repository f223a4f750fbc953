//! The `--ucspi` helper process: start PROG with the UCSPI-TLS
//! descriptors, wait for its `y`/`Y`, upgrade the connection to a vfer
//! session, and carry PROG's SSLREADFD/SSLWRITEFD over it (module docs of
//! [`super`]).

use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::ExitStatus;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use super::auth::Authenticator;
use super::wire::{self, Role, Upgrade};
use super::{EXIT_INTERRUPTED, EXIT_SYSTEM, EXIT_TIMEOUT, HELPER_ENV};
use crate::transport::{Config, Session};
use crate::tunnel::{idle, signals, splice};

/// The connection's descriptors (read, write) for `role`: a server runs
/// under a super-server (stdin/stdout), a client under `tcpclient` (6/7).
pub fn connection_fds(role: Role) -> (RawFd, RawFd) {
    match role {
        Role::Server => (0, 1),
        Role::Client => (6, 7),
    }
}

/// Is descriptor `fd` open?
pub fn fd_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the descriptor's flags.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// Everything a helper needs once started (the command line's `--ucspi`
/// mode builds it).
pub struct Helper {
    /// Our name in messages ("vfer-recv").
    pub program: String,
    /// Server (under a super-server) or client (under tcpclient).
    pub role: Role,
    /// How the upgraded session is authenticated: the key both ends
    /// hold, or a login ([`super::auth`]).
    pub auth: Box<dyn Authenticator>,
    /// The session's transport settings.
    pub config: Config,
    /// `-K`: end the secure session after this long without data.
    pub kill_idle: Option<Duration>,
    /// Server: the UDP ports to choose from (`--port-range`).
    pub port_range: Option<String>,
    /// Client: the server's host for the UDP session (`--connect`).
    pub connect: Option<String>,
    /// `-Z`: keep our own variables in PROG's environment.
    pub keep_env: bool,
    /// `-4`: IPv4 only.
    pub ipv4: bool,
    /// `-6`: IPv6 only.
    pub ipv6: bool,
    /// `--pad`: the secure channel in fixed-size records (both ends must
    /// have it).
    pub pad: bool,
}

/// Our ends of PROG's three UCSPI-TLS descriptors.
struct Ours {
    ctl: tokio::net::UnixStream,
    /// We write what PROG reads on SSLREADFD.
    to_prog: OwnedFd,
    /// We read what PROG writes on SSLWRITEFD.
    from_prog: OwnedFd,
}

impl Helper {
    /// Runs PROG (`prog`: its argv) to the end; returns the exit status
    /// (module docs of [`super`]).
    pub async fn run(self, prog: &[String]) -> Result<i32> {
        signals::install();
        let (mut child, mut ours) = spawn(prog, self.keep_env)?;
        // Clear phase: PROG talks on the connection itself; we wait for
        // its command (or its closing the control descriptor).
        let secure = tokio::select! {
            r = wait_command(&mut ours.ctl) => r,
            sig = signals::stop_requested() => {
                tracing::info!("stopped by {sig} before any upgrade");
                drop(ours);
                terminate(&mut child).await;
                return Ok(EXIT_INTERRUPTED);
            }
        };
        let describe = match secure {
            Ok(Some(d)) => d,
            Ok(None) => {
                // No security asked: PROG is done with us (s6's helper
                // exits 0); the process ends with PROG's status.
                drop(ours);
                return Ok(status_code(child.wait().await?));
            }
            Err(e) => {
                drop(ours);
                let _ = child.wait().await;
                return Err(
                    anyhow::Error::new(e).context("reading the control descriptor (SSLCTLFD)")
                );
            }
        };
        let session = match self.upgrade().await {
            Ok(s) => s,
            Err(e) => {
                eprintln!(
                    "{}: --ucspi: the upgrade failed: {}",
                    self.program,
                    crate::tunnel::ending::describe(&e)
                );
                // PROG sees EOF on SSLREADFD and an error on SSLWRITEFD.
                drop(ours);
                let _ = child.wait().await;
                return Ok(EXIT_SYSTEM);
            }
        };
        if describe {
            let mut vars = description(&session);
            // Who logged in, if a login authenticated it.
            vars.extend(self.auth.described());
            ours.ctl
                .write_all(&wire::env_string(&vars))
                .await
                .context("writing the Y answer on SSLCTLFD")?;
        }
        tracing::info!("{}: secure channel up", session.peer());
        let Ours {
            ctl,
            to_prog,
            from_prog,
        } = ours;
        let reader = tokio::net::unix::pipe::Receiver::from_owned_fd(from_prog)
            .context("SSLWRITEFD's pipe")?;
        let writer =
            tokio::net::unix::pipe::Sender::from_owned_fd(to_prog).context("SSLREADFD's pipe")?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let result = {
            let spliced = splice::splice(
                reader,
                writer,
                &session,
                crate::tunnel::pad::Framing::from_pad(self.pad),
                stop_rx,
                self.kill_idle,
            );
            tokio::pin!(spliced);
            tokio::select! {
                r = &mut spliced => (r, None),
                sig = signals::stop_requested() => {
                    let _ = stop_tx.send(true);
                    (spliced.await, Some(sig))
                }
            }
        };
        drop(ctl);
        let (result, signalled) = result;
        if let Some(sig) = signalled {
            eprintln!("{}: stopped by {sig}", self.program);
            session.close(2, &format!("stopped by {sig}")).await;
            terminate(&mut child).await;
            return Ok(EXIT_INTERRUPTED);
        }
        match result {
            Ok(m) => {
                tracing::info!("secure channel done, {} up, {} down", m.up, m.down);
                crate::tunnel::ending::close(session, 0).await;
            }
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                // PROG stopped reading: its own business, its status says.
                session.close(1, "the program stopped reading").await;
            }
            Err(e) => {
                eprintln!("{}: {e}", self.program);
                let code = if splice::idle_kill(&e).is_some() {
                    idle::CLOSE_IDLE
                } else {
                    1
                };
                session.close(code, &e.to_string()).await;
                terminate(&mut child).await;
                return Ok(if timed_out(&e) {
                    EXIT_TIMEOUT
                } else {
                    EXIT_SYSTEM
                });
            }
        }
        Ok(status_code(child.wait().await?))
    }

    /// The UPGRADE exchange on the connection, then the session over UDP.
    async fn upgrade(&self) -> Result<Session> {
        let wait = self.config.handshake_timeout;
        let (r, w) = connection_fds(self.role);
        match self.role {
            Role::Server => {
                let range = match &self.port_range {
                    Some(p) => Some(p.parse().map_err(anyhow::Error::msg)?),
                    None => None,
                };
                let local: Option<IpAddr> = std::env::var("TCPLOCALIP")
                    .ok()
                    .and_then(|ip| ip.parse().ok());
                let family = if self.ipv4 {
                    Some(crate::bootstrap::Family::V4)
                } else if self.ipv6 {
                    Some(crate::bootstrap::Family::V6)
                } else {
                    None
                };
                let socket = crate::bootstrap::ssh_server::bind_udp(family, range, local)
                    .map_err(|e| anyhow::anyhow!("{}", e.stderr_text("").trim()))?;
                let port = socket.local_addr()?.port();
                let mode = self.auth.mode();
                let ours = Upgrade::new(mode, Role::Server, port)?.padded(self.pad);
                let theirs = exchange(r, w, ours.encode(), Role::Server, mode, wait).await?;
                theirs.check_pad(self.pad)?;
                let config = self.config.clone();
                self.auth.accept(socket, ours, theirs, config, wait).await
            }
            Role::Client => {
                let host = match (&self.connect, std::env::var("TCPREMOTEIP"), self.auth.host()) {
                    (Some(h), _, _) => h.clone(),
                    (None, Ok(ip), _) => ip,
                    (None, Err(_), Some(h)) => h,
                    (None, Err(_), None) => bail!(
                        "the server's address is unknown: TCPREMOTEIP is not set (run under tcpclient) \
                         and no --connect HOST was given"
                    ),
                };
                let mode = self.auth.mode();
                let ours = Upgrade::new(mode, Role::Client, 0)?.padded(self.pad);
                let theirs = exchange(r, w, ours.encode(), Role::Client, mode, wait).await?;
                theirs.check_pad(self.pad)?;
                let addr = resolve(&host, theirs.port, self.ipv4, self.ipv6).await?;
                let config = self.config.clone();
                self.auth.connect(addr, ours, theirs, config).await
            }
        }
    }
}

/// Resolves the server's host for the UDP session.
async fn resolve(host: &str, port: u16, v4: bool, v6: bool) -> Result<SocketAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("cannot resolve {host}"))?
        .find(|a| !(v4 && a.is_ipv6() || v6 && a.is_ipv4()))
        .with_context(|| format!("{host} has no address of the asked family"))
}

/// Writes our UPGRADE on `w` and reads exactly the peer's on `r` (never a
/// byte more: the descriptors are PROG's connection), within `wait`.
async fn exchange(
    r: RawFd,
    w: RawFd,
    ours: [u8; wire::LEN],
    role: Role,
    mode: wire::Mode,
    wait: Duration,
) -> Result<Upgrade> {
    let got = tokio::task::spawn_blocking(move || exchange_blocking(r, w, &ours, wait))
        .await
        .context("upgrade thread")??;
    Ok(Upgrade::decode(&got, role, mode)?)
}

fn exchange_blocking(
    r: RawFd,
    w: RawFd,
    ours: &[u8; wire::LEN],
    wait: Duration,
) -> Result<[u8; wire::LEN]> {
    let deadline = std::time::Instant::now() + wait;
    let mut sent = 0;
    while sent < ours.len() {
        poll_fd(w, libc::POLLOUT, deadline)?;
        // SAFETY: writes from a live buffer to a descriptor we checked.
        let n = unsafe { libc::write(w, ours[sent..].as_ptr().cast(), ours.len() - sent) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted
                || e.kind() == std::io::ErrorKind::WouldBlock
            {
                continue;
            }
            return Err(
                anyhow::Error::new(e).context("writing the upgrade message on the connection")
            );
        }
        sent += n as usize;
    }
    let mut buf = [0u8; wire::LEN];
    let mut got = 0;
    while got < buf.len() {
        poll_fd(r, libc::POLLIN, deadline)?;
        // SAFETY: reads into a live buffer, at most what is left of it.
        let n = unsafe { libc::read(r, buf[got..].as_mut_ptr().cast(), buf.len() - got) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted
                || e.kind() == std::io::ErrorKind::WouldBlock
            {
                continue;
            }
            return Err(anyhow::Error::new(e).context("reading the peer's upgrade message"));
        }
        if n == 0 {
            bail!("the connection ended before the peer's upgrade message (is the other end a vfer --ucspi helper?)");
        }
        got += n as usize;
    }
    Ok(buf)
}

/// Waits until `fd` is ready for `events`, or fails at `deadline`.
fn poll_fd(fd: RawFd, events: libc::c_short, deadline: std::time::Instant) -> Result<()> {
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            bail!(
                "no upgrade message from the peer in time (is the other end a vfer --ucspi \
                 helper, and did its program ask for security too?)"
            );
        }
        let mut p = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        let ms = i32::try_from(left.as_millis().max(1)).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, ms) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(anyhow::Error::new(e).context("poll on the connection"));
        }
        if n > 0 {
            return Ok(());
        }
    }
}

/// Reads commands from the control descriptor until `y` (`Ok(Some(false))`)
/// or `Y` (`Ok(Some(true))`); `Ok(None)` at EOF. Other bytes are ignored
/// (UCSPI-TLS defines only these two).
async fn wait_command(ctl: &mut tokio::net::UnixStream) -> std::io::Result<Option<bool>> {
    let mut b = [0u8; 1];
    loop {
        if ctl.read(&mut b).await? == 0 {
            return Ok(None);
        }
        match b[0] {
            b'y' => return Ok(Some(false)),
            b'Y' => return Ok(Some(true)),
            other => tracing::debug!("ignoring control byte {other:#04x}"),
        }
    }
}

/// The session as the `Y` answer describes it, s6-tlsd's names beside vfer's.
fn description(session: &Session) -> Vec<(&'static str, String)> {
    let suite = session.stats().suite;
    let env = crate::tunnel::session_env::session_env(session.peer(), suite);
    // s6-tlsd's names first, then vfer's.
    let mut vars = env[4..].to_vec();
    vars.extend(env[..4].iter().cloned());
    vars
}

/// True when the secure channel ended for want of data or of the peer:
/// our `-K`, the peer's `-K` (CLOSE code 3), or the peer falling silent.
fn timed_out(e: &std::io::Error) -> bool {
    let text = e.to_string();
    splice::idle_kill(e).is_some() || text.contains("(-K)") || text.contains("idle timeout")
}

/// The descriptor numbers PROG gets for SSLCTLFD, SSLREADFD and
/// SSLWRITEFD: fixed and below 10, so that a shell script can use them
/// (`printf y >&3`); 0-2 and the client's 6/7 stay as they are.
pub const PROG_FDS: [RawFd; 3] = [3, 4, 5];

/// Starts PROG with SSLCTLFD, SSLREADFD and SSLWRITEFD ([`PROG_FDS`]);
/// the connection stays where it is (inherited).
fn spawn(prog: &[String], keep_env: bool) -> Result<(Child, Ours)> {
    let (ctl_ours, ctl_prog) =
        std::os::unix::net::UnixStream::pair().context("socketpair for SSLCTLFD")?;
    let (prog_read, to_prog) = pipe().context("pipe for SSLREADFD")?;
    let (from_prog, prog_write) = pipe().context("pipe for SSLWRITEFD")?;
    let fds = [
        ctl_prog.as_raw_fd(),
        prog_read.as_raw_fd(),
        prog_write.as_raw_fd(),
    ];
    let mut cmd = Command::new(&prog[0]);
    cmd.args(&prog[1..])
        .env("SSLCTLFD", PROG_FDS[0].to_string())
        .env("SSLREADFD", PROG_FDS[1].to_string())
        .env("SSLWRITEFD", PROG_FDS[2].to_string());
    if !keep_env {
        for v in HELPER_ENV {
            cmd.env_remove(v);
        }
    }
    // SAFETY: between fork and exec, only fcntl and dup2 (async-signal-
    // safe) on descriptors that exist in the child.
    unsafe {
        cmd.pre_exec(move || {
            // Copy each out of the way first (close-on-exec copies above
            // 9), so that no target number overwrites a source.
            let mut high = [0; 3];
            for (h, fd) in high.iter_mut().zip(fds) {
                *h = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10);
                if *h < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (h, target) in high.into_iter().zip(PROG_FDS) {
                // dup2 leaves the new descriptor without close-on-exec.
                if libc::dup2(h, target) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot run `{}`", prog.join(" ")))?;
    // PROG's ends are PROG's alone now: EOF reaches us when it closes them.
    drop((ctl_prog, prog_read, prog_write));
    ctl_ours.set_nonblocking(true)?;
    let ctl = tokio::net::UnixStream::from_std(ctl_ours)?;
    Ok((
        child,
        Ours {
            ctl,
            to_prog,
            from_prog,
        },
    ))
}

/// A close-on-exec pipe: (read end, write end).
fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid 2-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 returned two fresh descriptors we now own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// SIGTERM to PROG, SIGKILL 5 s later.
async fn terminate(child: &mut Child) {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        // SAFETY: plain syscall on our own child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    if tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .is_err()
    {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
}

/// A process status as a shell reports it (128 + n for signal n).
fn status_code(st: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (st.code(), st.signal()) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        _ => EXIT_SYSTEM,
    }
}
