//! The path cache's file (`$XDG_CACHE_HOME/vfer/paths`, else
//! `~/.cache/vfer/paths`): a client looks up the path to the host it is about
//! to reach and, after a transfer, remembers what was measured
//! ([`crate::transport::pathcache`] holds the format and the rules).
//! `--no-path-cache` turns both off. The cache is a hint only: a missing,
//! unreadable or damaged file costs a normal start-up, never an error.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::transfer::Summary;
use crate::transport::pathcache::{self, PathCache, PathHint};
use crate::transport::Stats;

/// The path this process's session goes to (one session per client run).
static CURRENT: Mutex<Option<String>> = Mutex::new(None);

/// The cache file, if a cache directory is known.
pub fn file() -> Option<PathBuf> {
    let dir = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(dir.join("vfer").join("paths"))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn load() -> PathCache {
    file()
        .and_then(|f| std::fs::read_to_string(f).ok())
        .map(|t| PathCache::decode(&t))
        .unwrap_or_default()
}

/// The session about to start goes to `host` at `addr`: returns what is
/// remembered about that path (unless `disabled`), and notes the path so
/// [`finish`] can remember what this transfer measures.
pub fn begin(host: &str, addr: &str, disabled: bool) -> Option<PathHint> {
    if disabled || file().is_none() {
        return None;
    }
    let key = pathcache::key(host, addr);
    let hint = load().lookup(&key, now());
    if let Ok(mut k) = CURRENT.lock() {
        *k = Some(key);
    }
    match hint {
        Some(h) => tracing::info!(
            "path cache: starting from {:.1} Mbit/s, base RTT {:.1} ms, loss {:.2} % ({host})",
            h.rate as f64 * 8e-6,
            h.min_rtt.as_secs_f64() * 1e3,
            h.loss * 100.0
        ),
        None => tracing::debug!("path cache: nothing remembered for {host}"),
    }
    hint
}

/// After a transfer: remembers what it measured about the path noted by
/// [`begin`] (the sender's model on a push; on a pull the receiver's
/// measure of the arrival rate and loss, else the data phase's goodput).
/// Errors writing the file are logged, not reported.
pub fn finish(summary: &Summary, stats: &Stats) {
    let Some(key) = CURRENT.lock().ok().and_then(|mut k| k.take()) else {
        return;
    };
    // Which side sent the data decides whose view of the path counts: a
    // sender's model, or a receiver's count of missing packet numbers.
    let sent = stats.bytes_sent > stats.bytes_received;
    let loss = if sent {
        stats.packets_lost as f64 / stats.packets_sent.max(1) as f64
    } else {
        let seen = stats.peer_packets_seen.max(stats.packets_received).max(1);
        (seen - stats.packets_received) as f64 / seen as f64
    };
    // A receiver measured the arrival rate and loss of the sender's
    // packets (`Stats::received_path`); the goodput is the fallback.
    let measured = if sent {
        stats.path_estimate
    } else {
        stats.received_path
    };
    let Some(hint) = pathcache::learned(
        measured,
        summary.bytes,
        summary.seconds,
        stats.min_rtt.max(Duration::from_micros(1)),
        loss,
    ) else {
        return;
    };
    let Some(file) = file() else { return };
    let mut cache = load();
    cache.record(&key, hint, now());
    if let Err(e) = write(&file, &cache.encode()) {
        tracing::debug!("path cache: cannot write {}: {e}", file.display());
    }
}

/// Writes through a temporary file and a rename, so a concurrent reader
/// sees the old or the new cache, never half of one.
fn write(file: &std::path::Path, text: &str) -> std::io::Result<()> {
    let dir = file.parent().unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".paths.{}", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, file).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}
