//! A TCP-like competitor for the simulator: a loss-based bulk sender
//! (NewReno, or CUBIC as Linux runs by default) and an acking receiver, so
//! tests can check that a VFER flow takes a fair share beside TCP on a
//! shared bottleneck, neither starving it nor being starved (the classic
//! failure of delay-based controllers such as LEDBAT).
//!
//! A model, not TCP: one packet per segment, windows counted in packets,
//! every segment acked (cumulative ack plus the segment that triggered it,
//! a one-block SACK), loss declared when a segment 3 or more above it has
//! been acked, one window reduction per round trip of losses (halving for
//! Reno, x0.7 for CUBIC), and an RFC 6298 retransmission timeout that
//! collapses the window to one packet. Segments are sent as the window
//! allows, unpaced, as a TCP without `fq` pacing does.
//! Wire format (simulator-private): data = `0x00 | seq u64 | padding`,
//! ack = `0x01 | cumulative u64 | sacked u64 | padding`, both big-endian.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use super::network::Node;
use crate::transport::cc::Cubic;

const DATA: u8 = 0;
const ACK: u8 = 1;
/// Size of an ack datagram (roughly an IP + TCP header).
const ACK_SIZE: usize = 40;
/// Segments acked above a hole before it counts as lost.
const DUP_THRESH: u64 = 3;
const MIN_RTO: Duration = Duration::from_millis(200);
const INITIAL_RTO: Duration = Duration::from_secs(1);
const INITIAL_WINDOW: f64 = 10.0;

/// One side of a simulated TCP-like flow. One type for both roles so a
/// `Network<TcpNode>` needs no wrapper.
#[derive(Debug)]
pub enum TcpNode {
    /// The bulk sender.
    Sender(TcpSender),
    /// The acking receiver.
    Receiver(TcpReceiver),
}

#[derive(Clone, Copy, Debug)]
struct Segment {
    sent_at: Instant,
    acked: bool,
    lost: bool,
    retransmitted: bool,
}

/// Bulk sender of `total` segments of `size` bytes with loss-based
/// congestion control: slow start, then +1 segment per RTT and halving on
/// loss (Reno), or CUBIC growth and x0.7 ([`TcpSender::cubic`]).
#[derive(Debug)]
pub struct TcpSender {
    size: usize,
    /// CUBIC epoch state; `None` for Reno.
    cubic: Option<Box<Cubic>>,
    total: u64,
    /// Segments `base..next_seq`; `segs[0]` is `base`.
    segs: VecDeque<Segment>,
    base: u64,
    next_seq: u64,
    /// Segments sent and neither acked nor declared lost.
    pipe: u64,
    cwnd: f64,
    ssthresh: f64,
    /// Losses below this sequence belong to the current recovery episode.
    recovery_until: u64,
    highest_sacked: Option<u64>,
    /// Segments below this have been checked by the loss detector.
    scanned: u64,
    retransmit: VecDeque<u64>,
    srtt: Option<Duration>,
    rttvar: Duration,
    rto: Duration,
    rto_deadline: Option<Instant>,
    sent: u64,
    retransmissions: u64,
    timeouts: u64,
    reductions: u64,
}

impl TcpSender {
    /// A Reno sender of `total` segments of `size` bytes (>= 9).
    pub fn new(total: u64, size: usize) -> Self {
        Self {
            size: size.max(9),
            cubic: None,
            total,
            segs: VecDeque::new(),
            base: 0,
            next_seq: 0,
            pipe: 0,
            cwnd: INITIAL_WINDOW,
            ssthresh: f64::INFINITY,
            recovery_until: 0,
            highest_sacked: None,
            scanned: 0,
            retransmit: VecDeque::new(),
            srtt: None,
            rttvar: Duration::ZERO,
            rto: INITIAL_RTO,
            rto_deadline: None,
            sent: 0,
            retransmissions: 0,
            timeouts: 0,
            reductions: 0,
        }
    }

    /// A CUBIC sender of `total` segments of `size` bytes (>= 9).
    pub fn cubic(total: u64, size: usize) -> Self {
        Self {
            cubic: Some(Box::new(Cubic::new(INITIAL_WINDOW))),
            ..Self::new(total, size)
        }
    }

    /// True once every segment has been acknowledged.
    pub fn is_done(&self) -> bool {
        self.base >= self.total
    }

