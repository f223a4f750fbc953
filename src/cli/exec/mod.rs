//! `vfer-send --exec` (docs/PROTOCOL.md §8): the command line of a
//! program over vfer, and its client ([`client`]: the local command, the
//! exit status). The far side and the program daemon are
//! [`crate::service::exec`].

pub mod client;

pub use crate::service::exec::{session_env, ProgramEnv, KEPT_ENV, REMOTE_FLAG};

/// `vfer-send` options of `--exec`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ExecArgs {
    /// Run CMD here (sh -c) and the program after `--` on the far side,
    /// CMD's stdout feeding its stdin and its stdout feeding CMD's stdin,
    /// over the secure stream: `--exec 'tar c d' host -- tar x -C /dst`.
    /// CMD `-` joins our own stdin/stdout instead. Exits with the far
    /// program's status.
    #[arg(
        long,
        value_name = "CMD",
        allow_hyphen_values = true,
        conflicts_with = "forward_from"
    )]
    pub exec: Option<String>,
}

/// `vfer-send --exec CMD OPERANDS`: OPERANDS are `[USER@]HOST REMOTE_CMD...`
/// (with `--local`: only `REMOTE_CMD...`; for a program daemon: only
/// `vfer://HOST[:PORT]`). Returns the exit status.
pub async fn from_cli(
    program: &str,
    cmd: &str,
    operands: &[String],
    c: &crate::cli::args::Common,
) -> anyhow::Result<i32> {
    use crate::cli::exit::usage;
    use crate::cli::session::Far;
    let (far, remote) = if c.local {
        (Far::Local, operands)
    } else {
        let Some((host, rest)) = operands.split_first() else {
            return Err(usage(
                "--exec needs a host and a remote command: --exec CMD [USER@]HOST -- REMOTE_CMD...",
            ));
        };
        if let Some(url) = host.strip_prefix("vfer://") {
            let far = daemon_address(url)?;
            if !rest.is_empty() {
                return Err(usage(
                    "--exec with vfer://: the daemon chooses the program; give no remote command",
                ));
            }
            let req = client::ExecRequest {
                far,
                local: (cmd != "-").then(|| cmd.to_string()),
                remote: Vec::new(),
            };
            return client::run(program, req, c).await;
        }
        if host.contains(':') && !host.starts_with('[') {
            return Err(usage(format!(
                "--exec: '{host}' is not [USER@]HOST (no path or URL: the remote command goes after --)"
            )));
        }
        (Far::Ssh(host.clone()), rest)
    };
    if remote.is_empty() {
        return Err(usage(
            "--exec needs the remote command after --, e.g. -- tar x -C /dest",
        ));
    }
    let req = client::ExecRequest {
        far,
        local: (cmd != "-").then(|| cmd.to_string()),
        remote: remote.to_vec(),
    };
    client::run(program, req, c).await
}

/// The daemon of a `[USER@]HOST[:PORT][/]` `vfer://` operand (no path:
/// the daemon runs a fixed program): key-file, or login with USER.
fn daemon_address(url: &str) -> anyhow::Result<crate::cli::session::Far> {
    use crate::cli::session::Far;
    use crate::cli::target::Operand;
    match Operand::parse(&format!("vfer://{url}"))? {
        Operand::Daemon {
            user,
            host,
            port,
            path,
        } if path.is_empty() || path == "/" => Ok(match user {
            Some(user) => Far::Login { user, host, port },
            None => Far::Daemon { host, port },
        }),
        _ => Err(crate::cli::exit::usage(format!(
            "--exec: 'vfer://{url}' has a path; a program daemon takes vfer://[USER@]HOST[:PORT]"
        ))),
    }
}

/// `vfer-recv` option of the program daemon.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ExecDaemonArgs {
    /// With --listen: run CMD (sh -c) for each session, its stdin/stdout
    /// joined to the stream (like s6-tlsd), instead of serving files.
    /// Clients: vfer-send --key-file K --exec LOCAL_CMD vfer://HOST (or
    /// vfer://USER@HOST with --users).
    #[arg(long = "exec", value_name = "CMD", requires = "listen",
          conflicts_with_all = ["root", "forward"])]
    pub exec: Option<String>,
    /// With --listen --exec: give CMD this daemon's whole environment.
    /// Default: only PATH, HOME, USER, LOGNAME, LANG and the session's
    /// VSL_*/VFER_* variables (a secret in the daemon's environment stays
    /// there).
    #[arg(long, requires = "exec")]
    pub keep_env: bool,
}
