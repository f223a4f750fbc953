//! SIGINT/SIGTERM/SIGHUP during a transfer: stop cleanly, keep `.vfer-part`
//! files for resume, tell the peer, exit non-zero.

use tokio::signal::unix::{signal, SignalKind};

/// Resolves when the process is asked to stop; returns the signal's name.
pub async fn stop_requested() -> &'static str {
    let mut term = signal(SignalKind::terminate()).ok();
    let mut hup = signal(SignalKind::hangup()).ok();
    let term = async {
        match term.as_mut() {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    let hup = async {
        match hup.as_mut() {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term => "SIGTERM",
        _ = hup => "SIGHUP",
    }
}
