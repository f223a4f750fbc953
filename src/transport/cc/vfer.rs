//! The default controller: a model of the path (bottleneck rate and base
//! RTT, as in BBR) with delay-based guards in the spirit of the original
//! VFER's one-way-delay control.
//!
//! - The sending rate follows the measured delivery rate, not loss: random
//!   loss does not lower it (the pacing rate makes up for the loss rate
//!   measured while the queue is short).
//! - A filling queue slows it: in-flight data is capped at `CWND_GAIN` times
//!   the bandwidth-delay product, and a bandwidth probe ends as soon as the
//!   standing queueing delay exceeds the target.
//! - It takes a share beside other flows: every flow paces at its own
//!   delivery rate, so delay-based flows converge toward equal shares of a
//!   FIFO bottleneck; beside a flow that keeps the queue full (TCP), it
//!   notices that the queue never drains and competes as CUBIC would
//!   ([`super::compete`]) until a check shows the queue drains without it.
//!
//! Constants are documented in docs/PROTOCOL.md §3.6.

use std::time::{Duration, Instant};

use super::compete::{self, Compete, Verdict, LOW_QUEUE_DELAY};
use super::{AckEvent, Controller};
use crate::transport::pathcache::PathHint;

/// Startup gain: doubles the delivery rate each round trip (2/ln 2).
const STARTUP_GAIN: f64 = 2.885;
/// In-flight cap in startup and drain, in bandwidth-delay products (as
/// BBRv3: at most one BDP can queue, so a one-BDP buffer does not overflow
/// in the last round of startup, whose queue shows only a round later).
const STARTUP_CWND_GAIN: f64 = 2.0;
/// In-flight cap in bandwidth-delay products.
const CWND_GAIN: f64 = 2.0;
/// Pacing gains of the 8 phases of a bandwidth-probing cycle.
const PROBE_GAINS: [f64; 8] = [1.25, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
/// The queue a bandwidth probe may build: its extra pacing, (gain - 1) x
/// the base RTT of it, shows at the sender only a round trip later. On
/// paths longer than 80 ms the probe's gain is cut so that its queue stays
/// near this (1.25 over 200 ms queued 50 ms: the lab's lossy profile saw a
/// p90 queueing delay of 27-32 ms with vfer alone).
const PROBE_QUEUE: Duration = Duration::from_millis(20);
/// Smallest probe gain, whatever the RTT (a probe must still find a path
/// that got faster).
const MIN_PROBE_GAIN: f64 = 1.0625;
/// Rounds the bottleneck-rate max filter spans.
const BW_WINDOW_ROUNDS: u64 = 10;
/// How long a base-RTT measurement stays valid before it is re-measured.
const MIN_RTT_WINDOW: Duration = Duration::from_secs(10);
/// How long the re-measurement (ProbeRtt) holds in-flight data low.
const PROBE_RTT_TIME: Duration = Duration::from_millis(200);
/// Queueing delay above the base RTT that ends a bandwidth probe or startup.
pub const TARGET_QUEUE_DELAY: Duration = Duration::from_millis(8);
/// Largest loss rate the pacing rate compensates for (see `loss_rate`).
const MAX_LOSS_COMPENSATION: f64 = 0.5;
/// Weight of one round trip's loss fraction in the loss-rate average.
const LOSS_RATE_WEIGHT: f64 = 0.125;
/// Lowest pacing gain while cruising above the delay target.
const MIN_CRUISE_GAIN: f64 = 0.75;
/// How long every RTT sample must show a queue above the target (at least;
/// see `compete_after`) before another flow is taken to be holding it.
/// Delay-based flows alone hold the queue near the target; a loss-based
/// flow keeps it well above.
const COMPETE_AFTER: Duration = Duration::from_secs(2);
/// ... and in base RTTs, so long paths see several of our drain phases.
const COMPETE_AFTER_RTTS: u32 = 10;
/// During a competing-mode check, the window is capped at this fraction of
/// our own bandwidth-delay product, so a queue we alone built drains.
const CHECK_BDP_FRACTION: f64 = 0.9;
/// Competing mode begins in slow start if the rate estimate never exceeded
/// this multiple of the current one.
const SLOW_START_PEAK_RATIO: f64 = 2.0;
/// Extra in-flight allowance for bursty acknowledgements, as sending time.
/// On a fast path the round trip is dominated by how soon each end's
/// threads run (tens of microseconds to milliseconds on a loaded host), not
/// by the wire: with 2 ms the sender waited for the window 17 % of a 2 GB
/// copy over a 1,500-byte veth, with 8 ms 3 % (+11 % goodput, netem/fastpath
/// A/B). On a long path it is small beside the bandwidth-delay product.
const ACK_AGGREGATION: Duration = Duration::from_millis(8);
/// Start-up rounds whose rate estimate is at least the window over the RTT.
const STARTUP_WINDOW_ROUNDS: u64 = 3;
/// RTT samples (a round's first, or the latest in a row) that must show a
/// queue above the start-up exit threshold before start-up ends.
const STARTUP_DELAY_SAMPLES: u32 = 8;
/// A round that delivered this many packets carried data, even if its
/// samples were application-limited (see `data_rounds`).
const DATA_ROUND_PACKETS: u64 = 16;
/// Packets in the initial window.
const INITIAL_WINDOW_PACKETS: u64 = 64;
/// Smallest window, in packets.
const MIN_WINDOW_PACKETS: u64 = 4;
/// A resumed start (a remembered path) paces at this fraction of the
/// remembered rate until the path confirms it.
const RESUME_FRACTION: f64 = 0.95;
/// Pacing gain of a resumed start's probe round: small, as on a long path
/// the queue it builds shows (and drains) only round trips later.
const RESUME_PROBE_GAIN: f64 = 1.15;
/// When the probe round of a resumed start delivers more than this times
/// the resumed rate, the path is faster than remembered: normal start-up.
const RESUME_FASTER: f64 = 1.12;
/// A remembered path is abandoned when a round delivers less than this
/// fraction of the remembered rate ...
const RESUME_MIN_DELIVERY: f64 = 0.75;
/// ... or its base RTT is longer than remembered by this factor (plus 1 ms) ...
const RESUME_RTT_FACTOR: f64 = 1.2;
/// ... or this many RTT samples in a row show a queue above
/// `max(2 x TARGET_QUEUE_DELAY, base / 4)` (we send faster than the path) ...
const RESUME_QUEUE_SAMPLES: u32 = 8;
/// ... or a round loses more than the remembered loss plus this (and at
/// least twice the remembered loss).
const RESUME_EXTRA_LOSS: f64 = 0.02;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Startup,
    Drain,
    ProbeBw,
    ProbeRtt,
    /// Starting from a remembered path: pacing near its rate while the
    /// first round trips confirm it (see [`Vfer::resume`]).
    Resume,
}

