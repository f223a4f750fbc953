//! A set of disjoint half-open `u64` ranges: received packet numbers,
//! acknowledged stream bytes, bytes waiting for retransmission.

use std::collections::BTreeMap;
use std::ops::Range;

/// Disjoint, non-adjacent half-open ranges, kept merged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeSet {
    /// start -> end
    map: BTreeMap<u64, u64>,
}

impl RangeSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// True when the set holds nothing.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Number of disjoint ranges.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Adds `r`, merging with neighbours. Returns how many new values were added.
    pub fn insert(&mut self, r: Range<u64>) -> u64 {
        if r.start >= r.end {
            return 0;
        }
        // Fast path, the common case for packet numbers and stream bytes
        // arriving in order: `r` extends the highest range or lies beyond it.
        if let Some(mut last) = self.map.last_entry() {
            let (s, e) = (*last.key(), *last.get());
            if r.start > e {
                self.map.insert(r.start, r.end);
                return r.end - r.start;
            }
            if r.start >= s && r.end >= e {
                *last.get_mut() = r.end;
                return r.end - e;
            }
        }
        let (mut start, mut end) = (r.start, r.end);
        let mut absorbed = 0;
        if let Some((&s, &e)) = self.map.range(..=start).next_back() {
            if e >= end {
                return 0;
            }
            if e >= start {
                absorbed += e - s;
                start = s;
                self.map.remove(&s);
            }
        }
        while let Some((&s, &e)) = self.map.range(start..=end).next() {
            self.map.remove(&s);
            absorbed += e - s;
            end = end.max(e);
        }
        self.map.insert(start, end);
        (end - start) - absorbed
    }

    /// Removes `r` from the set.
    pub fn remove(&mut self, r: Range<u64>) {
        if r.start >= r.end {
            return;
        }
        // Fast path, the common case of forgetting a prefix: only the lowest
        // range is touched (no allocation).
        if let Some(first) = self.map.first_entry() {
            let (s, e) = (*first.key(), *first.get());
            if r.start <= s && r.end <= e {
                if r.end == e {
                    first.remove();
                } else if r.end > s {
                    first.remove();
                    self.map.insert(r.end, e);
                }
                return;
            }
        }
        let mut touched = Vec::new();
        if let Some((&s, &e)) = self.map.range(..r.start).next_back() {
            if e > r.start {
                touched.push((s, e));
            }
        }
        for (&s, &e) in self.map.range(r.start..r.end) {
            touched.push((s, e));
        }
        for (s, e) in touched {
            self.map.remove(&s);
            if s < r.start {
                self.map.insert(s, r.start);
            }
            if e > r.end {
                self.map.insert(r.end, e);
            }
        }
    }

    /// Does the set contain `v`?
    pub fn contains(&self, v: u64) -> bool {
        self.map
            .range(..=v)
            .next_back()
            .is_some_and(|(_, &e)| e > v)
    }

    /// Is all of `r` in the set?
    pub fn contains_range(&self, r: Range<u64>) -> bool {
        r.start >= r.end
            || self
                .map
                .range(..=r.start)
                .next_back()
                .is_some_and(|(_, &e)| e >= r.end)
    }

    /// The lowest range.
    pub fn first(&self) -> Option<Range<u64>> {
        self.map.iter().next().map(|(&s, &e)| s..e)
    }

    /// The highest range.
    pub fn last(&self) -> Option<Range<u64>> {
        self.map.iter().next_back().map(|(&s, &e)| s..e)
    }

    /// Removes and returns the lowest range.
    pub fn pop_first(&mut self) -> Option<Range<u64>> {
        self.map.pop_first().map(|(s, e)| s..e)
    }

    /// Drops the lowest ranges until at most `max` remain.
    pub fn truncate_low(&mut self, max: usize) {
        while self.map.len() > max {
            self.map.pop_first();
        }
    }

    /// Ranges from highest to lowest.
    pub fn iter_rev(&self) -> impl Iterator<Item = Range<u64>> + '_ {
        self.map.iter().rev().map(|(&s, &e)| s..e)
    }

    /// Ranges from lowest to highest.
    pub fn iter(&self) -> impl Iterator<Item = Range<u64>> + '_ {
        self.map.iter().map(|(&s, &e)| s..e)
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
                // Ranges are disjoint and non-adjacent.
                let v: Vec<_> = s.iter().collect();
                for w in v.windows(2) { prop_assert!(w[0].end < w[1].start); }
            }
        }
    }
}
