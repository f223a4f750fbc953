//! Sealing and opening VSL packets: AES-256-CTR, then HMAC-SHA256 over the
//! header (without the MAC field) and the ciphertext, truncated to 16 bytes.

use aes::cipher::{InnerIvInit, KeyInit, StreamCipher};
use aes::Aes256;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::header::{Header, HEADER_LEN, MAC_LEN, MAX_DATALEN};
use super::keys::{DirectionKeys, SessionKeys};
use super::replay::ReplayWindow;

type AesCtr = ctr::Ctr64BE<Aes256>;
pub(crate) type HmacSha256 = Hmac<Sha256>;

/// The highest packet number a sender may use. A connection must close (or
/// rekey) before it; `Sealer` refuses to go further. At a million packets a
/// second this is 36,000 years away; it exists so msgnr never wraps.
pub const MSGNR_LIMIT: u64 = (1 << 60) - 1;

/// Which end of the connection we are: picks the direction keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The side that sent the first handshake packet.
    Client,
    /// The side that answered it.
    Server,
}

/// Why a packet could not be sealed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    /// The payload is larger than `MAX_DATALEN`.
    #[error("VSL payload of {0} bytes exceeds the maximum of {MAX_DATALEN}")]
    TooLarge(usize),
    /// The output buffer cannot hold header and payload.
    #[error("output buffer too small for a VSL packet")]
    BufferTooSmall,
    /// This direction has used every packet number it may: close the session.
    #[error("VSL packet numbers exhausted; the session must end")]
    MsgnrExhausted,
}

/// Why a datagram was dropped. Each is counted by the caller; none is fatal.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    /// Too short, too long, wrong magic, or datalen disagrees with the length.
    #[error("malformed VSL packet")]
    Malformed,
    /// The packet number was already seen or is older than the replay window.
    #[error("replayed or too old VSL packet")]
    Replayed,
    /// The MAC does not verify: forged, corrupted, or from another session.
    #[error("VSL packet failed authentication")]
    BadMac,
}

/// A packet that verified and was decrypted in place.
#[derive(Debug, PartialEq, Eq)]
pub struct Opened<'a> {
    /// Its packet number.
    pub msgnr: u64,
    /// Its type byte.
    pub ptype: u8,
    /// The plaintext, inside the caller's buffer.
    pub payload: &'a mut [u8],
}

/// Protects outgoing packets of one direction. Keyed once; per packet only
/// the cipher and MAC states are cloned.
pub struct Sealer {
    aes: Aes256,
    mac: HmacSha256,
    next_msgnr: u64,
}

/// Verifies and decrypts incoming packets of one direction.
pub struct Opener {
    aes: Aes256,
    mac: HmacSha256,
    replay: ReplayWindow,
}

// Keyed primitive states hold key material: make sure they wipe themselves
// (the `zeroize` features of `aes`, `hmac` and `sha2` in Cargo.toml). HMAC
// has no marker of its own; its keyed state is two SHA-256 cores, which do.
const _: () = {
    fn assert_zeroize_on_drop<T: zeroize::ZeroizeOnDrop>() {}
    fn check() {
        assert_zeroize_on_drop::<Aes256>();
        assert_zeroize_on_drop::<sha2::block_api::Sha256VarCore>();
    }
    let _ = check;
};

fn keyed(keys: &DirectionKeys) -> (Aes256, HmacSha256) {
    (Aes256::new(&keys.enc.into()), mac_state(&keys.mac))
}

/// HMAC-SHA256 keyed once; cloned per packet.
pub(crate) fn mac_state(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length (longer ones are hashed): cannot fail.
    <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length")
}

/// The CTR IV of packet `msgnr`: `be64(msgnr) || 0^64`.
fn iv(msgnr: u64) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[..8].copy_from_slice(&msgnr.to_be_bytes());
    iv
}

/// HMAC over `msgnr || magic || type || datalen || ciphertext`: every header
/// field but the MAC itself.
fn tag(mac: &HmacSha256, datagram: &[u8]) -> HmacSha256 {
    let mut m = mac.clone();
    m.update(&datagram[0..8]);
    m.update(&datagram[8 + MAC_LEN..]);
    m
}

