//! The client side of the pre-handshake (docs/PROTOCOL.md §7.6): a sans-IO
//! state machine, and [`handshake`], its driver on a UDP socket.
//!
//! An ACCEPT whose key confirmation fails (a relay that substituted its own
//! Diffie-Hellman share) or that carries a low-order point is not believed;
//! it is counted, the client keeps waiting for a genuine one, and the
//! timeout error then says that forged answers arrived.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use x25519_dalek::{PublicKey, StaticSecret};

use super::crypto::{client_derive, ct_eq};
use super::wire::{Accept, Cookie, Hello, COOKIE_LEN};
use super::LoginError;
use crate::bootstrap::wire::Secret;

/// First HELLO retransmission delay; doubles up to [`MAX_RETRY`].
pub const FIRST_RETRY: Duration = Duration::from_millis(500);
/// Longest delay between HELLO retransmissions.
pub const MAX_RETRY: Duration = Duration::from_secs(4);

/// A completed pre-handshake, before the host key is checked.
pub struct Accepted {
    /// The server's static public key: check it against known_hosts before
    /// using `secret`.
    pub server_static: [u8; 32],
    /// The transport secret S.
    pub secret: Secret,
    /// Repeated in the login message.
    pub binding: [u8; 32],
}

/// What a received datagram did.
pub enum Progress {
    /// Not for us (another type, another HELLO, malformed).
    Ignored,
    /// A cookie arrived: send the HELLO again now.
    Continue,
    /// An ACCEPT failed key confirmation or carried a low-order point.
    Forged,
    /// A genuine ACCEPT.
    Done(Accepted),
}

/// The client's pre-handshake state.
pub struct ClientHandshake {
    eph: StaticSecret,
    client_eph: [u8; 32],
    cookie: Option<[u8; COOKIE_LEN]>,
    next_send: Instant,
    backoff: Duration,
    send_now: bool,
    forged: u64,
}

impl ClientHandshake {
    /// A handshake with ephemeral private key `eph` (fresh random bytes).
    pub fn new(eph: [u8; 32], now: Instant) -> Self {
        let eph = StaticSecret::from(eph);
        let client_eph = PublicKey::from(&eph).to_bytes();
        ClientHandshake {
            eph,
            client_eph,
            cookie: None,
            next_send: now,
            backoff: FIRST_RETRY,
            send_now: true,
            forged: 0,
        }
    }

    /// Our ephemeral public key.
    pub fn client_eph(&self) -> &[u8; 32] {
        &self.client_eph
    }

    /// Forged or invalid ACCEPTs seen so far.
    pub fn forged(&self) -> u64 {
        self.forged
    }

    /// When [`ClientHandshake::poll_transmit`] next has something to send
    /// (after [`ClientHandshake::handle`] returned [`Progress::Continue`]:
    /// at once, whatever this says).
    pub fn poll_timeout(&self) -> Instant {
        self.next_send
    }

    /// The HELLO to send if one is due at `now`.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        if !self.send_now && now < self.next_send {
            return None;
        }
        self.send_now = false;
        self.next_send = now + self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_RETRY);
        Some(
            Hello {
                client_eph: self.client_eph,
                cookie: self.cookie,
            }
            .encode(),
        )
    }

    /// Handles a datagram from the server's address.
    pub fn handle(&mut self, d: &[u8]) -> Progress {
        if let Some(c) = Cookie::decode(d) {
            if c.client_eph != self.client_eph || self.cookie == Some(c.cookie) {
                return Progress::Ignored;
            }
            self.cookie = Some(c.cookie);
            self.backoff = FIRST_RETRY;
            self.send_now = true;
            return Progress::Continue;
        }
        let Some(a) = Accept::decode(d) else {
            return Progress::Ignored;
        };
        if a.client_eph != self.client_eph {
            return Progress::Ignored;
        }
        match client_derive(&self.eph, &a.server_eph, &a.server_static) {
            Ok(derived) if ct_eq(&derived.confirm, &a.confirm) => Progress::Done(Accepted {
                server_static: a.server_static,
                secret: derived.secret,
                binding: derived.binding,
            }),
            _ => {
                self.forged += 1;
                Progress::Forged
            }
        }
    }
}

/// Runs the pre-handshake with the server at `peer` on `sock` (which the
/// transport handshake must then use too: the server knows the secret by
/// the client's address). Gives up after `timeout`.
pub async fn handshake(
    sock: &UdpSocket,
    peer: SocketAddr,
    timeout: Duration,
) -> Result<Accepted, LoginError> {
    let mut eph = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(&mut eph[..]).map_err(std::io::Error::other)?;
    let start = Instant::now();
    let deadline = start + timeout;
    let mut hs = ClientHandshake::new(*eph, start);
    let mut buf = vec![0u8; 2048];
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(LoginError::NoAnswer {
                addr: peer,
                after: timeout,
                forged: hs.forged(),
            });
        }
        while let Some(d) = hs.poll_transmit(now) {
            if let Err(e) = sock.send_to(&d, peer).await {
                tracing::debug!("HELLO to {peer}: {e}");
            }
        }
        let wake = hs.poll_timeout().min(deadline);
        let r = tokio::time::timeout_at(wake.into(), sock.recv_from(&mut buf)).await;
        let Ok(r) = r else { continue };
        let (n, from) = match r {
            Ok(x) => x,
            // ICMP port unreachable and friends: retry until the deadline.
            Err(e) => {
                tracing::debug!("receive from {peer}: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if from != peer {
            continue;
        }
        match hs.handle(&buf[..n]) {
            Progress::Done(a) => return Ok(a),
            Progress::Forged => tracing::warn!("{peer}: an ACCEPT failed key confirmation"),
            Progress::Ignored | Progress::Continue => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retransmits_with_backoff_and_resends_on_cookie() {
        let t = Instant::now();
        let mut c = ClientHandshake::new([1; 32], t);
        assert!(c.poll_transmit(t).is_some());
        assert!(c.poll_transmit(t).is_none());
        assert_eq!(c.poll_timeout(), t + FIRST_RETRY);
        assert!(c.poll_transmit(t + FIRST_RETRY).is_some());
        assert_eq!(c.poll_timeout(), t + FIRST_RETRY * 3);
        let cookie = Cookie {
            client_eph: *c.client_eph(),
            cookie: [5; 32],
        };
        assert!(matches!(c.handle(&cookie.encode()), Progress::Continue));
        let h = Hello::decode(&c.poll_transmit(t + FIRST_RETRY).unwrap()).unwrap();
        assert_eq!(h.cookie, Some([5; 32]));
        // A cookie for another HELLO is ignored.
        let other = Cookie {
            client_eph: [0; 32],
            cookie: [6; 32],
        };
        assert!(matches!(c.handle(&other.encode()), Progress::Ignored));
    }

    #[test]
    fn forged_accept_is_counted_not_believed() {
        let t = Instant::now();
        let mut c = ClientHandshake::new([1; 32], t);
        let forged = Accept {
            client_eph: *c.client_eph(),
            server_eph: [9; 32],
            server_static: [8; 32],
            confirm: [0; 32],
        };
        assert!(matches!(c.handle(&forged.encode()), Progress::Forged));
        let low = Accept {
            server_eph: [0; 32],
            ..forged
        };
        assert!(matches!(c.handle(&low.encode()), Progress::Forged));
        assert_eq!(c.forged(), 2);
    }
}
