//! Diagnostics of the ssh-started far side. It runs detached, with its
//! stdio on /dev/null, so nothing it logs is seen; on a pull it is the
//! sender, whose congestion controller sets the pace. With
//! `VFER_SERVER_LOG=FILE` in its environment (e.g. through
//! `--remote-path 'env VFER_SERVER_LOG=/tmp/far.log vfer-send'`) it appends
//! its log to FILE (level from `RUST_LOG`, else debug) and, when the
//! session ends, its final counters and its `--json` object.
//!
//! Only a diagnostic: a file that cannot be opened is skipped silently
//! (the far side has nowhere to say so), and nothing changes otherwise.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Mutex;

use crate::transfer::Summary;
use crate::transport::Stats;

/// The environment variable naming the far side's log file.
pub const ENV: &str = "VFER_SERVER_LOG";

/// The far side's log, if `VFER_SERVER_LOG` asks for one.
pub struct FarLog {
    file: File,
}

impl FarLog {
    /// Opens the file `VFER_SERVER_LOG` names (appending, mode 0600) and
    /// sends this process's log there. `None` when unset or unusable.
    pub fn start(program: &str) -> Option<FarLog> {
        let path = std::env::var_os(ENV).filter(|p| !p.is_empty())?;
        let open = || {
            use std::os::unix::fs::OpenOptionsExt;
            OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&path)
        };
        let file = open().ok()?;
        let writer = Mutex::new(open().ok()?);
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("debug"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(writer)
            .with_ansi(false)
            .with_target(true)
            .try_init();
        tracing::info!("{program} --server (pid {}) starts", std::process::id());
        Some(FarLog { file })
    }

    /// Writes how the session ended: the counters, and the `--json`
    /// object when the transfer completed.
    pub fn finish(mut self, summary: Option<&Summary>, stats: &Stats) {
        tracing::info!("final counters: {stats:?}");
        if let Some(s) = summary {
            super::report::log_stats(s, stats);
            let code = if s.is_complete() { 0 } else { 1 };
            if let Ok(json) = super::report::json_text(code, None, s, stats) {
                let _ = writeln!(self.file, "json {json}");
            }
        } else {
            let _ = writeln!(
                self.file,
                "json {{\"exit_status\":1,\"error\":\"transfer failed\"}}"
            );
        }
    }
}
