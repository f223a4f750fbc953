//! Remembered paths: what a previous transfer measured about a path (its
//! bottleneck rate, base RTT and random loss), so the next transfer on it
//! starts near full rate instead of ramping up from an initial window.
//!
//! Sans-IO: [`PathCache`] is a list of entries with a text encoding, an age
//! limit and a size bound; reading and writing the file (under the user's
//! cache directory) is the binary side's job. The congestion controller
//! takes a [`PathHint`] and checks it against the path in the first round
//! trips (see `cc::Vfer`): a wrong hint costs a few round trips, not the
//! transfer.

use std::time::Duration;

/// What a transfer measured about a path, and what the next one starts from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PathHint {
    /// Bottleneck delivery rate in bytes per second (what arrived, not what
    /// was sent: lost bytes are not counted).
    pub rate: u64,
    /// Base (minimum) round-trip time.
    pub min_rtt: Duration,
    /// Fraction of sent bytes lost at random (0.0-0.5).
    pub loss: f64,
}

impl PathHint {
    /// A hint, if the numbers describe a usable path: a rate of at least
    /// 10 kB/s, an RTT between 10 µs and 10 s, a loss fraction below 0.5.
    pub fn new(rate: u64, min_rtt: Duration, loss: f64) -> Option<PathHint> {
        let ok = rate >= MIN_RATE
            && min_rtt >= Duration::from_micros(10)
            && min_rtt <= Duration::from_secs(10)
            && (0.0..0.5).contains(&loss);
        ok.then_some(PathHint {
            rate,
            min_rtt,
            loss,
        })
    }

    /// The command-line form (`--path-hint`, how a client hands its hint
    /// to an ssh-started sender): `RATE_BYTES_PER_S,MIN_RTT_US,LOSS`.
    pub fn to_arg(self) -> String {
        format!(
            "{},{},{:.5}",
            self.rate,
            self.min_rtt.as_micros(),
            self.loss
        )
    }

    /// Parses [`PathHint::to_arg`]'s form; `None` if it is not a usable hint.
    pub fn from_arg(s: &str) -> Option<PathHint> {
        let mut w = s.split(',');
        let rate = w.next()?.trim().parse().ok()?;
        let rtt: u64 = w.next()?.trim().parse().ok()?;
        let loss = w.next()?.trim().parse().ok()?;
        if w.next().is_some() {
            return None;
        }
        PathHint::new(rate, Duration::from_micros(rtt), loss)
    }

    /// Bandwidth-delay product in bytes.
    pub fn bdp(&self) -> u64 {
        (self.rate as f64 * self.min_rtt.as_secs_f64()) as u64
    }
}

/// Slowest path worth remembering (bytes per second).
const MIN_RATE: u64 = 10_000;
/// Entries older than this are ignored and dropped: paths change.
pub const MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Most entries kept; the oldest go first.
pub const MAX_ENTRIES: usize = 256;
/// First line of the file: its format.
const HEADER: &str = "# vfer path cache v1: key rate_bytes_per_s min_rtt_us loss saved_unix_s";

/// One remembered path.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Which path: host name and address, e.g. `example.org/192.0.2.7`
    /// (no whitespace).
    pub key: String,
    /// What was measured.
    pub hint: PathHint,
    /// When, in seconds since the Unix epoch.
    pub saved: u64,
}

/// The remembered paths, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PathCache {
    entries: Vec<Entry>,
}

/// The cache key of a host reached at an address: both, so a name that
/// moves to another address is a new path.
pub fn key(host: &str, addr: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_whitespace() || c.is_control() {
                    '_'
                } else {
                    c
                }
            })
            .take(200)
            .collect()
    };
    format!("{}/{}", clean(host), clean(addr))
}

impl PathCache {
    /// Reads the text form; lines that do not parse are skipped (a damaged
    /// cache costs a slow start, never an error).
    pub fn decode(text: &str) -> PathCache {
        let mut entries: Vec<Entry> = text.lines().filter_map(parse_line).collect();
        entries.sort_by_key(|e| std::cmp::Reverse(e.saved));
        entries.dedup_by(|a, b| a.key == b.key);
        entries.truncate(MAX_ENTRIES);
        PathCache { entries }
    }

    /// The text form, newest first.
    pub fn encode(&self) -> String {
        let mut s = String::from(HEADER);
        s.push('\n');
        for e in &self.entries {
            s.push_str(&format!(
                "{} {} {} {:.5} {}\n",
                e.key,
                e.hint.rate,
                e.hint.min_rtt.as_micros(),
                e.hint.loss,
                e.saved
            ));
        }
        s
    }

    /// The hint for `key`, if one was saved within [`MAX_AGE`] of `now`
    /// (seconds since the Unix epoch) and not in the future.
    pub fn lookup(&self, key: &str, now: u64) -> Option<PathHint> {
        let e = self.entries.iter().find(|e| e.key == key)?;
        let fresh =
            e.saved <= now.saturating_add(60) && now.saturating_sub(e.saved) <= MAX_AGE.as_secs();
        fresh.then_some(e.hint)
    }

