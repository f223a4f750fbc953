//! The command-line side of forwarding (docs/PROTOCOL.md §8.4): the
//! options of `vfer-send --forward-from` and `vfer-recv --listen
//! --forward`; the forwarding itself is [`crate::service::forward`].

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use crate::service::forward::client::{run, Auth, ClientOptions};

/// `vfer-send` options of the forwarding client.
#[derive(Args, Debug, Clone, Default)]
pub struct ForwardFromArgs {
    /// Accept connections on ADDR:PORT (TCP) or on a UNIX-domain socket
    /// (a path starting with / or .) and carry each over vfer to the
    /// vfer:// daemon's --forward target (like spiped -e, ssh -L).
    #[arg(long, value_name = "ADDR:PORT|PATH")]
    pub forward_from: Option<String>,
    /// With --forward-from: most connections at once (more wait in the backlog).
    #[arg(short = 'n', long = "max-connections", value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// With --forward-from: give up a connection whose handshake takes longer (seconds).
    #[arg(short = 'o', long = "connect-timeout", value_name = "SECS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub connect_timeout: u64,
    /// With --forward-from: write our process id to this file.
    #[arg(long, value_name = "FILE")]
    pub pidfile: Option<PathBuf>,
    /// With --forward-from: go to the background once listening (the
    /// command returns 0 then, or the forwarder's error status), as spiped
    /// without -F.
    #[arg(long, requires = "forward_from")]
    pub daemon: bool,
}

/// `vfer-recv --listen` options of the forwarding daemon.
#[derive(Args, Debug, Clone, Default)]
pub struct ForwardToArgs {
    /// With --listen: connect each session to this TCP HOST:PORT, or to a
    /// UNIX-domain socket (a path starting with / or .), and carry the
    /// bytes (like spiped -d) instead of serving files.
    #[arg(
        long,
        value_name = "HOST:PORT|PATH",
        requires = "listen",
        conflicts_with = "root"
    )]
    pub forward: Option<String>,
    /// With --listen (every daemon): give up a session whose handshake (or
    /// request, or connection to the --forward target) takes longer (seconds).
    #[arg(short = 'o', long = "connect-timeout", value_name = "SECS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub connect_timeout: u64,
}

/// `vfer-send --key-file K --forward-from ADDR vfer://HOST[:PORT]`.
pub async fn from_cli(
    args: &ForwardFromArgs,
    operands: &[String],
    c: &crate::cli::args::Common,
) -> Result<i32> {
    use crate::cli::exit::{self, usage};
    use crate::cli::target::Operand;
    let [url] = operands else {
        return Err(usage(
            "--forward-from ADDR:PORT takes one operand: the daemon, vfer://HOST[:PORT]",
        ));
    };
    let (user, host, port) = match Operand::parse(url)? {
        Operand::Daemon {
            user,
            host,
            port,
            path,
        } if path.is_empty() || path == "/" => (user, host, port),
        _ => {
            return Err(usage(format!(
                "--forward-from: '{url}' is not vfer://[USER@]HOST[:PORT] (the daemon's --forward names the target)"
            )))
        }
    };
    let auth = match (user, &c.key_file) {
        (Some(user), None) => Auth::Other(crate::cli::login::opener(&user, &host, port, c)?),
        (None, Some(key)) => Auth::KeyFile(key.clone()),
        (Some(_), Some(_)) => {
            return Err(usage(
                "--forward-from: give --key-file for a key-file daemon, or vfer://USER@HOST to log in, not both",
            ))
        }
        (None, None) => {
            return Err(usage(format!(
                "--forward-from needs --key-file FILE (the daemon's key), or a user name \
                 for a login daemon: vfer://USER@{host}:{port}"
            )))
        }
    };
    let family = c.reach().family;
    let daemon = crate::service::connect::resolve(&host, port, family).await?;
    let opts = ClientOptions {
        from: args.forward_from.clone().unwrap_or_default(),
        daemon,
        auth,
        max_connections: args.max_connections as usize,
        connect_timeout: Duration::from_secs(args.connect_timeout),
        pidfile: args.pidfile.clone(),
        config: c.transport_config(),
        quiet: c.quiet,
        kill_idle: c.kill_idle(),
        options: c.session_options(),
    };
    run(opts).await?;
    Ok(exit::SUCCESS)
}
