//! The connection handshake (VFER's REQUEST/RESPONSE): both sides send a
//! fresh nonce and an X25519 share inside VSL packets protected by keys
//! derived from the session secret alone, so only holders of the secret can
//! take part; session keys then come from the secret, both nonces and the
//! X25519 result (forward secrecy). The client offers VSL suites, the
//! server chooses one, and offer and choice are bound into the session
//! keys. See docs/PROTOCOL.md §2.

use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::vsl::{self, SessionKeys, Suite, SuiteKeys, HEADER_LEN, KEY_LEN, NONCE_LEN};

/// VSL type of packets carrying VFER frames under session keys.
pub const TYPE_DATA: u8 = 0x00;
/// VSL type of the client's handshake packet.
pub const TYPE_REQUEST: u8 = 0x01;
/// VSL type of the server's handshake packet.
pub const TYPE_RESPONSE: u8 = 0x02;
/// Protocol version carried in the handshake.
pub const VERSION: u32 = 1;
/// The REQUEST datagram is padded to this size: it proves the path carries
/// the base PLPMTU and bounds the server's reply to no more than was sent.
pub const REQUEST_DATAGRAM_LEN: usize = 1200;
/// Handshake packet numbers are drawn at random below this bound.
pub const HANDSHAKE_MSGNR_BOUND: u64 = 1 << 60;
/// Payload offset of the suite offer in the REQUEST (84..96 is reserved).
pub const OFFER_OFFSET: usize = 96;
/// The most suites one offer may list.
pub const MAX_OFFER: usize = 16;

/// The client's suite offer exactly as on the wire: `u8 count` (1 to
/// `MAX_OFFER`), then `count` one-byte suite ids in the client's preference
/// order. Ids this build does not know are kept (they are part of what the
/// key schedule binds) but never chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offer {
    bytes: [u8; 1 + MAX_OFFER],
}

impl Offer {
    /// An offer of `suites`, in that order.
    ///
    /// # Panics
    /// If `suites` is empty or longer than `MAX_OFFER` (a caller bug).
    pub fn new(suites: &[Suite]) -> Offer {
        assert!(
            (1..=MAX_OFFER).contains(&suites.len()),
            "an offer lists 1 to {MAX_OFFER} suites"
        );
        let mut bytes = [0u8; 1 + MAX_OFFER];
        bytes[0] = suites.len() as u8;
        for (b, s) in bytes[1..].iter_mut().zip(suites) {
            *b = s.id();
        }
        Offer { bytes }
    }

    /// Reads an offer at the start of `b`; `None` if the count is 0, above
    /// `MAX_OFFER`, or runs past `b`.
    fn read(b: &[u8]) -> Option<Offer> {
        let count = *b.first()? as usize;
        if !(1..=MAX_OFFER).contains(&count) {
            return None;
        }
        let mut bytes = [0u8; 1 + MAX_OFFER];
        bytes[..=count].copy_from_slice(b.get(..=count)?);
        Some(Offer { bytes })
    }

    /// The offer's wire bytes: count, then the ids.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..=self.bytes[0] as usize]
    }

    /// Does the offer list `suite`?
    pub fn contains(&self, suite: Suite) -> bool {
        self.as_bytes()[1..].contains(&suite.id())
    }

    /// The known suites offered, in the client's order. (For tests.)
    #[cfg(test)]
    pub fn suites(&self) -> impl Iterator<Item = Suite> + '_ {
        self.as_bytes()[1..]
            .iter()
            .filter_map(|&id| Suite::from_id(id))
    }

    /// The server's choice: the first of `accepted` (the server's
    /// preference order) that the offer lists, if any.
    pub fn choose(&self, accepted: &[Suite]) -> Option<Suite> {
        accepted.iter().copied().find(|&s| self.contains(s))
    }

    /// The suite binding of the key schedule (PROTOCOL §2.4): the offer's
    /// wire bytes, then the chosen suite's id. Returns the buffer and length.
    pub fn binding(&self, chosen: Suite) -> ([u8; 2 + MAX_OFFER], usize) {
        let mut b = [0u8; 2 + MAX_OFFER];
        let n = self.as_bytes().len();
        b[..n].copy_from_slice(self.as_bytes());
        b[n] = chosen.id();
        (b, n + 1)
    }
}