    /// Segments acknowledged cumulatively so far.
    pub fn acked(&self) -> u64 {
        self.base
    }

    /// Congestion window, in segments.
    pub fn cwnd(&self) -> f64 {
        self.cwnd
    }

    /// Smoothed round-trip time, once measured.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// Datagrams sent (retransmissions included).
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Retransmitted segments.
    pub fn retransmissions(&self) -> u64 {
        self.retransmissions
    }

    /// Window reductions (congestion events, timeouts included).
    pub fn reductions(&self) -> u64 {
        self.reductions
    }

    /// Retransmission timeouts that fired.
    pub fn timeouts(&self) -> u64 {
        self.timeouts
    }

    fn seg(&mut self, seq: u64) -> Option<&mut Segment> {
        let idx = seq.checked_sub(self.base)?;
        self.segs.get_mut(usize::try_from(idx).ok()?)
    }

    fn on_ack(&mut self, now: Instant, cumulative: u64, sacked: u64) {
        let cumulative = cumulative.min(self.next_seq);
        for seq in self.base..cumulative {
            self.mark_acked(now, seq);
        }
        if sacked < self.next_seq {
            self.mark_acked(now, sacked);
            self.highest_sacked = self.highest_sacked.max(Some(sacked));
        }
        while self.segs.front().is_some_and(|s| s.acked) {
            self.segs.pop_front();
            self.base += 1;
        }
        self.scanned = self.scanned.max(self.base);
        self.detect_losses();
        self.rto_deadline = (self.base < self.next_seq).then(|| now + self.rto);
    }

    fn mark_acked(&mut self, now: Instant, seq: u64) {
        let Some(seg) = self.seg(seq) else { return };
        if seg.acked {
            return;
        }
        seg.acked = true;
        let seg = *seg;
        if !seg.lost {
            self.pipe -= 1;
        }
        if !seg.retransmitted {
            self.rtt_sample(now - seg.sent_at);
        }
        if seq < self.recovery_until {
            return;
        }
        if self.cwnd < self.ssthresh {
            self.cwnd += 1.0;
        } else if let Some(cubic) = &mut self.cubic {
            let rtt = self.srtt.unwrap_or(INITIAL_RTO);
            self.cwnd = cubic.increase(self.cwnd, now, 1.0, rtt);
        } else {
            self.cwnd += 1.0 / self.cwnd;
        }
    }

    fn detect_losses(&mut self) {
        let Some(high) = self.highest_sacked else {
            return;
        };
        while self.scanned + DUP_THRESH <= high {
            let seq = self.scanned;
            self.scanned += 1;
            let Some(seg) = self.seg(seq) else { continue };
            if seg.acked || seg.lost {
                continue;
            }
            seg.lost = true;
            self.pipe -= 1;
            self.retransmit.push_back(seq);
            if seq >= self.recovery_until {
                self.ssthresh = self.reduced_window();
                self.cwnd = self.ssthresh;
                self.recovery_until = self.next_seq;
            }
        }
    }

    /// The window after a congestion event (also the new slow-start threshold).
    fn reduced_window(&mut self) -> f64 {
        self.reductions += 1;
        match &mut self.cubic {
            Some(cubic) => cubic.reduce(self.cwnd),
            None => (self.cwnd / 2.0).max(2.0),
        }
    }

    fn rtt_sample(&mut self, rtt: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                let err = srtt.abs_diff(rtt);
                self.rttvar = (self.rttvar * 3 + err) / 4;
                self.srtt = Some((srtt * 7 + rtt) / 8);
            }
        }
        let srtt = self.srtt.unwrap_or(rtt);
        self.rto = (srtt + 4 * self.rttvar).max(MIN_RTO);
    }

    fn on_timeout(&mut self, now: Instant) {
        if self.rto_deadline.is_none_or(|t| t > now) {
            return;
        }
        self.timeouts += 1;
        self.ssthresh = self.reduced_window();
        self.cwnd = 1.0;
        self.recovery_until = self.next_seq;
        self.retransmit.clear();
        for (i, seg) in self.segs.iter_mut().enumerate() {
            if !seg.acked {
                if !seg.lost {
                    seg.lost = true;
                    self.pipe -= 1;
                }
                self.retransmit.push_back(self.base + i as u64);
            }
        }
        self.scanned = self.next_seq;
        self.rto = (self.rto * 2).min(Duration::from_secs(60));
        self.rto_deadline = Some(now + self.rto);
    }

    fn transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        if (self.pipe as f64) >= self.cwnd.floor().max(1.0) {
            return None;
        }
        let seq = loop {
            match self.retransmit.pop_front() {
                Some(seq) => {
                    let Some(seg) = self.seg(seq) else { continue };
                    if seg.acked || !seg.lost {
                        continue;
                    }
                    *seg = Segment {
                        sent_at: now,
                        acked: false,
                        lost: false,
                        retransmitted: true,
                    };
                    self.retransmissions += 1;
                    break seq;
                }
                None if self.next_seq < self.total => {
                    self.segs.push_back(Segment {
                        sent_at: now,
                        acked: false,
                        lost: false,
                        retransmitted: false,
                    });
                    self.next_seq += 1;
                    break self.next_seq - 1;
                }
                None => return None,
            }
        };
        self.pipe += 1;
        self.sent += 1;
        self.rto_deadline.get_or_insert(now + self.rto);
        let mut d = vec![0u8; self.size];
        d[0] = DATA;
        d[1..9].copy_from_slice(&seq.to_be_bytes());
        Some(d)
    }
}