/// The default VFER congestion controller.
pub struct Vfer {
    mode: Mode,
    mtu: u64,
    cwnd: u64,
    /// Per-round maxima of the delivery rate, indexed by round % window.
    bw_rounds: [(u64, f64); BW_WINDOW_ROUNDS as usize],
    btlbw: f64,
    min_rtt: Option<Duration>,
    min_rtt_stamp: Option<Instant>,
    round: u64,
    /// Rounds in which the sender was not application-limited: the ones
    /// that say something about the path. A transfer begins with round
    /// trips of a few small messages (HELLO, manifest, WANT); start-up's
    /// and a resumed start's round counts skip them.
    data_rounds: u64,
    /// The current round has had a delivery-rate sample that was not
    /// application-limited.
    round_has_data: bool,
    next_round_delivered: u64,
    /// Minimum RTT seen in the current and the previous round (standing RTT).
    round_min_rtt: Option<Duration>,
    round_samples: u32,
    standing_rtt: Option<Duration>,
    full_bw: f64,
    full_bw_rounds: u32,
    pipe_filled: bool,
    pacing_gain: f64,
    cwnd_gain: f64,
    cycle: usize,
    cycle_stamp: Option<Instant>,
    probe_rtt_until: Option<Instant>,
    saved_cwnd: u64,
    initial_rate: f64,
    srtt: Duration,
    /// When an RTT sample last showed a queue within the target.
    last_low_queue: Option<Instant>,
    /// Queueing delay of the latest RTT sample.
    last_queue: Duration,
    /// Set while another flow holds the queue (see the module docs).
    compete: Option<Compete>,
    /// Highest bottleneck-rate estimate since startup ended.
    peak_btlbw: f64,
    /// Competing mode has been entered before.
    competed: bool,
    /// Average fraction of sent bytes lost per round trip while the queue
    /// was within the target (random loss, not overflow).
    loss_rate: f64,
    round_lost: u64,
    /// Bytes acknowledged this round while the queue was within the
    /// target: the loss rate's denominator, sampled as its numerator is.
    round_acked_low: u64,
    round_start_delivered: u64,
    /// Time spent in competing mode, counted between ACKs.
    time_competing: Duration,
    last_ack: Option<Instant>,
    /// The remembered path a resumed start began from.
    hint: Option<PathHint>,
    /// Whether the hint held (`Some(true)`), was abandoned, or is still
    /// being checked (`None`).
    hint_held: Option<bool>,
    /// RTT samples in a row that showed a queue while resuming.
    resume_queue_samples: u32,
    /// Rounds of a resumed start that delivered a flight's worth of data
    /// (see [`Vfer::check_resume_round`]).
    resume_rounds: u32,
    /// RTT samples in a row that showed a queue above the start-up exit
    /// threshold (see `check_startup_delay`).
    startup_queue_samples: u32,
}

