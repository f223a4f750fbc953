//! Congestion control: how fast to send. One trait, one file per algorithm.
//!
//! The default, [`Vfer`], is model-based and delay-aware (see its docs and
//! docs/PROTOCOL.md §3.6); [`FixedRate`] sends at a configured rate for
//! dedicated links.

mod compete;
mod cubic;
mod fixed;
mod vfer;

pub use cubic::Cubic;

pub use fixed::FixedRate;
pub use vfer::Vfer;

use std::time::Instant;

use super::pathcache::PathHint;
use super::recovery::RateSample;
use super::rtt::RttEstimator;

/// What an acknowledgement tells the controller.
#[derive(Debug, Clone, Copy)]
pub struct AckEvent<'a> {
    /// When the ACK arrived.
    pub now: Instant,
    /// Bytes newly acknowledged.
    pub acked_bytes: u64,
    /// Bytes still in flight after this ACK.
    pub bytes_in_flight: u64,
    /// Total bytes delivered so far.
    pub delivered: u64,
    /// The delivery-rate sample of this ACK, if any.
    pub rate: Option<RateSample>,
    /// The RTT estimator, already updated with this ACK's sample.
    pub rtt: &'a RttEstimator,
    /// A new RTT sample came with this ACK.
    pub rtt_updated: bool,
}

/// A congestion controller. Everything it learns arrives through these
/// callbacks; the connection asks it for a window and a pacing rate.
pub trait Controller: Send {
    /// A packet of `bytes` (counted in flight) was sent.
    fn on_sent(&mut self, now: Instant, bytes: u64, bytes_in_flight: u64);
    /// An ACK acknowledged in-flight packets.
    fn on_ack(&mut self, ack: &AckEvent<'_>);
    /// Packets were declared lost (`lost_bytes` in total, the newest sent at `newest_lost_sent`).
    fn on_loss(&mut self, now: Instant, lost_bytes: u64, newest_lost_sent: Instant);
    /// No ACK for several probe timeouts: the path may have changed.
    fn on_persistent_congestion(&mut self, now: Instant);
    /// Most bytes that may be in flight.
    fn window(&self) -> u64;
    /// Bytes per second to pace at.
    fn pacing_rate(&self) -> u64;
    /// The datagram size in use changed.
    fn set_mtu(&mut self, mtu: u64);
    /// Name shown in statistics (`--json`).
    fn name(&self) -> &'static str;
    /// Time spent competing with a flow that holds the bottleneck's queue
    /// (see [`Vfer`]); zero for controllers without such a mode.
    fn time_competing(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
    /// The controller's model of the path, once worth remembering for the
    /// next transfer (see [`super::pathcache`]).
    fn path_estimate(&self) -> Option<PathHint> {
        None
    }
    /// Whether a path hint given at the start held (`Some(true)`), was
    /// abandoned (`Some(false)`), or none was used (`None`).
    fn path_hint_held(&self) -> Option<bool> {
        None
    }
}

/// Which controller a connection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CcChoice {
    /// The default delay-aware model-based controller.
    Vfer,
    /// A constant rate in bytes per second (`--rate`).
    Fixed(u64),
}

impl CcChoice {
    /// Builds the controller for datagrams of `mtu` bytes, starting from
    /// a remembered path when `hint` is given (only [`Vfer`] uses it).
    pub fn build(self, mtu: u64, hint: Option<PathHint>) -> Box<dyn Controller> {
        match self {
            CcChoice::Vfer => Box::new(match hint {
                Some(h) => Vfer::resume(mtu, h),
                None => Vfer::new(mtu),
            }),
            CcChoice::Fixed(rate) => Box::new(FixedRate::new(rate, mtu)),
        }
    }
}
