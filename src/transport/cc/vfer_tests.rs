//! Unit tests of `vfer.rs`.

use super::*;
use crate::transport::recovery::RateSample;
use crate::transport::rtt::RttEstimator;

const MTU: u64 = 1400;
const LINK: f64 = 12_500_000.0; // 100 Mbit/s
const BASE: Duration = Duration::from_millis(50);
const STEP: Duration = Duration::from_millis(1);

/// Drives the controller with one ACK per millisecond from a fluid
/// model: it delivers what it sends (up to `share` of the link), and
/// every RTT sample is the base plus a queue the test chooses.
struct Harness {
    cc: Vfer,
    rtt: RttEstimator,
    now: Instant,
    delivered: u64,
}

impl Harness {
    fn new() -> Self {
        Harness {
            cc: Vfer::new(MTU),
            rtt: RttEstimator::new(),
            now: Instant::now(),
            delivered: 0,
        }
    }

    fn run(&mut self, time: Duration, queue: Duration, share: f64) {
        let end = self.now + time;
        while self.now < end {
            self.now += STEP;
            let sample = BASE + queue;
            let by_window = self.cc.window() as f64 / sample.as_secs_f64();
            let rate = (self.cc.pacing_rate() as f64)
                .min(by_window)
                .min(LINK * share);
            let acked = (rate * STEP.as_secs_f64()) as u64;
            let in_flight = (rate * sample.as_secs_f64()) as u64;
            self.delivered += acked;
            self.rtt.update(sample, Duration::ZERO);
            self.cc.on_ack(&AckEvent {
                now: self.now,
                acked_bytes: acked,
                bytes_in_flight: in_flight,
                delivered: self.delivered,
                rate: Some(RateSample {
                    delivery_rate: rate,
                    app_limited: false,
                    prior_delivered: self.delivered.saturating_sub(in_flight),
                }),
                rtt: &self.rtt,
                rtt_updated: true,
            });
        }
    }

    fn lose_one(&mut self) {
        let sent = self.now - BASE;
        self.cc.on_loss(self.now, MTU, sent);
    }
}

#[test]
fn random_loss_on_an_empty_queue_costs_no_rate() {
    let mut h = Harness::new();
    h.run(Duration::from_secs(3), Duration::ZERO, 1.0);
    for _ in 0..1000 {
        h.run(Duration::from_millis(10), Duration::ZERO, 1.0);
        h.lose_one();
    }
    assert!(h.cc.time_competing().is_zero());
    let rate = h.cc.pacing_rate() as f64;
    assert!(rate > 0.7 * LINK && rate < 1.3 * LINK, "{rate}");
}

#[test]
fn a_queue_held_above_the_target_is_met_as_cubic_would_and_left_when_it_drains() {
    let mut h = Harness::new();
    h.run(Duration::from_secs(3), Duration::ZERO, 1.0);
    assert!(h.cc.compete.is_none());
    // Another flow fills the queue and takes half the link. Within the
    // first 2 s nothing changes; soon after, the controller competes.
    let held = Duration::from_millis(30);
    h.run(Duration::from_millis(1900), held, 0.5);
    assert!(h.cc.compete.is_none());
    h.run(Duration::from_millis(500), held, 0.5);
    assert!(h.cc.compete.is_some());
    // Found its share before: no slow start. A loss with the queue up
    // is congestion: the window drops to 0.7 of what it was, once per
    // event.
    let before = h.cc.window();
    h.lose_one();
    let after = h.cc.window();
    assert!(
        (after as f64 - 0.7 * before as f64).abs() < MTU as f64,
        "{before} -> {after}"
    );
    h.lose_one();
    assert_eq!(h.cc.window(), after);
    // The queue is the other flow's: the 5 s checks keep finding it.
    h.run(Duration::from_secs(12), held, 0.5);
    assert!(h.cc.compete.is_some());
    // The other flow leaves: the next check sees the queue drain.
    let competed = h.cc.time_competing();
    h.run(Duration::from_secs(6), Duration::ZERO, 1.0);
    assert!(h.cc.compete.is_none());
    assert!(h.cc.time_competing() > competed);
    let competed = h.cc.time_competing();
    h.run(Duration::from_secs(3), Duration::ZERO, 1.0);
    assert_eq!(h.cc.time_competing(), competed);
}

#[test]
fn a_flow_that_joined_a_held_queue_starts_competing_in_slow_start() {
    let mut h = Harness::new();
    // From the start, another flow holds the queue (its level varies)
    // and leaves us 10 %.
    h.run(Duration::from_millis(300), Duration::from_millis(10), 0.1);
    h.run(Duration::from_secs(5), Duration::from_millis(30), 0.1);
    let Some(c) = &h.cc.compete else {
        panic!("not competing after 5 s of a held queue")
    };
    assert!(c.in_slow_start());
}
