//! Packetization-layer path MTU discovery (RFC 8899): start at a size every
//! path carries, probe upward with padded packets (sent with DF), and fall
//! back when full-size packets stop getting through.

use std::time::{Duration, Instant};

/// Every path is assumed to carry UDP payloads of this size (as QUIC assumes).
pub const BASE_PLPMTU: u16 = 1200;
/// The sizes probed, in order: those of the original VFER above the base,
/// plus the UDP payloads that fill the two common link MTUs exactly — 1,500
/// (1,452 over IPv6, 1,472 over IPv4) and 9,000 (8,952 and 8,972) — so a
/// path with one of them is used to its last byte (the original's 1,430
/// and 8,096 leave 3 % and 10 % of each packet unused).
pub const PROBE_SIZES: [u16; 11] = [
    1430, 1452, 1472, 1978, 4282, 8096, 8952, 8972, 17844, 31030, 65465,
];
/// A size is given up after this many lost probes.
pub const MAX_PROBES: u8 = 3;
/// After the search ends, it starts again this much later (paths change).
pub const RESEARCH_INTERVAL: Duration = Duration::from_secs(600);

/// The PLPMTUD state of one connection.
#[derive(Debug, Clone)]
pub struct PathMtu {
    current: u16,
    limit: u16,
    next_index: usize,
    failures: u8,
    probe_in_flight: Option<(u64, u16)>,
    next_search: Option<Instant>,
}

impl PathMtu {
    /// Starts at `BASE_PLPMTU`; never probes above `limit` (the local maximum).
    pub fn new(limit: u16) -> Self {
        let limit = limit.max(BASE_PLPMTU);
        PathMtu {
            current: BASE_PLPMTU.min(limit),
            limit,
            next_index: 0,
            failures: 0,
            probe_in_flight: None,
            next_search: None,
        }
    }

    /// The largest UDP payload to send now.
    pub fn current(&self) -> u16 {
        self.current
    }

    /// The size to probe next, if a probe should be sent now.
    pub fn probe_size(&self, now: Instant) -> Option<u16> {
        if self.probe_in_flight.is_some() || self.next_search.is_some_and(|t| now < t) {
            return None;
        }
        PROBE_SIZES
            .get(self.next_index)
            .copied()
            .filter(|&s| s <= self.limit && s > self.current)
    }

    /// A probe of `size` bytes went out as packet `pn`.
    pub fn on_probe_sent(&mut self, pn: u64, size: u16) {
        self.probe_in_flight = Some((pn, size));
    }

    /// Packet `pn` was acknowledged.
    pub fn on_acked(&mut self, pn: u64) -> bool {
        match self.probe_in_flight {
            Some((p, size)) if p == pn => {
                self.probe_in_flight = None;
                self.current = size;
                self.failures = 0;
                self.next_index += 1;
                true
            }
            _ => false,
        }
    }

    /// Packet `pn` was lost (or could not be sent: `EMSGSIZE`).
    pub fn on_lost(&mut self, now: Instant, pn: u64) {
        if let Some((p, _)) = self.probe_in_flight {
            if p == pn {
                self.probe_in_flight = None;
                self.failures += 1;
                if self.failures >= MAX_PROBES {
                    // This size does not pass: the search is complete.
                    self.failures = 0;
                    self.next_index = PROBE_SIZES.len();
                    self.next_search = Some(now + RESEARCH_INTERVAL);
                }
            }
        }
    }

    /// Full-size packets are not getting through (several probe timeouts):
    /// go back to the base size and search again later.
    pub fn on_black_hole(&mut self, now: Instant) {
        if self.current > BASE_PLPMTU {
            self.current = BASE_PLPMTU.min(self.limit);
            self.next_index = 0;
            self.failures = 0;
            self.probe_in_flight = None;
            self.next_search = Some(now + Duration::from_secs(1));
        }
    }

    /// The search is due again (`RESEARCH_INTERVAL` after it ended).
    pub fn poll(&mut self, now: Instant) {
        if self.next_index >= PROBE_SIZES.len() && self.next_search.is_some_and(|t| now >= t) {
            self.next_index = PROBE_SIZES
                .iter()
                .position(|&s| s > self.current)
                .unwrap_or(PROBE_SIZES.len());
            self.next_search = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn climbs_then_stops_at_the_limit_of_the_path() {
        let now = Instant::now();
        let mut m = PathMtu::new(65_000);
        let mut pn = 0;
        // The path carries up to 4282.
        while let Some(size) = m.probe_size(now) {
            pn += 1;
            m.on_probe_sent(pn, size);
            if size <= 4282 {
                m.on_acked(pn);
            } else {
                m.on_lost(now, pn);
            }
        }
        assert_eq!(m.current(), 4282);
        m.on_black_hole(now);
        assert_eq!(m.current(), BASE_PLPMTU);
        assert!(m.probe_size(now).is_none());
        assert_eq!(m.probe_size(now + Duration::from_secs(2)), Some(1430));
    }

    /// On a 1,500-byte IPv4 link the search ends at 1,472 (the largest UDP
    /// payload that fits), on IPv6 at 1,452, on a 9,000-byte link at 8,972.
    #[test]
    fn fills_common_link_mtus_exactly() {
        for (fits, want) in [(1472, 1472), (1452, 1452), (8972, 8972), (8952, 8952)] {
            let now = Instant::now();
            let mut m = PathMtu::new(65_465);
            let mut pn = 0;
            while let Some(size) = m.probe_size(now) {
                pn += 1;
                m.on_probe_sent(pn, size);
                if size <= fits {
                    m.on_acked(pn);
                } else {
                    m.on_lost(now, pn);
                }
            }
            assert_eq!(m.current(), want);
        }
    }
}
