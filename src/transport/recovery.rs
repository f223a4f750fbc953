//! Sent-packet bookkeeping: which packets are in flight, which an ACK
//! covers, which are lost (RFC 9002 packet and time thresholds), and
//! delivery-rate samples for congestion control.

use std::collections::VecDeque;
use std::ops::Range;
use std::time::{Duration, Instant};

use super::rtt::RttEstimator;

/// A packet is lost once this many later packets are acknowledged (at first;
/// the threshold grows when the path is seen to reorder, as RACK does).
pub const PACKET_THRESHOLD: u64 = 3;
/// The most the reordering threshold grows to.
pub const MAX_PACKET_THRESHOLD: u64 = 512;

/// What an ack-eliciting packet carried, as its sender built it: what must
/// be settled when it is acknowledged, or sent again when it is lost.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Carried {
    /// Stream bytes carried, if any.
    pub stream: Option<Range<u64>>,
    /// Carried the stream FIN.
    pub fin: bool,
    /// Carried a MAX_DATA frame.
    pub max_data: bool,
    /// A path-MTU probe (its loss is not congestion).
    pub mtu_probe: bool,
}

/// One ack-eliciting packet sent (so counted in flight), remembered until
/// it is acked or lost.
#[derive(Debug, Clone)]
pub struct SentPacket {
    /// Packet number (= VSL msgnr).
    pub pn: u64,
    /// When it left.
    pub time_sent: Instant,
    /// Datagram size in bytes.
    pub size: u32,
    /// Stream bytes carried, if any.
    pub stream: Option<Range<u64>>,
    /// Carried the stream FIN.
    pub fin: bool,
    /// Carried a MAX_DATA frame.
    pub max_data: bool,
    /// A path-MTU probe (its loss is not congestion).
    pub mtu_probe: bool,
    /// Delivery-rate state at send time.
    pub delivered: u64,
    /// Time of the last delivery before this packet was sent.
    pub delivered_time: Instant,
    /// Send time of the first packet of the current flight.
    pub first_sent_time: Instant,
    /// Sent while the application had nothing more to send.
    pub app_limited: bool,
    acked: bool,
    lost: bool,
}

/// A delivery-rate sample (as in BBR's draft-cheng-iccrg-delivery-rate-estimation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateSample {
    /// Bytes delivered per second over the sample interval.
    pub delivery_rate: f64,
    /// The sample's packet was sent while application-limited.
    pub app_limited: bool,
    /// Total bytes delivered when the sample's packet was sent.
    pub prior_delivered: u64,
}

/// What the last ACK changed.
#[derive(Debug, Default, Clone)]
pub struct AckOutcome {
    /// Bytes newly acknowledged (in-flight packets only).
    pub acked_bytes: u64,
    /// A new RTT sample was taken.
    pub rtt_updated: bool,
    /// The delivery-rate sample, if any packet was newly acked.
    pub rate: Option<RateSample>,
    /// Newly acked packets' contents (stream ranges, fin, max_data, mtu probe size).
    pub acked: Vec<SentPacket>,
    /// Packets newly declared lost.
    pub lost: Vec<SentPacket>,
}

/// Tracks packets in flight for one connection.
pub struct Recovery {
    sent: VecDeque<SentPacket>,
    bytes_in_flight: u64,
    largest_acked: Option<u64>,
    /// The RTT estimator.
    pub rtt: RttEstimator,
    loss_time: Option<Instant>,
    /// Consecutive probe timeouts without an ACK.
    pub pto_count: u32,
    last_ack_eliciting_sent: Option<Instant>,
    delivered: u64,
    delivered_time: Option<Instant>,
    first_sent_time: Option<Instant>,
    app_limited_until: u64,
    /// Packets declared lost over the connection.
    pub lost_packets: u64,
    packet_threshold: u64,
}

impl Default for Recovery {
    fn default() -> Self {
        Self::new()
    }
}

impl Recovery {
    /// Nothing sent yet.
    pub fn new() -> Self {
        Recovery {
            sent: VecDeque::new(),
            bytes_in_flight: 0,
            largest_acked: None,
            rtt: RttEstimator::new(),
            loss_time: None,
            pto_count: 0,
            last_ack_eliciting_sent: None,
            delivered: 0,
            delivered_time: None,
            first_sent_time: None,
            app_limited_until: 0,
            lost_packets: 0,
            packet_threshold: PACKET_THRESHOLD,
        }
    }

    /// Bytes sent and neither acked nor lost.
    pub fn bytes_in_flight(&self) -> u64 {
        self.bytes_in_flight
    }

    /// Total bytes delivered (acknowledged) so far.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Marks the flow application-limited until what is in flight now is acknowledged.
    pub fn set_app_limited(&mut self) {
        self.app_limited_until = (self.delivered + self.bytes_in_flight).max(1);
    }

    /// Records an ack-eliciting packet just sent (packets that elicit no
    /// ACK are not in flight and not recorded). Fills in the delivery-rate
    /// fields.
    pub fn on_sent(&mut self, now: Instant, pn: u64, size: u32, carried: Carried) {
        let Carried {
            stream,
            fin,
            max_data,
            mtu_probe,
        } = carried;
        if self.bytes_in_flight == 0 {
            self.first_sent_time = Some(now);
            self.delivered_time = Some(now);
        }
        let p = SentPacket {
            pn,
            time_sent: now,
            size,
            stream,
            fin,
            max_data,
            mtu_probe,
            delivered: self.delivered,
            delivered_time: self.delivered_time.unwrap_or(now),
            first_sent_time: self.first_sent_time.unwrap_or(now),
            app_limited: self.app_limited_until > 0,
            acked: false,
            lost: false,
        };
        self.bytes_in_flight += u64::from(size);
        self.last_ack_eliciting_sent = Some(now);
        self.sent.push_back(p);
    }

