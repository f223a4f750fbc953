//! A UDP probe that validates an emulated link from the outside: the sender
//! paces numbered datagrams carrying their send time (CLOCK_REALTIME, which
//! both namespaces share on one machine); the receiver reports loss,
//! duplicates, reordering, one-way delay and the arrival rate.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

const MAGIC: &[u8; 4] = b"VFPR";
const HEADER: usize = 4 + 8 + 8 + 8;
/// IPv4 + UDP header bytes, counted in the arrival rate.
const IP_UDP: u64 = 28;
/// Sequence number of the end markers.
const END: u64 = u64::MAX;
/// Largest probe count the receiver tracks.
const MAX_COUNT: u64 = 20_000_000;

/// CLOCK_REALTIME in nanoseconds: comparable between processes and with the
/// kernel's receive timestamps (SO_TIMESTAMPNS), which are immune to how late
/// the receiving process gets scheduled.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Receive one datagram with its kernel arrival time (falls back to the
/// current time when the kernel gave none). Ok(None) on timeout.
fn recv_stamped(sock: &UdpSocket, buf: &mut [u8]) -> std::io::Result<Option<(usize, u64)>> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut cbuf = [0u64; 16];
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
    // SAFETY: msg points at live buffers of the sizes given.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        return match e.kind() {
            std::io::ErrorKind::WouldBlock
            | std::io::ErrorKind::TimedOut
            | std::io::ErrorKind::Interrupted => Ok(None),
            _ => Err(e),
        };
    }
    let mut stamp = None;
    // SAFETY: walking the control messages the kernel wrote into cbuf.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SO_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                stamp = Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok(Some((n as usize, stamp.unwrap_or_else(now_ns))))
}

fn encode(buf: &mut [u8], seq: u64, count: u64) {
    buf[..4].copy_from_slice(MAGIC);
    buf[4..12].copy_from_slice(&seq.to_be_bytes());
    buf[12..20].copy_from_slice(&now_ns().to_be_bytes());
    buf[20..28].copy_from_slice(&count.to_be_bytes());
}

