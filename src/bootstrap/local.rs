//! Local mode (`--local`): the server side runs as a local child process
//! over pipes, speaking exactly the SSH starting-mode bytes, and the data
//! moves over loopback UDP. The same code path as ssh mode
//! (the private `child` module); only the spawned command differs. It needs no sshd,
//! which makes it the quick start and the test bed of the whole stack.

use std::path::PathBuf;
use std::time::Duration;

use tokio::process::Command;

use super::child::{self, Spawn};
use super::ssh_client::RemoteRole;
use super::{BootstrapError, DEFAULT_REPLY_TIMEOUT};
use crate::transport::{Config, Session};

/// Settings of local mode.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// The server program; default: [`sibling_program`] of the role's name.
    pub program: Option<PathBuf>,
    /// Extra server arguments after `--server`.
    pub server_args: Vec<String>,
    /// How long to wait for the port reply.
    pub reply_timeout: Duration,
    /// Transport settings of the session.
    pub config: Config,
}

impl Default for LocalOptions {
    fn default() -> Self {
        LocalOptions {
            program: None,
            server_args: Vec::new(),
            reply_timeout: DEFAULT_REPLY_TIMEOUT,
            config: Config::default(),
        }
    }
}

/// `name` in the directory of the running executable (where cargo and
/// installers put vfer-send and vfer-recv side by side).
pub fn sibling_program(name: &str) -> std::io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .ok_or_else(|| std::io::Error::other("executable path has no directory"))?;
    Ok(dir.join(name))
}

/// Starts `PROGRAM --server ARGS...` as a child and returns the session
/// connected to it over loopback.
pub async fn connect(role: RemoteRole, opts: &LocalOptions) -> Result<Session, BootstrapError> {
    let program = match &opts.program {
        Some(p) => p.clone(),
        None => sibling_program(role.program())?,
    };
    let mut command = Command::new(&program);
    command.arg("--server").args(&opts.server_args);
    // An inherited SSH_CONNECTION (we may run inside an ssh login) would
    // steer the child's choice of address family.
    command.env_remove("SSH_CONNECTION");
    let v6 = opts.server_args.iter().any(|a| a == "-6");
    let loopback = if v6 {
        std::net::Ipv6Addr::LOCALHOST.into()
    } else {
        std::net::Ipv4Addr::LOCALHOST.into()
    };
    let display = format!(
        "{} --server {}",
        program.display(),
        opts.server_args.join(" ")
    );
    let spawn = Spawn {
        command,
        display: display.trim_end().to_string(),
        name: program.display().to_string(),
        host: "localhost".to_string(),
        program: program.display().to_string(),
    };
    child::start(spawn, loopback, opts.reply_timeout, opts.config.clone()).await
}
