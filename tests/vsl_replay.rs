//! The replay window against WireGuard's kernel self-test cases and against
//! a plain set-based model.
//!
//! The cases are those of `drivers/net/wireguard/selftest/counter.c` (Linux),
//! re-expressed with our constants: WireGuard's `COUNTER_WINDOW_SIZE` is our
//! `REPLAY_WINDOW` (same construction, 8128 here), and its
//! `REJECT_AFTER_MESSAGES` (first rejected counter) is our `MSGNR_LIMIT + 1`.

use std::collections::HashSet;

use proptest::prelude::*;
use vfer::vsl::{ReplayWindow, MSGNR_LIMIT, REPLAY_WINDOW};

const W: u64 = REPLAY_WINDOW;
const LIM: u64 = W + 1; // T_LIM
const REJECT: u64 = MSGNR_LIMIT + 1; // REJECT_AFTER_MESSAGES

/// `update` with the same answer from `check` beforehand (the opener calls
/// `check` before the MAC and `update` after).
fn t(w: &mut ReplayWindow, n: u64) -> bool {
    let pre = w.check(n);
    let got = w.update(n);
    assert_eq!(pre, got, "check and update disagree on {n}");
    got
}

#[test]
fn wireguard_counter_selftest_sequence() {
    let cases: &[(u64, bool)] = &[
        (0, true),                    // 1
        (1, true),                    // 2
        (1, false),                   // 3
        (9, true),                    // 4
        (8, true),                    // 5
        (7, true),                    // 6
        (7, false),                   // 7
        (LIM, true),                  // 8
        (LIM - 1, true),              // 9
        (LIM - 1, false),             // 10
        (LIM - 2, true),              // 11
        (2, true),                    // 12
        (2, false),                   // 13
        (LIM + 16, true),             // 14
        (3, false),                   // 15
        (LIM + 16, false),            // 16
        (LIM * 4, true),              // 17
        (LIM * 4 - (LIM - 1), true),  // 18
        (10, false),                  // 19
        (LIM * 4 - LIM, false),       // 20
        (LIM * 4 - (LIM + 1), false), // 21
        (LIM * 4 - (LIM - 2), true),  // 22
        (LIM * 4 + 1 - LIM, false),   // 23
        (0, false),                   // 24
        (REJECT, false),              // 25
        (REJECT - 1, true),           // 26
        (REJECT, false),              // 27
        (REJECT - 1, false),          // 28
        (REJECT - 2, true),           // 29
        (REJECT + 1, false),          // 30
        (REJECT + 2, false),          // 31
        (REJECT - 2, false),          // 32
        (REJECT - 3, true),           // 33
        (0, false),                   // 34
    ];
    let mut w = ReplayWindow::new();
    for (i, &(n, expect)) in cases.iter().enumerate() {
        assert_eq!(t(&mut w, n), expect, "WireGuard counter case {}", i + 1);
    }
}

#[test]
fn wireguard_counter_selftest_fill_ascending_then_zero() {
    let mut w = ReplayWindow::new();
    for i in 1..=W {
        assert!(t(&mut w, i), "{i}");
    }
    assert!(t(&mut w, 0));
    assert!(!t(&mut w, 0));
}

#[test]
fn wireguard_counter_selftest_fill_from_two_then_one() {
    let mut w = ReplayWindow::new();
    for i in 2..=W + 1 {
        assert!(t(&mut w, i), "{i}");
    }
    assert!(t(&mut w, 1));
    assert!(!t(&mut w, 0));
}

#[test]
fn wireguard_counter_selftest_descending_to_zero() {
    let mut w = ReplayWindow::new();
    for i in (0..=W).rev() {
        assert!(t(&mut w, i), "{i}");
    }
}

#[test]
fn wireguard_counter_selftest_descending_to_one_then_zero_too_old() {
    let mut w = ReplayWindow::new();
    for i in (1..=W + 1).rev() {
        assert!(t(&mut w, i), "{i}");
    }
    assert!(!t(&mut w, 0));
}

#[test]
fn wireguard_counter_selftest_descending_then_top_then_zero() {
    let mut w = ReplayWindow::new();
    for i in (1..=W).rev() {
        assert!(t(&mut w, i), "{i}");
    }
    assert!(t(&mut w, W + 1));
    assert!(!t(&mut w, 0));
}

#[test]
fn wireguard_counter_selftest_descending_then_zero_then_top() {
    let mut w = ReplayWindow::new();
    for i in (1..=W).rev() {
        assert!(t(&mut w, i), "{i}");
    }
    assert!(t(&mut w, 0));
    assert!(t(&mut w, W + 1));
}

#[test]
fn highest_tracks_the_maximum_accepted() {
    let mut w = ReplayWindow::new();
    assert_eq!(w.highest(), None);
    assert!(w.update(5));
    assert!(w.update(3));
    assert_eq!(w.highest(), Some(5));
    assert!(!w.update(5));
    assert_eq!(w.highest(), Some(5));
}

/// The contract in docs/PROTOCOL.md 1.6: accept iff within the limit, not
/// seen before, and not more than `REPLAY_WINDOW` below the highest.
#[derive(Default)]
struct Model {
    seen: HashSet<u64>,
    max: Option<u64>,
}

impl Model {
    fn accepts(&self, n: u64) -> bool {
        n <= MSGNR_LIMIT && !self.seen.contains(&n) && self.max.is_none_or(|m| n + W >= m)
    }

    fn update(&mut self, n: u64) -> bool {
        let ok = self.accepts(n);
        if ok {
            self.seen.insert(n);
            self.max = Some(self.max.map_or(n, |m| m.max(n)));
        }
        ok
    }
}

/// How the next packet number relates to the highest one so far.
#[derive(Debug, Clone)]
enum Step {
    /// A little ahead (in-order traffic with small gaps).
    Ahead(u64),
    /// Behind, around the window's edge included (reordering, replays).
    Behind(u64),
    /// Far ahead (a burst of loss), sometimes more than the whole ring.
    Jump(u64),
    /// A replay of the i-th number offered so far.
    Repeat(usize),
    /// Near the msgnr limit.
    NearLimit(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0..4u64).prop_map(Step::Ahead),
        4 => (0..W + 200).prop_map(Step::Behind),
        1 => (0..3 * (W + 64)).prop_map(Step::Jump),
        3 => any::<prop::sample::Index>().prop_map(|i| Step::Repeat(i.index(usize::MAX))),
        1 => (0..4u64).prop_map(Step::NearLimit),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn window_matches_set_model(
        start in prop_oneof![Just(0u64), 0..1u64 << 40],
        steps in prop::collection::vec(step(), 1..600),
    ) {
        let mut w = ReplayWindow::new();
        let mut model = Model::default();
        let mut offered: Vec<u64> = Vec::new();
        for s in steps {
            let base = model.max.unwrap_or(start);
            let n = match s {
                Step::Ahead(d) => base.saturating_add(d),
                Step::Behind(d) => base.saturating_sub(d),
                Step::Jump(d) => base.saturating_add(d),
                Step::Repeat(i) if !offered.is_empty() => offered[i % offered.len()],
                Step::Repeat(_) => base,
                Step::NearLimit(d) => MSGNR_LIMIT - 2 + d,
            };
            offered.push(n);
            let expect = model.accepts(n);
            prop_assert_eq!(w.check(n), expect, "check({})", n);
            prop_assert_eq!(w.update(n), model.update(n), "update({})", n);
            prop_assert_eq!(w.highest(), model.max);
        }
    }
}
