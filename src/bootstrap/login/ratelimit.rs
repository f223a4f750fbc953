//! Failed-login rate limits (docs/PROTOCOL.md §7.8): a token bucket per
//! user name and one per client IP address, sans-IO (the caller passes
//! `now`). A login is attempted only while both buckets hold a token; each
//! failure takes one from both. Memory is capped: buckets that have refilled
//! completely carry no information and are dropped first.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// One limit: `burst` failures at once, then one more per `refill`.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    /// Failures allowed back to back.
    pub burst: u32,
    /// Time for one token to come back.
    pub refill: Duration,
}

/// Per user name: 5 failures, then one attempt per 30 s.
pub const USER_LIMIT: Limit = Limit {
    burst: 5,
    refill: Duration::from_secs(30),
};
/// Per client IP address: 10 failures, then one attempt per 10 s.
pub const ADDRESS_LIMIT: Limit = Limit {
    burst: 10,
    refill: Duration::from_secs(10),
};
/// Most buckets per table.
pub const MAX_BUCKETS: usize = 65_536;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Tokens, in units of 1/1000 token.
    milli: u64,
    updated: Instant,
}

/// Token buckets keyed by `K`.
#[derive(Debug)]
pub struct Buckets<K> {
    limit: Limit,
    map: HashMap<K, Bucket>,
    cap: usize,
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    /// An empty table with `limit`, holding at most `cap` buckets.
    pub fn new(limit: Limit, cap: usize) -> Self {
        Buckets {
            limit,
            map: HashMap::new(),
            cap,
        }
    }

    fn full(&self) -> u64 {
        u64::from(self.limit.burst) * 1000
    }

    fn level(&self, b: &Bucket, now: Instant) -> u64 {
        let refill = self.limit.refill.as_millis().max(1) as u64;
        let gained = now.saturating_duration_since(b.updated).as_millis() as u64 * 1000 / refill;
        (b.milli + gained).min(self.full())
    }

    /// `Ok` if `k` may try now, else how long until it may.
    pub fn check(&mut self, k: &K, now: Instant) -> Result<(), Duration> {
        let Some(b) = self.map.get(k) else {
            if self.map.len() >= self.cap {
                self.prune(now);
            }
            return if self.map.len() < self.cap {
                Ok(())
            } else {
                // Full of recent failures: nobody new until some refill.
                Err(self.limit.refill)
            };
        };
        let level = self.level(b, now);
        if level >= 1000 {
            return Ok(());
        }
        let missing = 1000 - level;
        Err(self.limit.refill.mul_f64(missing as f64 / 1000.0))
    }

    /// Drops buckets that have refilled completely.
    fn prune(&mut self, now: Instant) {
        let full = self.full();
        let refill = self.limit.refill.as_millis().max(1) as u64;
        self.map.retain(|_, b| {
            let gained =
                now.saturating_duration_since(b.updated).as_millis() as u64 * 1000 / refill;
            b.milli + gained < full
        });
    }

    /// Records a failure for `k`.
    pub fn fail(&mut self, k: &K, now: Instant) {
        if !self.map.contains_key(k) && self.map.len() >= self.cap {
            self.prune(now);
            if self.map.len() >= self.cap {
                return;
            }
        }
        let full = self.full();
        let level = match self.map.get(k) {
            Some(b) => self.level(b, now),
            None => full,
        };
        self.map.insert(
            k.clone(),
            Bucket {
                milli: level.saturating_sub(1000),
                updated: now,
            },
        );
    }

    /// Buckets held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// The two limits a login passes.
#[derive(Debug)]
pub struct LoginLimits {
    users: Buckets<String>,
    addrs: Buckets<IpAddr>,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits::new(USER_LIMIT, ADDRESS_LIMIT)
    }
}

/// IPv4-mapped IPv6 addresses count as their IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl LoginLimits {
    /// Limits with the given per-user and per-address settings.
    pub fn new(user: Limit, addr: Limit) -> Self {
        LoginLimits {
            users: Buckets::new(user, MAX_BUCKETS),
            addrs: Buckets::new(addr, MAX_BUCKETS),
        }
    }

    /// `Ok` if `user` from `ip` may try now, else how long until it may.
    pub fn check(&mut self, user: &str, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let u = self.users.check(&user.to_string(), now);
        let a = self.addrs.check(&canonical(ip), now);
        match (u, a) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(x), Ok(())) | (Ok(()), Err(x)) => Err(x),
            (Err(x), Err(y)) => Err(x.max(y)),
        }
    }

    /// Records a failed login.
    pub fn fail(&mut self, user: &str, ip: IpAddr, now: Instant) {
        self.users.fail(&user.to_string(), now);
        self.addrs.fail(&canonical(ip), now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let t = Instant::now();
        let mut l = LoginLimits::default();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        for _ in 0..5 {
            assert!(l.check("bob", ip, t).is_ok());
            l.fail("bob", ip, t);
        }
        let wait = l.check("bob", ip, t).unwrap_err();
        assert_eq!(wait, Duration::from_secs(30));
        // Another user from the same address still may (address burst 10).
        assert!(l.check("carol", ip, t).is_ok());
        assert!(l.check("bob", ip, t + Duration::from_secs(30)).is_ok());
        assert!(l.check("bob", ip, t + Duration::from_secs(29)).is_err());
    }

    #[test]
    fn per_address_limit_spans_user_names() {
        let t = Instant::now();
        let mut l = LoginLimits::default();
        let ip: IpAddr = "::ffff:192.0.2.8".parse().unwrap();
        for i in 0..10 {
            let u = format!("user{i}");
            assert!(l.check(&u, ip, t).is_ok());
            l.fail(&u, ip, t);
        }
        assert!(l.check("fresh", "192.0.2.8".parse().unwrap(), t).is_err());
        assert!(l.check("fresh", "192.0.2.9".parse().unwrap(), t).is_ok());
    }

    #[test]
    fn table_is_capped() {
        let t = Instant::now();
        let mut b = Buckets::new(USER_LIMIT, 4);
        for i in 0..4 {
            b.fail(&i, t);
        }
        b.fail(&99, t);
        assert_eq!(b.len(), 4);
        assert!(b.check(&100, t).is_err(), "full table: new keys wait");
        // Once old buckets refilled they make room.
        let later = t + Duration::from_secs(300);
        b.fail(&99, later);
        assert_eq!(b.len(), 1);
    }
}