impl Vfer {
    /// A controller for datagrams of `mtu` bytes.
    pub fn new(mtu: u64) -> Self {
        Vfer {
            mode: Mode::Startup,
            mtu,
            cwnd: INITIAL_WINDOW_PACKETS * mtu,
            bw_rounds: [(0, 0.0); BW_WINDOW_ROUNDS as usize],
            btlbw: 0.0,
            min_rtt: None,
            min_rtt_stamp: None,
            round: 0,
            data_rounds: 0,
            round_has_data: false,
            next_round_delivered: 0,
            round_min_rtt: None,
            round_samples: 0,
            standing_rtt: None,
            full_bw: 0.0,
            full_bw_rounds: 0,
            pipe_filled: false,
            pacing_gain: STARTUP_GAIN,
            cwnd_gain: STARTUP_CWND_GAIN,
            cycle: 0,
            cycle_stamp: None,
            probe_rtt_until: None,
            saved_cwnd: 0,
            initial_rate: 0.0,
            srtt: Duration::ZERO,
            last_low_queue: None,
            last_queue: Duration::ZERO,
            compete: None,
            peak_btlbw: 0.0,
            competed: false,
            loss_rate: 0.0,
            round_lost: 0,
            round_acked_low: 0,
            round_start_delivered: 0,
            time_competing: Duration::ZERO,
            last_ack: None,
            hint: None,
            hint_held: None,
            resume_queue_samples: 0,
            resume_rounds: 0,
            startup_queue_samples: 0,
        }
    }

    /// A controller that starts from a remembered path: it paces at
    /// [`RESUME_FRACTION`] of the remembered rate (making up for the
    /// remembered random loss) with a window of two remembered
    /// bandwidth-delay products, so the first round trip already runs near
    /// full rate. The first four round trips check the path: a round that
    /// delivers less than [`RESUME_MIN_DELIVERY`] of the rate, a longer
    /// base RTT, a growing queue or more loss abandon the hint for a normal
    /// start-up (keeping what was measured), and so does a probe at
    /// [`RESUME_PROBE_GAIN`] times the rate that delivers more than [`RESUME_FASTER`] times it
    /// (the path got faster). Otherwise the hint is confirmed and the
    /// controller goes on as after a start-up.
    pub fn resume(mtu: u64, hint: PathHint) -> Self {
        let mut v = Vfer::new(mtu);
        v.mode = Mode::Resume;
        v.pacing_gain = 1.0;
        v.cwnd_gain = CWND_GAIN;
        v.hint = Some(hint);
        v.loss_rate = hint.loss.clamp(0.0, MAX_LOSS_COMPENSATION);
        v.pipe_filled = true;
        let bdp = (v.resume_rate() * hint.min_rtt.as_secs_f64()) as u64;
        v.cwnd = (bdp * 2).max(INITIAL_WINDOW_PACKETS * mtu);
        v
    }

    /// The delivery rate a resumed start paces for.
    fn resume_rate(&self) -> f64 {
        self.hint.map_or(0.0, |h| h.rate as f64 * RESUME_FRACTION)
    }

    /// The bottleneck rate the model uses: the measured one, or while
    /// resuming, the remembered one if higher.
    fn model_bw(&self) -> f64 {
        match self.mode {
            Mode::Resume => self.btlbw.max(self.resume_rate()),
            // The first rounds' samples under-state the rate (their
            // intervals start before any ACK, and the initial window is
            // paced over a guessed RTT): until they are past, the window
            // over the RTT is a rate the path has already carried.
            Mode::Startup
                if self.data_rounds <= STARTUP_WINDOW_ROUNDS && self.srtt > Duration::ZERO =>
            {
                let by_window = self.cwnd as f64 / self.srtt.as_secs_f64();
                self.btlbw.max(by_window)
            }
            _ => self.btlbw,
        }
    }

    /// Gives up a remembered path: back to a normal start-up from what the
    /// first round trips measured (its delay exit then drains any queue the
    /// resumed start built).
    fn abandon_hint(&mut self, why: &str) {
        tracing::debug!(
            target: "vfer::cc",
            "remembered path abandoned ({why}): measured {:.1} Mbit/s, base {:?}; normal start-up",
            self.btlbw * 8e-6,
            self.min_rtt.unwrap_or_default()
        );
        self.hint_held = Some(false);
        self.mode = Mode::Startup;
        self.pipe_filled = false;
        self.pacing_gain = STARTUP_GAIN;
        self.cwnd_gain = STARTUP_CWND_GAIN;
        self.full_bw = 0.0;
        self.full_bw_rounds = 0;
        self.loss_rate = 0.0;
        let bdp = self.bdp().unwrap_or(0);
        self.cwnd = (bdp * 2).max(INITIAL_WINDOW_PACKETS * self.mtu);
    }

