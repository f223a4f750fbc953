//! Joins a local byte channel (a TCP or UNIX socket, a pair of pipes) to a
//! session's stream until both directions ended, EOF going through as EOF:
//! local EOF -> STREAM_FIN (then we wait until the peer has everything),
//! STREAM_FIN -> `shutdown` of the local writer. Used by port forwarding
//! and by `--ucspi`.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use super::idle::Activity;
use super::pad::Framing;
use crate::transport::Session;

/// How long a connection may take to wind down after a stop signal: the
/// peer's remaining data still arrives for this long.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
const CHUNK: usize = 64 * 1024;

/// Bytes moved by one spliced connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Moved {
    /// Local -> vfer.
    pub up: u64,
    /// vfer -> local.
    pub down: u64,
}

/// The error a splice ends with when `-K` fired: no data either way for
/// this long. Find it with [`idle_kill`].
#[derive(Debug, thiserror::Error)]
#[error("{}", super::idle::reason(*.0))]
pub struct IdleKill(pub Duration);

/// The `-K` limit that ended a splice, if that is what `e` is.
pub fn idle_kill(e: &std::io::Error) -> Option<Duration> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<IdleKill>())
        .map(|k| k.0)
}

/// Copies `local_r` -> the stream and the stream -> `local_w` until both
/// directions ended, the stream in `framing` (plain, or `--pad`'s records). When `stop` turns true we stop reading `local_r`,
/// send what we have and the FIN, and give the peer [`STOP_GRACE`] to
/// finish. `kill_idle` (`-K`) ends it with [`IdleKill`] when no data moved
/// either way for that long. Fails when the session or the local side fails.
pub async fn splice<R, W>(
    mut local_r: R,
    mut local_w: W,
    session: &Session,
    framing: Framing,
    mut stop: watch::Receiver<bool>,
    kill_idle: Option<Duration>,
) -> std::io::Result<Moved>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (mut sr, mut sw) = tokio::io::split(framing.stream(session));
    let mut stop2 = stop.clone();
    let activity = Activity::default();
    let (a_up, a_down) = (activity.clone(), activity.clone());
    // Each direction owns its local half, so that it is closed as soon as
    // that direction ends: a pipe's `shutdown` is no EOF, closing it is.
    let up = async move {
        let mut buf = vec![0u8; CHUNK];
        let mut total = 0u64;
        loop {
            let n = tokio::select! {
                r = local_r.read(&mut buf) => r?,
                _ = stopped(&mut stop) => 0,
            };
            if n == 0 {
                break;
            }
            a_up.touch();
            sw.write_all(&buf[..n]).await?;
            // Records are buffered until the stream takes them (free
            // when plain).
            sw.flush().await?;
            total += n as u64;
        }
        sw.shutdown().await?;
        Ok::<u64, std::io::Error>(total)
    };
    let down = async move {
        let mut buf = vec![0u8; CHUNK];
        let mut total = 0u64;
        loop {
            let n = tokio::select! {
                r = sr.read(&mut buf) => r?,
                _ = async {
                    stopped(&mut stop2).await;
                    tokio::time::sleep(STOP_GRACE).await;
                } => return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "stopped: the peer did not finish in time",
                )),
            };
            if n == 0 {
                break;
            }
            a_down.touch();
            local_w.write_all(&buf[..n]).await?;
            total += n as u64;
        }
        local_w.shutdown().await?;
        Ok::<u64, std::io::Error>(total)
    };
    let watchdog = async {
        // A session that dies while we wait on an idle local peer.
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            if let Some(r) = session.close_reason() {
                return Err::<(), _>(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    r.to_string(),
                ));
            }
        }
    };
    let idle = async {
        let limit = activity.expired(kill_idle).await;
        Err::<(), _>(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            IdleKill(limit),
        ))
    };
    let both = async { tokio::try_join!(up, down) };
    tokio::select! {
        r = both => r.map(|(up, down)| Moved { up, down }),
        Err(e) = watchdog => Err(e),
        Err(e) = idle => Err(e),
    }
}

/// Resolves once `stop` is (or turns) true; never if the sender is gone
/// while false.
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Closes `session` after a splice ended with `result`: code 0 when both
/// directions finished, [`super::idle::CLOSE_IDLE`] for `-K`, 1 (with the
/// error as the reason) otherwise.
pub async fn close_after(session: Session, result: &std::io::Result<Moved>) {
    match result {
        Ok(_) => {
            crate::tunnel::ending::close(session, 0).await;
        }
        Err(e) => {
            let code = if idle_kill(e).is_some() {
                super::idle::CLOSE_IDLE
            } else {
                1
            };
            session.close(code, &e.to_string()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_kill_is_found_in_an_io_error() {
        let e = std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            IdleKill(Duration::from_millis(1500)),
        );
        assert_eq!(idle_kill(&e), Some(Duration::from_millis(1500)));
        assert!(e.to_string().contains("1500 ms (-K)"), "{e}");
        let other = std::io::Error::new(std::io::ErrorKind::TimedOut, "x");
        assert_eq!(idle_kill(&other), None);
    }
}
