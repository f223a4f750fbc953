//! vfer-recv: fetch files from another host over VFER, started through ssh.

use std::ffi::OsString;

use anyhow::Result;
use clap::Parser;

use vfer::bootstrap::ssh_client::RemoteRole;
use vfer::cli::args::Common;
use vfer::cli::session::{self, Far};
use vfer::cli::target::Operand;
use vfer::cli::{exit, progress, server, signals};
use vfer::service::daemons;
use vfer::transfer::{self, Dest, ReceiveOptions};

const EXAMPLES: &str = "\
Examples:
  vfer-recv user@host:/data/big.iso .         fetch a file through ssh
  vfer-recv -r host:photos/ backup/           fetch a directory
  vfer-recv host:log.txt -                    write the file to stdout
  vfer-recv --local /data/big.iso /tmp/       try it on this machine (no ssh)
  vfer-recv --listen 0.0.0.0:7878 --key-file k --root /srv/drop
                                              a standing daemon (key-file mode)
  vfer-recv --key-file k vfer://host/in/f .   fetch from such a daemon
  vfer-recv --add-user alice --users /etc/vfer/users
  vfer-recv --listen 0.0.0.0:7878 --users /etc/vfer/users --root /srv/drop
                                              a daemon with user/password login
  vfer-recv vfer://alice@host/in/f .          fetch from it (asks the password)
  vfer-recv --listen 0.0.0.0:7878 --key-file k --forward 127.0.0.1:80
                                              forward sessions to a TCP service (spiped -d)
  vfer-recv --listen 0.0.0.0:7879 --key-file k --exec 'cat >> /srv/log'
                                              run a program for each session (s6-tlsd)

Exit codes: 0 success, 1 some files failed, 2 usage, 17 login refused or
host key not trusted, 99 timeout,
111 temporary error (network, remote side), 130 interrupted.";

/// Fetch files from another host over VFER (fast on long, lossy paths).
#[derive(Parser, Debug)]
#[command(name = "vfer-recv", version, after_long_help = EXAMPLES)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    ucspi: vfer::cli::ucspi::UcspiArgs,
    /// Run as a standing daemon on this UDP address (with --key-file, or
    /// --users for user/password login), e.g. 0.0.0.0:7878.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<std::net::SocketAddr>,
    /// With --listen: log users in (challenge-response mode) against this
    /// file of `name:argon2id-hash` lines, to serve files, --exec or
    /// --forward; with --add-user: the file to change.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["key_file", "key_dir"])]
    users: Option<std::path::PathBuf>,
    /// With --listen: accept any client key in this directory (one key
    /// file per client, spiped's job per client): remove a file to revoke
    /// that client. Its name is logged and given to --exec programs as
    /// VFER_CLIENT.
    #[arg(
        long,
        value_name = "DIR",
        requires = "listen",
        conflicts_with = "key_file"
    )]
    key_dir: Option<std::path::PathBuf>,
    /// With --listen: once the socket is bound and the keys read, run as
    /// this user (name or number; its primary group, no others), and so do
    /// --exec programs (s6-tlsd's TLS_UID/TLS_GID; or set VFER_UID and
    /// VFER_GID).
    #[arg(long, value_name = "NAME", requires = "listen")]
    user: Option<String>,
    /// With --listen: go to the background once listening (the command
    /// returns 0 then, or the daemon's error status), as spiped without -F.
    #[arg(long, requires = "listen")]
    daemon: bool,
    /// With --listen --users: the daemon's X25519 host key, created (mode
    /// 0600) if missing [default: vfer_host_key next to the users file].
    #[arg(long, value_name = "FILE", requires = "users")]
    host_key: Option<std::path::PathBuf>,
    /// Add NAME to the --users file, or change its password (read with no
    /// echo on a terminal, else one line from stdin), and exit.
    #[arg(
        long,
        value_name = "NAME",
        requires = "users",
        conflicts_with = "listen"
    )]
    add_user: Option<String>,
    /// Print the fingerprint of the daemon's host key (--host-key, or the
    /// default next to --users; created if missing) and exit.
    #[arg(long, requires = "users", conflicts_with = "listen")]
    show_host_key: bool,
    /// With --listen: the directory clients read from and write into
    /// (default: the current directory).
    #[arg(long, value_name = "DIR")]
    root: Option<std::path::PathBuf>,
    /// With --listen: most sessions at once.
    #[arg(short = 'n', long, value_name = "N", default_value_t = 100)]
    max_connections: usize,
    /// With --listen: write the daemon's process id to this file.
    #[arg(long, value_name = "FILE")]
    pidfile: Option<std::path::PathBuf>,
    #[command(flatten)]
    forward: vfer::cli::forward::ForwardToArgs,
    #[command(flatten)]
    exec: vfer::cli::exec::ExecDaemonArgs,
    /// Internal: with --server, run the operands as a program (--exec).
    #[arg(long = "exec-remote", hide = true)]
    exec_remote: bool,
    /// Sources ([user@]host:path, all on one host), then the local
    /// destination (a directory, a new name, or - for stdout).
    #[arg(value_name = "SRC... DEST", num_args = 0..)]
    operands: Vec<String>,
}

