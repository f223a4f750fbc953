//! Sealing and opening VSL packets, per suite (docs/PROTOCOL.md §1.4-§1.5):
//!
//! - VSL1: AES-256-CTR, then HMAC-SHA256 over the header (without the MAC
//!   field) and the ciphertext, truncated to 16 bytes;
//! - VSL2: AES-256-GCM with the same header fields as associated data and
//!   the 16-byte tag in the MAC field.
//!
//! `Sealer` and `Opener` keep one call signature for every suite and
//! dispatch inside; keyed once per session, nothing allocated per packet.

use aes::cipher::{InnerIvInit, KeyInit, StreamCipher};
use aes::Aes256;
use hmac::{Hmac, Mac};
use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, AES_256_GCM};
use sha2::Sha256;

use super::header::{Header, HEADER_LEN, MAC_LEN, MAX_DATALEN};
use super::keys::{
    DirectionKeys, GcmDirectionKeys, GcmSessionKeys, SessionKeys, SuiteKeys, GCM_IV_LEN,
};
use super::replay::ReplayWindow;
use super::suite::Suite;

type AesCtr = ctr::Ctr64BE<Aes256>;
pub(crate) type HmacSha256 = Hmac<Sha256>;

/// The highest packet number a sender may use. A connection must close (or
/// rekey) before it; `Sealer` refuses to go further. At a million packets a
/// second this is 36,000 years away; it exists so msgnr never wraps.
pub const MSGNR_LIMIT: u64 = (1 << 60) - 1;

/// Length of the associated data of a VSL2 packet: msgnr, magic, type, datalen.
const AAD_LEN: usize = 8 + 4 + 1 + 4;

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
    /// Too short, too long, wrong magic (including another suite's), or
    /// datalen disagrees with the length.
    #[error("malformed VSL packet")]
    Malformed,
    /// The packet number was already seen or is older than the replay window.
    #[error("replayed or too old VSL packet")]
    Replayed,
    /// The MAC (or GCM tag) does not verify: forged, corrupted, or from
    /// another session.
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

/// One direction's keyed primitives, for whichever suite. Not nameable
/// outside `vsl` (only through the keying traits).
#[doc(hidden)]
pub enum Cipher {
    /// VSL1: AES-256-CTR then truncated HMAC-SHA256.
    Vsl1 {
        /// AES-256 round keys, cloned into a CTR state per packet.
        aes: Aes256,
        /// The keyed HMAC-SHA256 state, cloned per packet.
        mac: HmacSha256,
    },
    /// VSL2: AES-256-GCM.
    Gcm {
        /// The expanded AES-256-GCM key (ring).
        key: LessSafeKey,
        /// The direction's IV, XORed with the msgnr into each nonce.
        iv: [u8; GCM_IV_LEN],
    },
}