    /// Remembers `hint` for `key` at `now`, replacing what was there, and
    /// drops entries past the age limit and beyond [`MAX_ENTRIES`].
    pub fn record(&mut self, key: &str, hint: PathHint, now: u64) {
        self.entries
            .retain(|e| e.key != key && now.saturating_sub(e.saved) <= MAX_AGE.as_secs());
        self.entries.insert(
            0,
            Entry {
                key: key.to_string(),
                hint,
                saved: now,
            },
        );
        self.entries.truncate(MAX_ENTRIES);
    }

    /// Number of entries. (For tests.)
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

fn parse_line(line: &str) -> Option<Entry> {
    if line.starts_with('#') {
        return None;
    }
    let mut w = line.split_whitespace();
    let key = w.next()?.to_string();
    let rate = w.next()?.parse().ok()?;
    let rtt_us: u64 = w.next()?.parse().ok()?;
    let loss: f64 = w.next()?.parse().ok()?;
    let saved = w.next()?.parse().ok()?;
    if w.next().is_some() || key.len() > 500 {
        return None;
    }
    let hint = PathHint::new(rate, Duration::from_micros(rtt_us), loss)?;
    Some(Entry { key, hint, saved })
}

/// What a finished transfer learned, to be remembered: the sender's
/// estimate when it had one (`measured`), otherwise the data phase's
/// goodput over `seconds`, counted only when the transfer lasted long
/// enough (20 base RTTs) that start-up did not dominate it.
pub fn learned(
    measured: Option<PathHint>,
    bytes: u64,
    seconds: f64,
    min_rtt: Duration,
    loss: f64,
) -> Option<PathHint> {
    if measured.is_some() {
        return measured;
    }
    let rtt = min_rtt.as_secs_f64();
    if rtt <= 0.0 || seconds < 20.0 * rtt {
        return None;
    }
    PathHint::new(
        (bytes as f64 / seconds) as u64,
        min_rtt,
        loss.clamp(0.0, 0.49),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hint() -> PathHint {
        PathHint::new(12_500_000, Duration::from_millis(100), 0.01).unwrap()
    }

    #[test]
    fn round_trips_through_text() {
        let mut c = PathCache::default();
        c.record(&key("host", "10.0.0.1"), hint(), 1000);
        c.record(&key("other host", "::1"), hint(), 1001);
        let d = PathCache::decode(&c.encode());
        assert_eq!(d, c);
        assert_eq!(d.lookup("host/10.0.0.1", 1002), Some(hint()));
        assert_eq!(d.lookup("other_host/::1", 1002), Some(hint()));
    }

    #[test]
    fn old_and_future_entries_are_ignored() {
        let mut c = PathCache::default();
        c.record("k", hint(), 1_000_000);
        assert!(c.lookup("k", 1_000_000 + MAX_AGE.as_secs()).is_some());
        assert!(c.lookup("k", 1_000_001 + MAX_AGE.as_secs()).is_none());
        assert!(c.lookup("k", 1_000_000 - 3600).is_none());
    }

    #[test]
    fn damaged_lines_are_skipped_and_size_is_bounded() {
        let text = "garbage\nk 1 2\nk2 12500000 100000 0.01 5\nk3 -1 100000 0.01 5\nk4 12500000 100000 0.9 5\n";
        let c = PathCache::decode(text);
        assert_eq!(c.len(), 1);
        let mut c = PathCache::default();
        for i in 0..(MAX_ENTRIES + 10) {
            c.record(&format!("k{i}"), hint(), 100 + i as u64);
        }
        assert_eq!(c.len(), MAX_ENTRIES);
        assert!(c.lookup("k0", 500).is_none());
        assert!(c.lookup(&format!("k{}", MAX_ENTRIES + 9), 500).is_some());
    }

    #[test]
    fn command_line_form_round_trips() {
        let h = hint();
        assert_eq!(PathHint::from_arg(&h.to_arg()), Some(h));
        assert_eq!(PathHint::from_arg("1,2"), None);
        assert_eq!(PathHint::from_arg("12500000,100000,0.7"), None);
        assert_eq!(PathHint::from_arg("x,100000,0.01"), None);
    }

    #[test]
    fn a_short_transfer_teaches_nothing() {
        let rtt = Duration::from_millis(100);
        assert_eq!(learned(None, 1_000_000, 1.0, rtt, 0.0), None);
        let l = learned(None, 25_000_000, 2.0, rtt, 0.01).unwrap();
        assert_eq!(l.rate, 12_500_000);
        assert_eq!(learned(Some(hint()), 1, 0.1, rtt, 0.0), Some(hint()));
    }
}
