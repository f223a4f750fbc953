//! BUSY (PROTOCOL §2.6): a standing server's stateless answer to a REQUEST
//! it cannot take now (every slot taken, too many handshakes, or short of
//! CPU or memory), and the client's backoff after one.
//!
//! The server keeps nothing: it authenticates the REQUEST (as it would
//! anyway), seals 40 bytes under the handshake keys echoing the client's
//! nonce, and forgets it. The client waits (the server's hint, doubling per
//! BUSY, with jitter) and sends the REQUEST again with its timestamp moved
//! on by the time waited, until its timeout runs out.

use std::time::Duration;

use super::handshake::{
    open_server_reply, HandshakeError, HandshakeRandom, Tai64n, HANDSHAKE_MSGNR_BOUND, VERSION,
};
use crate::vsl::{self, SessionKeys, HEADER_LEN, KEY_LEN, NONCE_LEN};

/// VSL packet type of BUSY (server → client).
pub const TYPE_BUSY: u8 = 0x03;
/// BUSY payload: version, the client's nonce, retry_after_ms.
const BUSY_BODY: usize = 4 + NONCE_LEN + 4;
/// Length of the BUSY datagram (73 bytes, far below the 1200-byte REQUEST).
pub const BUSY_DATAGRAM_LEN: usize = HEADER_LEN + BUSY_BODY;
/// Longest wait a client takes from one BUSY, whatever the server hints.
pub const MAX_BUSY_WAIT: Duration = Duration::from_secs(8);

fn handshake_keys(secret: &[u8; KEY_LEN]) -> SessionKeys {
    SessionKeys::derive(secret, &[0; NONCE_LEN], &[0; NONCE_LEN], None)
}

/// Builds a BUSY answering the REQUEST with `client_nonce`: come back in
/// `retry_after`. `msgnr` is drawn at random below 2^60 by the caller.
pub fn encode_busy(
    secret: &[u8; KEY_LEN],
    client_nonce: &[u8; NONCE_LEN],
    retry_after: Duration,
    msgnr: u64,
) -> Vec<u8> {
    let mut d = vec![0u8; BUSY_DATAGRAM_LEN];
    let p = &mut d[HEADER_LEN..];
    p[0..4].copy_from_slice(&VERSION.to_be_bytes());
    p[4..36].copy_from_slice(client_nonce);
    let ms = u32::try_from(retry_after.as_millis()).unwrap_or(u32::MAX);
    p[36..40].copy_from_slice(&ms.to_be_bytes());
    let keys = handshake_keys(secret);
    let mut sealer = vsl::Sealer::new(&keys.s2c, msgnr % HANDSHAKE_MSGNR_BOUND);
    let _ = sealer.seal_in_place(TYPE_BUSY, &mut d);
    d
}

/// Authenticates a BUSY for our REQUEST (nonce `client_nonce`); returns
/// the server's retry_after.
pub fn decode_busy(
    secret: &[u8; KEY_LEN],
    client_nonce: &[u8; NONCE_LEN],
    datagram: &mut [u8],
) -> Result<Duration, HandshakeError> {
    let p = open_server_reply(secret, client_nonce, datagram, TYPE_BUSY, BUSY_BODY)?;
    let ms = u32::from_be_bytes([p[36], p[37], p[38], p[39]]);
    Ok(Duration::from_millis(u64::from(ms)))
}

/// How long a client waits after its `count`-th BUSY (1 = the first) that
/// hinted `hint`: `max(hint, 250 ms) * 2^(count-1)`, at most
/// [`MAX_BUSY_WAIT`], times a jitter factor in [0.5, 1.5) drawn from
/// `nonce` and `count` (clients turned away together do not come back
/// together).
pub fn backoff(hint: Duration, count: u32, nonce: &[u8; NONCE_LEN]) -> Duration {
    let base = hint.max(Duration::from_millis(250));
    let wait = base
        .saturating_mul(1 << count.saturating_sub(1).min(6))
        .min(MAX_BUSY_WAIT);
    // splitmix64 of the nonce's first 8 bytes and the count.
    let mut z = u64::from_le_bytes(nonce[..8].try_into().unwrap_or_default())
        .wrapping_add(u64::from(count).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    let permille = 500 + (z % 1000);
    wait * permille as u32 / 1000
}

/// The client's next REQUEST after a BUSY: the same request with its
/// timestamp moved on to `waited` after the first REQUEST's `first` (from
/// a monotonic clock) and its packet number one higher, so the server's
/// replay check sees a new REQUEST and no keystream repeats.
pub fn advance(rnd: &mut HandshakeRandom, first: &Tai64n, waited: Duration) {
    if let Some(t) = first.to_unix() {
        rnd.timestamp = Tai64n::from_unix(t + waited);
    }
    rnd.msgnr = (rnd.msgnr + 1) % HANDSHAKE_MSGNR_BOUND;
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: [u8; 32] = [5; 32];
    /// PROTOCOL §2.6's example.
    const EXAMPLE: &str = "000000000000002a2a21990e9c6c8c5de1305def70ef55af56534c310300000028da8b6aa8be1ebafb58f2aedf6471b825f73f6f8c19f36ebaadabc8a7e992d2b90480589cd590337a";

    #[test]
    fn busy_round_trips_and_binds_the_nonce() {
        let nonce = [7u8; 32];
        let d = encode_busy(&S, &nonce, Duration::from_millis(750), 42);
        assert_eq!(d.len(), BUSY_DATAGRAM_LEN);
        assert_eq!(
            decode_busy(&S, &nonce, &mut d.clone()),
            Ok(Duration::from_millis(750))
        );
        assert_eq!(
            decode_busy(&S, &[8u8; 32], &mut d.clone()),
            Err(HandshakeError::WrongNonce)
        );
        assert_eq!(
            decode_busy(&[6; 32], &nonce, &mut d.clone()),
            Err(HandshakeError::Auth)
        );
        let mut bad = d.clone();
        bad[40] ^= 1;
        assert_eq!(decode_busy(&S, &nonce, &mut bad), Err(HandshakeError::Auth));
    }

    #[test]
    fn busy_example_of_protocol_2_6() {
        let d = encode_busy(&[5; 32], &[7; 32], Duration::from_millis(500), 42);
        let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
        println!("{hex}");
        assert_eq!(hex, EXAMPLE);
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let n = [1u8; 32];
        let w1 = backoff(Duration::from_millis(500), 1, &n);
        assert!(w1 >= Duration::from_millis(250) && w1 < Duration::from_millis(750));
        let w3 = backoff(Duration::from_millis(500), 3, &n);
        assert!(w3 >= Duration::from_secs(1) && w3 < Duration::from_secs(3));
        assert!(backoff(Duration::from_secs(60), 9, &n) < MAX_BUSY_WAIT * 3 / 2);
        assert_ne!(w1, backoff(Duration::from_millis(500), 1, &[2u8; 32]));
    }

    #[test]
    fn a_retried_request_is_new_to_the_replay_check() {
        let mut rnd = HandshakeRandom::from_seed(3);
        let first = Tai64n::from_unix(Duration::from_secs(1_800_000_000));
        rnd.timestamp = first;
        let m = rnd.msgnr;
        advance(&mut rnd, &first, Duration::from_millis(1500));
        assert_eq!(
            rnd.timestamp.to_unix(),
            Some(Duration::from_millis(1_800_000_001_500))
        );
        assert_eq!(rnd.msgnr, (m + 1) % HANDSHAKE_MSGNR_BOUND);
    }
}
