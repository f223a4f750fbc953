//! Tests of the simulator itself: each impairment measured against its
//! configuration, plus the harness's routing, timing and error paths.

use std::time::{Duration, Instant};

use super::*;

const MS: Duration = Duration::from_millis(1);

fn link(config: LinkConfig, seed: u64) -> (Link, Instant) {
    let start = Instant::now();
    (Link::new(config, seed, start).unwrap(), start)
}

/// Sends `n` datagrams of `size` bytes, one every `gap`, each tagged with
/// its index, draining deliveries as it goes; returns (arrival, index) pairs.
fn stream(l: &mut Link, start: Instant, n: u64, size: usize, gap: Duration) -> Vec<(Instant, u64)> {
    let mut out = Vec::new();
    for i in 0..n {
        let now = start + gap * i as u32;
        drain(l, now, &mut out);
        l.send_tagged(now, vec![0; size], i);
    }
    drain(
        l,
        start + gap * n as u32 + Duration::from_secs(100),
        &mut out,
    );
    out
}

fn drain(l: &mut Link, until: Instant, out: &mut Vec<(Instant, u64)>) {
    while let Some(t) = l.poll_timeout().filter(|&t| t <= until) {
        while let Some((tag, _)) = l.poll_deliver_tagged(t) {
            out.push((t, tag));
        }
    }
}

fn pair(seed: u64, ab: LinkConfig, ba: LinkConfig, sender: TestNode) -> Network<TestNode> {
    Network::pair(start(), seed, sender, TestNode::sink(start()), ab, ba).unwrap()
}

thread_local! {
    static START: Instant = Instant::now();
}

/// One fixed origin per test thread, shared by the network and its nodes.
fn start() -> Instant {
    START.with(|s| *s)
}

#[test]
fn random_loss_rate_matches_configuration() {
    let (mut l, t0) = link(LinkConfig::ideal(10 * MS).loss(0.05), 1);
    let got = stream(&mut l, t0, 200_000, 100, Duration::from_micros(10));
    let st = *l.stats();
    let loss = st.dropped_loss as f64 / st.sent as f64;
    assert!((loss - 0.05).abs() < 0.0025, "loss {loss}");
    assert_eq!(got.len() as u64, st.sent - st.dropped_loss);
    assert_eq!(st.delivered, got.len() as u64);
}

#[test]
fn gilbert_elliott_gives_mean_loss_and_burst_length() {
    let ge = GilbertElliott::bursty(0.05, 4.0);
    let (mut l, t0) = link(LinkConfig::ideal(MS).gilbert_elliott(ge), 2);
    let n = 200_000;
    let got = stream(&mut l, t0, n, 100, Duration::from_micros(10));
    let mut received = vec![false; n as usize];
    for &(_, i) in &got {
        received[i as usize] = true;
    }
    let lost = received.iter().filter(|r| !**r).count();
    let bursts = received.windows(2).filter(|w| w[0] && !w[1]).count();
    let loss = lost as f64 / n as f64;
    let mean_burst = lost as f64 / bursts as f64;
    assert!((loss - 0.05).abs() < 0.005, "loss {loss}");
    assert!((mean_burst - 4.0).abs() < 0.3, "mean burst {mean_burst}");
}

#[test]
fn idle_link_delay_is_propagation_plus_serialization_plus_queueing() {
    // 8 Mbit/s: 1000 bytes take exactly 1 ms to serialize.
    let (mut l, t0) = link(LinkConfig::ideal(20 * MS).rate(8_000_000, 100_000), 3);
    for _ in 0..5 {
        l.send(t0, vec![0; 1000]);
    }
    for k in 1..=5u32 {
        let expect = t0 + 20 * MS + k * MS;
        assert_eq!(l.poll_timeout(), Some(expect));
        assert!(l.poll_deliver(expect - Duration::from_nanos(1)).is_none());
        assert_eq!(l.poll_deliver(expect).map(|d| d.len()), Some(1000));
    }
    let waits: Vec<_> = l.queue_samples().iter().map(|s| s.delay).collect();
    assert_eq!(waits, (0..5u32).map(|k| k * MS).collect::<Vec<_>>());
    assert_eq!(l.stats().max_queue_delay, 4 * MS);
    assert_eq!(l.stats().max_queue_bytes, 4000);
    assert_eq!(l.queue_delay_quantile(0.5, Duration::ZERO), Some(2 * MS));
}

