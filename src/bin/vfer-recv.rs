//! vfer-recv: fetch files from another host over VFER, started through ssh.

use std::ffi::OsString;

use anyhow::{bail, Result};
use clap::Parser;

use vfer::bootstrap::ssh_client::RemoteRole;
use vfer::cli::args::Common;
use vfer::cli::session::{self, Far};
use vfer::cli::target::Operand;
use vfer::cli::{exit, progress, report, server, signals};
use vfer::transfer::{self, Dest, ReceiveOptions};

const EXAMPLES: &str = "\
Examples:
  vfer-recv user@host:/data/big.iso .         fetch a file through ssh
  vfer-recv -r host:photos/ backup/           fetch a directory
  vfer-recv host:log.txt -                    write the file to stdout
  vfer-recv --local /data/big.iso /tmp/       try it on this machine (no ssh)

Exit codes: 0 success, 1 some files failed, 2 usage, 99 timeout,
111 temporary error (network, remote side), 130 interrupted.";

/// Fetch files from another host over VFER (fast on long, lossy paths).
#[derive(Parser, Debug)]
#[command(name = "vfer-recv", version, after_long_help = EXAMPLES)]
struct Cli {
    #[command(flatten)]
    common: Common,
    /// Sources ([user@]host:path, all on one host), then the local
    /// destination (a directory, a new name, or - for stdout).
    #[arg(value_name = "SRC... DEST", num_args = 0..)]
    operands: Vec<String>,
}

fn main() {
    let argv: Vec<OsString> = std::env::args_os().collect();
    if argv.iter().any(|a| a == "--server") {
        let parsed = Cli::try_parse_from(&argv).map_err(|e| e.to_string());
        let common = parsed
            .as_ref()
            .map(|c| c.common.clone())
            .map_err(Clone::clone);
        let operands = parsed.map(|c| c.operands).unwrap_or_default();
        std::process::exit(server::run("vfer-recv", common, move |session, common| {
            server::serve_recv(session, common, operands)
        }));
    }
    let cli = Cli::parse();
    vfer::cli::init_logging(cli.common.verbose);
    let code = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt.block_on(run(cli)),
        Err(e) => {
            eprintln!("vfer-recv: cannot start the async runtime: {e}");
            exit::TEMPORARY
        }
    };
    std::process::exit(code);
}

async fn run(cli: Cli) -> i32 {
    match try_run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vfer-recv: {e:#}");
            exit::code_for(&e)
        }
    }
}

async fn try_run(cli: Cli) -> Result<i32> {
    let c = &cli.common;
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
        let (this, path) = match Operand::parse(s)? {
            Operand::Ssh { login, path } => (Far::Ssh(login), path),
            Operand::Local(p) if c.local => (Far::Local, p),
            Operand::Local(p) => {
                return Err(exit::usage(format!(
                    "source '{p}' is local: give [user@]host:path (or --local to copy \
                     through vfer on this machine)"
                )))
            }
            Operand::Daemon { .. } => {
                bail!("vfer:// daemon sources are not supported by this build yet")
            }
        };
        match (&far, &this) {
            (Some(Far::Ssh(a)), Far::Ssh(b)) if a != b => {
                return Err(exit::usage(format!(
                    "sources on two hosts ({a}, {b}): fetch from one host at a time"
                )))
            }
            _ => far = Some(this),
        }
        paths.push(if path.is_empty() {
            ".".to_string()
        } else {
            path
        });
    }
    let far = far.ok_or_else(|| exit::usage("no source given"))?;
    let session = session::open(&far, RemoteRole::Send, &paths, c).await?;
    let bar = progress::Bar::new(if dest == "-" {
        progress::Mode::Off
    } else {
        progress::mode(c)
    });
    let opts = ReceiveOptions {
        preserve: c.preserve,
        progress: bar.as_ref().map(|b| b.callback()),
        ..ReceiveOptions::default()
    };
    let result = tokio::select! {
        r = transfer::receive(session.stream(), Dest::from_arg(dest), &opts) => r,
        sig = signals::stop_requested() => {
            if let Some(b) = &bar { b.finish(); }
            eprintln!("vfer-recv: stopped by {sig}; partial files are kept, run the same command again to resume");
            session::close(session, 2).await;
            return Ok(exit::INTERRUPTED);
        }
    };
    if let Some(b) = &bar {
        b.finish();
    }
    match result {
        Ok(summary) => {
            let stats = session::close(session, 0).await;
            Ok(report::finish(&summary, &stats, c.json, c.quiet))
        }
        Err(e) => {
            session::close(session, 1).await;
            Err(e.into())
        }
    }
}
