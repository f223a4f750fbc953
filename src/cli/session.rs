//! Opening the session a command line asks for (ssh, local child or key-file
//! daemon), and closing it so that both sides know the transfer is over.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use super::args::Common;
use super::target::Operand;
use crate::bootstrap::keyfile;
use crate::bootstrap::local::{self, LocalOptions};
use crate::bootstrap::ssh_client::{self, RemoteRole, SshOptions, SshTarget};
use crate::bootstrap::Family;
use crate::service::request::{Request, Service};
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
            file_request(role, operands, c)
                .write(&mut session.stream())
                .await
                .with_context(|| format!("{host}:{port}: cannot send the request"))?;
            session
        }
        Far::Login { user, host, port } => {
            let request = file_request(role, operands, c);
            super::login::open(user, host, *port, &request, c).await?
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
            let opts = SshOptions {
                rsh: c.rsh.clone(),
                remote_path: c.remote_path.clone(),
                remote_args: args,
                family: family(c),
                config,
                ..SshOptions::default()
            };
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

/// The service request (§5) for a transfer of `operands` in `role`'s
/// direction, with `-r`, `-p` and the session options of `c`.
pub fn file_request(role: RemoteRole, operands: &[String], c: &Common) -> Request {
    Request {
        service: if role == RemoteRole::Recv {
            Service::Push
        } else {
            Service::Pull
        },
        recursive: c.recursive,
        preserve: c.preserve,
        options: c.session_options(),
        paths: operands.to_vec(),
    }
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
        .with_context(|| format!("{host}:{port}: no session (wrong key, or no daemon there?)"))
}

/// Prints the one-line warning about capped socket buffers (unless `-q`).
pub fn warn_about_socket(session: &Session, c: &Common) {
    if !c.quiet {
        if let Some(w) = session.socket_warning() {
            eprintln!("{w}");
        }
    }
}

/// Ending a session (they live in the service layer).
pub use crate::service::ending::{close, close_with, peer_reason};

/// Refuses operand combinations scp would refuse.
pub fn check_one_remote(kinds: &[bool]) -> Result<()> {
    if kinds.iter().filter(|r| **r).count() > 1 {
        bail!("copying between two remote hosts is not supported: run vfer on one of them");
    }
    Ok(())
}