impl std::fmt::Display for Offer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for &id in &self.as_bytes()[1..] {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            match Suite::from_id(id) {
                Some(s) => write!(f, "{}", s.cipher_name())?,
                None => write!(f, "unknown suite 0x{id:02x}")?,
            }
        }
        Ok(())
    }
}

/// Parameters each side announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportParams {
    /// Largest UDP payload this side accepts.
    pub max_udp_payload: u32,
    /// Initial flow-control window: stream bytes the peer may send before
    /// the first MAX_DATA.
    pub initial_max_data: u64,
    /// The sender closes the connection after this long without a packet.
    pub idle_timeout_ms: u32,
}

const PARAMS_LEN: usize = 4 + 8 + 4;

impl TransportParams {
    fn write(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.max_udp_payload.to_be_bytes());
        out[4..12].copy_from_slice(&self.initial_max_data.to_be_bytes());
        out[12..16].copy_from_slice(&self.idle_timeout_ms.to_be_bytes());
    }

    fn read(b: &[u8]) -> Option<Self> {
        Some(TransportParams {
            max_udp_payload: u32::from_be_bytes(b.get(0..4)?.try_into().ok()?),
            initial_max_data: u64::from_be_bytes(b.get(4..12)?.try_into().ok()?),
            idle_timeout_ms: u32::from_be_bytes(b.get(12..16)?.try_into().ok()?),
        })
    }
}

/// A TAI64N timestamp (12 bytes, as WireGuard's handshake initiation
/// carries): big-endian `2^62 + 10 + unix seconds`, then big-endian
/// nanoseconds. Byte order is time order, so comparing the arrays compares
/// the times. The REQUEST carries one so that a standing server can refuse
/// a recorded REQUEST (docs/PROTOCOL.md §2.2, §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tai64n(pub [u8; 12]);

/// The TAI64 label of the Unix epoch (TAI was 10 s ahead of UTC in 1970;
/// later leap seconds are ignored, as WireGuard does).
const TAI64_UNIX_EPOCH: u64 = (1 << 62) + 10;

impl Tai64n {
    /// The timestamp of a wall-clock time (times before 1970 map to 1970).
    pub fn from_system(t: std::time::SystemTime) -> Self {
        let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Self::from_unix(d)
    }

    /// The timestamp `d` after the Unix epoch.
    pub fn from_unix(d: std::time::Duration) -> Self {
        let mut b = [0u8; 12];
        b[..8].copy_from_slice(&TAI64_UNIX_EPOCH.saturating_add(d.as_secs()).to_be_bytes());
        b[8..].copy_from_slice(&d.subsec_nanos().to_be_bytes());
        Tai64n(b)
    }

    /// Time since the Unix epoch (`None` for a label before 1970 or
    /// nanoseconds out of range: not a timestamp a client makes).
    pub fn to_unix(&self) -> Option<std::time::Duration> {
        let label = u64::from_be_bytes(self.0[..8].try_into().ok()?);
        let nanos = u32::from_be_bytes(self.0[8..].try_into().ok()?);
        if nanos >= 1_000_000_000 {
            return None;
        }
        let secs = label.checked_sub(TAI64_UNIX_EPOCH)?;
        Some(std::time::Duration::new(secs, nanos))
    }
}

/// Randomness a handshake consumes, supplied by the caller (the OS RNG in
/// production, fixed bytes in deterministic tests), and the wall-clock
/// timestamp a REQUEST carries.
#[derive(Clone)]
pub struct HandshakeRandom {
    /// This side's fresh nonce.
    pub nonce: [u8; NONCE_LEN],
    /// This side's ephemeral X25519 private key.
    pub dh_secret: Zeroizing<[u8; 32]>,
    /// The packet number of this side's handshake packet (below `HANDSHAKE_MSGNR_BOUND`).
    pub msgnr: u64,
    /// The time the REQUEST states (the client's clock; unused by a server).
    pub timestamp: Tai64n,
}

