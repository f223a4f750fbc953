//! Opening the session a command line asks for (ssh, local child or key-file
//! daemon), and closing it so that both sides know the transfer is over.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use tokio::io::AsyncWriteExt;

use super::args::Common;
use super::daemon::Request;
use super::target::Operand;
use crate::bootstrap::keyfile;
use crate::bootstrap::local::{self, LocalOptions};
use crate::bootstrap::ssh_client::{self, RemoteRole, SshOptions, SshTarget};
use crate::bootstrap::Family;
use crate::transport::Session;

/// Where the far side runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Far {
    /// Started through ssh on `login` (`[user@]host`).
    Ssh(String),
    /// Started as a local child process (`--local`).
    Local,
    /// A standing `vfer-recv --listen` daemon reached with a key file.
    Daemon {
        /// Host name or address.
        host: String,
        /// UDP port.
        port: u16,
    },
    /// A standing `vfer-recv --listen --users` daemon, logged in to as `user`
    /// (challenge-response mode).
    Login {
        /// Login name.
        user: String,
        /// Host name or address.
        host: String,
        /// UDP port.
        port: u16,
    },
}

impl Far {
    /// Where a remote operand's far side runs, and its path there (`.`
    /// when empty). `what` ("source"/"destination") names a local operand
    /// in the error when `--local` was not given.
    pub fn of_operand(op: Operand, local: bool, what: &str) -> Result<(Far, String)> {
        let (far, path) = match op {
            Operand::Ssh { login, path } => (Far::Ssh(login), path),
            Operand::Local(p) if local => (Far::Local, p),
            Operand::Local(p) => {
                return Err(super::exit::usage(format!(
                    "{what} '{p}' is local: give [user@]host:path (or --local to copy \
                     through vfer on this machine)"
                )))
            }
            Operand::Daemon {
                user: Some(user),
                host,
                port,
                path,
            } => (Far::Login { user, host, port }, path),
            Operand::Daemon {
                host, port, path, ..
            } => (Far::Daemon { host, port }, path),
        };
        let path = if path.is_empty() {
            ".".to_string()
        } else {
            path
        };
        Ok((far, path))
    }
}

fn family(c: &Common) -> Option<Family> {
    if c.ipv4 {
        Some(Family::V4)
    } else if c.ipv6 {
        Some(Family::V6)
    } else {
        None
    }
}

/// Starts the far side as `role` with `operands` (its paths) and connects.
pub async fn open(far: &Far, role: RemoteRole, operands: &[String], c: &Common) -> Result<Session> {
    let session = match far {
        Far::Ssh(_) | Far::Local => {
            let mut args = c.remote_flags();
            args.push("--".to_string());
            args.extend(operands.iter().cloned());
            start_child(far, role, args, c).await?
        }
        Far::Daemon { host, port } => {
            let session = key_file_session(host, *port, c).await?;
            send_request(&mut session.stream(), role, operands, c, host, *port).await?;
            session
        }
        Far::Login { user, host, port } => {
            super::login::open(user, host, *port, role, operands, c).await?
        }
    };
    warn_about_socket(&session, c);
    Ok(session)
}

/// Starts `vfer-recv`/`vfer-send --server ARGS` through ssh or as a local
/// child (the SSH starting mode either way) and connects to it.
pub async fn start_child(
    far: &Far,
    role: RemoteRole,
    args: Vec<String>,
    c: &Common,
) -> Result<Session> {
    let config = c.transport_config();
    match far {
        Far::Ssh(login) => {
            let target = SshTarget::parse(login)?;
            let mut opts = SshOptions {
                rsh: c.rsh.clone(),
                remote_path: c.remote_path.clone(),
                remote_args: args,
                family: family(c),
                config,
                ..SshOptions::default()
            };
            remembered_path(&target, &mut opts, c).await;
            Ok(ssh_client::connect(&target, role, &opts).await?)
        }
        Far::Local => {
            let opts = LocalOptions {
                // A directory holds both programs: take the role's.
                program: c.remote_path.as_ref().map(|p| {
                    let p = PathBuf::from(p);
                    if p.is_dir() {
                        p.join(role.program())
                    } else {
                        p
                    }
                }),
                server_args: args,
                config,
                ..LocalOptions::default()
            };
            local::connect(role, &opts)
                .await
                .context("cannot start the local server side (--local)")
        }
        Far::Daemon { host, .. } | Far::Login { host, .. } => {
            bail!("{host}: a standing daemon is not started through ssh")
        }
    }
}