#[test]
fn drop_tail_queue_holds_exactly_its_limit() {
    let (mut l, t0) = link(LinkConfig::ideal(MS).rate(8_000_000, 10_000), 4);
    for _ in 0..20 {
        l.send(t0, vec![0; 1000]);
    }
    assert_eq!(l.stats().dropped_queue, 10);
    assert_eq!(l.in_flight(), 10);
    // Once one datagram has left, exactly one more fits.
    l.send(t0 + MS, vec![0; 1000]);
    l.send(t0 + MS, vec![0; 1000]);
    assert_eq!(l.stats().dropped_queue, 11);
}

#[test]
fn bottleneck_rate_is_respected_and_overload_overflows_queue() {
    // Offer 20 Mbit/s for 2 s into a 10 Mbit/s link with a 50 kB queue.
    let rate = 10_000_000;
    let cfg = LinkConfig::ideal(10 * MS).rate(rate, 50_000);
    let sender = TestNode::at_rate(start(), 2 * rate, 1250, 4000);
    let mut net = pair(5, cfg, LinkConfig::ideal(10 * MS), sender);
    net.run_until(Duration::from_secs(10), |n| {
        n.node(0).finished_sending() && n.link(0).in_flight() == 0
    })
    .unwrap();
    let arrivals = net.node(1).arrivals();
    let (first, last) = (arrivals[0].arrived, arrivals[arrivals.len() - 1].arrived);
    let bits = (arrivals.len() - 1) as f64 * 1250.0 * 8.0;
    let measured = bits / (last - first).as_secs_f64();
    assert!(
        (measured / rate as f64 - 1.0).abs() < 0.01,
        "rate {measured}"
    );
    let st = net.link(0).stats();
    let dropped = st.dropped_queue as f64 / st.sent as f64;
    assert!((0.45..0.55).contains(&dropped), "overflow {dropped}");
    // The queue never holds more than 50 kB: 40 ms at 10 Mbit/s.
    assert!(st.max_queue_delay <= 40 * MS, "{:?}", st.max_queue_delay);
    assert!(st.max_queue_delay >= 38 * MS, "{:?}", st.max_queue_delay);
}

#[test]
fn lost_datagrams_still_use_bottleneck_capacity() {
    // Saturating load with 10% loss on the wire: goodput is rate × 0.9.
    let rate = 10_000_000;
    let cfg = LinkConfig::ideal(10 * MS).rate(rate, 20_000).loss(0.1);
    let sender = TestNode::at_rate(start(), rate, 1250, 10_000);
    let mut net = pair(6, cfg, LinkConfig::ideal(10 * MS), sender);
    net.run_for(Duration::from_secs(11)).unwrap();
    let got = net.node(1).arrivals().len() as f64;
    assert!((got / 10_000.0 - 0.9).abs() < 0.01, "{got}");
    assert_eq!(net.link(0).stats().dropped_queue, 0);
}

#[test]
fn duplication_rate_matches_configuration() {
    let (mut l, t0) = link(LinkConfig::ideal(MS).duplicate(0.1), 7);
    let got = stream(&mut l, t0, 100_000, 100, Duration::from_micros(10));
    let st = *l.stats();
    let dup = st.duplicated as f64 / st.sent as f64;
    assert!((dup - 0.1).abs() < 0.01, "dup {dup}");
    assert_eq!(got.len() as u64, st.sent + st.duplicated);
}

#[test]
fn reordering_reorders_and_jitter_alone_does_not() {
    let cfg = LinkConfig::ideal(10 * MS).jitter(5 * MS);
    let (mut l, t0) = link(cfg.clone(), 8);
    let got = stream(&mut l, t0, 20_000, 100, Duration::from_micros(100));
    assert!(got.windows(2).all(|w| w[0].1 < w[1].1), "jitter reordered");
    let spread: Vec<_> = got
        .iter()
        .map(|&(t, i)| t - (t0 + Duration::from_micros(100) * i as u32))
        .collect();
    assert!(spread.iter().all(|&d| d >= 10 * MS));
    assert!(spread.iter().any(|&d| d > 14 * MS), "no jitter seen");

    let (mut l, t0) = link(cfg.reorder(0.05, 3 * MS), 8);
    let got = stream(&mut l, t0, 20_000, 100, Duration::from_micros(100));
    assert_eq!(got.len(), 20_000);
    // Count datagrams that arrive after a higher-numbered one.
    let mut max_seen = 0;
    let mut late = 0;
    for &(_, i) in &got {
        if i < max_seen {
            late += 1;
        }
        max_seen = max_seen.max(i);
    }
    let frac = late as f64 / 20_000.0;
    assert!((0.04..0.06).contains(&frac), "reordered {frac}");
    let reordered = l.stats().reordered as usize;
    assert!(
        late <= reordered && late * 10 >= reordered * 9,
        "{late} of {reordered}"
    );
}