    fn index_of(&self, pn: u64) -> Result<usize, usize> {
        self.sent.binary_search_by_key(&pn, |p| p.pn)
    }

    /// Processes an ACK frame's ranges (highest first). `out` is reused.
    pub fn on_ack(
        &mut self,
        now: Instant,
        largest: u64,
        ack_delay: Duration,
        ranges: impl Iterator<Item = Range<u64>>,
        out: &mut AckOutcome,
    ) {
        out.acked_bytes = 0;
        out.rtt_updated = false;
        out.rate = None;
        out.acked.clear();
        out.lost.clear();
        self.largest_acked = Some(self.largest_acked.map_or(largest, |l| l.max(largest)));
        let mut newest: Option<usize> = None;
        for r in ranges {
            // Packets with pn in r: find the first index >= r.start.
            let mut i = match self.index_of(r.start) {
                Ok(i) | Err(i) => i,
            };
            while i < self.sent.len() && self.sent[i].pn < r.end {
                let p = &mut self.sent[i];
                if !p.acked && !p.lost {
                    p.acked = true;
                    self.bytes_in_flight -= u64::from(p.size);
                    out.acked_bytes += u64::from(p.size);
                    self.delivered += u64::from(p.size);
                    self.delivered_time = Some(now);
                    if newest.is_none_or(|n| self.sent[n].pn < self.sent[i].pn) {
                        newest = Some(i);
                    }
                    out.acked.push(self.sent[i].clone());
                } else if p.lost && !p.acked {
                    // Acked after we declared it lost: the path reorders.
                    // Its data counts as delivered, and later packets get
                    // more time before they are declared lost.
                    p.acked = true;
                    let distance = largest.saturating_sub(p.pn) + 1;
                    self.packet_threshold = self
                        .packet_threshold
                        .max(distance)
                        .min(MAX_PACKET_THRESHOLD);
                    out.acked.push(self.sent[i].clone());
                }
                i += 1;
            }
        }
        if let Some(n) = newest {
            let p = &self.sent[n];
            if p.pn == largest {
                self.rtt
                    .update(now.saturating_duration_since(p.time_sent), ack_delay);
                out.rtt_updated = true;
            }
            let send_elapsed = p.time_sent.saturating_duration_since(p.first_sent_time);
            let ack_elapsed = now.saturating_duration_since(p.delivered_time);
            let interval = send_elapsed.max(ack_elapsed);
            if interval > Duration::ZERO {
                out.rate = Some(RateSample {
                    delivery_rate: (self.delivered - p.delivered) as f64 / interval.as_secs_f64(),
                    app_limited: p.app_limited,
                    prior_delivered: p.delivered,
                });
            }
            self.first_sent_time = Some(p.time_sent);
            if self.app_limited_until > 0 && self.delivered >= self.app_limited_until {
                self.app_limited_until = 0;
            }
            self.pto_count = 0;
        }
        self.detect_lost(now, out);
        self.trim(now);
    }

    /// Declares packets lost by packet or time threshold; sets the loss timer.
    fn detect_lost(&mut self, now: Instant, out: &mut AckOutcome) {
        self.loss_time = None;
        let Some(largest) = self.largest_acked else {
            return;
        };
        let delay = self.rtt.loss_delay();
        for p in self.sent.iter_mut() {
            if p.pn > largest {
                break;
            }
            if p.acked || p.lost {
                continue;
            }
            if p.pn + self.packet_threshold <= largest || p.time_sent + delay <= now {
                p.lost = true;
                self.bytes_in_flight -= u64::from(p.size);
                self.lost_packets += 1;
                out.lost.push(p.clone());
            } else {
                let t = p.time_sent + delay;
                self.loss_time = Some(self.loss_time.map_or(t, |l| l.min(t)));
            }
        }
    }

    /// Forgets settled packets at the front. Lost packets are kept for one
    /// RTT more so that a late ACK (reordering) is recognised.
    fn trim(&mut self, now: Instant) {
        let keep_lost = self.rtt.smoothed();
        while self
            .sent
            .front()
            .is_some_and(|p| p.acked || (p.lost && p.time_sent + 2 * keep_lost < now))
        {
            self.sent.pop_front();
        }
    }

    /// The loss-detection or probe-timeout deadline.
    pub fn timeout(&self, max_ack_delay: Duration, max_pto: Duration) -> Option<Instant> {
        if let Some(t) = self.loss_time {
            return Some(t);
        }
        if self.bytes_in_flight == 0 {
            return None;
        }
        let last = self.last_ack_eliciting_sent?;
        Some(last + self.pto_duration(max_ack_delay, max_pto))
    }

    /// The current probe timeout, with exponential backoff capped at `max_pto`.
    pub fn pto_duration(&self, max_ack_delay: Duration, max_pto: Duration) -> Duration {
        let base = self.rtt.pto_base(max_ack_delay);
        (base * 2u32.saturating_pow(self.pto_count.min(16))).min(max_pto.max(base))
    }

    /// Called when `timeout()` passed. Returns true if a probe timeout fired
    /// (the caller sends probes); loss-time expiry fills `out.lost` instead.
    pub fn on_timeout(&mut self, now: Instant, out: &mut AckOutcome) -> bool {
        out.lost.clear();
        out.acked.clear();
        if self.loss_time.is_some_and(|t| t <= now) {
            self.detect_lost(now, out);
            self.trim(now);
            return false;
        }
        self.pto_count += 1;
        true
    }
}