impl Cipher {
    fn suite(&self) -> Suite {
        match self {
            Cipher::Vsl1 { .. } => Suite::Vsl1,
            Cipher::Gcm { .. } => Suite::Aes256Gcm,
        }
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::DirectionKeys {}
    impl Sealed for super::GcmDirectionKeys {}
    impl Sealed for super::SessionKeys {}
    impl Sealed for super::GcmSessionKeys {}
    impl Sealed for super::SuiteKeys {}
}

/// One direction's keys of some suite: what `Sealer::new` and `Opener::new`
/// are keyed from (`DirectionKeys` for VSL1, `GcmDirectionKeys` for VSL2).
pub trait DirectionKeying: sealed::Sealed {
    /// Expands the keys into keyed primitive state (once per session).
    #[doc(hidden)]
    fn cipher(&self) -> Cipher;
}

impl DirectionKeying for DirectionKeys {
    fn cipher(&self) -> Cipher {
        Cipher::Vsl1 {
            aes: Aes256::new(&self.enc.into()),
            mac: mac_state(&self.mac),
        }
    }
}

impl DirectionKeying for GcmDirectionKeys {
    fn cipher(&self) -> Cipher {
        // A 32-byte key is exactly what AES-256-GCM takes: cannot fail.
        let unbound =
            UnboundKey::new(&AES_256_GCM, &self.key).expect("AES-256-GCM takes a 32-byte key");
        Cipher::Gcm {
            key: LessSafeKey::new(unbound),
            iv: self.iv,
        }
    }
}

/// Both directions' keys of some suite: what `Session::new` is keyed from.
pub trait SessionKeying: sealed::Sealed {
    /// The keyed state for sending and for receiving as `role`.
    #[doc(hidden)]
    fn ciphers(&self, role: Role) -> (Cipher, Cipher);
}

fn by_role<K: DirectionKeying>(c2s: &K, s2c: &K, role: Role) -> (Cipher, Cipher) {
    match role {
        Role::Client => (c2s.cipher(), s2c.cipher()),
        Role::Server => (s2c.cipher(), c2s.cipher()),
    }
}

impl SessionKeying for SessionKeys {
    fn ciphers(&self, role: Role) -> (Cipher, Cipher) {
        by_role(&self.c2s, &self.s2c, role)
    }
}

impl SessionKeying for GcmSessionKeys {
    fn ciphers(&self, role: Role) -> (Cipher, Cipher) {
        by_role(&self.c2s, &self.s2c, role)
    }
}

impl SessionKeying for SuiteKeys {
    fn ciphers(&self, role: Role) -> (Cipher, Cipher) {
        match self {
            SuiteKeys::Vsl1(k) => k.ciphers(role),
            SuiteKeys::Aes256Gcm(k) => k.ciphers(role),
        }
    }
}

/// Protects outgoing packets of one direction. Keyed once; per packet only
/// the VSL1 cipher and MAC states are cloned (GCM needs nothing per packet).
pub struct Sealer {
    cipher: Cipher,
    next_msgnr: u64,
}

/// Verifies and decrypts incoming packets of one direction.
pub struct Opener {
    cipher: Cipher,
    replay: ReplayWindow,
}

// Keyed primitive states hold key material: make sure they wipe themselves
// (the `zeroize` features of `aes`, `hmac` and `sha2` in Cargo.toml). HMAC
// has no marker of its own; its keyed state is two SHA-256 cores, which do.
// (ring's expanded GCM key has no such hook; the raw key bytes it came
// from, `GcmDirectionKeys`, are wiped.)
const _: () = {
    fn assert_zeroize_on_drop<T: zeroize::ZeroizeOnDrop>() {}
    fn check() {
        assert_zeroize_on_drop::<Aes256>();
        assert_zeroize_on_drop::<sha2::block_api::Sha256VarCore>();
        assert_zeroize_on_drop::<GcmDirectionKeys>();
    }
    let _ = check;
};

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

/// The GCM nonce of packet `msgnr`: `iv XOR (0^32 || be64(msgnr))`, as
/// TLS 1.3 forms its per-record nonce.
pub(crate) fn gcm_nonce(iv: &[u8; GCM_IV_LEN], msgnr: u64) -> [u8; GCM_IV_LEN] {
    let mut n = *iv;
    for (b, m) in n[4..].iter_mut().zip(msgnr.to_be_bytes()) {
        *b ^= m;
    }
    n
}

/// The GCM associated data: every header field but the tag, in wire order
/// (`datagram[0..8] || datagram[24..33]`).
fn aad(datagram: &[u8]) -> [u8; AAD_LEN] {
    let mut a = [0u8; AAD_LEN];
    a[..8].copy_from_slice(&datagram[0..8]);
    a[8..].copy_from_slice(&datagram[8 + MAC_LEN..HEADER_LEN]);
    a
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

/// AES-256-GCM seal in place with vfer's key type: returns the 16-byte tag.
/// `None` only past ring's input limit (far above any datagram).
pub(crate) fn gcm_seal(
    key: &LessSafeKey,
    nonce: [u8; GCM_IV_LEN],
    aad: &[u8],
    data: &mut [u8],
) -> Option<[u8; MAC_LEN]> {
    let tag = key
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), data)
        .ok()?;
    tag.as_ref().try_into().ok()
}

/// AES-256-GCM open in place: verifies `tag` and decrypts. On a wrong tag
/// returns false and `data` is zeroed (ring never releases unverified
/// plaintext).
pub(crate) fn gcm_open(
    key: &LessSafeKey,
    nonce: [u8; GCM_IV_LEN],
    aad: &[u8],
    tag: [u8; MAC_LEN],
    data: &mut [u8],
) -> bool {
    key.open_in_place_separate_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        Tag::from(tag),
        data,
        0..,
    )
    .is_ok()
}

impl Sealer {
    /// A sealer whose first packet number is `first_msgnr`, for the suite
    /// of `keys` (`DirectionKeys`: VSL1, `GcmDirectionKeys`: VSL2).
    pub fn new<K: DirectionKeying + ?Sized>(keys: &K, first_msgnr: u64) -> Sealer {
        Sealer {
            cipher: keys.cipher(),
            next_msgnr: first_msgnr,
        }
    }

