//! A set of disjoint half-open `u64` ranges: received packet numbers,
//! acknowledged stream bytes, bytes waiting for retransmission.

use std::collections::VecDeque;
use std::ops::Range;

/// Disjoint, non-adjacent half-open ranges, kept merged and sorted.
///
/// A sorted `VecDeque` rather than a `BTreeMap`: the sets hold a handful of
/// ranges almost always, grow at the high end and shrink at the low end
/// (both O(1) here, where a B-tree allocated and rebalanced per packet and
/// showed in the sender's profile), and binary search finds a range in
/// the middle. Every set that a peer can grow is bounded by its owner
/// (packet numbers by `truncate_low`, stream pieces by the window and
/// `RecvBuffer::max_pieces`), so a middle insertion moves few entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeSet {
    /// (start, end), sorted by start; `end` of one < `start` of the next.
    v: VecDeque<(u64, u64)>,
}

impl RangeSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// True when the set holds nothing.
    pub fn is_empty(&self) -> bool {
        self.v.is_empty()
    }

    /// Number of disjoint ranges.
    pub fn len(&self) -> usize {
        self.v.len()
    }

    /// Adds `r`, merging with neighbours. Returns how many new values were added.
    pub fn insert(&mut self, r: Range<u64>) -> u64 {
        if r.start >= r.end {
            return 0;
        }
        // Fast path, the common case for packet numbers and stream bytes
        // arriving in order: `r` extends the highest range or lies beyond it.
        match self.v.back_mut() {
            None => {
                self.v.push_back((r.start, r.end));
                return r.end - r.start;
            }
            Some(last) if r.start > last.1 => {
                self.v.push_back((r.start, r.end));
                return r.end - r.start;
            }
            Some(last) if r.start >= last.0 && r.end >= last.1 => {
                let added = r.end - last.1;
                last.1 = r.end;
                return added;
            }
            Some(_) => {}
        }
        // Ranges i..j touch or overlap `r` (adjacent ones merge too).
        let i = self.v.partition_point(|&(_, e)| e < r.start);
        let j = self.v.partition_point(|&(s, _)| s <= r.end);
        if i == j {
            self.v.insert(i, (r.start, r.end));
            return r.end - r.start;
        }
        let start = r.start.min(self.v[i].0);
        let end = r.end.max(self.v[j - 1].1);
        let absorbed: u64 = self.v.range(i..j).map(|&(s, e)| e - s).sum();
        self.v[i] = (start, end);
        self.v.drain(i + 1..j);
        (end - start) - absorbed
    }

    /// Removes `r` from the set.
    pub fn remove(&mut self, r: Range<u64>) {
        if r.start >= r.end {
            return;
        }
        // Ranges i..j overlap `r`.
        let i = self.v.partition_point(|&(_, e)| e <= r.start);
        let j = self.v.partition_point(|&(s, _)| s < r.end);
        if i >= j {
            return;
        }
        let (first_start, _) = self.v[i];
        let (_, last_end) = self.v[j - 1];
        let left = (first_start < r.start).then_some((first_start, r.start));
        let right = (last_end > r.end).then_some((r.end, last_end));
        match (left, right) {
            (Some(a), Some(b)) => {
                self.v[i] = a;
                if j - i >= 2 {
                    self.v[i + 1] = b;
                    self.v.drain(i + 2..j);
                } else {
                    self.v.insert(i + 1, b);
                }
            }
            (Some(a), None) | (None, Some(a)) => {
                self.v[i] = a;
                self.v.drain(i + 1..j);
            }
            (None, None) => {
                self.v.drain(i..j);
            }
        }
    }

    /// The range holding `v`, as an index, if any.
    fn find(&self, x: u64) -> Option<usize> {
        let k = self.v.partition_point(|&(s, _)| s <= x);
        (k > 0).then(|| k - 1)
    }

    /// Does the set contain `v`? (For the model test.)
    #[cfg(test)]
    pub fn contains(&self, v: u64) -> bool {
        self.find(v).is_some_and(|k| self.v[k].1 > v)
    }

    /// Is all of `r` in the set?
    pub fn contains_range(&self, r: Range<u64>) -> bool {
        r.start >= r.end || self.find(r.start).is_some_and(|k| self.v[k].1 >= r.end)
    }

    /// The lowest range.
    pub fn first(&self) -> Option<Range<u64>> {
        self.v.front().map(|&(s, e)| s..e)
    }

    /// The highest range.
    pub fn last(&self) -> Option<Range<u64>> {
        self.v.back().map(|&(s, e)| s..e)
    }

    /// Removes and returns the lowest range.
    pub fn pop_first(&mut self) -> Option<Range<u64>> {
        self.v.pop_front().map(|(s, e)| s..e)
    }

    /// Drops the lowest ranges until at most `max` remain.
    pub fn truncate_low(&mut self, max: usize) {
        let excess = self.v.len().saturating_sub(max);
        self.v.drain(..excess);
    }

    /// Ranges from highest to lowest.
    pub fn iter_rev(&self) -> impl Iterator<Item = Range<u64>> + '_ {
        self.v.iter().rev().map(|&(s, e)| s..e)
    }

    /// Ranges from lowest to highest. (For tests.)
    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = Range<u64>> + '_ {
        self.v.iter().map(|&(s, e)| s..e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn merges() {
        let mut s = RangeSet::new();
        assert_eq!(s.insert(0..5), 5);
        assert_eq!(s.insert(10..15), 5);
        assert_eq!(s.insert(5..10), 5);
        assert_eq!(s.len(), 1);
        assert_eq!(s.first(), Some(0..15));
        assert_eq!(s.insert(3..20), 5);
        s.remove(4..6);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0..4, 6..20]);
    }

    #[test]
    fn truncate_and_pop_drop_the_lowest() {
        let mut s = RangeSet::new();
        for k in 0..10u64 {
            s.insert(k * 10..k * 10 + 5);
        }
        s.truncate_low(3);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![70..75, 80..85, 90..95]);
        assert_eq!(s.pop_first(), Some(70..75));
        assert_eq!(s.first(), Some(80..85));
        assert_eq!(s.last(), Some(90..95));
        assert_eq!(s.iter_rev().next(), Some(90..95));
        s.truncate_low(5);
        assert_eq!(s.len(), 2);
    }

    proptest! {
        #[test]
        fn matches_model(ops in proptest::collection::vec((any::<bool>(), 0u64..200, 0u64..30), 0..60)) {
            let mut s = RangeSet::new();
            let mut model = BTreeSet::new();
            for (ins, start, len) in ops {
                let r = start..start + len;
                if ins {
                    let added = s.insert(r.clone());
                    let before = model.len();
                    model.extend(r);
                    prop_assert_eq!(added as usize, model.len() - before);
                } else {
                    s.remove(r.clone());
                    for v in r { model.remove(&v); }
                }
                let flat: BTreeSet<u64> = s.iter().flatten().collect();
                prop_assert_eq!(&flat, &model);
                for v in 0..240 {
                    prop_assert_eq!(s.contains(v), model.contains(&v));
                }
                for (a, b) in [(start, start + len), (0, start), (start / 2, start + 3)] {
                    let all = (a..b).all(|v| model.contains(&v));
                    prop_assert_eq!(s.contains_range(a..b), all, "{}..{}", a, b);
                }
                // Ranges are disjoint and non-adjacent.
                let v: Vec<_> = s.iter().collect();
                for w in v.windows(2) { prop_assert!(w[0].end < w[1].start); }
            }
        }
    }
}
