//! Stop signals: every signal whose default action ends the process (and
//! that is not a fault of our own, like SIGSEGV) is handled as SIGTERM is:
//! the mode winds down (stops reading input, sends what it has, sends
//! CLOSE), as minssl-tunnel does for SIGTERM, SIGHUP, SIGQUIT and SIGABRT.
//! Without this, SIGQUIT or SIGABRT killed vfer at once and left the far
//! side waiting for its idle timeout.
//!
//! A signal is latched: once one arrived, [`stop_requested`] resolves at
//! once for every later caller, so a signal that lands between two waits
//! is not lost. [`next_stop`] waits for a further one ("a second signal
//! exits at once").
//!
//! Before the first call the default actions apply (nothing to wind down
//! yet); the first call installs the handlers for the rest of the process.

use std::sync::{Mutex, OnceLock};
use std::task::Poll;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;

/// The signals handled as SIGTERM, with their names (for messages).
pub const STOP_SIGNALS: [(&str, i32); 13] = [
    ("SIGHUP", libc::SIGHUP),
    ("SIGINT", libc::SIGINT),
    ("SIGQUIT", libc::SIGQUIT),
    ("SIGABRT", libc::SIGABRT),
    ("SIGTERM", libc::SIGTERM),
    ("SIGALRM", libc::SIGALRM),
    ("SIGUSR1", libc::SIGUSR1),
    ("SIGUSR2", libc::SIGUSR2),
    ("SIGXCPU", libc::SIGXCPU),
    ("SIGXFSZ", libc::SIGXFSZ),
    ("SIGVTALRM", libc::SIGVTALRM),
    ("SIGPROF", libc::SIGPROF),
    ("SIGPWR", libc::SIGPWR),
];

/// (signals received so far, the last one's name).
type Latch = (u64, &'static str);

struct Listener {
    rx: watch::Receiver<Latch>,
    task: tokio::task::JoinHandle<()>,
}

static LISTENER: OnceLock<Mutex<Option<Listener>>> = OnceLock::new();

/// The latch, with its listening task running on the current runtime
/// (started again if the runtime that ran it is gone, as in tests).
fn latch() -> watch::Receiver<Latch> {
    let cell = LISTENER.get_or_init(|| Mutex::new(None));
    let mut g = cell.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(l) = g.as_ref() {
        if !l.task.is_finished() {
            return l.rx.clone();
        }
    }
    let seen = g.as_ref().map_or((0, ""), |l| *l.rx.borrow());
    let (tx, rx) = watch::channel(seen);
    let mut streams: Vec<(&'static str, Signal)> = STOP_SIGNALS
        .iter()
        .filter_map(|(name, n)| signal(SignalKind::from_raw(*n)).ok().map(|s| (*name, s)))
        .collect();
    let task = tokio::spawn(async move {
        loop {
            let name = std::future::poll_fn(|cx| {
                for (name, s) in streams.iter_mut() {
                    if let Poll::Ready(Some(())) = s.poll_recv(cx) {
                        return Poll::Ready(*name);
                    }
                }
                Poll::Pending
            })
            .await;
            tx.send_modify(|l| *l = (l.0 + 1, name));
        }
    });
    *g = Some(Listener {
        rx: rx.clone(),
        task,
    });
    rx
}

/// Resolves when the process was asked to stop (now or at any time since
/// the handlers were installed); returns the signal's name.
pub async fn stop_requested() -> &'static str {
    let mut rx = latch();
    let got = rx.wait_for(|l| l.0 > 0).await.map(|l| l.1);
    match got {
        Ok(name) => name,
        Err(_) => std::future::pending().await,
    }
}

/// Resolves at the next stop signal after this call; returns its name.
pub async fn next_stop() -> &'static str {
    let mut rx = latch();
    let seen = rx.borrow_and_update().0;
    let got = rx.wait_for(|l| l.0 > seen).await.map(|l| l.1);
    match got {
        Ok(name) => name,
        Err(_) => std::future::pending().await,
    }
}

/// Installs the handlers now (a mode that holds a session from here on),
/// so that a signal arriving before the first wait is latched, not fatal.
pub fn install() {
    drop(latch());
}