impl HandshakeRandom {
    /// Fresh values from the operating system's random number generator,
    /// stamped with the system clock.
    pub fn from_os() -> std::io::Result<Self> {
        let mut buf = Zeroizing::new([0u8; NONCE_LEN + 32 + 8]);
        getrandom::fill(&mut buf[..]).map_err(std::io::Error::other)?;
        let mut r = Self::from_bytes(&buf);
        r.timestamp = Tai64n::from_system(std::time::SystemTime::now());
        Ok(r)
    }

    /// Deterministic values from 72 bytes (tests); the timestamp is the
    /// Unix epoch.
    pub fn from_bytes(b: &[u8; NONCE_LEN + 32 + 8]) -> Self {
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&b[..NONCE_LEN]);
        let mut dh = Zeroizing::new([0u8; 32]);
        dh.copy_from_slice(&b[NONCE_LEN..NONCE_LEN + 32]);
        let mut m = [0u8; 8];
        m.copy_from_slice(&b[NONCE_LEN + 32..]);
        HandshakeRandom {
            nonce,
            dh_secret: dh,
            msgnr: u64::from_be_bytes(m) % HANDSHAKE_MSGNR_BOUND,
            timestamp: Tai64n::from_unix(std::time::Duration::ZERO),
        }
    }

    /// Deterministic values derived from a seed (tests and simulations).
    pub fn from_seed(seed: u64) -> Self {
        let mut b = [0u8; NONCE_LEN + 32 + 8];
        let mut x = seed ^ 0x9e37_79b9_7f4a_7c15;
        for chunk in b.chunks_mut(8) {
            // splitmix64
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_be_bytes()[..chunk.len()]);
        }
        Self::from_bytes(&b)
    }

    /// This side's X25519 public share.
    pub fn public(&self) -> [u8; 32] {
        PublicKey::from(&StaticSecret::from(*self.dh_secret)).to_bytes()
    }
}

/// Why a handshake packet was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// Not a valid VSL packet under the handshake keys (wrong secret, forged, corrupted).
    #[error("handshake packet failed authentication (wrong secret or key?)")]
    Auth,
    /// Authenticated but not understood.
    #[error("malformed handshake packet")]
    Malformed,
    /// The peer speaks another protocol version.
    #[error("peer uses VFER handshake version {0}, this build speaks version {VERSION}")]
    Version(u32),
    /// The response does not answer our request.
    #[error("handshake response for another request")]
    WrongNonce,
    /// The peer's X25519 share is a low-order point.
    #[error("peer sent a low-order X25519 share")]
    LowOrder,
    /// The client offered no suite this server accepts (server side: the
    /// REQUEST gets no answer).
    #[error("the client offers no cipher suite this side accepts (see --cipher)")]
    NoCommonSuite,
    /// The server chose a suite the client did not offer: a broken or
    /// hostile peer.
    #[error("the server chose a cipher suite that was not offered")]
    NotOffered,
}

/// A decoded, authenticated REQUEST.
#[derive(Debug, Clone)]
pub struct Request {
    /// The client's nonce.
    pub nonce: [u8; NONCE_LEN],
    /// The client's X25519 share.
    pub public: [u8; 32],
    /// The client's parameters.
    pub params: TransportParams,
    /// The suites the client offers.
    pub offer: Offer,
    /// When the client made the REQUEST (its clock).
    pub timestamp: Tai64n,
}

/// A decoded, authenticated RESPONSE.
#[derive(Debug, Clone)]
pub struct Response {
    /// The server's nonce.
    pub nonce: [u8; NONCE_LEN],
    /// The server's X25519 share.
    pub public: [u8; 32],
    /// The server's parameters.
    pub params: TransportParams,
    /// The suite the server chose (one the client offered).
    pub suite: Suite,
}

