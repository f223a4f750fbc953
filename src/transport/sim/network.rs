//! The harness: nodes (sans-IO endpoints) joined by [`Link`]s, driven event
//! by event in virtual time.
//!
//! Each node has one route (to its peer): a list of links its datagrams
//! cross in turn. Several routes may share a link, which is how the
//! shared-bottleneck topology works. Time only moves to the next event (the
//! earliest node timer or link arrival); there is no polling loop.

use std::time::{Duration, Instant};

use super::config::LinkConfig;
use super::link::Link;
use super::rng::splitmix64;
use super::SimError;

/// Index of a node in a [`Network`].
pub type NodeId = usize;
/// Index of a link in a [`Network`].
pub type LinkId = usize;

/// A sans-IO endpoint the simulator can drive (a connection under test, or
/// a simple test sender/receiver).
pub trait Node {
    /// A datagram arrived at `now`.
    fn handle_datagram(&mut self, now: Instant, datagram: &mut [u8]);
    /// Called when `now >= poll_timeout()`.
    fn handle_timeout(&mut self, now: Instant);
    /// Next datagram to send, if any (called repeatedly until `None`).
    fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>>;
    /// Earliest time the node wants `handle_timeout`.
    fn poll_timeout(&self) -> Option<Instant>;
}

impl<T: Node + ?Sized> Node for Box<T> {
    fn handle_datagram(&mut self, now: Instant, datagram: &mut [u8]) {
        (**self).handle_datagram(now, datagram)
    }
    fn handle_timeout(&mut self, now: Instant) {
        (**self).handle_timeout(now)
    }
    fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        (**self).poll_transmit(now)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        (**self).poll_timeout()
    }
}

/// End-to-end counters of one route (one node's datagrams to its peer).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowStats {
    /// Datagrams the source transmitted.
    pub sent: u64,
    /// Bytes the source transmitted.
    pub sent_bytes: u64,
    /// Datagrams handed to the destination.
    pub delivered: u64,
    /// Bytes handed to the destination.
    pub delivered_bytes: u64,
    /// Virtual time (since start) of the first delivery.
    pub first_delivery: Option<Duration>,
    /// Virtual time (since start) of the latest delivery.
    pub last_delivery: Option<Duration>,
}

#[derive(Debug)]
struct Route {
    to: NodeId,
    hops: Vec<LinkId>,
    stats: FlowStats,
}

/// Default limit on events at one virtual instant before reporting a livelock.
pub const DEFAULT_MAX_EVENTS_PER_INSTANT: u64 = 1_000_000;

/// Nodes and links in virtual time. Deterministic for a given seed.
pub struct Network<N> {
    start: Instant,
    now: Instant,
    seed: u64,
    nodes: Vec<N>,
    routes: Vec<Option<Route>>,
    links: Vec<Link>,
    max_events_per_instant: u64,
    events: u64,
    trace: u64,
}

impl<N: Node> Network<N> {
    /// An empty network whose virtual clock starts at `start`.
    pub fn new(start: Instant, seed: u64) -> Self {
        Self {
            start,
            now: start,
            seed,
            nodes: Vec::new(),
            routes: Vec::new(),
            links: Vec::new(),
            max_events_per_instant: DEFAULT_MAX_EVENTS_PER_INSTANT,
            events: 0,
            trace: TRACE_SEED,
        }
    }

    /// Two nodes: `a` (id 0) and `b` (id 1); link 0 carries a→b with
    /// `a_to_b`, link 1 carries b→a with `b_to_a`.
    pub fn pair(
        start: Instant,
        seed: u64,
        a: N,
        b: N,
        a_to_b: LinkConfig,
        b_to_a: LinkConfig,
    ) -> Result<Self, SimError> {
        let mut net = Self::new(start, seed);
        let (a, b) = (net.add_node(a), net.add_node(b));
        let ab = net.add_link(a_to_b)?;
        let ba = net.add_link(b_to_a)?;
        net.connect(a, b, &[ab])?;
        net.connect(b, a, &[ba])?;
        Ok(net)
    }

