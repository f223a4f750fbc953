//! The driver: one thread per direction reads IP packets from one TUN
//! device, feeds them through the link model and writes them, when due, to
//! the other TUN device. Sleeps in `ppoll` until the next packet is due or a
//! new one arrives.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::model::{DirConfig, Link, Packet, Stats};
use crate::tun::{read_packet, write_packet};

/// Most packets read in one go before delivering again.
const READ_BATCH: usize = 64;
/// Longest sleep, so a stop request is noticed quickly.
const MAX_SLEEP: Duration = Duration::from_millis(50);

/// A packet buffer from the pool: `data` always has the full buffer size,
/// `len` is how much of it is the packet. Reused, so the hot path does not
/// allocate (only duplication clones).
#[derive(Clone)]
pub struct Buf {
    data: Vec<u8>,
    len: usize,
}

impl Packet for Buf {
    fn wire_len(&self) -> usize {
        self.len
    }
}

/// Counters published by a direction's thread.
#[derive(Debug, Default, Clone, Copy)]
pub struct DirStats {
    /// The link model's counters.
    pub link: Stats,
    /// Writes to the outgoing TUN device that failed (packet dropped).
    pub write_errors: u64,
    /// Reads from the incoming TUN device that failed.
    pub read_errors: u64,
}

/// One direction: where packets come from, where they go, and the link.
pub struct Direction {
    /// "c2s" or "s2c", for logs.
    pub name: &'static str,
    /// TUN descriptor packets are read from.
    pub input: RawFd,
    /// TUN descriptor packets are written to.
    pub output: RawFd,
    /// Link parameters.
    pub cfg: DirConfig,
    /// Largest packet expected (the TUN MTU).
    pub mtu: usize,
}

/// Run one direction until `stop` is set, publishing counters to `out`.
pub fn run(dir: Direction, stop: Arc<AtomicBool>, out: Arc<Mutex<DirStats>>) {
    let bufsize = dir.mtu.max(576) + 64;
    let mut link: Link<Buf> = Link::new(dir.cfg);
    let mut pool: Vec<Buf> = Vec::new();
    let mut stats = DirStats::default();
    let mut last_publish = Instant::now();
    let mut pfd = libc::pollfd {
        fd: dir.input,
        events: libc::POLLIN,
        revents: 0,
    };
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        while let Some(p) = link.pop_due(now) {
            if write_packet(dir.output, &p.data[..p.len]).is_err() {
                stats.write_errors += 1;
            }
            pool.push(p);
        }
        let mut got = 0;
        while got < READ_BATCH {
            let mut buf = pool.pop().unwrap_or_else(|| Buf {
                data: vec![0; bufsize],
                len: 0,
            });
            match read_packet(dir.input, &mut buf.data) {
                Ok(Some(n)) => {
                    buf.len = n;
                    link.push(now, buf);
                    got += 1;
                }
                Ok(None) => {
                    pool.push(buf);
                    break;
                }
                Err(_) => {
                    stats.read_errors += 1;
                    pool.push(buf);
                    std::thread::sleep(Duration::from_millis(10));
                    break;
                }
            }
        }
        if now.duration_since(last_publish) >= Duration::from_millis(200) {
            stats.link = link.stats();
            if let Ok(mut o) = out.lock() {
                *o = stats;
            }
            last_publish = now;
        }
        if got == READ_BATCH {
            continue;
        }
        let after = Instant::now();
        let sleep = match link.next_due() {
            Some(t) if t <= after => continue,
            Some(t) => (t - after).min(MAX_SLEEP),
            None => MAX_SLEEP,
        };
        let ts = libc::timespec {
            tv_sec: sleep.as_secs() as libc::time_t,
            tv_nsec: sleep.subsec_nanos() as libc::c_long,
        };
        pfd.revents = 0;
        // SAFETY: one valid pollfd, a valid timespec, no signal mask change.
        unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
    }
    stats.link = link.stats();
    if let Ok(mut o) = out.lock() {
        *o = stats;
    }
}

/// One line of counters for a direction (key=value, for scripts).
pub fn format_stats(name: &str, s: &DirStats) -> String {
    let l = &s.link;
    let sent = l.received + l.duplicated - l.queue_drops - l.overflow_drops;
    let loss_pct = if sent > 0 {
        l.lost as f64 * 100.0 / sent as f64
    } else {
        0.0
    };
    format!(
        "{name} received={} received_bytes={} delivered={} delivered_bytes={} queue_drops={} lost={} wire_loss_pct={:.4} duplicated={} reordered={} overflow_drops={} max_backlog_bytes={} write_errors={} read_errors={} queue_delay_p90_ms={} queue_delay_hist={}",
        l.received,
        l.received_bytes,
        l.delivered,
        l.delivered_bytes,
        l.queue_drops,
        l.lost,
        loss_pct,
        l.duplicated,
        l.reordered,
        l.overflow_drops,
        l.max_backlog_bytes,
        s.write_errors,
        s.read_errors,
        l.queue_delay
            .quantile_ms(0.9)
            .map_or("-".to_string(), |v| v.to_string()),
        l.queue_delay.encode()
    )
}
