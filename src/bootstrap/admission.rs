//! Admission control of the standing server (PROTOCOL §2.6): whether a new
//! client may start a handshake now, the stateless BUSY answer when it may
//! not, and giving memory back to the operating system as sessions end.
//!
//! Overload is an answer, not a failure: a REQUEST that arrives while every
//! slot (`-n`) is taken or reserved by a handshake in progress, or while the
//! daemon is short of CPU or memory, is authenticated (one HMAC, as any
//! REQUEST) and answered with a 73-byte BUSY naming a retry delay; nothing
//! is remembered, and BUSY replies are rate-limited so that a flood of
//! (replayed) REQUESTs costs bounded CPU and never amplifies. The client
//! backs off and retries within its `--timeout` (`transport::busy`).
//!
//! Short of CPU: the runtime's timer lag (a task that sleeps 50 ms and
//! measures how late it wakes) above [`CPU_LAG_BUSY`]. Short of memory: the
//! system's available memory below [`MEMORY_LOW_PERCENT`] of its total.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::replay::TIMESTAMP_WINDOW;
use super::wire::Secret;
use crate::transport::busy::encode_busy;
use crate::transport::handshake::decode_request;

/// The retry delay a BUSY names.
pub const RETRY_AFTER: Duration = Duration::from_millis(500);
/// Most BUSY replies per second (a token bucket of this depth).
pub const BUSY_PER_SECOND: f64 = 5_000.0;
/// Timer lag of the runtime beyond which the daemon counts as short of CPU.
pub const CPU_LAG_BUSY: Duration = Duration::from_millis(500);
/// Available memory (percent of the total) below which the daemon counts
/// as short of memory.
pub const MEMORY_LOW_PERCENT: u64 = 3;
/// Give memory back to the OS at most this often while sessions end.
const TRIM_EVERY: Duration = Duration::from_secs(2);
/// The last trim after the last session ended, when its tasks are gone.
const TRIM_AFTER_LAST: Duration = Duration::from_secs(1);
/// How often the memory figure is read.
const MEMORY_EVERY: Duration = Duration::from_secs(1);

/// What the endpoint asks of the machine it runs on (`super::endpoint`
/// stays sans-IO; [`Admission`] is the real one, tests pass a stub).
pub trait Load: Send {
    /// Is the daemon short of CPU or memory (new clients get BUSY)?
    fn short_of_resources(&mut self, now: Instant) -> bool;
    /// A session ended and `live` remain.
    fn session_ended(&mut self, live: usize, now: Instant) {
        let _ = (live, now);
    }
}

/// The standing server's view of its CPU and memory (owned by its endpoint).
pub struct Admission {
    lag_us: Arc<AtomicU64>,
    memory_low: bool,
    memory_read: Option<Instant>,
    trimmed: Option<Instant>,
}

impl Admission {
    /// Starts the CPU-lag probe (a task on the current runtime) and tunes
    /// the allocator ([`tune_allocator`]).
    pub fn start() -> Self {
        tune_allocator();
        let lag_us = Arc::new(AtomicU64::new(0));
        let probe = Arc::downgrade(&lag_us);
        tokio::spawn(async move {
            const TICK: Duration = Duration::from_millis(50);
            loop {
                let t = Instant::now();
                tokio::time::sleep(TICK).await;
                let late = t.elapsed().saturating_sub(TICK);
                let Some(lag) = probe.upgrade() else { return };
                // Smoothed: a quarter of each new sample.
                let old = lag.load(Ordering::Relaxed);
                let new = (old * 3 + late.as_micros() as u64) / 4;
                lag.store(new, Ordering::Relaxed);
            }
        });
        Admission {
            lag_us,
            memory_low: false,
            memory_read: None,
            trimmed: None,
        }
    }

    /// Is the daemon short of CPU or memory (new clients get BUSY)?
    pub fn short_of_resources(&mut self, now: Instant) -> bool {
        if self
            .memory_read
            .is_none_or(|t| now.saturating_duration_since(t) >= MEMORY_EVERY)
        {
            self.memory_read = Some(now);
            self.memory_low = memory_low();
        }
        self.memory_low || Duration::from_micros(self.lag_us.load(Ordering::Relaxed)) > CPU_LAG_BUSY
    }

    /// Logs a BUSY sent to `from` (debug level: under overload there are many).
    pub fn refused(&self, from: SocketAddr, why: &str) {
        tracing::debug!("{from}: answered BUSY ({why})");
    }

    /// A session ended and `live` remain: hand freed memory back to the
    /// OS, at most every [`TRIM_EVERY`] (and once more after the last
    /// session), on a blocking thread.
    pub fn session_ended(&mut self, live: usize, now: Instant) {
        if live == 0
            || self
                .trimmed
                .is_none_or(|t| now.saturating_duration_since(t) >= TRIM_EVERY)
        {
            self.trimmed = Some(now);
            tokio::task::spawn_blocking(give_back_memory);
        }
        if live == 0 {
            // Once more when the last sessions' tasks have wound down and
            // freed what they held.
            tokio::spawn(async {
                tokio::time::sleep(TRIM_AFTER_LAST).await;
                let _ = tokio::task::spawn_blocking(give_back_memory).await;
            });
        }
    }
}