    /// A dumbbell: for flow `i`, sender `2i` and receiver `2i + 1`. Every
    /// sender's datagrams cross the one shared `bottleneck` (link 0); each
    /// receiver answers over its own `reverse` link (link `1 + i`).
    pub fn dumbbell(
        start: Instant,
        seed: u64,
        flows: Vec<(N, N)>,
        bottleneck: LinkConfig,
        reverse: LinkConfig,
    ) -> Result<Self, SimError> {
        let mut net = Self::new(start, seed);
        let shared = net.add_link(bottleneck)?;
        for (sender, receiver) in flows {
            let (s, r) = (net.add_node(sender), net.add_node(receiver));
            let back = net.add_link(reverse.clone())?;
            net.connect(s, r, &[shared])?;
            net.connect(r, s, &[back])?;
        }
        Ok(net)
    }

    /// Adds a node (it has no route until [`connect`](Self::connect)).
    pub fn add_node(&mut self, node: N) -> NodeId {
        self.nodes.push(node);
        self.routes.push(None);
        self.nodes.len() - 1
    }

    /// Adds a link; its random streams derive from the network seed and its id.
    pub fn add_link(&mut self, config: LinkConfig) -> Result<LinkId, SimError> {
        let id = self.links.len();
        let mut sm = self.seed ^ (id as u64).wrapping_mul(0xA076_1D64_78BD_642F);
        let link = Link::new(config, splitmix64(&mut sm), self.start)?;
        self.links.push(link);
        Ok(id)
    }

    /// Routes everything `from` transmits to `to` through `hops`, in order
    /// (an empty list delivers instantly). Replaces any earlier route.
    pub fn connect(&mut self, from: NodeId, to: NodeId, hops: &[LinkId]) -> Result<(), SimError> {
        for &n in &[from, to] {
            if n >= self.nodes.len() {
                return Err(SimError::UnknownNode(n));
            }
        }
        if let Some(&bad) = hops.iter().find(|&&l| l >= self.links.len()) {
            return Err(SimError::UnknownLink(bad));
        }
        self.routes[from] = Some(Route {
            to,
            hops: hops.to_vec(),
            stats: FlowStats::default(),
        });
        Ok(())
    }

    /// Caps the events processed at one virtual instant; beyond it a run
    /// fails with [`SimError::Livelock`] (a node whose timer never moves
    /// forward, or that transmits without end).
    pub fn set_max_events_per_instant(&mut self, max: u64) {
        self.max_events_per_instant = max;
    }