fn main() {
    let argv: Vec<OsString> = std::env::args_os().collect();
    if vfer::cli::generate::handle::<Cli>(&argv) {
        return;
    }
    // Every mode holds a session secret, a key or a password.
    vfer::cli::coredump::disable();
    if argv.iter().any(|a| a == "--server") {
        let parsed = Cli::try_parse_from(&argv).map_err(|e| e.to_string());
        let common = parsed
            .as_ref()
            .map(|c| c.common.clone())
            .map_err(Clone::clone);
        let exec = parsed.as_ref().is_ok_and(|c| c.exec_remote);
        let operands = parsed.map(|c| c.operands).unwrap_or_default();
        if exec {
            std::process::exit(server::run("vfer-recv", common, move |session, c| {
                let how = vfer::service::exec::server::Serving {
                    framing: vfer::tunnel::pad::Framing::from_pad(c.pad),
                    ..Default::default()
                };
                let env = vfer::service::exec::ProgramEnv::Inherit;
                vfer::service::exec::server::serve_with(session, operands, env, how, None)
            }));
        }
        std::process::exit(server::run("vfer-recv", common, move |session, common| {
            server::serve_recv(session, common, operands)
        }));
    }
    if vfer::cli::ucspi::wanted(&argv) {
        let cli = vfer::cli::ucspi::parse_or_exit::<Cli>(&argv);
        vfer::cli::init_logging(cli.common.verbose);
        let role = vfer::tunnel::ucspi::wire::Role::Server;
        let (c, u) = (&cli.common, &cli.ucspi);
        std::process::exit(vfer::cli::ucspi::run(
            "vfer-recv",
            role,
            c,
            u,
            cli.users.as_deref().map(|u| (u, cli.host_key.as_deref())),
            &cli.operands,
        ));
    }
    let cli = vfer::cli::app::parse_or_exit::<Cli>(&argv);
    let json = cli.common.json;
    vfer::cli::init_logging(cli.common.verbose);
    if cli.daemon {
        // Before the runtime: fork() keeps only the calling thread.
        vfer::tunnel::background::fork_or_exit("vfer-recv");
    }
    let code = vfer::cli::app::block_on("vfer-recv", json, try_run(cli));
    std::process::exit(code);
}