/// Receiver of a [`TcpSender`]'s segments: acks each one and counts the
/// distinct segments it has.
#[derive(Debug, Default)]
pub struct TcpReceiver {
    next_expected: u64,
    above: BTreeSet<u64>,
    unique_bytes: u64,
    acks: VecDeque<(u64, u64)>,
}

impl TcpReceiver {
    /// A receiver that has nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes of distinct segments received (the flow's goodput).
    pub fn unique_bytes(&self) -> u64 {
        self.unique_bytes
    }

    /// Every segment below this has arrived.
    pub fn complete_below(&self) -> u64 {
        self.next_expected
    }

    fn on_data(&mut self, seq: u64, len: usize) {
        if seq >= self.next_expected && self.above.insert(seq) {
            self.unique_bytes += len as u64;
            while self.above.remove(&self.next_expected) {
                self.next_expected += 1;
            }
        }
        self.acks.push_back((self.next_expected, seq));
    }
}

fn word(d: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(d.get(at..at + 8)?.try_into().ok()?))
}

impl Node for TcpNode {
    fn handle_datagram(&mut self, now: Instant, datagram: &mut [u8]) {
        match (self, datagram.first()) {
            (TcpNode::Sender(s), Some(&ACK)) => {
                if let (Some(cum), Some(sacked)) = (word(datagram, 1), word(datagram, 9)) {
                    s.on_ack(now, cum, sacked);
                }
            }
            (TcpNode::Receiver(r), Some(&DATA)) => {
                if let Some(seq) = word(datagram, 1) {
                    r.on_data(seq, datagram.len());
                }
            }
            _ => {}
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        if let TcpNode::Sender(s) = self {
            s.on_timeout(now);
        }
    }

    fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        match self {
            TcpNode::Sender(s) => s.transmit(now),
            TcpNode::Receiver(r) => {
                let (cum, sacked) = r.acks.pop_front()?;
                let mut d = vec![0u8; ACK_SIZE];
                d[0] = ACK;
                d[1..9].copy_from_slice(&cum.to_be_bytes());
                d[9..17].copy_from_slice(&sacked.to_be_bytes());
                Some(d)
            }
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            TcpNode::Sender(s) => s.rto_deadline,
            TcpNode::Receiver(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{LinkConfig, Network};
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn sender(n: &Network<TcpNode>, id: usize) -> &TcpSender {
        match n.node(id) {
            TcpNode::Sender(s) => s,
            TcpNode::Receiver(_) => panic!("node {id} is a receiver"),
        }
    }

    fn receiver(n: &Network<TcpNode>, id: usize) -> &TcpReceiver {
        match n.node(id) {
            TcpNode::Receiver(r) => r,
            TcpNode::Sender(_) => panic!("node {id} is a sender"),
        }
    }

    fn flow(total: u64) -> (TcpNode, TcpNode) {
        (
            TcpNode::Sender(TcpSender::new(total, 1250)),
            TcpNode::Receiver(TcpReceiver::new()),
        )
    }

    #[test]
    fn fills_a_clean_bottleneck_and_delivers_everything() {
        // 10 Mbit/s, 40 ms RTT, one BDP of queue: 8000 segments = 8 s at line rate.
        let (s, r) = flow(8000);
        let fwd = LinkConfig::wan(10_000_000, 40 * MS, 0.0).queue_bdp(40 * MS, 1.0);
        let mut net =
            Network::pair(Instant::now(), 1, s, r, fwd, LinkConfig::ideal(20 * MS)).unwrap();
        let took = net
            .run_until(Duration::from_secs(60), |n| sender(n, 0).is_done())
            .unwrap();
        assert_eq!(receiver(&net, 1).complete_below(), 8000);
        assert!(took < Duration::from_millis(9200), "took {took:?}");
        let srtt = sender(&net, 0).srtt().unwrap();
        assert!(srtt >= 40 * MS && srtt <= 90 * MS, "{srtt:?}");
    }

    #[test]
    fn recovers_every_segment_through_random_loss() {
        let (s, r) = flow(3000);
        let fwd = LinkConfig::wan(10_000_000, 40 * MS, 0.02);
        let back = LinkConfig::ideal(20 * MS).loss(0.02);
        let mut net = Network::pair(Instant::now(), 2, s, r, fwd, back).unwrap();
        net.run_until(Duration::from_secs(120), |n| sender(n, 0).is_done())
            .unwrap();
        assert_eq!(receiver(&net, 1).complete_below(), 3000);
        assert_eq!(receiver(&net, 1).unique_bytes(), 3000 * 1250);
        assert!(sender(&net, 0).retransmissions() >= net.link(0).stats().dropped_loss);
    }

    #[test]
    fn recovers_from_a_blackout_by_timeout() {
        let (s, r) = flow(4000);
        let fwd = LinkConfig::wan(10_000_000, 40 * MS, 0.0)
            .blackout(Duration::from_secs(1), Duration::from_secs(3));
        let mut net =
            Network::pair(Instant::now(), 3, s, r, fwd, LinkConfig::ideal(20 * MS)).unwrap();
        net.run_until(Duration::from_secs(60), |n| sender(n, 0).is_done())
            .unwrap();
        assert_eq!(receiver(&net, 1).complete_below(), 4000);
        assert!(sender(&net, 0).timeouts() >= 1);
    }

    #[test]
    fn two_flows_share_a_bottleneck() {
        two_flows_share(vec![flow(u64::MAX), flow(u64::MAX)]);
    }

    #[test]
    fn two_cubic_flows_share_a_bottleneck() {
        let cubic = || {
            (
                TcpNode::Sender(TcpSender::cubic(u64::MAX, 1250)),
                TcpNode::Receiver(TcpReceiver::new()),
            )
        };
        two_flows_share(vec![cubic(), cubic()]);
    }

    #[test]
    fn cubic_grows_faster_than_reno_on_a_long_fat_path() {
        // 100 Mbit/s, 100 ms: a window of 1000 segments. After the first
        // loss CUBIC regains its maximum within seconds; Reno needs
        // hundreds of round trips.
        let run = |s: TcpSender| {
            let fwd = LinkConfig::wan(100_000_000, 100 * MS, 0.0);
            let flows = vec![(TcpNode::Sender(s), TcpNode::Receiver(TcpReceiver::new()))];
            let mut net =
                Network::dumbbell(Instant::now(), 5, flows, fwd, LinkConfig::ideal(50 * MS))
                    .unwrap();
            net.run_for(Duration::from_secs(30)).unwrap();
            receiver(&net, 1).unique_bytes()
        };
        let reno = run(TcpSender::new(u64::MAX, 1250));
        let cubic = run(TcpSender::cubic(u64::MAX, 1250));
        assert!(cubic > reno, "cubic {cubic} reno {reno}");
    }

    fn two_flows_share(flows: Vec<(TcpNode, TcpNode)>) {
        let bottleneck = LinkConfig::wan(20_000_000, 40 * MS, 0.0);
        let mut net = Network::dumbbell(
            Instant::now(),
            4,
            flows,
            bottleneck,
            LinkConfig::ideal(20 * MS),
        )
        .unwrap();
        net.run_for(Duration::from_secs(60)).unwrap();
        let (a, b) = (
            receiver(&net, 1).unique_bytes(),
            receiver(&net, 3).unique_bytes(),
        );
        let share = a as f64 / (a + b) as f64;
        assert!((0.35..0.65).contains(&share), "share {share}");
        let utilisation = (a + b) as f64 * 8.0 / 60.0 / 20e6;
        assert!(utilisation > 0.9, "utilisation {utilisation}");
    }
}