    /// The suite this sealer protects packets with.
    pub fn suite(&self) -> Suite {
        self.cipher.suite()
    }

    /// The packet number the next `seal` will use.
    pub fn next_msgnr(&self) -> u64 {
        self.next_msgnr
    }

    /// Seals in place: `buf` holds `HEADER_LEN` bytes of room followed by the
    /// plaintext payload (all of `buf[HEADER_LEN..]`). Fills in the header,
    /// encrypts and authenticates. Returns the packet number used.
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
        let header = Header {
            msgnr,
            mac: [0; MAC_LEN],
            suite: self.cipher.suite(),
            ptype,
            datalen: datalen as u32,
        };
        match &self.cipher {
            Cipher::Vsl1 { aes, mac } => {
                apply_ctr(aes, msgnr, &mut buf[HEADER_LEN..]);
                header.write(buf);
                let full = tag(mac, buf).finalize().into_bytes();
                buf[8..8 + MAC_LEN].copy_from_slice(&full[..MAC_LEN]);
            }
            Cipher::Gcm { key, iv } => {
                header.write(buf);
                let aad = aad(buf);
                let t = gcm_seal(key, gcm_nonce(iv, msgnr), &aad, &mut buf[HEADER_LEN..])
                    .ok_or(SealError::TooLarge(datalen))?;
                buf[8..8 + MAC_LEN].copy_from_slice(&t);
            }
        }
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
    /// An opener with an empty replay window, for the suite of `keys`.
    pub fn new<K: DirectionKeying + ?Sized>(keys: &K) -> Opener {
        Opener {
            cipher: keys.cipher(),
            replay: ReplayWindow::new(),
        }
    }

    /// The suite this opener accepts.
    pub fn suite(&self) -> Suite {
        self.cipher.suite()
    }

    /// Verifies and decrypts a datagram in place. Order: length and magic
    /// checks (the magic must be this opener's suite's), replay pre-check,
    /// authentication, replay window update, delivery. VSL1 verifies the
    /// MAC in constant time before decrypting; VSL2 decrypts and checks
    /// the tag in one pass and releases nothing (the payload is zeroed) if
    /// the tag is wrong. Nothing is delivered or remembered unauthenticated.
    pub fn open<'a>(&mut self, datagram: &'a mut [u8]) -> Result<Opened<'a>, OpenError> {
        let header = Header::parse(datagram).ok_or(OpenError::Malformed)?;
        if header.suite != self.cipher.suite() {
            return Err(OpenError::Malformed);
        }
        if !self.replay.check(header.msgnr) {
            return Err(OpenError::Replayed);
        }
        match &self.cipher {
            Cipher::Vsl1 { aes, mac } => {
                if !verify_truncated(tag(mac, datagram), &header.mac) {
                    return Err(OpenError::BadMac);
                }
                if !self.replay.update(header.msgnr) {
                    return Err(OpenError::Replayed);
                }
                apply_ctr(aes, header.msgnr, &mut datagram[HEADER_LEN..]);
            }
            Cipher::Gcm { key, iv } => {
                let aad = aad(datagram);
                let nonce = gcm_nonce(iv, header.msgnr);
                if !gcm_open(key, nonce, &aad, header.mac, &mut datagram[HEADER_LEN..]) {
                    return Err(OpenError::BadMac);
                }
                if !self.replay.update(header.msgnr) {
                    return Err(OpenError::Replayed);
                }
            }
        }
        let payload = &mut datagram[HEADER_LEN..];
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
    /// Keys the session for `role`; our first packet number is
    /// `first_msgnr`. The suite is that of `keys` (`SessionKeys`: VSL1,
    /// `GcmSessionKeys`: VSL2, `SuiteKeys`: whichever was negotiated).
    pub fn new<K: SessionKeying + ?Sized>(keys: &K, role: Role, first_msgnr: u64) -> Session {
        let (send, recv) = keys.ciphers(role);
        Session {
            sealer: Sealer {
                cipher: send,
                next_msgnr: first_msgnr,
            },
            opener: Opener {
                cipher: recv,
                replay: ReplayWindow::new(),
            },
        }
    }

    /// The suite protecting both directions.
    pub fn suite(&self) -> Suite {
        self.sealer.suite()
    }
}

#[cfg(test)]
#[path = "packet_tests.rs"]
mod tests;
