//! Programs over the secure channel (docs/PROTOCOL.md §8): `vfer-send
//! --exec CMD HOST -- REMOTE_CMD...` starts REMOTE_CMD on the far side
//! through the SSH starting mode (or `--local`), joins its stdin/stdout to
//! the session's stream and CMD's stdout/stdin to the other end, and
//! returns the far program's exit status — `tar c dir | … | tar x` at vfer
//! speed, the job s6-tlsd and minssl-tunnel do for one connection.
//!
//! - [`frame`]: the far side → client framing (stdout, stderr, EOF, exit).
//! - [`server`]: the far side (`vfer-recv --server --exec-remote -- ARGV`).
//! - [`client`]: the client (`vfer-send --exec`).
//! - [`daemon`]: a key-file daemon running one program per session
//!   (`vfer-recv --listen --key-file K --exec CMD`, s6-tlsd's job).

pub mod client;
pub mod daemon;
pub mod frame;
pub mod server;
mod stdin;

use std::net::SocketAddr;

use crate::vsl::Suite;

/// Hidden flag that makes `vfer-recv --server` run the operands as a
/// program instead of receiving files.
pub const REMOTE_FLAG: &str = "--exec-remote";

/// `VSL_KEX`: the key exchange of the handshake (§2, forward secrecy).
pub const VSL_KEX: &str = "X25519";

/// The session facts given to a program, s6-tlsd style (nothing secret):
/// `VSL_PROTOCOL` (the packet format of the negotiated suite, `VSL1` or
/// `VSL2`), `VSL_CIPHER` (its exact construction, e.g. `AES-256-GCM` or
/// `AES-256-CTR+HMAC-SHA256-128`), `VSL_KEX`, `VFER_PEER` (`ip:port` of the
/// other end's UDP socket, IPv4-mapped addresses shown as IPv4), and the
/// same protocol and cipher under s6-tlsd's names `SSL_PROTOCOL` and
/// `SSL_CIPHER`, so that programs written for s6-tlsd find them. `suite` is
/// the session's (`Stats::suite`); `None` only before a handshake.
pub fn session_env(peer: SocketAddr, suite: Option<Suite>) -> [(&'static str, String); 6] {
    let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
    let protocol = suite.map_or("", Suite::protocol_name).to_string();
    let cipher = suite.map_or("", Suite::cipher_name).to_string();
    [
        ("VSL_PROTOCOL", protocol.clone()),
        ("VSL_CIPHER", cipher.clone()),
        ("VSL_KEX", VSL_KEX.to_string()),
        ("VFER_PEER", peer.to_string()),
        ("SSL_PROTOCOL", protocol),
        ("SSL_CIPHER", cipher),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_shows_mapped_peers_as_ipv4() {
        let env = session_env("[::ffff:10.1.2.3]:4000".parse().unwrap(), Some(Suite::Vsl1));
        assert_eq!(env[3], ("VFER_PEER", "10.1.2.3:4000".to_string()));
        assert_eq!(env[0].1, "VSL1");
        assert_eq!(env[1].1, "AES-256-CTR+HMAC-SHA256-128");
        assert_eq!(env[4], ("SSL_PROTOCOL", "VSL1".to_string()));
        assert_eq!(env[5], ("SSL_CIPHER", env[1].1.clone()));
        let env = session_env("10.1.2.3:4000".parse().unwrap(), Some(Suite::Aes256Gcm));
        assert_eq!(env[0].1, "VSL2");
        assert_eq!(env[1].1, "AES-256-GCM");
    }
}

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

/// Variables of the daemon's environment a program daemon's CMD keeps
/// (besides the session's VSL_*/VFER_* variables) without `--keep-env`.
pub const KEPT_ENV: [&str; 5] = ["PATH", "HOME", "USER", "LOGNAME", "LANG"];

/// Which environment a program started for a session gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgramEnv {
    /// Everything this process has (the ssh-started far side: the user's
    /// own login environment, as ssh gives a remote command).
    Inherit,
    /// Only [`KEPT_ENV`] (a standing daemon without `--keep-env`).
    Clean,
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
            let (h, port) = daemon_address(url)?;
            if !rest.is_empty() {
                return Err(usage(
                    "--exec with vfer://: the daemon chooses the program; give no remote command",
                ));
            }
            let req = client::ExecRequest {
                far: Far::Daemon { host: h, port },
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

/// `HOST[:PORT][/]` of a `vfer://` operand (no path: the daemon runs a
/// fixed program).
fn daemon_address(url: &str) -> anyhow::Result<(String, u16)> {
    use crate::cli::target::Operand;
    match Operand::parse(&format!("vfer://{url}"))? {
        Operand::Daemon {
            host, port, path, ..
        } if path.is_empty() || path == "/" => Ok((host, port)),
        _ => Err(crate::cli::exit::usage(format!(
            "--exec: 'vfer://{url}' has a path; a program daemon takes vfer://HOST[:PORT]"
        ))),
    }
}

/// `vfer-recv` option of the program daemon.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ExecDaemonArgs {
    /// With --listen: run CMD (sh -c) for each session, its stdin/stdout
    /// joined to the stream (like s6-tlsd), instead of serving files.
    /// Clients: vfer-send --key-file K --exec LOCAL_CMD vfer://HOST.
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