/// Keys protecting handshake packets: the VSL key schedule with all-zero
/// nonces and no DH result. They depend on the secret only.
fn handshake_keys(secret: &[u8; KEY_LEN]) -> SessionKeys {
    SessionKeys::derive(secret, &[0; NONCE_LEN], &[0; NONCE_LEN], None)
}

/// Offset of the TAI64N timestamp in the REQUEST payload.
const REQUEST_TIMESTAMP: usize = 4 + NONCE_LEN + 32 + PARAMS_LEN;
const REQUEST_BODY: usize = REQUEST_TIMESTAMP + 12;
// The suite offer follows the timestamp.
const _: () = assert!(OFFER_OFFSET == REQUEST_BODY);
const RESPONSE_BODY: usize = 4 + 2 * NONCE_LEN + 32 + PARAMS_LEN + 1;
/// Length of the RESPONSE datagram.
pub const RESPONSE_DATAGRAM_LEN: usize = HEADER_LEN + RESPONSE_BODY;

/// Builds the client's REQUEST datagram offering `offer`.
pub fn encode_request(
    secret: &[u8; KEY_LEN],
    rnd: &HandshakeRandom,
    params: &TransportParams,
    offer: &Offer,
) -> Vec<u8> {
    let mut d = vec![0u8; REQUEST_DATAGRAM_LEN];
    let p = &mut d[HEADER_LEN..];
    p[0..4].copy_from_slice(&VERSION.to_be_bytes());
    p[4..36].copy_from_slice(&rnd.nonce);
    p[36..68].copy_from_slice(&rnd.public());
    params.write(&mut p[68..68 + PARAMS_LEN]);
    let o = offer.as_bytes();
    p[OFFER_OFFSET..OFFER_OFFSET + o.len()].copy_from_slice(o);
    p[REQUEST_TIMESTAMP..REQUEST_BODY].copy_from_slice(&rnd.timestamp.0);
    let keys = handshake_keys(secret);
    let mut sealer = vsl::Sealer::new(&keys.c2s, rnd.msgnr);
    // The datagram is 1200 bytes: well within VSL limits.
    let _ = sealer.seal_in_place(TYPE_REQUEST, &mut d);
    d
}

/// Authenticates and decodes a REQUEST datagram (in place).
pub fn decode_request(
    secret: &[u8; KEY_LEN],
    datagram: &mut [u8],
) -> Result<Request, HandshakeError> {
    let keys = handshake_keys(secret);
    let mut opener = vsl::Opener::new(&keys.c2s);
    let opened = opener.open(datagram).map_err(|_| HandshakeError::Auth)?;
    if opened.ptype != TYPE_REQUEST || opened.payload.len() < REQUEST_BODY {
        return Err(HandshakeError::Malformed);
    }
    let p = &opened.payload;
    let version = u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
    if version != VERSION {
        return Err(HandshakeError::Version(version));
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&p[4..36]);
    let mut public = [0u8; 32];
    public.copy_from_slice(&p[36..68]);
    let params = TransportParams::read(&p[68..]).ok_or(HandshakeError::Malformed)?;
    let offer = p
        .get(OFFER_OFFSET..)
        .and_then(Offer::read)
        .ok_or(HandshakeError::Malformed)?;
    let mut timestamp = [0u8; 12];
    timestamp.copy_from_slice(&p[REQUEST_TIMESTAMP..REQUEST_BODY]);
    Ok(Request {
        nonce,
        public,
        params,
        offer,
        timestamp: Tai64n(timestamp),
    })
}