/// The BUSY replies' budget: a token bucket of [`BUSY_PER_SECOND`], so a
/// flood of (replayed) REQUESTs costs bounded CPU and never amplifies.
pub struct BusyReplies {
    tokens: f64,
    refilled: Instant,
}

impl BusyReplies {
    /// A full bucket.
    pub fn new(now: Instant) -> Self {
        BusyReplies {
            tokens: BUSY_PER_SECOND,
            refilled: now,
        }
    }

    /// The BUSY answer to `request` (a REQUEST datagram from an address
    /// without a session) under `key`, if it authenticates, its timestamp is
    /// inside the window around `wall` (when given: a reusable key; a login's
    /// pending secret is younger than any replay) and the reply budget
    /// allows one. Records nothing: the client's retry is a new REQUEST.
    pub fn reply(
        &mut self,
        key: &Secret,
        request: &[u8],
        now: Instant,
        wall: Option<SystemTime>,
    ) -> Option<Vec<u8>> {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens = (self.tokens + elapsed * BUSY_PER_SECOND).min(BUSY_PER_SECOND);
        if self.tokens < 1.0 {
            return None;
        }
        let mut copy = request.to_vec();
        let req = decode_request(key.bytes(), &mut copy).ok()?;
        if let Some(wall) = wall {
            let sent = req.timestamp.to_unix()?;
            let here = wall.duration_since(SystemTime::UNIX_EPOCH).ok()?;
            if sent.abs_diff(here) > TIMESTAMP_WINDOW {
                return None;
            }
        }
        self.tokens -= 1.0;
        let mut m = [0u8; 8];
        getrandom::fill(&mut m).ok()?;
        Some(encode_busy(
            key.bytes(),
            &req.nonce,
            RETRY_AFTER,
            u64::from_le_bytes(m),
        ))
    }
}

impl Load for Admission {
    fn short_of_resources(&mut self, now: Instant) -> bool {
        Admission::short_of_resources(self, now)
    }
    fn session_ended(&mut self, live: usize, now: Instant) {
        Admission::session_ended(self, live, now)
    }
}

/// Makes freed buffers go back to the OS (glibc): buffers of 128 KiB and
/// more are mapped on their own and unmapped when freed, instead of glibc's
/// default of raising that threshold to the largest buffer freed so far
/// (after which every session's stream rings and batch buffers come from
/// the heap, are zeroed there, and stay resident after the session ends).
/// Smaller blocks are returned by [`give_back_memory`].
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before the
    // sessions start, and glibc serialises it against allocation.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// Returns free heap memory to the OS (glibc's `malloc_trim`), so the
/// daemon shrinks back after a busy spell. A no-op elsewhere.
pub fn give_back_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it takes the arena locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Available memory below [`MEMORY_LOW_PERCENT`] of the total
/// (`/proc/meminfo`; false where it cannot be read).
fn memory_low() -> bool {
    let Ok(text) = std::fs::read_to_string("/proc/meminfo") else {
        return false;
    };
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    match (field("MemTotal:"), field("MemAvailable:")) {
        (Some(total), Some(avail)) if total > 0 => avail * 100 < total * MEMORY_LOW_PERCENT,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::busy::decode_busy;
    use crate::transport::handshake::{encode_request, HandshakeRandom, Offer, Tai64n};
    use crate::transport::Config;

    fn request(key: &Secret, age: Duration) -> (Vec<u8>, [u8; 32]) {
        let mut rnd = HandshakeRandom::from_seed(7);
        rnd.timestamp = Tai64n::from_system(SystemTime::now() - age);
        let offer = Offer::new(Config::default().cipher.suites());
        let params = crate::transport::TransportParams {
            max_udp_payload: 1500,
            initial_max_data: 1 << 20,
            idle_timeout_ms: 30_000,
        };
        (
            encode_request(key.bytes(), &rnd, &params, &offer),
            rnd.nonce,
        )
    }

    #[test]
    fn busy_answers_only_authentic_fresh_requests_and_is_rate_limited() {
        let key = Secret::from_bytes([3; 32]);
        let now = Instant::now();
        let wall = Some(SystemTime::now());
        let mut a = BusyReplies::new(now);
        let (req, nonce) = request(&key, Duration::ZERO);
        let mut busy = a.reply(&key, &req, now, wall).expect("an answer");
        assert!(busy.len() < req.len(), "never amplifies");
        assert_eq!(decode_busy(key.bytes(), &nonce, &mut busy), Ok(RETRY_AFTER));
        // Wrong key, stale timestamp: no answer.
        assert!(a
            .reply(&Secret::from_bytes([4; 32]), &req, now, wall)
            .is_none());
        let (old, _) = request(&key, Duration::from_secs(600));
        assert!(a.reply(&key, &old, now, wall).is_none());
        // The budget: a burst beyond it goes unanswered.
        let answered = (0..(BUSY_PER_SECOND as usize + 100))
            .filter(|_| a.reply(&key, &req, now, wall).is_some())
            .count();
        assert!(answered < BUSY_PER_SECOND as usize, "{answered}");
    }
}
