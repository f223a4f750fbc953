//! Reaching the far side a client names: started through ssh, started as
//! a local child (both the SSH starting mode, §4.1-4.2), or a standing
//! key-file daemon (§4.3). Login daemons (§7) go through
//! [`super::login_client`], which needs a person's answers.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::bootstrap::local::{self, LocalOptions};
use crate::bootstrap::ssh_client::{self, RemoteRole, SshOptions, SshTarget};
use crate::bootstrap::{keyfile, BootstrapError, Family};
use crate::transport::{Config, Session};

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

/// How a client reaches its far side (from `-e`, `--remote-path`, `-4`/`-6`,
/// `--key-file` and the transport options).
#[derive(Debug, Clone, Default)]
pub struct Reach {
    /// The ssh command (`-e/--rsh`).
    pub rsh: Option<String>,
    /// The far program, or the directory holding both (`--remote-path`).
    pub remote_path: Option<String>,
    /// `-4` / `-6`.
    pub family: Option<Family>,
    /// A key-file daemon's key (`--key-file`).
    pub key_file: Option<PathBuf>,
    /// Transport settings.
    pub config: Config,
}

/// The first address of `host` in `family` (any family when `None`).
pub async fn resolve(host: &str, port: u16, family: Option<Family>) -> Result<SocketAddr> {
    tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("cannot resolve {host}"))?
        .find(|a| match family {
            Some(Family::V4) => a.is_ipv4(),
            Some(Family::V6) => a.is_ipv6(),
            None => true,
        })
        .with_context(|| format!("{host} has no address of the asked family"))
}

/// Starts `vfer-recv`/`vfer-send --server ARGS` through ssh or as a local
/// child (the SSH starting mode either way) and connects to it.
pub async fn start_child(
    far: &Far,
    role: RemoteRole,
    args: Vec<String>,
    reach: &Reach,
) -> Result<Session> {
    let config = reach.config.clone();
    match far {
        Far::Ssh(login) => {
            let target = SshTarget::parse(login)?;
            let opts = SshOptions {
                rsh: reach.rsh.clone(),
                remote_path: reach.remote_path.clone(),
                remote_args: args,
                family: reach.family,
                config,
                ..SshOptions::default()
            };
            Ok(ssh_client::connect(&target, role, &opts).await?)
        }
        Far::Local => {
            let opts = LocalOptions {
                // A directory holds both programs: take the role's.
                program: reach.remote_path.as_ref().map(|p| {
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

/// A session with a key-file daemon (`vfer-recv --listen --key-file`).
pub async fn key_file_session(host: &str, port: u16, reach: &Reach) -> Result<Session> {
    let Some(key_file) = &reach.key_file else {
        return Err(BootstrapError::Usage(format!(
            "vfer://{host}:{port}/ needs --key-file FILE (the daemon's key), or a \
             user name for a login daemon: vfer://USER@{host}:{port}/..."
        ))
        .into());
    };
    let key = keyfile::load(key_file)?;
    let addr = resolve(host, port, reach.family).await?;
    keyfile::connect(addr, &key, reach.config.clone())
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