    /// Checks a remembered path at the start of each round (see
    /// [`Vfer::resume`]). Only rounds that delivered a flight's worth
    /// (`full`) count: a transfer's first round trips carry a few small
    /// messages (HELLO, manifest, WANT), and counting them made the check
    /// judge the first data flight, whose rate samples under-state the
    /// path (the lab gave up a right hint at 2-40 of 94 Mbit/s). After the
    /// first full round it paces at [`RESUME_PROBE_GAIN`] times the resumed
    /// rate for a round, then at it again; a round's delivery-rate samples
    /// are those of packets sent a round earlier, so the end of the second
    /// full round shows the rate delivered at the resumed pace and the end
    /// of the third what the probe delivered.
    fn check_resume_round(&mut self, round_loss: f64, full: bool) {
        let Some(hint) = self.hint else { return };
        if self.mode != Mode::Resume || !full {
            return;
        }
        self.resume_rounds += 1;
        // The round that just ended: its best delivery rate.
        let prev = ((self.round - 1) % BW_WINDOW_ROUNDS) as usize;
        let delivered = self.bw_rounds[prev].1;
        if round_loss > (hint.loss + RESUME_EXTRA_LOSS).max(2.0 * hint.loss) {
            return self.abandon_hint("more loss");
        }
        match self.resume_rounds {
            // The first full round's samples are of the first data packets,
            // whose intervals start before any of them was acknowledged:
            // they under-state the rate.
            1 => self.pacing_gain = RESUME_PROBE_GAIN,
            2 if delivered < RESUME_MIN_DELIVERY * hint.rate as f64 => {
                self.abandon_hint("rate lower")
            }
            2 => self.pacing_gain = 1.0,
            _ if delivered > RESUME_FASTER * self.resume_rate() => self.abandon_hint("path faster"),
            _ => {
                tracing::debug!(
                    target: "vfer::cc",
                    "remembered path confirmed: {:.1} Mbit/s, base {:?}",
                    self.btlbw * 8e-6,
                    self.min_rtt.unwrap_or_default()
                );
                self.hint_held = Some(true);
                // Drain what the probe queued, then cruise.
                self.enter_probe_bw_at(1);
            }
        }
    }

    /// Checks each RTT sample of a resumed start against the remembered path.
    fn check_resume_rtt(&mut self, sample: Duration) {
        let Some(hint) = self.hint else { return };
        if self.mode != Mode::Resume {
            return;
        }
        let base = self.min_rtt.unwrap_or(sample);
        if base.as_secs_f64() > hint.min_rtt.as_secs_f64() * RESUME_RTT_FACTOR + 0.001 {
            return self.abandon_hint("base RTT longer");
        }
        let limit = (2 * TARGET_QUEUE_DELAY).max(base / 4);
        if sample.saturating_sub(base) > limit {
            self.resume_queue_samples += 1;
            if self.resume_queue_samples >= RESUME_QUEUE_SAMPLES {
                self.abandon_hint("queue growing");
            }
        } else {
            self.resume_queue_samples = 0;
        }
    }

    fn bdp(&self) -> Option<u64> {
        let rtt = self.min_rtt.or(self.hint.map(|h| h.min_rtt))?;
        let bw = self.model_bw();
        (bw > 0.0).then_some((bw * rtt.as_secs_f64()) as u64)
    }

    fn min_window(&self) -> u64 {
        MIN_WINDOW_PACKETS * self.mtu
    }

    /// Queueing delay standing over the last round trip, if measurable.
    fn queue_delay(&self) -> Option<Duration> {
        let base = self.min_rtt?;
        let standing = match (self.standing_rtt, self.round_min_rtt) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        Some(standing.saturating_sub(base))
    }