/// The path cache (issue 17): the hint for this host's path goes to both
/// sides (to the far side as `--path-hint`, before the `--` that ends its
/// options): whichever sends starts from it, both size their buffers by it.
/// A `--path-hint` given on our own command line (the path is known, as
/// qcp's `--rx`/`--rtt` tell it) takes the cache's place.
async fn remembered_path(target: &SshTarget, opts: &mut SshOptions, c: &Common) {
    if c.rate.is_some() {
        return;
    }
    let given = opts.config.path_hint;
    let cached = match ssh_client::resolve(target, opts).await {
        Ok(ip) => super::pathstore::begin(&target.host, &ip.to_string(), c.no_path_cache),
        Err(_) => None,
    };
    let Some(hint) = given.or(cached) else {
        return;
    };
    // Both sides size their buffers from it; the sender also starts from it.
    opts.config.path_hint = Some(hint);
    let at = opts
        .remote_args
        .iter()
        .position(|a| a == "--")
        .unwrap_or(opts.remote_args.len());
    opts.remote_args
        .splice(at..at, ["--path-hint".to_string(), hint.to_arg()]);
}

/// Sends a daemon the transfer request (§5): which way, the paths and the
/// `-r`/`-p` options. `host` and `port` name the daemon in errors.
pub async fn send_request<W: tokio::io::AsyncWrite + Unpin>(
    stream: &mut W,
    role: RemoteRole,
    operands: &[String],
    c: &Common,
    host: &str,
    port: u16,
) -> Result<()> {
    let request = Request {
        push: role == RemoteRole::Recv,
        recursive: c.recursive,
        preserve: c.preserve,
        paths: operands.to_vec(),
    };
    request
        .write(stream)
        .await
        .with_context(|| format!("{host}:{port}: cannot send the request"))
}

/// A session with a key-file daemon (`vfer-recv --listen --key-file`).
pub async fn key_file_session(host: &str, port: u16, c: &Common) -> Result<Session> {
    let Some(key_file) = &c.key_file else {
        return Err(super::exit::usage(format!(
            "vfer://{host}:{port}/ needs --key-file FILE (the daemon's key), or a \
             user name for a login daemon: vfer://USER@{host}:{port}/..."
        )));
    };
    let key = keyfile::load(key_file)?;
    let addr = tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("cannot resolve {host}"))?
        .find(|a| !(c.ipv4 && a.is_ipv6() || c.ipv6 && a.is_ipv4()))
        .with_context(|| format!("{host} has no address of the asked family"))?;
    keyfile::connect(addr, &key, c.transport_config())
        .await
        .map_err(|e| {
            let busy = matches!(
                e,
                crate::transport::SessionError::Closed(crate::transport::CloseReason::Busy { .. })
            );
            let what = if busy {
                "the daemon is busy"
            } else {
                "no session (wrong key, or no daemon there?)"
            };
            anyhow::Error::from(e).context(format!("{host}:{port}: {what}"))
        })
}

/// Prints the one-line warning about capped socket buffers (unless `-q`).
pub fn warn_about_socket(session: &Session, c: &Common) {
    if !c.quiet {
        if let Some(w) = session.socket_warning() {
            eprintln!("{w}");
        }
    }
}

/// Ends a session after the transfer: waits until the peer has every byte
/// we sent, then closes with `code` (0 = success).
pub async fn close(session: Session, code: u64) -> crate::transport::Stats {
    close_with(session, code, if code == 0 { "done" } else { "failed" }).await
}

/// Like [`close`], telling the peer `reason` (shown to its user).
pub async fn close_with(session: Session, code: u64, reason: &str) -> crate::transport::Stats {
    let mut stream = session.stream();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), stream.shutdown()).await;
    session.close(code, reason).await
}

/// The peer's reason for ending the session in error, if it gave one
/// (waits briefly: its CLOSE may trail the end of its stream).
pub async fn peer_reason(session: &Session) -> Option<String> {
    for _ in 0..25 {
        match session.close_reason() {
            Some(crate::transport::CloseReason::Peer { code, reason })
                if code != 0 && !reason.is_empty() =>
            {
                return Some(reason)
            }
            Some(_) => return None,
            None => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    }
    None
}

/// Refuses operand combinations scp would refuse.
pub fn check_one_remote(kinds: &[bool]) -> Result<()> {
    if kinds.iter().filter(|r| **r).count() > 1 {
        bail!("copying between two remote hosts is not supported: run vfer on one of them");
    }
    Ok(())
}
