//! What both programs' `main` does around a transfer: the runtime, error to
//! exit-code mapping, signals, the progress bar and the final report.

use std::future::Future;

use anyhow::Result;

use super::args::Common;
use super::progress::Bar;
use super::{exit, report, session, signals};
use crate::transfer::{Summary, TransferError};
use crate::transport::Session;

/// Runs `fut` on a fresh tokio runtime and returns the exit code; an error
/// is printed as `PROGRAM: cause: inner cause` (and as a `--json` object
/// when `json`) and mapped by [`exit::code_for`].
pub fn block_on<F: Future<Output = Result<i32>>>(program: &str, json: bool, fut: F) -> i32 {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{program}: cannot start the async runtime: {e}");
            return exit::TEMPORARY;
        }
    };
    let result = rt.block_on(fut);
    // A blocked stdin reader (a stream source, `--exec -`) must not hold
    // the exit after a stop signal: do not wait for blocking threads.
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(code) => code,
        Err(e) => {
            let text = exit::describe(&e);
            eprintln!("{program}: {text}");
            let code = exit::code_for(&e);
            if json {
                report::json_error(code, &text);
            }
            code
        }
    }
}

/// Drives one transfer over `session`: stops cleanly on SIGINT/SIGTERM/SIGHUP
/// (parts kept for resume, the peer told), then closes the session and
/// reports. Returns the exit code.
pub async fn run_transfer<F>(
    program: &str,
    session: Session,
    bar: Option<Bar>,
    tally: &Tally,
    c: &Common,
    transfer: F,
) -> Result<i32>
where
    F: Future<Output = Result<Summary, TransferError>>,
{
    let mut transfer = std::pin::pin!(transfer);
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
    let stop = signals::stop_requested();
    let mut stop = std::pin::pin!(stop);
    let result = loop {
        tokio::select! {
        r = &mut transfer => break r,
        _ = tick.tick() => {
            if let Some(b) = &bar {
                b.tick(session.unconfirmed());
            }
        }
        sig = &mut stop => {
            if let Some(b) = &bar { b.finish(); }
            // The transfer future is dropped here: no more input is read.
            // Close at once without waiting for buffered data to drain,
            // bounded to 1 s; a second signal exits at once.
            let text = format!("stopped by {sig}; partial files are kept, run the same command again to resume");
            eprintln!("{program}: {text}");
            tokio::select! {
                _ = tokio::time::timeout(
                    std::time::Duration::from_secs(1),
                    session.close(2, "interrupted"),
                ) => {}
                _ = signals::next_stop() => {}
            }
            if c.json {
                report::json_error(exit::INTERRUPTED, &text);
            }
            return Ok(exit::INTERRUPTED);
        }
        }
    };
    if let Some(b) = &bar {
        match &result {
            Ok(s) if s.is_complete() => b.finish_ok(),
            _ => b.finish(),
        }
    }
    match result {
        Ok(summary) => {
            let stats = session::close(session, 0).await;
            super::pathstore::finish(&summary, &stats);
            if !c.quiet && !c.json {
                report::summary_line(program, &summary, &tally.last());
            }
            report::log_stats(&summary, &stats);
            Ok(report::finish(program, &summary, &stats, c.json, c.quiet))
        }
        Err(e) => {
            // Only a broken stream is explained by the peer's close reason;
            // an error of ours (a full local disk) is not the far side's.
            let broken = matches!(
                e,
                TransferError::Stream(_)
                    | TransferError::PeerClosed
                    | TransferError::TruncatedFrame
            );
            let peer = if broken {
                session::peer_reason(&session).await
            } else {
                None
            };
            session::close(session, 1).await;
            let mut err = match peer {
                Some(why) if why != "failed" => anyhow::Error::from(e).context(format!(
                    "the far side says: {}",
                    super::logtext::escape(&why)
                )),
                _ => e.into(),
            };
            let arrived = tally.arrived();
            if arrived > 0 {
                err = err.context(exit::SomeArrived(arrived));
            }
            Err(err)
        }
    }
}

/// Counts the entries that arrived complete, from the progress reports,
/// so that a session failing after some arrived exits 1 (README), and
/// names the last one for the closing summary line (`-v` logs each).
#[derive(Default, Clone)]
pub struct Tally(std::sync::Arc<std::sync::Mutex<(u64, String)>>);

impl Tally {
    /// A progress callback that counts, then calls `inner` (the bar's).
    pub fn wrap(&self, inner: Option<crate::transfer::ProgressFn>) -> crate::transfer::ProgressFn {
        let t = self.0.clone();
        std::sync::Arc::new(move |p: &crate::transfer::Progress| {
            if let crate::transfer::Progress::FileFinished { ok, path } = p {
                if *ok {
                    tracing::info!("{path}: done");
                    let mut g = t.lock().unwrap_or_else(|e| e.into_inner());
                    g.0 += 1;
                    g.1 = path.clone();
                } else {
                    tracing::info!("{path}: failed");
                }
            }
            if let Some(f) = &inner {
                f(p);
            }
        })
    }

    /// Entries that arrived complete so far.
    pub fn arrived(&self) -> u64 {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).0
    }

    /// The last entry that arrived complete.
    pub fn last(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).1.clone()
    }
}

/// Parses the command line like `clap::Parser::parse`, but a usage error
/// also prints the `--json` object when `--json` was given (exit 2).
pub fn parse_or_exit<P: clap::Parser>(argv: &[std::ffi::OsString]) -> P {
    parse_or_usage(argv).unwrap_or_else(|e| {
        if argv.iter().any(|a| a == "--json") {
            let first = e.to_string();
            let line = first.lines().next().unwrap_or("usage error");
            let line = line.strip_prefix("error: ").unwrap_or(line);
            report::json_error(exit::USAGE, line);
        }
        std::process::exit(exit::USAGE);
    })
}

/// Parses the command line; `--help` and `--version` print and exit 0, a
/// usage error is printed and returned (the caller picks the exit code).
pub fn parse_or_usage<P: clap::Parser>(argv: &[std::ffi::OsString]) -> Result<P, clap::Error> {
    P::try_parse_from(argv).inspect_err(|e| {
        let _ = e.print();
        if !e.use_stderr() {
            std::process::exit(exit::SUCCESS);
        }
    })
}
