//! The client side of the starting-mode exchange with a spawned command
//! (ssh, or the server itself in local mode): write the secret, read the
//! port, connect, check the command's exit status. Shared by
//! [`super::ssh_client`] and [`super::local`] so both speak the same bytes.

use std::net::{IpAddr, SocketAddr};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use super::wire::{self, Secret, WireError, PORT_MSG_LEN};
use super::{BootstrapError, EXIT_PERMANENT, EXIT_TEMPORARY};
use crate::transport::{Config, Session};

/// Most stderr bytes kept from the command for error messages.
const STDERR_KEEP: usize = 4096;
/// How long we wait for the command to exit once the session is up, or
/// once it failed to reply.
const EXIT_WAIT: Duration = Duration::from_secs(10);

/// What to run and how to describe it in errors.
pub(crate) struct Spawn {
    /// The command, program and arguments set.
    pub command: Command,
    /// The command line as the user would read it.
    pub display: String,
    /// The command's short name (e.g. "ssh").
    pub name: String,
    /// Host label for messages ("localhost" in local mode).
    pub host: String,
    /// The server program (for "not found" errors).
    pub program: String,
}

/// Runs the exchange and returns the connected session.
pub(crate) async fn start(
    spawn: Spawn,
    peer_ip: IpAddr,
    reply_timeout: Duration,
    config: Config,
) -> Result<Session, BootstrapError> {
    let Spawn {
        mut command,
        display,
        name,
        host,
        program,
    } = spawn;
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let shown = display.as_str();
    tracing::info!("{host}: running {shown} (remote program {program})");
    let mut child = command.spawn().map_err(|source| BootstrapError::Spawn {
        command: display.clone(),
        source,
    })?;
    let stderr = child.stderr.take().map(|e| tokio::spawn(keep_head(e)));
    let secret = Secret::random()?;
    let reply = exchange(&mut child, &secret, reply_timeout).await;
    let fail = |child: Child, stderr| failure(child, stderr, &host, &name, &program);
    let port = match reply {
        Reply::Port(p) => p,
        Reply::Closed => return Err(fail(child, stderr).await),
        Reply::Timeout => {
            let _ = child.start_kill();
            return Err(BootstrapError::NoReply {
                host,
                timeout: reply_timeout,
            });
        }
        Reply::Bad(bytes) => {
            let _ = child.start_kill();
            return Err(BootstrapError::BadReply {
                host,
                got: escape(&bytes),
            });
        }
    };
    let addr = SocketAddr::new(peer_ip, port);
    tracing::info!("{host}: {program} listens on UDP port {port}; connecting to {addr}");
    let session = match Session::connect(addr, secret.bytes(), config).await {
        Ok(s) => s,
        Err(source) => {
            let _ = child.start_kill();
            return Err(BootstrapError::Unreachable { host, addr, source });
        }
    };
    drop(secret);
    let st = session.stats();
    tracing::info!(
        "{host}: session up with {addr}, RTT {:.1} ms, path MTU {} (probing for more)",
        st.srtt.as_secs_f64() * 1e3,
        st.path_mtu
    );
    // The server's setup process exits 0 once it saw our first packet.
    match tokio::time::timeout(EXIT_WAIT, child.wait()).await {
        Ok(Ok(st)) if st.success() => {}
        Ok(Ok(st)) => {
            let message = collect(stderr).await;
            tracing::warn!(
                "{host}: `{name}` exited with {st} after the session came up: {message}"
            );
        }
        Ok(Err(e)) => tracing::warn!("{host}: waiting for `{name}`: {e}"),
        Err(_) => {
            tracing::warn!("{host}: `{name}` did not exit after the session came up; stopping it");
            let _ = child.start_kill();
        }
    }
    Ok(session)
}

enum Reply {
    Port(u16),
    Closed,
    Timeout,
    Bad(Vec<u8>),
}