#[test]
fn blackout_drops_everything_in_its_window() {
    let cfg = LinkConfig::ideal(50 * MS).blackout(Duration::from_secs(1), Duration::from_secs(2));
    let sender = TestNode::sender(start(), MS, 100, 3000);
    let mut net = pair(9, cfg, LinkConfig::ideal(50 * MS), sender);
    net.run_for(Duration::from_secs(4)).unwrap();
    let arrivals = net.node(1).arrivals();
    let window = Duration::from_secs(1)..Duration::from_secs(2);
    assert!(arrivals.iter().all(|a| !window.contains(&a.arrived)));
    assert!(arrivals.iter().all(|a| !window.contains(&a.sent)));
    // Sent in [0, 950 ms) and [2 s, 3 s): everything else is sent, or
    // would arrive, in the window.
    assert_eq!(arrivals.len(), 950 + 1000);
    assert_eq!(net.link(0).stats().dropped_blackout, 1050);
}

#[test]
fn echo_round_trip_takes_both_delays() {
    let sender = TestNode::sender(start(), 10 * MS, 100, 5);
    let mut net = Network::pair(
        start(),
        10,
        sender,
        TestNode::echo(start()),
        LinkConfig::ideal(30 * MS),
        LinkConfig::ideal(20 * MS),
    )
    .unwrap();
    let took = net
        .run_until(Duration::from_secs(1), |n| n.node(0).arrivals().len() == 5)
        .unwrap();
    assert_eq!(took, 90 * MS);
    for a in net.node(0).arrivals() {
        assert_eq!(a.arrived - a.sent, 50 * MS);
    }
    assert_eq!(net.flow(0).delivered, 5);
    assert_eq!(net.flow(1).delivered, 5);
}

#[test]
fn same_seed_same_trace_other_seed_other_trace() {
    let cfg = LinkConfig::wan(50_000_000, 40 * MS, 0.02)
        .jitter(MS)
        .reorder(0.01, 2 * MS)
        .duplicate(0.01)
        .gilbert_elliott(GilbertElliott::bursty(0.01, 3.0));
    let run = |seed| {
        let sender = TestNode::at_rate(start(), 60_000_000, 1400, 20_000);
        let mut net = Network::pair(
            start(),
            seed,
            sender,
            TestNode::echo(start()),
            cfg.clone(),
            cfg.clone(),
        )
        .unwrap();
        net.run_for(Duration::from_secs(5)).unwrap();
        (
            net.trace_hash(),
            *net.link(0).stats(),
            *net.link(1).stats(),
            net.node(0).arrivals().to_vec(),
        )
    };
    let a = run(11);
    assert_eq!(a, run(11));
    assert_ne!(a.0, run(12).0);
    assert!(
        a.1.dropped_loss > 0 && a.1.dropped_queue > 0 && a.1.duplicated > 0 && a.1.reordered > 0
    );
}

