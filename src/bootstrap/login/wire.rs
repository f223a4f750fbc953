//! The pre-handshake datagrams of challenge-response mode (docs/PROTOCOL.md
//! §7.2): HELLO (client, padded to 1200 bytes), COOKIE and ACCEPT (server,
//! small). They use the VSL header layout with msgnr and MAC zero, so a
//! standing server tells them from VFER packets by the type byte alone.

use crate::vsl::{HEADER_LEN, MAGIC};

/// VSL type of the client's HELLO.
pub const TYPE_HELLO: u8 = 0x10;
/// VSL type of the server's COOKIE (prove your address first).
pub const TYPE_COOKIE: u8 = 0x11;
/// VSL type of the server's ACCEPT (its shares and key confirmation).
pub const TYPE_ACCEPT: u8 = 0x12;
/// Version of the pre-handshake.
pub const LOGIN_VERSION: u32 = 1;
/// A HELLO datagram is exactly this long: it pays for any answer (3x rule).
pub const HELLO_LEN: usize = 1200;
/// Length of an address cookie.
pub const COOKIE_LEN: usize = 32;
/// Length of a COOKIE datagram.
pub const COOKIE_DATAGRAM_LEN: usize = HEADER_LEN + 4 + 32 + COOKIE_LEN;
/// Length of an ACCEPT datagram.
pub const ACCEPT_DATAGRAM_LEN: usize = HEADER_LEN + 4 + 4 * 32;

/// A decoded HELLO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The client's ephemeral X25519 public key.
    pub client_eph: [u8; 32],
    /// The address cookie echoed from a COOKIE, or `None` (all zero).
    pub cookie: Option<[u8; COOKIE_LEN]>,
}

/// A decoded COOKIE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cookie {
    /// The HELLO's ephemeral key, echoed.
    pub client_eph: [u8; 32],
    /// The cookie to send back.
    pub cookie: [u8; COOKIE_LEN],
}

/// A decoded ACCEPT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accept {
    /// The HELLO's ephemeral key, echoed.
    pub client_eph: [u8; 32],
    /// The server's ephemeral X25519 public key.
    pub server_eph: [u8; 32],
    /// The server's static X25519 public key (its host key).
    pub server_static: [u8; 32],
    /// Key confirmation: proves the server holds the static private key.
    pub confirm: [u8; 32],
}

fn header(d: &mut [u8], ptype: u8) {
    d[..24].fill(0);
    d[24..28].copy_from_slice(&MAGIC);
    d[28] = ptype;
    let datalen = (d.len() - HEADER_LEN) as u32;
    d[29..33].copy_from_slice(&datalen.to_be_bytes());
}

/// The payload of a datagram of type `ptype` and exactly `len` bytes with
/// our version, or `None`.
fn payload(d: &[u8], ptype: u8, len: usize) -> Option<&[u8]> {
    if d.len() != len || d[24..28] != MAGIC || d[28] != ptype {
        return None;
    }
    let datalen = u32::from_be_bytes(d[29..33].try_into().ok()?) as usize;
    if datalen != len - HEADER_LEN {
        return None;
    }
    let p = &d[HEADER_LEN..];
    (u32::from_be_bytes(p[..4].try_into().ok()?) == LOGIN_VERSION).then_some(&p[4..])
}

fn take32(p: &[u8], at: usize) -> [u8; 32] {
    let mut a = [0u8; 32];
    a.copy_from_slice(&p[at..at + 32]);
    a
}

impl Hello {
    /// Encodes the 1200-byte datagram.
    pub fn encode(&self) -> Vec<u8> {
        let mut d = vec![0u8; HELLO_LEN];
        header(&mut d, TYPE_HELLO);
        let p = &mut d[HEADER_LEN..];
        p[..4].copy_from_slice(&LOGIN_VERSION.to_be_bytes());
        p[4..36].copy_from_slice(&self.client_eph);
        if let Some(c) = &self.cookie {
            p[36..68].copy_from_slice(c);
        }
        d
    }

    /// Decodes a HELLO; `None` unless exactly 1200 bytes of our version.
    pub fn decode(d: &[u8]) -> Option<Hello> {
        let p = payload(d, TYPE_HELLO, HELLO_LEN)?;
        let cookie = take32(p, 32);
        Some(Hello {
            client_eph: take32(p, 0),
            cookie: (cookie != [0u8; 32]).then_some(cookie),
        })
    }
}

