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
/// is printed as `PROGRAM: error: cause` and mapped by [`exit::code_for`].
pub fn block_on<F: Future<Output = Result<i32>>>(program: &str, fut: F) -> i32 {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{program}: cannot start the async runtime: {e}");
            return exit::TEMPORARY;
        }
    };
    match rt.block_on(fut) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{program}: {}", exit::describe(&e));
            exit::code_for(&e)
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
    c: &Common,
    transfer: F,
) -> Result<i32>
where
    F: Future<Output = Result<Summary, TransferError>>,
{
    let result = tokio::select! {
        r = transfer => r,
        sig = signals::stop_requested() => {
            if let Some(b) = &bar { b.finish(); }
            eprintln!("{program}: stopped by {sig}; partial files are kept, run the same command again to resume");
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
            let peer = session::peer_reason(&session).await;
            session::close(session, 1).await;
            match peer {
                Some(why) => Err(anyhow::Error::from(e).context(format!(
                    "the far side says: {}",
                    super::logtext::escape(&why)
                ))),
                None => Err(e.into()),
            }
        }
    }
}
