//! Opening the session a command line asks for (ssh, local child or key-file
//! daemon), and closing it so that both sides know the transfer is over.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use tokio::io::AsyncWriteExt;

use super::args::Common;
use crate::bootstrap::local::{self, LocalOptions};
use crate::bootstrap::ssh_client::{self, RemoteRole, SshOptions, SshTarget};
use crate::bootstrap::Family;
use crate::transport::Session;

/// Where the far side runs.
#[derive(Debug, Clone)]
pub enum Far {
    /// Started through ssh on `login` (`[user@]host`).
    Ssh(String),
    /// Started as a local child process (`--local`).
    Local,
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
    let mut args = c.remote_flags();
    args.push("--".to_string());
    args.extend(operands.iter().cloned());
    let config = c.transport_config();
    let session = match far {
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
            ssh_client::connect(&target, role, &opts).await?
        }
        Far::Local => {
            let opts = LocalOptions {
                program: c.remote_path.as_ref().map(PathBuf::from),
                server_args: args,
                config,
                ..LocalOptions::default()
            };
            local::connect(role, &opts)
                .await
                .context("cannot start the local server side (--local)")?
        }
    };
    if !c.quiet {
        if let Some(w) = session.socket_warning() {
            eprintln!("{w}");
        }
    }
    Ok(session)
}

/// Ends a session after the transfer: waits until the peer has every byte
/// we sent, then closes with `code` (0 = success).
pub async fn close(session: Session, code: u64) -> crate::transport::Stats {
    let mut stream = session.stream();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), stream.shutdown()).await;
    session
        .close(code, if code == 0 { "done" } else { "failed" })
        .await
}

/// Refuses operand combinations scp would refuse.
pub fn check_one_remote(kinds: &[bool]) -> Result<()> {
    if kinds.iter().filter(|r| **r).count() > 1 {
        bail!("copying between two remote hosts is not supported: run vfer on one of them");
    }
    Ok(())
}