#[test]
fn dumbbell_shares_one_queue_and_routes_each_flow() {
    let rate = 10_000_000;
    let flows = vec![
        (
            TestNode::at_rate(start(), 8_000_000, 1000, 8000),
            TestNode::sink(start()),
        ),
        (
            TestNode::at_rate(start(), 8_000_000, 1200, 6667),
            TestNode::sink(start()),
        ),
    ];
    let bottleneck = LinkConfig::ideal(20 * MS).rate(rate, 30_000);
    let mut net =
        Network::dumbbell(start(), 13, flows, bottleneck, LinkConfig::ideal(20 * MS)).unwrap();
    net.run_for(Duration::from_secs(9)).unwrap();
    assert!(net.node(1).arrivals().iter().all(|a| a.len == 1000));
    assert!(net.node(3).arrivals().iter().all(|a| a.len == 1200));
    let (f0, f1) = (net.flow(0), net.flow(2));
    assert_eq!(f0.delivered as usize, net.node(1).arrivals().len());
    assert_eq!(f1.delivered as usize, net.node(3).arrivals().len());
    // Together they fill the bottleneck for ~8 s; each gets about half.
    let total = (f0.delivered_bytes + f1.delivered_bytes) as f64 * 8.0 / 8.0;
    assert!((total / rate as f64 - 1.0).abs() < 0.02, "{total}");
    let share = f0.delivered_bytes as f64 / (f0.delivered_bytes + f1.delivered_bytes) as f64;
    assert!((0.4..0.6).contains(&share), "share {share}");
    assert_eq!(net.link(0).stats().sent, f0.sent + f1.sent);
}

/// A node whose timer is always in the past: a livelock the harness must
/// report instead of spinning forever.
struct Stuck(Instant);

impl Node for Stuck {
    fn handle_datagram(&mut self, _: Instant, _: &mut [u8]) {}
    fn handle_timeout(&mut self, _: Instant) {}
    fn poll_transmit(&mut self, _: Instant) -> Option<Vec<u8>> {
        None
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Some(self.0)
    }
}

#[test]
fn timer_in_the_past_is_reported_as_livelock() {
    let t0 = start();
    let mut net = Network::new(t0, 1);
    net.add_node(Stuck(t0));
    net.set_max_events_per_instant(1000);
    let err = net
        .run_until(Duration::from_secs(1), |_| false)
        .unwrap_err();
    assert_eq!(
        err,
        SimError::Livelock {
            at: Duration::ZERO,
            events: 1001
        }
    );
}

#[test]
fn deadline_idle_and_bad_topology_are_errors() {
    let t0 = start();
    let mut net = pair(
        1,
        LinkConfig::ideal(MS),
        LinkConfig::ideal(MS),
        TestNode::sender(t0, MS, 100, 10_000),
    );
    let err = net
        .run_until(Duration::from_secs(2), |_| false)
        .unwrap_err();
    assert_eq!(
        err,
        SimError::Deadline {
            elapsed: Duration::from_secs(2)
        }
    );
    assert_eq!(net.elapsed(), Duration::from_secs(2));

    let mut idle = pair(
        1,
        LinkConfig::ideal(MS),
        LinkConfig::ideal(MS),
        TestNode::sink(t0),
    );
    let err = idle
        .run_until(Duration::from_secs(2), |_| false)
        .unwrap_err();
    assert_eq!(
        err,
        SimError::Idle {
            elapsed: Duration::ZERO
        }
    );

    let mut lonely = Network::new(t0, 1);
    lonely.add_node(TestNode::sender(t0, MS, 100, 1));
    assert_eq!(lonely.run_for(MS), Err(SimError::NoRoute(0)));
    assert_eq!(lonely.connect(0, 5, &[]), Err(SimError::UnknownNode(5)));
    assert_eq!(lonely.connect(0, 0, &[3]), Err(SimError::UnknownLink(3)));
    assert!(lonely
        .add_link(LinkConfig::default().duplicate(2.0))
        .is_err());
}

#[test]
fn moves_75k_full_size_datagrams_quickly() {
    // 100 MB worth of 1400-byte datagrams at 100 Mbit/s, 100 ms RTT, 1% loss.
    let cfg = LinkConfig::wan(100_000_000, 100 * MS, 0.01);
    let sender = TestNode::at_rate(start(), 100_000_000, 1400, 75_000);
    let mut net = pair(14, cfg, LinkConfig::ideal(50 * MS), sender);
    let wall = Instant::now();
    net.run_until(Duration::from_secs(60), |n| {
        n.node(0).finished_sending() && n.link(0).in_flight() == 0
    })
    .unwrap();
    eprintln!(
        "75k datagrams: {:?} wall, {:?} virtual",
        wall.elapsed(),
        net.elapsed()
    );
    let got = net.node(1).arrivals().len() as f64;
    assert!((got / 75_000.0 - 0.99).abs() < 0.002, "{got}");
    assert!(
        (net.elapsed().as_secs_f64() - 8.45).abs() < 0.01,
        "{:?}",
        net.elapsed()
    );
}
