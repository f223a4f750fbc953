//! vfer-send: copy files to another host over VFER, started through ssh.

use std::ffi::OsString;

use anyhow::Result;
use clap::Parser;

use vfer::bootstrap::ssh_client::RemoteRole;
use vfer::cli::args::Common;
use vfer::cli::session;
use vfer::cli::target::Operand;
use vfer::cli::{exit, progress, server};
use vfer::transfer::{self, SendOptions, Source};

const EXAMPLES: &str = "\
Examples:
  vfer-send big.iso user@host:/data/          copy a file through ssh
  vfer-send -r photos/ host:backup/           copy a directory
  vfer-send -e 'ssh -p 2222' f host:          use another ssh command
  tar c dir | vfer-send - host:dir.tar        send a stream from stdin
  vfer-send --local big.iso /tmp/copy.iso     try it on this machine (no ssh)
  vfer-send --key-file k f vfer://host:7878/in/  push to a vfer-recv --listen daemon
  vfer-send f vfer://alice@host:7878/in/      push to a login daemon (asks the password)
  vfer-send --exec 'tar c dir' host -- tar x -C /dest
                                              pipe a program to a remote one
  vfer-send --exec - host -- wc -c            our stdin/stdout to a remote program
  vfer-send --key-file k --forward-from 127.0.0.1:8080 vfer://host:7878
                                              forward local TCP port 8080 (spiped/ssh -L)

Exit codes: 0 success, 1 some files failed, 2 usage, 17 login refused or
host key not trusted, 99 timeout,
111 temporary error (network, remote side), 130 interrupted.
With --exec: the remote program's exit status (128+N if killed by signal N).";

/// Copy files to another host over VFER (fast on long, lossy paths).
#[derive(Parser, Debug)]
#[command(name = "vfer-send", version, after_long_help = EXAMPLES)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    ucspi: vfer::cli::ucspi::UcspiArgs,
    #[command(flatten)]
    exec: vfer::cli::exec::ExecArgs,
    #[command(flatten)]
    forward: vfer::cli::forward::ForwardFromArgs,
    /// Sources (local files, directories with -r, or - for stdin), then the
    /// destination [user@]host:path.
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
        // Started by ssh: the SSH starting mode's rules apply (nothing on
        // stdout/stderr before the secret is read), so parse errors wait.
        let parsed = Cli::try_parse_from(&argv).map_err(|e| e.to_string());
        let common = parsed
            .as_ref()
            .map(|c| c.common.clone())
            .map_err(Clone::clone);
        let operands = parsed.map(|c| c.operands).unwrap_or_default();
        std::process::exit(server::run("vfer-send", common, move |session, common| {
            server::serve_send(session, common, operands)
        }));
    }
    if vfer::cli::ucspi::wanted(&argv) {
        let cli = vfer::cli::ucspi::parse_or_exit::<Cli>(&argv);
        vfer::cli::init_logging(cli.common.verbose);
        let role = vfer::tunnel::ucspi::wire::Role::Client;
        let (c, u) = (&cli.common, &cli.ucspi);
        std::process::exit(vfer::cli::ucspi::run(
            "vfer-send",
            role,
            c,
            u,
            None,
            &cli.operands,
        ));
    }
    let cli = vfer::cli::app::parse_or_exit::<Cli>(&argv);
    let json = cli.common.json;
    vfer::cli::init_logging(cli.common.verbose);
    if cli.forward.daemon {
        // Before the runtime: fork() keeps only the calling thread.
        vfer::tunnel::background::fork_or_exit("vfer-send");
    }
    let code = vfer::cli::app::block_on("vfer-send", json, try_run(cli));
    std::process::exit(code);
}

async fn try_run(cli: Cli) -> Result<i32> {
    let c = &cli.common;
    if let Some(cmd) = &cli.exec.exec {
        return vfer::cli::exec::from_cli("vfer-send", cmd, &cli.operands, c).await;
    }
    if cli.forward.forward_from.is_some() {
        return vfer::cli::forward::from_cli(&cli.forward, &cli.operands, c).await;
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
    for s in sources {
        if Operand::parse(s)?.is_remote() {
            return Err(exit::usage(format!(
                "source '{s}' is remote: vfer-send sends local files; use vfer-recv to fetch"
            )));
        }
    }
    let (far, path) = session::far_of(Operand::parse(dest)?, c.local, "destination")?;
    let session = session::open(&far, RemoteRole::Recv, &[path], c).await?;
    let tally = vfer::cli::app::Tally::default();
    let bar = progress::Bar::new(progress::mode(c));
    let opts = SendOptions {
        recursive: c.recursive,
        preserve: c.preserve,
        progress: Some(tally.wrap(bar.as_ref().map(|b| b.callback()))),
        ..SendOptions::default()
    };
    let sources: Vec<Source> = sources.iter().map(Source::from_arg).collect();
    let stream = session.stream();
    let fut = transfer::send(stream, sources, &opts);
    vfer::cli::app::run_transfer("vfer-send", session, bar, &tally, c, fut).await
}