/// Builds the server's RESPONSE datagram answering the request with
/// `client_nonce`, announcing the chosen suite.
pub fn encode_response(
    secret: &[u8; KEY_LEN],
    client_nonce: &[u8; NONCE_LEN],
    rnd: &HandshakeRandom,
    params: &TransportParams,
    chosen: Suite,
) -> Vec<u8> {
    let mut d = vec![0u8; RESPONSE_DATAGRAM_LEN];
    let p = &mut d[HEADER_LEN..];
    p[0..4].copy_from_slice(&VERSION.to_be_bytes());
    p[4..36].copy_from_slice(client_nonce);
    p[36..68].copy_from_slice(&rnd.nonce);
    p[68..100].copy_from_slice(&rnd.public());
    params.write(&mut p[100..100 + PARAMS_LEN]);
    p[116] = chosen.id();
    let keys = handshake_keys(secret);
    let mut sealer = vsl::Sealer::new(&keys.s2c, rnd.msgnr);
    let _ = sealer.seal_in_place(TYPE_RESPONSE, &mut d);
    d
}

/// Opens the server's answer (RESPONSE or BUSY, type `ptype`, body of
/// `body_len` bytes) to our REQUEST with `client_nonce`: authenticated
/// under the handshake keys, with our version and our nonce echoed at
/// body bytes 0..4 and 4..36. Returns the body.
pub(super) fn open_server_reply<'d>(
    secret: &[u8; KEY_LEN],
    client_nonce: &[u8; NONCE_LEN],
    datagram: &'d mut [u8],
    ptype: u8,
    body_len: usize,
) -> Result<&'d [u8], HandshakeError> {
    let keys = handshake_keys(secret);
    let mut opener = vsl::Opener::new(&keys.s2c);
    let opened = opener.open(datagram).map_err(|_| HandshakeError::Auth)?;
    if opened.ptype != ptype || opened.payload.len() != body_len {
        return Err(HandshakeError::Malformed);
    }
    let p = opened.payload;
    let version = u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
    if version != VERSION {
        return Err(HandshakeError::Version(version));
    }
    if p[4..36] != client_nonce[..] {
        return Err(HandshakeError::WrongNonce);
    }
    Ok(p)
}

/// Authenticates and decodes a RESPONSE to the request with `client_nonce`
/// that offered `offer`; the chosen suite must be one offered.
pub fn decode_response(
    secret: &[u8; KEY_LEN],
    client_nonce: &[u8; NONCE_LEN],
    offer: &Offer,
    datagram: &mut [u8],
) -> Result<Response, HandshakeError> {
    let p = open_server_reply(secret, client_nonce, datagram, TYPE_RESPONSE, RESPONSE_BODY)?;
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&p[36..68]);
    let mut public = [0u8; 32];
    public.copy_from_slice(&p[68..100]);
    let params = TransportParams::read(&p[100..]).ok_or(HandshakeError::Malformed)?;
    let suite = Suite::from_id(p[116])
        .filter(|&s| offer.contains(s))
        .ok_or(HandshakeError::NotOffered)?;
    Ok(Response {
        nonce,
        public,
        params,
        suite,
    })
}

/// Session keys for the `chosen` suite from the secret, both nonces, the
/// X25519 result and the suite binding (the client's `offer` and the
/// choice, PROTOCOL §2.4). Fails on a low-order peer share (all-zero
/// shared secret).
#[allow(clippy::too_many_arguments)]
pub fn session_keys(
    secret: &[u8; KEY_LEN],
    client_nonce: &[u8; NONCE_LEN],
    server_nonce: &[u8; NONCE_LEN],
    our_dh_secret: &[u8; 32],
    peer_public: &[u8; 32],
    offer: &Offer,
    chosen: Suite,
) -> Result<SuiteKeys, HandshakeError> {
    let ours = StaticSecret::from(*our_dh_secret);
    let shared = ours.diffie_hellman(&PublicKey::from(*peer_public));
    if !shared.was_contributory() {
        return Err(HandshakeError::LowOrder);
    }
    let (binding, len) = offer.binding(chosen);
    Ok(SuiteKeys::derive(
        chosen,
        secret,
        client_nonce,
        server_nonce,
        Some(shared.as_bytes()),
        &binding[..len],
    ))
}

#[cfg(test)]
#[path = "handshake_tests.rs"]
mod tests;
