//! A deterministic simulated network in virtual time, for testing the VFER
//! transport: whole transfers through lossy, slow, reordering links in a
//! fraction of their real duration, with the same result for the same seed.
//!
//! - [`LinkConfig`] / [`Link`]: one direction of a link (delay, jitter,
//!   random and Gilbert-Elliott loss, reordering, duplication, a
//!   rate-limited bottleneck with a drop-tail queue, blackouts), sans-IO.
//! - [`Node`]: what an endpoint must implement to be driven.
//! - [`Network`]: nodes and links advanced event by event (two-node
//!   [`Network::pair`], shared-bottleneck [`Network::dumbbell`], or any
//!   topology via `add_node` / `add_link` / `connect`).
//! - [`TestNode`]: a constant-rate sender / recorder / echo for checking
//!   the simulator itself.
//! - [`TcpNode`]: a loss-based AIMD (TCP NewReno-like) bulk flow, the
//!   competitor for "fair share beside TCP" tests.
//!
//! Written here rather than on `str0m-netem` because that crate counts
//! datagrams still propagating as queue occupancy (a 100 Mbit/s, 100 ms
//! path would need a "queue" of one BDP just to carry traffic), applies the
//! rate after the delay, copies every datagram, has only every-Nth
//! reordering, no blackouts and no statistics, and calls `Instant::now()`.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use vfer::transport::sim::{LinkConfig, Network, TestNode};
//!
//! let start = Instant::now();
//! let link = LinkConfig::wan(10_000_000, Duration::from_millis(100), 0.01);
//! let sender = TestNode::at_rate(start, 5_000_000, 1000, 1000);
//! let mut net = Network::pair(start, 42, sender, TestNode::sink(start), link.clone(), link)?;
//! net.run_until(Duration::from_secs(10), |n| n.node(0).finished_sending())?;
//! net.run_for(Duration::from_secs(1))?;
//! let got = net.node(1).arrivals().len();
//! assert!(got > 950 && got < 1000);
//! # Ok::<(), vfer::transport::sim::SimError>(())
//! ```

mod config;
mod link;
mod network;
mod nodes;
mod rng;
mod tcp;
#[cfg(test)]
mod tests;

pub use config::{bdp_bytes, GilbertElliott, LinkConfig};
pub use link::{Link, LinkStats, QueueSample};
pub use network::{FlowStats, LinkId, Network, Node, NodeId, DEFAULT_MAX_EVENTS_PER_INSTANT};
pub use nodes::{Arrival, TestNode};
pub use rng::{splitmix64, Rng};
pub use tcp::{TcpNode, TcpReceiver, TcpSender};

use std::time::Duration;

/// What can go wrong building or running a simulation.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SimError {
    /// A [`LinkConfig`] failed validation.
    #[error("invalid link configuration: {0}")]
    InvalidConfig(&'static str),
    /// A node id that does not exist.
    #[error("unknown node {0}")]
    UnknownNode(NodeId),
    /// A link id that does not exist.
    #[error("unknown link {0}")]
    UnknownLink(LinkId),
    /// A node transmitted but was never connected.
    #[error("node {0} transmitted but has no route")]
    NoRoute(NodeId),
    /// Too many events at one virtual instant: a node's timer never moves
    /// forward, or it transmits without end.
    #[error("livelock: {events} events at virtual time {at:?} without time advancing")]
    Livelock {
        /// Virtual time since start where it got stuck.
        at: Duration,
        /// Events processed at that instant.
        events: u64,
    },
    /// The virtual-time limit passed before the condition held.
    #[error("deadline: condition still false at virtual time {elapsed:?}")]
    Deadline {
        /// Virtual time since start.
        elapsed: Duration,
    },
    /// No timers and nothing in flight: the condition can never become true.
    #[error("network idle at virtual time {elapsed:?} and condition still false")]
    Idle {
        /// Virtual time since start.
        elapsed: Duration,
    },
}