async fn try_run(cli: Cli) -> Result<i32> {
    let c = &cli.common;
    if let (Some(name), Some(users)) = (&cli.add_user, &cli.users) {
        vfer::cli::daemon::add_user(users, name)?;
        return Ok(exit::SUCCESS);
    }
    if let (true, Some(users)) = (cli.show_host_key, &cli.users) {
        let key = cli.host_key.clone();
        println!("{}", daemons::show_host_key(users, key)?);
        return Ok(exit::SUCCESS);
    }
    if cli.listen.is_some() {
        let id = vfer::tunnel::privdrop::resolve(cli.user.as_deref(), |k| std::env::var(k).ok())
            .map_err(|e| exit::usage(format!("{e:#}")))?;
        vfer::tunnel::privdrop::set_pending(id);
    }
    let root = || cli.root.clone().unwrap_or_else(|| ".".into());
    let runner = |listen| {
        let pidfile = cli.pidfile.clone();
        vfer::cli::daemon::runner_options(
            listen,
            cli.max_connections,
            std::time::Duration::from_secs(cli.forward.connect_timeout),
            pidfile,
            c.transport_config(),
        )
    };
    if let Some(listen) = cli.listen {
        let admission = match &cli.users {
            Some(users) => vfer::service::admit::Admission::Login {
                users: users.clone(),
                host_key: cli.host_key.clone(),
            },
            None => vfer::service::admit::Admission::Keys(vfer::cli::daemon::key_source(
                c.key_file.as_deref(),
                cli.key_dir.as_deref(),
            )?),
        };
        let connect_timeout = std::time::Duration::from_secs(cli.forward.connect_timeout);
        if let Some(target) = &cli.forward.forward {
            let opts = vfer::service::forward::server::ServerOptions {
                runner: runner(listen),
                admission,
                target: target.clone(),
                connect_timeout,
                kill_idle: c.kill_idle(),
                pad: c.pad,
            };
            vfer::service::forward::server::run(opts, signals::stop_requested()).await?;
            return Ok(exit::SUCCESS);
        }
        if let Some(command) = &cli.exec.exec {
            let opts = vfer::service::exec::daemon::DaemonOptions {
                runner: runner(listen),
                admission,
                command: command.clone(),
                keep_env: cli.exec.keep_env,
                connect_timeout,
                kill_idle: c.kill_idle(),
                pad: c.pad,
            };
            vfer::service::exec::daemon::run(opts, signals::stop_requested()).await?;
            return Ok(exit::SUCCESS);
        }
        // Files (issue 4's contract: --root is optional, the current
        // directory by default).
        c.refuse_pad("a file daemon")?;
        match admission {
            vfer::service::admit::Admission::Keys(keys) => {
                let opts = daemons::FileDaemonOptions {
                    runner: runner(listen),
                    keys,
                    root: root(),
                };
                daemons::files_daemon(opts, signals::stop_requested()).await?;
            }
            vfer::service::admit::Admission::Login { users, host_key } => {
                let opts = daemons::LoginDaemonOptions {
                    runner: runner(listen),
                    users,
                    host_key,
                    root: root(),
                };
                daemons::login_daemon(opts, signals::stop_requested()).await?;
            }
        }
        return Ok(exit::SUCCESS);
    }
    c.refuse_pad("file transfers")?;
    let Some((dest, sources)) = cli.operands.split_last() else {
        return Err(exit::usage(
            "give at least one source and a destination (see --help)",
        ));
    };
    if sources.is_empty() {
        return Err(exit::usage(
            "give at least one source before the destination",
        ));
    }
    if Operand::parse(dest)?.is_remote() {
        return Err(exit::usage(format!(
            "destination '{dest}' is remote: vfer-recv writes locally; use vfer-send to push"
        )));
    }
    let mut far: Option<Far> = None;
    let mut paths = Vec::new();
    for s in sources {
        let (this, path) = session::far_of(Operand::parse(s)?, c.local, "source")?;
        match &far {
            Some(first) if *first != this => {
                return Err(exit::usage(format!(
                    "sources on two hosts ('{}' and '{s}'): fetch from one host at a time",
                    sources[0]
                )))
            }
            _ => far = Some(this),
        }
        paths.push(path);
    }
    let far = far.ok_or_else(|| exit::usage("no source given"))?;
    let session = session::open(&far, RemoteRole::Send, &paths, c).await?;
    let tally = vfer::cli::app::Tally::default();
    let bar = progress::Bar::new(if dest == "-" {
        progress::Mode::Off
    } else {
        progress::mode(c)
    });
    let opts = ReceiveOptions {
        preserve: c.preserve,
        progress: Some(tally.wrap(bar.as_ref().map(|b| b.callback()))),
        ..ReceiveOptions::default()
    };
    let stream = session.stream();
    let fut = transfer::receive(stream, Dest::from_arg(dest), &opts);
    vfer::cli::app::run_transfer("vfer-recv", session, bar, &tally, c, fut).await
}
