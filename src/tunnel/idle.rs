//! Timeouts that mean what they say (issue 18):
//!
//! - `--timeout SECS`, peer liveness: the session ends when no authentic
//!   packet arrived for SECS; `0` means never. Keep-alives go out at a
//!   third of it (at most every 5 s), so a healthy idle session is never
//!   ended by it, whatever the value.
//! - `-K MS`, application idleness (s6-tlsd's and s6-ucspitlsd's `-K`,
//!   minssl-tunnel's timeout): a program session that carried no data in
//!   either direction for MS milliseconds is ended (CLOSE code
//!   [`CLOSE_IDLE`]); the client exits 99. `0` means never, the default.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// "Never" as a duration: long enough to outlive any process, short
/// enough that `Instant + NEVER` cannot overflow.
pub const NEVER: Duration = Duration::from_secs(10 * 365 * 86_400);

/// The CLOSE code of a session ended by `-K` (docs/PROTOCOL.md §3.8).
pub const CLOSE_IDLE: u64 = 3;

/// Shortest keep-alive interval, whatever `--timeout` says.
const MIN_KEEPALIVE: Duration = Duration::from_millis(100);

/// The transport's idle timeout for `--timeout secs` (0 = never).
pub fn peer_timeout(secs: u64) -> Duration {
    if secs == 0 {
        NEVER
    } else {
        Duration::from_secs(secs).min(NEVER)
    }
}

/// The keep-alive interval for `--timeout secs`: a third of it, at most
/// `default` (5 s), at least 100 ms; `default` when the timeout is never.
pub fn keepalive(secs: u64, default: Duration) -> Duration {
    if secs == 0 {
        return default;
    }
    (peer_timeout(secs) / 3).clamp(MIN_KEEPALIVE, default.max(MIN_KEEPALIVE))
}

/// `-K ms`: `None` for 0 (never).
pub fn kill_after(ms: u64) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(ms).min(NEVER))
}

/// When data last moved in either direction of a program session; cheap
/// to clone and to [`touch`](Activity::touch) from every copy loop.
#[derive(Debug, Clone)]
pub struct Activity {
    start: Instant,
    /// Milliseconds since `start` of the last data.
    last: Arc<AtomicU64>,
}

impl Default for Activity {
    fn default() -> Self {
        Activity::new(Instant::now())
    }
}

impl Activity {
    /// Activity counted from `now` (a session that never moves a byte is
    /// idle from its start).
    pub fn new(now: Instant) -> Self {
        Activity {
            start: now,
            last: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Data moved at `now`.
    pub fn touch_at(&self, now: Instant) {
        let ms = now.saturating_duration_since(self.start).as_millis();
        self.last
            .fetch_max(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Data moved just now.
    pub fn touch(&self) {
        self.touch_at(Instant::now());
    }

    /// How long no data moved, as of `now`.
    pub fn idle_at(&self, now: Instant) -> Duration {
        let last = self.start + Duration::from_millis(self.last.load(Ordering::Relaxed));
        now.saturating_duration_since(last)
    }

    /// Resolves once no data moved for `limit`; never when `limit` is
    /// `None`.
    pub async fn expired(&self, limit: Option<Duration>) -> Duration {
        let Some(limit) = limit else {
            return std::future::pending().await;
        };
        loop {
            let idle = self.idle_at(Instant::now());
            if idle >= limit {
                return limit;
            }
            tokio::time::sleep(limit - idle).await;
        }
    }
}

/// The CLOSE reason of a session ended by `-K`.
pub fn reason(limit: Duration) -> String {
    format!("no data either way for {} ms (-K)", limit.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_means_never_and_keepalives_fit_the_timeout() {
        assert_eq!(peer_timeout(0), NEVER);
        assert_eq!(peer_timeout(30), Duration::from_secs(30));
        let five = Duration::from_secs(5);
        assert_eq!(keepalive(0, five), five);
        assert_eq!(keepalive(30, five), five);
        assert_eq!(keepalive(3, five), Duration::from_secs(1));
        assert_eq!(keepalive(1, five), Duration::from_secs(1) / 3);
        assert!(Instant::now().checked_add(NEVER).is_some());
        assert_eq!(kill_after(0), None);
        assert_eq!(kill_after(250), Some(Duration::from_millis(250)));
    }

    #[test]
    fn activity_tracks_the_last_touch() {
        let t0 = Instant::now();
        let a = Activity::new(t0);
        assert_eq!(
            a.idle_at(t0 + Duration::from_secs(2)),
            Duration::from_secs(2)
        );
        a.touch_at(t0 + Duration::from_secs(1));
        assert_eq!(
            a.idle_at(t0 + Duration::from_secs(2)),
            Duration::from_secs(1)
        );
        // An older touch from a slower thread never moves it back.
        a.clone().touch_at(t0);
        assert_eq!(
            a.idle_at(t0 + Duration::from_secs(2)),
            Duration::from_secs(1)
        );
    }

    #[tokio::test]
    async fn expires_only_when_asked() {
        let a = Activity::default();
        let got = a.expired(Some(Duration::from_millis(20))).await;
        assert_eq!(got, Duration::from_millis(20));
        let never = tokio::time::timeout(Duration::from_millis(30), a.expired(None)).await;
        assert!(never.is_err());
    }
}