/// Constant-time comparison of the leftmost `expected.len()` bytes of the
/// HMAC with `expected`.
pub(crate) fn verify_truncated(m: HmacSha256, expected: &[u8]) -> bool {
    m.verify_truncated_left(expected).is_ok()
}

fn apply_ctr(aes: &Aes256, msgnr: u64, data: &mut [u8]) {
    apply_ctr_iv(aes, &iv(msgnr), data);
}

/// AES-256-CTR with a 64-bit big-endian counter in the IV's low half (the
/// high half is fixed): `Ctr64BE`, never `Ctr128BE`.
pub(crate) fn apply_ctr_iv(aes: &Aes256, iv: &[u8; 16], data: &mut [u8]) {
    let core =
        ctr::CtrCore::<Aes256, ctr::flavors::Ctr64BE>::inner_iv_init(aes.clone(), &(*iv).into());
    let mut c = AesCtr::from_core(core);
    c.apply_keystream(data);
}

impl Sealer {
    /// A sealer whose first packet number is `first_msgnr`.
    pub fn new(keys: &DirectionKeys, first_msgnr: u64) -> Sealer {
        let (aes, mac) = keyed(keys);
        Sealer {
            aes,
            mac,
            next_msgnr: first_msgnr,
        }
    }

    /// The packet number the next `seal` will use.
    pub fn next_msgnr(&self) -> u64 {
        self.next_msgnr
    }

    /// Seals in place: `buf` holds `HEADER_LEN` bytes of room followed by the
    /// plaintext payload (all of `buf[HEADER_LEN..]`). Fills in the header,
    /// encrypts and MACs. Returns the packet number used.
    pub fn seal_in_place(&mut self, ptype: u8, buf: &mut [u8]) -> Result<u64, SealError> {
        if buf.len() < HEADER_LEN {
            return Err(SealError::BufferTooSmall);
        }
        let datalen = buf.len() - HEADER_LEN;
        if datalen > MAX_DATALEN {
            return Err(SealError::TooLarge(datalen));
        }
        let msgnr = self.next_msgnr;
        if msgnr > MSGNR_LIMIT {
            return Err(SealError::MsgnrExhausted);
        }
        self.next_msgnr += 1;
        apply_ctr(&self.aes, msgnr, &mut buf[HEADER_LEN..]);
        Header {
            msgnr,
            mac: [0; MAC_LEN],
            ptype,
            datalen: datalen as u32,
        }
        .write(buf);
        let full = tag(&self.mac, buf).finalize().into_bytes();
        buf[8..8 + MAC_LEN].copy_from_slice(&full[..MAC_LEN]);
        Ok(msgnr)
    }

    /// Seals `payload` into `out`, returning the packet number and the
    /// datagram length.
    pub fn seal(
        &mut self,
        ptype: u8,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<(u64, usize), SealError> {
        let len = HEADER_LEN + payload.len();
        if payload.len() > MAX_DATALEN {
            return Err(SealError::TooLarge(payload.len()));
        }
        if out.len() < len {
            return Err(SealError::BufferTooSmall);
        }
        out[HEADER_LEN..len].copy_from_slice(payload);
        let msgnr = self.seal_in_place(ptype, &mut out[..len])?;
        Ok((msgnr, len))
    }
}

impl Opener {
    /// An opener with an empty replay window.
    pub fn new(keys: &DirectionKeys) -> Opener {
        let (aes, mac) = keyed(keys);
        Opener {
            aes,
            mac,
            replay: ReplayWindow::new(),
        }
    }

