//! Stateless address cookies (docs/PROTOCOL.md §7.4): the server answers a
//! HELLO without a valid cookie with `HMAC(secret, address || e_c)` and
//! keeps nothing; only a HELLO echoing it, which proves the client receives
//! at the address it claims, makes the server compute or remember anything.
//! The secret rotates every [`COOKIE_ROTATION`]; the previous one is still
//! accepted, so a cookie lives between one and two rotation periods.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::crypto::ct_eq;
use super::wire::COOKIE_LEN;

/// How often the cookie secret changes.
pub const COOKIE_ROTATION: Duration = Duration::from_secs(120);

/// The rotating cookie secrets.
pub struct CookieJar {
    current: Zeroizing<[u8; 32]>,
    previous: Zeroizing<[u8; 32]>,
    rotated: Instant,
}

/// The 18-byte canonical form of an address: IPv6 (IPv4 mapped) and port.
pub fn address_bytes(a: SocketAddr) -> [u8; 18] {
    let ip = match a.ip() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    let mut b = [0u8; 18];
    b[..16].copy_from_slice(&ip.octets());
    b[16..].copy_from_slice(&a.port().to_be_bytes());
    b
}

fn mac(key: &[u8; 32], from: SocketAddr, client_eph: &[u8; 32]) -> [u8; COOKIE_LEN] {
    // HMAC accepts keys of any length: cannot fail.
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("any HMAC key length");
    m.update(b"vfer cookie");
    m.update(&address_bytes(from));
    m.update(client_eph);
    m.finalize().into_bytes().into()
}

impl CookieJar {
    /// A jar keyed with `fresh` random bytes at `now`.
    pub fn new(now: Instant, fresh: [u8; 32]) -> Self {
        CookieJar {
            current: Zeroizing::new(fresh),
            previous: Zeroizing::new(fresh),
            rotated: now,
        }
    }

    /// True when the secret is due to change.
    pub fn due(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.rotated) >= COOKIE_ROTATION
    }

    /// Moves to a new secret `fresh`; the old one stays valid one more period.
    pub fn rotate(&mut self, now: Instant, fresh: [u8; 32]) {
        *self.previous = *self.current;
        *self.current = fresh;
        self.rotated = now;
    }

    /// The cookie for a HELLO from `from` carrying `client_eph`.
    pub fn make(&self, from: SocketAddr, client_eph: &[u8; 32]) -> [u8; COOKIE_LEN] {
        mac(&self.current, from, client_eph)
    }

    /// True if `cookie` was made for `from` and `client_eph` under the
    /// current or the previous secret.
    pub fn check(
        &self,
        from: SocketAddr,
        client_eph: &[u8; 32],
        cookie: &[u8; COOKIE_LEN],
    ) -> bool {
        let a = ct_eq(&mac(&self.current, from, client_eph), cookie);
        let b = ct_eq(&mac(&self.previous, from, client_eph), cookie);
        a | b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_bind_address_and_key_and_expire() {
        let t0 = Instant::now();
        let mut jar = CookieJar::new(t0, [1; 32]);
        let a: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        let b: SocketAddr = "192.0.2.1:5001".parse().unwrap();
        let c = jar.make(a, &[7; 32]);
        assert!(jar.check(a, &[7; 32], &c));
        assert!(!jar.check(b, &[7; 32], &c));
        assert!(!jar.check(a, &[8; 32], &c));
        // The same address as IPv4 and IPv4-mapped IPv6 is one address.
        let mapped: SocketAddr = "[::ffff:192.0.2.1]:5000".parse().unwrap();
        assert!(jar.check(mapped, &[7; 32], &c));
        assert!(!jar.due(t0 + Duration::from_secs(1)));
        assert!(jar.due(t0 + COOKIE_ROTATION));
        jar.rotate(t0 + COOKIE_ROTATION, [2; 32]);
        assert!(jar.check(a, &[7; 32], &c), "previous secret still valid");
        jar.rotate(t0 + 2 * COOKIE_ROTATION, [3; 32]);
        assert!(
            !jar.check(a, &[7; 32], &c),
            "two rotations later it is gone"
        );
    }
}