fn field(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

/// Most datagrams handed to the kernel in one `sendmmsg`.
const BATCH: usize = 32;
/// A sender that fell behind by more than this skips ahead instead of
/// bursting: a long catch-up burst would overflow the link's queue and be
/// counted as link loss.
const MAX_LAG: Duration = Duration::from_millis(1);

/// Send `count` datagrams of `size` bytes to `to` at `rate_bps` (UDP
/// payload + 28 header bytes counted), then a few end markers.
pub fn send(to: SocketAddr, rate_bps: u64, size: usize, count: u64) -> std::io::Result<String> {
    let size = size.clamp(HEADER, 65_000);
    let sock = UdpSocket::bind(if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" })?;
    sock.connect(to)?;
    set_buf(&sock, libc::SO_SNDBUFFORCE, 4 << 20);
    // SAFETY: per-thread timer slack; sleeps end within a microsecond.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong) };
    let mut bufs = vec![vec![0u8; size]; BATCH];
    let gap_ns = ((size as u64 + IP_UDP) * 8 * 1_000_000_000) / rate_bps.max(1);
    let start = Instant::now();
    let mut epoch = start;
    let mut epoch_seq = 0u64;
    let (mut sent, mut errors, mut skips) = (0u64, 0u64, 0u64);
    while sent < count {
        let now = Instant::now();
        let due_n = (now - epoch).as_nanos() as u64 / gap_ns.max(1) + 1;
        let due = epoch_seq + due_n;
        if due <= sent {
            let next = epoch + Duration::from_nanos((sent - epoch_seq) * gap_ns);
            std::thread::sleep((next.saturating_duration_since(now)).min(Duration::from_millis(5)));
            continue;
        }
        let lag = Duration::from_nanos((due - sent) * gap_ns);
        if lag > MAX_LAG {
            epoch = now;
            epoch_seq = sent;
            skips += 1;
        }
        let n = ((due - sent) as usize)
            .min(BATCH)
            .min((count - sent) as usize);
        for (i, b) in bufs.iter_mut().take(n).enumerate() {
            encode(b, sent + i as u64, count);
        }
        match send_batch(&sock, &mut bufs[..n]) {
            Ok(k) => sent += k.max(1) as u64,
            Err(_) => {
                errors += 1;
                sent += 1;
            }
        }
    }
    let took = start.elapsed().as_secs_f64();
    for _ in 0..10 {
        encode(&mut bufs[0][..HEADER], END, count);
        let _ = sock.send(&bufs[0][..HEADER]);
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(format!(
        "sent={sent} send_errors={errors} lag_skips={skips} size={size} seconds={took:.3} offered_mbit={:.3}",
        (sent * (size as u64 + IP_UDP) * 8) as f64 / took.max(1e-9) / 1e6
    ))
}

/// One `sendmmsg` of all `bufs` on a connected socket; returns how many went.
fn send_batch(sock: &UdpSocket, bufs: &mut [Vec<u8>]) -> std::io::Result<usize> {
    let mut iovs: [libc::iovec; BATCH] = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; BATCH];
    // SAFETY: mmsghdr is plain data; zeroed is a valid empty header.
    let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    let n = bufs.len().min(BATCH);
    for i in 0..n {
        iovs[i].iov_base = bufs[i].as_mut_ptr().cast();
        iovs[i].iov_len = bufs[i].len();
        msgs[i].msg_hdr.msg_iov = &mut iovs[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: msgs[..n] point at live iovecs and buffers.
    let r = unsafe { libc::sendmmsg(sock.as_raw_fd(), msgs.as_mut_ptr(), n as _, 0) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(r as usize)
}

fn set_buf(sock: &UdpSocket, opt: libc::c_int, bytes: libc::c_int) {
    // SAFETY: setsockopt with an int option on a socket we own.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// What the receiver saw.
#[derive(Debug, Default)]
struct Seen {
    count: u64,
    bitmap: Vec<u64>,
    unique: u64,
    dups: u64,
    reordered: u64,
    max_seq: Option<u64>,
    owd_us: Vec<u32>,
    first_ns: u64,
    last_ns: u64,
    bytes_after_first: u64,
    end_seen: bool,
}

impl Seen {
    fn on_packet(&mut self, b: &[u8], now_ns: u64) {
        if b.len() < HEADER || &b[..4] != MAGIC {
            return;
        }
        let (seq, sent_ns, count) = (field(b, 4), field(b, 12), field(b, 20));
        if seq == END {
            self.end_seen = true;
            self.count = self.count.max(count.min(MAX_COUNT));
            return;
        }
        if self.bitmap.is_empty() {
            self.count = count.min(MAX_COUNT);
            self.bitmap = vec![0; (self.count as usize).div_ceil(64)];
            self.first_ns = now_ns;
        } else {
            self.bytes_after_first += b.len() as u64 + IP_UDP;
        }
        self.last_ns = now_ns;
        if seq >= self.count {
            return;
        }
        let (w, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        if self.bitmap[w] & bit != 0 {
            self.dups += 1;
            return;
        }
        self.bitmap[w] |= bit;
        self.unique += 1;
        if self.max_seq.is_some_and(|m| seq < m) {
            self.reordered += 1;
        }
        self.max_seq = Some(self.max_seq.map_or(seq, |m| m.max(seq)));
        self.owd_us
            .push((now_ns.saturating_sub(sent_ns) / 1000).min(u32::MAX as u64) as u32);
    }

    fn report(mut self) -> String {
        self.owd_us.sort_unstable();
        let pct = |q: f64| -> f64 {
            if self.owd_us.is_empty() {
                return 0.0;
            }
            let i = ((self.owd_us.len() - 1) as f64 * q).round() as usize;
            self.owd_us[i] as f64 / 1000.0
        };
        let avg = if self.owd_us.is_empty() {
            0.0
        } else {
            self.owd_us.iter().map(|&v| v as f64).sum::<f64>() / self.owd_us.len() as f64 / 1000.0
        };
        let lost = self.count.saturating_sub(self.unique);
        let span = self.last_ns.saturating_sub(self.first_ns) as f64 / 1e9;
        let rate = if span > 0.0 {
            self.bytes_after_first as f64 * 8.0 / span / 1e6
        } else {
            0.0
        };
        format!(
            "expected={} received={} lost={} loss_pct={:.4} dup={} reordered={} owd_min_ms={:.3} owd_p50_ms={:.3} owd_avg_ms={:.3} owd_p99_ms={:.3} owd_max_ms={:.3} rate_mbit={:.3} span_s={:.3} end_seen={}",
            self.count,
            self.unique,
            lost,
            if self.count > 0 { lost as f64 * 100.0 / self.count as f64 } else { 0.0 },
            self.dups,
            self.reordered,
            pct(0.0),
            pct(0.5),
            avg,
            pct(0.99),
            pct(1.0),
            rate,
            span,
            self.end_seen
        )
    }
}

/// Receive probes on `bind` until the end marker (plus a short grace), or
/// `idle` without a packet once probes started, or `timeout` overall.
pub fn recv(bind: SocketAddr, idle: Duration, timeout: Duration) -> std::io::Result<String> {
    let sock = UdpSocket::bind(bind)?;
    set_buf(&sock, libc::SO_RCVBUFFORCE, 64 << 20);
    set_buf(&sock, libc::SO_TIMESTAMPNS, 1);
    sock.set_read_timeout(Some(Duration::from_millis(50)))?;
    let start = Instant::now();
    let mut seen = Seen::default();
    let mut buf = vec![0u8; 65_536];
    let mut last_rx = Instant::now();
    let mut end_at: Option<Instant> = None;
    while start.elapsed() < timeout {
        if let Some((n, at)) = recv_stamped(&sock, &mut buf)? {
            seen.on_packet(&buf[..n], at);
            last_rx = Instant::now();
            if seen.end_seen && end_at.is_none() {
                end_at = Some(last_rx);
            }
        }
        // Stragglers (reordered, jittered) get 1 s after the end marker.
        if end_at.is_some_and(|t| t.elapsed() > Duration::from_secs(1)) {
            break;
        }
        if (seen.count > 0 || seen.end_seen) && last_rx.elapsed() > idle {
            break;
        }
    }
    Ok(seen.report())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receiver_counts_loss_dups_and_reorder() {
        let mut s = Seen::default();
        let mut b = [0u8; 100];
        for seq in [0u64, 1, 3, 2, 2, 5] {
            encode(&mut b, seq, 8);
            s.on_packet(&b, now_ns() + 1_000_000);
        }
        s.on_packet(b"garbage", 0);
        let r = s.report();
        assert!(r.contains("expected=8 received=5 lost=3"), "{r}");
        assert!(r.contains("dup=1 reordered=1"), "{r}");
    }

    #[test]
    fn loopback_probe_round_trip() {
        let rx = std::thread::spawn(|| {
            recv(
                "127.0.0.1:47731".parse().unwrap(),
                Duration::from_secs(2),
                Duration::from_secs(10),
            )
        });
        std::thread::sleep(Duration::from_millis(100));
        let tx = send("127.0.0.1:47731".parse().unwrap(), 10_000_000, 200, 500).unwrap();
        assert!(tx.contains("sent=500"), "{tx}");
        let r = rx.join().unwrap().unwrap();
        assert!(r.contains("expected=500"), "{r}");
        assert!(r.contains("end_seen=true"), "{r}");
    }
}