impl Cookie {
    /// Encodes the datagram.
    pub fn encode(&self) -> Vec<u8> {
        let mut d = Vec::with_capacity(COOKIE_DATAGRAM_LEN);
        self.encode_into(&mut d);
        d
    }

    /// Appends the datagram to `out` (no allocation when `out` has room:
    /// the server answers floods of HELLOs with it).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.resize(start + COOKIE_DATAGRAM_LEN, 0);
        let d = &mut out[start..];
        header(d, TYPE_COOKIE);
        let p = &mut d[HEADER_LEN..];
        p[..4].copy_from_slice(&LOGIN_VERSION.to_be_bytes());
        p[4..36].copy_from_slice(&self.client_eph);
        p[36..68].copy_from_slice(&self.cookie);
    }

    /// Decodes a COOKIE datagram.
    pub fn decode(d: &[u8]) -> Option<Cookie> {
        let p = payload(d, TYPE_COOKIE, COOKIE_DATAGRAM_LEN)?;
        Some(Cookie {
            client_eph: take32(p, 0),
            cookie: take32(p, 32),
        })
    }
}

impl Accept {
    /// Encodes the datagram.
    pub fn encode(&self) -> Vec<u8> {
        let mut d = vec![0u8; ACCEPT_DATAGRAM_LEN];
        header(&mut d, TYPE_ACCEPT);
        let p = &mut d[HEADER_LEN..];
        p[..4].copy_from_slice(&LOGIN_VERSION.to_be_bytes());
        p[4..36].copy_from_slice(&self.client_eph);
        p[36..68].copy_from_slice(&self.server_eph);
        p[68..100].copy_from_slice(&self.server_static);
        p[100..132].copy_from_slice(&self.confirm);
        d
    }

    /// Decodes an ACCEPT datagram.
    pub fn decode(d: &[u8]) -> Option<Accept> {
        let p = payload(d, TYPE_ACCEPT, ACCEPT_DATAGRAM_LEN)?;
        Some(Accept {
            client_eph: take32(p, 0),
            server_eph: take32(p, 32),
            server_static: take32(p, 64),
            confirm: take32(p, 96),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trips_and_sizes() {
        let h = Hello {
            client_eph: [1; 32],
            cookie: Some([2; 32]),
        };
        let d = h.encode();
        assert_eq!(d.len(), HELLO_LEN);
        assert_eq!(Hello::decode(&d), Some(h));
        let c = Cookie {
            client_eph: [3; 32],
            cookie: [4; 32],
        };
        assert_eq!(Cookie::decode(&c.encode()), Some(c));
        let a = Accept {
            client_eph: [5; 32],
            server_eph: [6; 32],
            server_static: [7; 32],
            confirm: [8; 32],
        };
        let d = a.encode();
        assert_eq!(Accept::decode(&d), Some(a));
        // Amplification: every answer is far below 3x the HELLO.
        const { assert!(ACCEPT_DATAGRAM_LEN * 3 < HELLO_LEN && COOKIE_DATAGRAM_LEN * 3 < HELLO_LEN) };
        // Cross-type and truncated datagrams are refused.
        assert!(Cookie::decode(&d).is_none());
        assert!(Accept::decode(&d[..d.len() - 1]).is_none());
        let mut short_hello = Hello::decode(
            &Hello {
                client_eph: [1; 32],
                cookie: None,
            }
            .encode(),
        );
        assert_eq!(short_hello.take().and_then(|h| h.cookie), None);
    }

    #[test]
    fn other_versions_refused() {
        let mut d = Hello {
            client_eph: [1; 32],
            cookie: None,
        }
        .encode();
        d[HEADER_LEN + 3] = 2;
        assert!(Hello::decode(&d).is_none());
    }

    proptest! {
        #[test]
        fn decoders_never_panic(d in proptest::collection::vec(any::<u8>(), 0..1300)) {
            let _ = Hello::decode(&d);
            let _ = Cookie::decode(&d);
            let _ = Accept::decode(&d);
        }

        #[test]
        fn hello_round_trips(e in any::<[u8; 32]>(), c in any::<[u8; 32]>()) {
            let h = Hello { client_eph: e, cookie: (c != [0; 32]).then_some(c) };
            prop_assert_eq!(Hello::decode(&h.encode()), Some(h));
        }
    }
}