    fn update_bw(&mut self, ack: &AckEvent<'_>) {
        let Some(rs) = ack.rate else { return };
        if rs.prior_delivered >= self.next_round_delivered {
            self.next_round_delivered = ack.delivered;
            self.round += 1;
            let delivered = ack.delivered.saturating_sub(self.round_start_delivered);
            // Only a round that carried data counts (see `data_rounds`): one
            // not application-limited, or a full flight (the first after
            // the handshake is marked application-limited as a whole). The
            // first ACK starts round 1 as it starts `round`'s.
            let data_round = std::mem::replace(&mut self.round_has_data, false)
                || delivered >= DATA_ROUND_PACKETS * self.mtu
                || self.round == 1;
            if data_round {
                self.data_rounds += 1;
            }
            let sent = (delivered + self.round_lost).max(1) as f64;
            let fraction = self.round_lost as f64 / sent;
            // The random loss rate counts losses only while the queue was
            // within the target, so its denominator counts only what was
            // acknowledged then: dividing by the whole round's bytes
            // under-stated 5 % loss as 3.5-4 % on a 200 ms path, where
            // probes hold a queue a fifth of the time, and the pacing rate
            // fell short of the link by the difference.
            let low = self.round_acked_low;
            if self.mode != Mode::Resume && data_round && low >= DATA_ROUND_PACKETS * self.mtu {
                let random = self.round_lost as f64 / (low + self.round_lost) as f64;
                self.loss_rate += LOSS_RATE_WEIGHT * (random - self.loss_rate);
            }
            self.round_lost = 0;
            self.round_acked_low = 0;
            self.round_start_delivered = ack.delivered;
            self.standing_rtt = self.round_min_rtt;
            self.round_min_rtt = None;
            self.round_samples = 0;
            let slot = (self.round % BW_WINDOW_ROUNDS) as usize;
            self.bw_rounds[slot] = (self.round, 0.0);
            if data_round {
                self.on_round_start();
                self.check_resume_round(fraction, delivered >= DATA_ROUND_PACKETS * self.mtu);
            }
            if self.round.is_multiple_of(20) {
                tracing::debug!(
                    target: "vfer::cc",
                    "round {} {:?}{} cwnd {} btlbw {:.1} Mbit/s base {:?} srtt {:?} queue {:?}",
                    self.round,
                    self.mode,
                    match &self.compete {
                        Some(c) if c.checking() => " competing (checking)",
                        Some(c) if c.in_slow_start() => " competing (slow start)",
                        Some(_) => " competing",
                        None => "",
                    },
                    self.window(),
                    self.btlbw * 8e-6,
                    self.min_rtt.unwrap_or_default(),
                    self.srtt,
                    self.last_queue,
                );
            }
        }
        if !rs.app_limited {
            self.round_has_data = true;
        }
        if !rs.app_limited || rs.delivery_rate >= self.btlbw {
            let slot = (self.round % BW_WINDOW_ROUNDS) as usize;
            if self.bw_rounds[slot].1 < rs.delivery_rate {
                self.bw_rounds[slot] = (self.round, rs.delivery_rate);
            }
        }
        let round = self.round;
        self.btlbw = self
            .bw_rounds
            .iter()
            .filter(|(r, _)| r + BW_WINDOW_ROUNDS > round)
            .map(|&(_, b)| b)
            .fold(0.0, f64::max);
        if self.mode == Mode::ProbeBw {
            // Startup's samples are left out: its bursts overshoot.
            self.peak_btlbw = self.peak_btlbw.max(self.btlbw);
        }
    }

    fn on_round_start(&mut self) {
        if self.pipe_filled || self.mode != Mode::Startup {
            return;
        }
        // Leave startup when the rate stopped growing for 3 rounds, or the
        // queue grew beyond the delay target (we are past the bottleneck).
        if self.btlbw >= self.full_bw * 1.25 {
            self.full_bw = self.btlbw;
            self.full_bw_rounds = 0;
        } else {
            self.full_bw_rounds += 1;
        }
        if self.full_bw_rounds >= 3 {
            self.exit_startup();
        }
    }

    fn exit_startup(&mut self) {
        tracing::debug!(
            target: "vfer::cc",
            "start-up ends in round {}: {:.1} Mbit/s, base {:?}, queue {:?}",
            self.round,
            self.btlbw * 8e-6,
            self.min_rtt.unwrap_or_default(),
            self.queue_delay().unwrap_or_default()
        );
        self.pipe_filled = true;
        self.mode = Mode::Drain;
        self.pacing_gain = 1.0 / STARTUP_GAIN;
        self.cwnd_gain = STARTUP_CWND_GAIN;
    }

    /// HyStart-style delay exit: the first samples of a round already show
    /// the queue the previous round built. Leaving startup then avoids
    /// overflowing the bottleneck's buffer.
    ///
    /// Also when the last [`STARTUP_DELAY_SAMPLES`] samples in a row show
    /// it: a round's minimum includes its first samples, sent before the
    /// rate went up, so after a jump in rate (a remembered path found
    /// faster, say) the minimum shows the queue only a round later, by
    /// which time the buffer may have overflowed.
    fn check_startup_delay(&mut self, ack: &AckEvent<'_>) {
        if self.mode != Mode::Startup || self.data_rounds < 2 {
            self.startup_queue_samples = 0;
            return;
        }
        let Some(base) = self.min_rtt else { return };
        let threshold = TARGET_QUEUE_DELAY.max(base / 8);
        if ack.rtt_updated {
            if ack.rtt.latest().saturating_sub(base) > threshold {
                self.startup_queue_samples += 1;
            } else {
                self.startup_queue_samples = 0;
            }
        }
        let round_queue = self.round_samples >= STARTUP_DELAY_SAMPLES
            && self
                .round_min_rtt
                .is_some_and(|m| m.saturating_sub(base) > threshold);
        if round_queue || self.startup_queue_samples >= STARTUP_DELAY_SAMPLES {
            self.startup_queue_samples = 0;
            self.exit_startup();
        }
    }