    /// Verifies and decrypts a datagram in place. Order: length and magic
    /// checks, replay pre-check, constant-time MAC verification, replay
    /// window update, decryption. Nothing is decrypted before the MAC verifies.
    pub fn open<'a>(&mut self, datagram: &'a mut [u8]) -> Result<Opened<'a>, OpenError> {
        let header = Header::parse(datagram).ok_or(OpenError::Malformed)?;
        if !self.replay.check(header.msgnr) {
            return Err(OpenError::Replayed);
        }
        if !verify_truncated(tag(&self.mac, datagram), &header.mac) {
            return Err(OpenError::BadMac);
        }
        if !self.replay.update(header.msgnr) {
            return Err(OpenError::Replayed);
        }
        let payload = &mut datagram[HEADER_LEN..];
        apply_ctr(&self.aes, header.msgnr, payload);
        Ok(Opened {
            msgnr: header.msgnr,
            ptype: header.ptype,
            payload,
        })
    }

    /// Highest packet number accepted so far.
    pub fn highest_msgnr(&self) -> Option<u64> {
        self.replay.highest()
    }
}

/// Both directions of one connection, from one side's point of view.
pub struct Session {
    /// Seals what we send.
    pub sealer: Sealer,
    /// Opens what the peer sends.
    pub opener: Opener,
}

impl Session {
    /// Keys the session for `role`; our first packet number is `first_msgnr`.
    pub fn new(keys: &SessionKeys, role: Role, first_msgnr: u64) -> Session {
        let (send, recv) = match role {
            Role::Client => (&keys.c2s, &keys.s2c),
            Role::Server => (&keys.s2c, &keys.c2s),
        };
        Session {
            sealer: Sealer::new(send, first_msgnr),
            opener: Opener::new(recv),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Session, Session) {
        let keys = SessionKeys::derive(&[1; 32], &[2; 32], &[3; 32], None);
        (
            Session::new(&keys, Role::Client, 0),
            Session::new(&keys, Role::Server, 0),
        )
    }

    #[test]
    fn seal_open_round_trip() {
        let (mut c, mut s) = pair();
        let mut buf = [0u8; 200];
        for len in [0usize, 1, 15, 16, 17, 100] {
            let payload: Vec<u8> = (0..len as u8).collect();
            let (n, l) = c.sealer.seal(0, &payload, &mut buf).unwrap();
            let opened = s.opener.open(&mut buf[..l]).unwrap();
            assert_eq!(opened.msgnr, n);
            assert_eq!(opened.payload, &payload[..]);
        }
    }

    #[test]
    fn replay_and_reflection_rejected() {
        let (mut c, mut s) = pair();
        let mut buf = [0u8; 64];
        let (_, l) = c.sealer.seal(0, b"hello", &mut buf).unwrap();
        let copy = buf;
        s.opener.open(&mut buf[..l]).unwrap();
        let mut again = copy;
        assert_eq!(s.opener.open(&mut again[..l]), Err(OpenError::Replayed));
        let mut reflected = copy;
        assert_eq!(c.opener.open(&mut reflected[..l]), Err(OpenError::BadMac));
    }

    #[test]
    fn consecutive_packets_use_distinct_keystream() {
        let (mut c, _) = pair();
        let zeros = [0u8; 64];
        let mut a = [0u8; HEADER_LEN + 64];
        let mut b = [0u8; HEADER_LEN + 64];
        c.sealer.seal(0, &zeros, &mut a).unwrap();
        c.sealer.seal(0, &zeros, &mut b).unwrap();
        // With Ctr128BE and IV = msgnr||0, packet n+1's first block would be
        // packet n's second block. Ctr64BE puts msgnr in the nonce half.
        assert_ne!(
            a[HEADER_LEN + 16..HEADER_LEN + 32],
            b[HEADER_LEN..HEADER_LEN + 16]
        );
    }

    #[test]
    fn refuses_to_wrap() {
        let keys = SessionKeys::derive(&[1; 32], &[2; 32], &[3; 32], None);
        let mut s = Sealer::new(&keys.c2s, MSGNR_LIMIT);
        let mut buf = [0u8; HEADER_LEN];
        assert!(s.seal_in_place(0, &mut buf).is_ok());
        assert_eq!(s.seal_in_place(0, &mut buf), Err(SealError::MsgnrExhausted));
    }
}