async fn exchange(child: &mut Child, secret: &Secret, timeout: Duration) -> Reply {
    let Some(mut stdin) = child.stdin.take() else {
        return Reply::Closed;
    };
    let Some(mut stdout) = child.stdout.take() else {
        return Reply::Closed;
    };
    let msg = wire::encode_secret(secret);
    // A failed write means the command already exited; what it printed
    // and its status say why, so go on reading.
    let _ = stdin.write_all(&msg[..]).await;
    let _ = stdin.flush().await;
    drop(stdin);
    let mut buf = [0u8; PORT_MSG_LEN];
    let mut got = 0;
    let read = async {
        while got < PORT_MSG_LEN {
            match stdout.read(&mut buf[got..]).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => got += n,
            }
        }
        true
    };
    match tokio::time::timeout(timeout, read).await {
        Err(_) => Reply::Timeout,
        Ok(false) if got == 0 => Reply::Closed,
        Ok(false) => Reply::Bad(buf[..got].to_vec()),
        Ok(true) => match wire::decode_port(&buf) {
            Ok(p) => Reply::Port(p),
            Err(WireError::BadMagic(_) | WireError::BadPort(_)) => {
                // Show a little more of what came, to make a chatty login
                // script recognisable.
                let mut more = buf.to_vec();
                let mut extra = [0u8; 56];
                if let Ok(Ok(n)) =
                    tokio::time::timeout(Duration::from_millis(200), stdout.read(&mut extra)).await
                {
                    more.extend_from_slice(&extra[..n]);
                }
                Reply::Bad(more)
            }
        },
    }
}

/// Maps the command's exit status (and stderr) to an error.
async fn failure(
    mut child: Child,
    stderr: Option<tokio::task::JoinHandle<Vec<u8>>>,
    host: &str,
    name: &str,
    program: &str,
) -> BootstrapError {
    let status = match tokio::time::timeout(EXIT_WAIT, child.wait()).await {
        Ok(Ok(st)) => Some(st),
        _ => {
            let _ = child.start_kill();
            None
        }
    };
    let message = collect(stderr).await;
    classify(status, host, name, program, message)
}

fn classify(
    status: Option<ExitStatus>,
    host: &str,
    name: &str,
    program: &str,
    message: String,
) -> BootstrapError {
    let host = host.to_string();
    match status.and_then(|s| s.code()) {
        Some(EXIT_TEMPORARY) => BootstrapError::RemoteTemporary { host, message },
        Some(EXIT_PERMANENT) => BootstrapError::RemotePermanent { host, message },
        Some(127) => BootstrapError::RemoteNotFound {
            host,
            program: program.to_string(),
            message,
        },
        code => BootstrapError::CommandFailed {
            host,
            command: name.to_string(),
            status: match (code, status) {
                (Some(255), _) if name.contains("ssh") => {
                    "exit 255: ssh could not connect or log in".to_string()
                }
                (Some(c), _) => format!("exit {c}"),
                (None, Some(st)) => st.to_string(),
                (None, None) => "did not exit".to_string(),
            },
            message,
        },
    }
}

async fn keep_head(mut r: impl AsyncRead + Unpin) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = STDERR_KEEP.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

async fn collect(stderr: Option<tokio::task::JoinHandle<Vec<u8>>>) -> String {
    let Some(h) = stderr else {
        return String::new();
    };
    match tokio::time::timeout(Duration::from_secs(2), h).await {
        Ok(Ok(b)) => String::from_utf8_lossy(&b).trim().to_string(),
        _ => String::new(),
    }
}

fn escape(b: &[u8]) -> String {
    format!("\"{}\"", b.escape_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn exit_statuses_map_to_errors() {
        let st = |c: i32| Some(ExitStatus::from_raw(c << 8));
        let e = classify(st(20), "h", "ssh", "vfer-recv", "no port".into());
        assert!(matches!(e, BootstrapError::RemoteTemporary { .. }));
        assert!(e.to_string().starts_with("h: "), "{e}");
        assert!(matches!(
            classify(st(21), "h", "ssh", "p", String::new()),
            BootstrapError::RemotePermanent { .. }
        ));
        let e = classify(st(127), "h", "ssh", "vfer-recv", "not found".into());
        assert!(e.to_string().contains("--remote-path"), "{e}");
        let e = classify(st(255), "h", "ssh", "p", "Permission denied".into());
        assert!(e.to_string().contains("ssh could not connect"), "{e}");
        assert!(e.to_string().contains("Permission denied"), "{e}");
    }

    #[test]
    fn escapes_reply() {
        assert_eq!(escape(b"Hi\n\x00"), "\"Hi\\n\\x00\"");
    }
}