    fn update_rtt(&mut self, ack: &AckEvent<'_>) {
        if !ack.rtt_updated {
            return;
        }
        let sample = ack.rtt.latest();
        self.round_min_rtt = Some(self.round_min_rtt.map_or(sample, |m| m.min(sample)));
        self.round_samples += 1;
        // While competing, the queue never drains: a re-measured base would
        // only measure the other flow's queue, so the old one stays.
        let expired = self.compete.is_none()
            && self
                .min_rtt_stamp
                .is_some_and(|t| ack.now.saturating_duration_since(t) > MIN_RTT_WINDOW);
        match self.min_rtt {
            Some(m) if sample > m && !expired => {
                // A sample close to the base also shows the base is still valid.
                if sample.as_secs_f64() <= m.as_secs_f64() * 1.02 + 0.0005 {
                    self.min_rtt_stamp = Some(ack.now);
                }
            }
            _ => {
                self.min_rtt = Some(sample);
                self.min_rtt_stamp = Some(ack.now);
            }
        }
        self.check_resume_rtt(sample);
        if let Some(base) = self.min_rtt {
            self.last_queue = sample.saturating_sub(base);
            if self.last_queue <= TARGET_QUEUE_DELAY || self.last_low_queue.is_none() {
                self.last_low_queue = Some(ack.now);
            }
        }
        if expired && self.mode != Mode::ProbeRtt && self.pipe_filled {
            self.mode = Mode::ProbeRtt;
            self.pacing_gain = 1.0;
            self.saved_cwnd = self.cwnd;
            self.probe_rtt_until = Some(ack.now + PROBE_RTT_TIME.max(sample));
        }
    }

    fn update_mode(&mut self, ack: &AckEvent<'_>) {
        match self.mode {
            Mode::Startup | Mode::Resume => {}
            Mode::Drain => {
                if self.bdp().is_some_and(|bdp| ack.bytes_in_flight <= bdp) {
                    self.enter_probe_bw(ack.now);
                }
            }
            Mode::ProbeBw => {
                let Some(rtt) = self.min_rtt else { return };
                let since = self
                    .cycle_stamp
                    .map_or(Duration::ZERO, |t| ack.now.saturating_duration_since(t));
                let gain = PROBE_GAINS[self.cycle];
                let bdp = self.bdp().unwrap_or(0);
                let advance = if gain > 1.0 {
                    // Probe for one base RTT, or until the queue shows there is
                    // no spare capacity.
                    since > rtt || self.queue_delay().is_some_and(|q| q > TARGET_QUEUE_DELAY)
                } else if gain < 1.0 {
                    since > rtt || ack.bytes_in_flight <= bdp
                } else {
                    since > rtt
                };
                if advance {
                    self.cycle = (self.cycle + 1) % PROBE_GAINS.len();
                    self.cycle_stamp = Some(ack.now);
                    self.pacing_gain = self.phase_gain();
                }
                if PROBE_GAINS[self.cycle] == 1.0 {
                    self.pacing_gain = self.cruise_gain(rtt);
                }
            }
            Mode::ProbeRtt => {
                if self.probe_rtt_until.is_some_and(|t| ack.now >= t) {
                    self.min_rtt_stamp = Some(ack.now);
                    self.cwnd = self.cwnd.max(self.saved_cwnd);
                    self.enter_probe_bw(ack.now);
                }
            }
        }
    }

    /// Pacing gain while cruising: 1 while the standing queue is within the
    /// target, less while it is above, so the excess drains in about a
    /// round trip. Every delay-based flow on the bottleneck sees the same
    /// queue and slows in proportion to its rate: together they hold the
    /// queue near the target instead of each pacing at a rate estimate
    /// whose sum exceeds the link (which fills the queue up to the window).
    fn cruise_gain(&self, base: Duration) -> f64 {
        let excess = self
            .queue_delay()
            .map_or(Duration::ZERO, |q| q.saturating_sub(TARGET_QUEUE_DELAY));
        let base = base.as_secs_f64().max(0.001);
        (1.0 - excess.as_secs_f64() / base).max(MIN_CRUISE_GAIN)
    }

    /// The loss rate the pacing rate makes up for: the rate model counts
    /// delivered bytes, so on a path that loses a fraction p at random,
    /// pacing at the delivery rate sends only (1 − p) of what the path
    /// carries — and a 1.25 probe, delivering 1.25 (1 − p), cannot raise
    /// the estimate at all once p reaches 20 %. While the queue is within
    /// the target the loss is not congestion, so the controller sends
    /// `rate / (1 − p)`; with a standing queue (or in startup) it does not.
    fn random_loss(&self) -> f64 {
        if self.mode == Mode::Resume {
            return self.loss_rate.clamp(0.0, MAX_LOSS_COMPENSATION);
        }
        let queue_low = self.queue_delay().is_some_and(|q| q <= TARGET_QUEUE_DELAY);
        if self.mode == Mode::ProbeBw && queue_low {
            self.loss_rate.clamp(0.0, MAX_LOSS_COMPENSATION)
        } else {
            0.0
        }
    }