    /// Runs until `done` holds (checked after every instant) and returns the
    /// virtual time this call took. Fails with [`SimError::Deadline`] if
    /// `limit` of virtual time passes first, or [`SimError::Idle`] if
    /// nothing is left to happen.
    pub fn run_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&Self) -> bool,
    ) -> Result<Duration, SimError> {
        let begin = self.now;
        let end = begin + limit;
        loop {
            self.process_instant()?;
            if done(self) {
                return Ok(self.now - begin);
            }
            match self.next_event() {
                Some(t) if t <= end => self.now = t,
                Some(_) => {
                    self.now = end;
                    return Err(SimError::Deadline {
                        elapsed: self.elapsed(),
                    });
                }
                None => {
                    return Err(SimError::Idle {
                        elapsed: self.elapsed(),
                    })
                }
            }
        }
    }

    /// Runs for exactly `duration` of virtual time (idle periods included).
    pub fn run_for(&mut self, duration: Duration) -> Result<(), SimError> {
        let end = self.now + duration;
        loop {
            self.process_instant()?;
            match self.next_event() {
                Some(t) if t <= end => self.now = t,
                _ => {
                    self.now = end;
                    return self.process_instant();
                }
            }
        }
    }

    /// Current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Virtual time elapsed since the network's start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// A node.
    pub fn node(&self, id: NodeId) -> &N {
        &self.nodes[id]
    }

    /// A node, mutably (e.g. to queue data to send between runs).
    pub fn node_mut(&mut self, id: NodeId) -> &mut N {
        &mut self.nodes[id]
    }

    /// A link (for its stats and queue samples).
    pub fn link(&self, id: LinkId) -> &Link {
        &self.links[id]
    }

    /// A link, mutably (e.g. to change its configuration mid-run).
    pub fn link_mut(&mut self, id: LinkId) -> &mut Link {
        &mut self.links[id]
    }

    /// End-to-end counters of the route starting at node `from`
    /// (default counters if it has none).
    pub fn flow(&self, from: NodeId) -> FlowStats {
        self.routes
            .get(from)
            .and_then(|r| r.as_ref())
            .map(|r| r.stats)
            .unwrap_or_default()
    }

    /// Events processed so far (deliveries, timeouts, transmissions).
    pub fn events(&self) -> u64 {
        self.events
    }

    /// A running hash of every delivery (time, destination, length and
    /// first 64 bytes): equal hashes mean (with overwhelming likelihood)
    /// equal traces. Cheap enough to keep on for 100 MB runs.
    pub fn trace_hash(&self) -> u64 {
        self.trace
    }

    /// Earliest pending node timer or link arrival.
    fn next_event(&self) -> Option<Instant> {
        let timers = self.nodes.iter().filter_map(|n| n.poll_timeout());
        let arrivals = self.links.iter().filter_map(|l| l.poll_timeout());
        timers.chain(arrivals).min()
    }

    /// Handles everything due at `self.now`, repeatedly, until nothing is.
    fn process_instant(&mut self) -> Result<(), SimError> {
        let now = self.now;
        let mut events_here = 0u64;
        loop {
            let before = events_here;
            for l in 0..self.links.len() {
                while let Some((tag, data)) = self.links[l].poll_deliver_tagged(now) {
                    events_here += 1;
                    let (from, hop) = ((tag >> 32) as NodeId, (tag & 0xFFFF_FFFF) as usize + 1);
                    self.forward(from, hop, data);
                    self.check_livelock(events_here)?;
                }
            }
            for n in 0..self.nodes.len() {
                if self.nodes[n].poll_timeout().is_some_and(|t| t <= now) {
                    events_here += 1;
                    self.nodes[n].handle_timeout(now);
                    self.check_livelock(events_here)?;
                }
            }
            for n in 0..self.nodes.len() {
                while let Some(data) = self.nodes[n].poll_transmit(now) {
                    events_here += 1;
                    let route = self.routes[n].as_mut().ok_or(SimError::NoRoute(n))?;
                    route.stats.sent += 1;
                    route.stats.sent_bytes += data.len() as u64;
                    self.forward(n, 0, data);
                    self.check_livelock(events_here)?;
                }
            }
            self.events += events_here - before;
            if events_here == before {
                return Ok(());
            }
        }
    }

    fn check_livelock(&self, events_here: u64) -> Result<(), SimError> {
        if events_here > self.max_events_per_instant {
            return Err(SimError::Livelock {
                at: self.elapsed(),
                events: events_here,
            });
        }
        Ok(())
    }

    /// Puts a datagram of `from`'s route into hop `hop`, or hands it to the
    /// destination after the last hop.
    fn forward(&mut self, from: NodeId, hop: usize, mut data: Vec<u8>) {
        let now = self.now;
        let Some(route) = self.routes[from].as_mut() else {
            return;
        };
        if let Some(&link) = route.hops.get(hop) {
            let tag = ((from as u64) << 32) | hop as u64;
            self.links[link].send_tagged(now, data, tag);
            return;
        }
        let at = now - self.start;
        route.stats.delivered += 1;
        route.stats.delivered_bytes += data.len() as u64;
        route.stats.first_delivery.get_or_insert(at);
        route.stats.last_delivery = Some(at);
        let to = route.to;
        let mut h = mix(self.trace, at.as_nanos() as u64);
        h = mix(h, to as u64);
        h = mix(h, data.len() as u64);
        for chunk in data[..data.len().min(64)].chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            h = mix(h, u64::from_le_bytes(word));
        }
        self.trace = h;
        self.nodes[to].handle_datagram(now, &mut data);
    }
}

const TRACE_SEED: u64 = 0xCBF2_9CE4_8422_2325;

/// Folds one word into the trace hash (FNV-style, a word at a time).
fn mix(hash: u64, word: u64) -> u64 {
    (hash ^ word)
        .wrapping_mul(0x0000_0100_0000_01B3)
        .rotate_left(29)
}