    /// How long the queue may stay up before another flow is assumed.
    fn compete_after(&self) -> Duration {
        let base = self.min_rtt.unwrap_or_default();
        COMPETE_AFTER.max(base * COMPETE_AFTER_RTTS)
    }

    /// The window cap of a competing-mode check (see [`CHECK_BDP_FRACTION`]).
    fn check_cap(&self) -> f64 {
        let bdp = self.bdp().unwrap_or(0) as f64 * CHECK_BDP_FRACTION;
        bdp.max(self.min_window() as f64)
    }

    /// Switches between delay mode and competing mode.
    fn update_compete(&mut self, ack: &AckEvent<'_>) {
        let base = self.min_rtt.unwrap_or(self.srtt);
        match &mut self.compete {
            None => {
                let held = self
                    .last_low_queue
                    .is_some_and(|t| ack.now.saturating_duration_since(t) > self.compete_after());
                if self.mode == Mode::ProbeBw && held {
                    let cwnd = ack
                        .bytes_in_flight
                        .max((self.btlbw * self.srtt.as_secs_f64()) as u64)
                        .max(self.min_window());
                    // A flow that never had more than its current rate has
                    // not found its share (it joined a queue another flow
                    // holds): it starts competing in slow start, as TCP would.
                    let slow_start =
                        !self.competed && self.peak_btlbw <= self.btlbw * SLOW_START_PEAK_RATIO;
                    self.competed = true;
                    tracing::debug!(
                        target: "vfer::cc",
                        "queue held {:?} above {:?} by another flow: competing from {} bytes{} (rate {:.1}, peak {:.1} Mbit/s)",
                        self.compete_after(),
                        TARGET_QUEUE_DELAY,
                        cwnd,
                        if slow_start { " in slow start" } else { "" },
                        self.btlbw * 8e-6,
                        self.peak_btlbw * 8e-6
                    );
                    self.compete = Some(Compete::enter(ack.now, cwnd as f64, self.mtu, slow_start));
                }
            }
            Some(c) => {
                let queue = ack.rtt_updated.then_some(self.last_queue);
                let verdict = c.on_ack(ack.now, ack.acked_bytes, self.mtu, self.srtt, base, queue);
                if verdict == Verdict::Leave {
                    tracing::debug!(target: "vfer::cc", "queue drained: back to delay mode");
                    self.compete = None;
                    self.last_low_queue = Some(ack.now);
                    self.min_rtt_stamp = Some(ack.now);
                    self.enter_probe_bw(ack.now);
                }
            }
        }
    }

    fn enter_probe_bw(&mut self, now: Instant) {
        // Start in a cruising phase (not the probe), like BBR's random start.
        self.enter_probe_bw_at(2 + (self.round as usize % 6));
        self.cycle_stamp = Some(now);
    }

    /// Enters ProbeBw at phase `cycle` of the gain cycle.
    fn enter_probe_bw_at(&mut self, cycle: usize) {
        self.mode = Mode::ProbeBw;
        self.cwnd_gain = CWND_GAIN;
        self.cycle = cycle;
        self.pacing_gain = self.phase_gain();
    }

    /// Pacing gain of the current phase of the probing cycle: the probe's
    /// is cut on long paths (see [`PROBE_QUEUE`]).
    fn phase_gain(&self) -> f64 {
        let gain = PROBE_GAINS[self.cycle];
        let base = self.min_rtt.map_or(0.0, |d| d.as_secs_f64());
        if gain <= 1.0 || base <= 0.0 {
            return gain;
        }
        (1.0 + PROBE_QUEUE.as_secs_f64() / base).clamp(MIN_PROBE_GAIN, gain)
    }

    fn update_cwnd(&mut self, ack: &AckEvent<'_>) {
        if self.mode == Mode::ProbeRtt {
            let half_bdp = self.bdp().unwrap_or(0) / 2;
            self.cwnd = half_bdp.max(self.min_window());
            return;
        }
        let target = match self.bdp() {
            Some(bdp) => {
                // Plus room for acknowledgements that arrive in bursts (delayed
                // ACKs, timer granularity, GRO): ACK_AGGREGATION of sending.
                let slack = (self.btlbw * ACK_AGGREGATION.as_secs_f64()) as u64;
                ((bdp as f64 * self.cwnd_gain) as u64 + slack).max(self.min_window())
            }
            None => self.cwnd + ack.acked_bytes,
        };
        if self.pipe_filled {
            self.cwnd = (self.cwnd + ack.acked_bytes).min(target);
        } else if self.cwnd < target || ack.delivered < INITIAL_WINDOW_PACKETS * self.mtu {
            self.cwnd += ack.acked_bytes;
        }
        self.cwnd = self.cwnd.max(self.min_window());
    }
}

impl Controller for Vfer {
    fn on_sent(&mut self, _now: Instant, _bytes: u64, _in_flight: u64) {}

    fn on_ack(&mut self, ack: &AckEvent<'_>) {
        if self.initial_rate == 0.0 && ack.rtt.has_sample() {
            let srtt = ack.rtt.smoothed().as_secs_f64().max(0.001);
            self.initial_rate = (INITIAL_WINDOW_PACKETS * self.mtu) as f64 / srtt;
        }
        if self.saved_cwnd > 0 && self.mode != Mode::ProbeRtt {
            // First ACK after a silence: resume with the window we had.
            self.cwnd = self.cwnd.max(self.saved_cwnd);
            self.saved_cwnd = 0;
        }
        self.srtt = ack.rtt.smoothed();
        if let (Some(_), Some(last)) = (&self.compete, self.last_ack) {
            self.time_competing += ack.now.saturating_duration_since(last);
        }
        self.last_ack = Some(ack.now);
        self.update_rtt(ack);
        if self.last_queue <= TARGET_QUEUE_DELAY {
            self.round_acked_low += ack.acked_bytes;
        }
        self.update_bw(ack);
        self.check_startup_delay(ack);
        self.update_mode(ack);
        self.update_cwnd(ack);
        self.update_compete(ack);
        if let Some(c) = &self.compete {
            // Leaving competing mode resumes from the window it reached.
            self.cwnd = (c.window(f64::MAX) as u64).max(self.min_window());
        }
    }

    fn on_loss(&mut self, now: Instant, lost: u64, newest_lost_sent: Instant) {
        // In delay mode loss is not the congestion signal: the rate follows
        // delivery, which already excludes lost bytes. Competing, a loss
        // while the queue stands is the buffer overflowing, as for TCP.
        if self.last_queue <= TARGET_QUEUE_DELAY {
            // With the queue within the target, the loss was not the queue
            // overflowing: it counts toward the random loss rate.
            self.round_lost += lost;
        }
        let congestive = self.last_queue > LOW_QUEUE_DELAY;
        if let Some(c) = &mut self.compete {
            let before = c.window(f64::MAX);
            c.on_loss(now, newest_lost_sent, congestive, self.mtu);
            if c.window(f64::MAX) < before {
                tracing::debug!(target: "vfer::cc", "congestion: window {before:.0} -> {:.0}", c.window(f64::MAX));
            }
        }
    }

    fn on_persistent_congestion(&mut self, _now: Instant) {
        self.compete = None;
        // The path went silent: restart from a small window but keep the
        // model, so a short blackout does not cost a full startup.
        self.saved_cwnd = self.saved_cwnd.max(self.cwnd);
        self.cwnd = self.min_window();
    }

    fn window(&self) -> u64 {
        match &self.compete {
            Some(c) => (c.window(self.check_cap()) as u64).max(self.min_window()),
            None => self.cwnd,
        }
    }

    fn pacing_rate(&self) -> u64 {
        if self.compete.is_some() {
            let srtt = self.srtt.as_secs_f64().max(0.001);
            return (self.window() as f64 * compete::PACING_GAIN / srtt).max(1.0) as u64;
        }
        let bw = if self.model_bw() > 0.0 {
            self.model_bw()
        } else if self.initial_rate > 0.0 {
            self.initial_rate
        } else {
            // No RTT yet: the initial window over an assumed 10 ms.
            (INITIAL_WINDOW_PACKETS * self.mtu * 100) as f64
        };
        (bw * self.pacing_gain / (1.0 - self.random_loss())).max(1.0) as u64
    }

    fn set_mtu(&mut self, mtu: u64) {
        self.mtu = mtu;
    }

    fn name(&self) -> &'static str {
        "vfer"
    }

    fn time_competing(&self) -> Duration {
        self.time_competing
    }

    fn path_estimate(&self) -> Option<PathHint> {
        // Only a model past start-up is worth remembering; a transfer that
        // ended in start-up measured its own ramp, not the path.
        if !self.pipe_filled || matches!(self.mode, Mode::Resume | Mode::Startup) {
            return None;
        }
        // Competing, the rate is a share of a queue another flow holds.
        if self.competed {
            return None;
        }
        let rate = self.peak_btlbw.max(self.btlbw);
        PathHint::new(rate as u64, self.min_rtt?, self.loss_rate.clamp(0.0, 0.49))
    }

    fn path_hint_held(&self) -> Option<bool> {
        self.hint.map(|_| self.hint_held.unwrap_or(true))
    }
}

#[cfg(test)]
#[path = "vfer_tests.rs"]
mod tests;
