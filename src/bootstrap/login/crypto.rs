//! The key schedule of the pre-handshake (docs/PROTOCOL.md §7.3), in the
//! Noise NX pattern: the client sends an ephemeral key `e`; the server
//! answers with its ephemeral key and its static key and proves it holds the
//! static private key; the session secret depends on both Diffie-Hellman
//! results and the whole transcript.

use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, Zeroizing};

use super::wire::LOGIN_VERSION;
use crate::bootstrap::wire::Secret;

/// Domain separation prefix of the transcript hash.
const TRANSCRIPT_LABEL: &[u8] = b"vfer login v1";

/// What both sides derive from a completed pre-handshake.
pub struct Derived {
    /// The transport secret S for §2's handshake.
    pub secret: Secret,
    /// Key confirmation value the server sends in ACCEPT.
    pub confirm: [u8; 32],
    /// The value the client repeats inside the login message, binding the
    /// login to this handshake.
    pub binding: [u8; 32],
}

/// Why key agreement failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A Diffie-Hellman result was all zero: a low-order point.
    #[error("the peer sent a low-order X25519 point")]
    LowOrder,
}

/// `h = SHA-256("vfer login v1" || be32(version) || e_c || e_s || s)`.
pub fn transcript(
    client_eph: &[u8; 32],
    server_eph: &[u8; 32],
    server_static: &[u8; 32],
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(TRANSCRIPT_LABEL);
    h.update(LOGIN_VERSION.to_be_bytes());
    h.update(client_eph);
    h.update(server_eph);
    h.update(server_static);
    h.finalize().into()
}

/// X25519 with the all-zero (non-contributory) result refused.
pub fn dh(ours: &StaticSecret, theirs: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let shared = ours.diffie_hellman(&PublicKey::from(*theirs));
    if !shared.was_contributory() {
        return Err(KeyError::LowOrder);
    }
    Ok(Zeroizing::new(*shared.as_bytes()))
}

/// `PRK = HKDF-Extract(salt = h, IKM = dh_ee || dh_es)`, then S, the
/// confirmation value and the binding value by HKDF-Expand.
pub fn derive(h: &[u8; 32], dh_ee: &[u8; 32], dh_es: &[u8; 32]) -> Derived {
    let mut ikm = [0u8; 64];
    ikm[..32].copy_from_slice(dh_ee);
    ikm[32..].copy_from_slice(dh_es);
    let hk = Hkdf::<Sha256>::new(Some(h), &ikm);
    ikm.zeroize();
    let expand = |label: &[u8]| {
        let mut k = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's limit: cannot fail.
        hk.expand(label, &mut k)
            .expect("HKDF-SHA256 can always expand 32 bytes");
        k
    };
    let mut s = expand(b"vfer login secret");
    let secret = Secret::from_slice(&s);
    s.zeroize();
    Derived {
        secret,
        confirm: expand(b"vfer login confirm"),
        binding: expand(b"vfer login binding"),
    }
}

/// The server's side: its ephemeral and static private keys, the client's
/// ephemeral public key.
pub fn server_derive(
    eph: &StaticSecret,
    static_key: &StaticSecret,
    client_eph: &[u8; 32],
) -> Result<(Derived, [u8; 32]), KeyError> {
    let e_s = PublicKey::from(eph).to_bytes();
    let s = PublicKey::from(static_key).to_bytes();
    let ee = dh(eph, client_eph)?;
    let es = dh(static_key, client_eph)?;
    Ok((derive(&transcript(client_eph, &e_s, &s), &ee, &es), e_s))
}

/// The client's side: its ephemeral private key and the server's two
/// public keys.
pub fn client_derive(
    eph: &StaticSecret,
    server_eph: &[u8; 32],
    server_static: &[u8; 32],
) -> Result<Derived, KeyError> {
    let e_c = PublicKey::from(eph).to_bytes();
    let ee = dh(eph, server_eph)?;
    let es = dh(eph, server_static)?;
    Ok(derive(
        &transcript(&e_c, server_eph, server_static),
        &ee,
        &es,
    ))
}

/// Constant-time equality of two 32-byte values.
pub fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut d = 0u8;
    for (x, y) in a.iter().zip(b) {
        d |= x ^ y;
    }
    // black_box keeps the compiler from short-circuiting the fold.
    std::hint::black_box(d) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> StaticSecret {
        StaticSecret::from([b; 32])
    }

    #[test]
    fn both_sides_agree() {
        let (c, e, s) = (key(1), key(2), key(3));
        let e_c = PublicKey::from(&c).to_bytes();
        let (sd, e_s) = server_derive(&e, &s, &e_c).unwrap();
        let cd = client_derive(&c, &e_s, &PublicKey::from(&s).to_bytes()).unwrap();
        assert_eq!(sd.secret.bytes(), cd.secret.bytes());
        assert_eq!(sd.confirm, cd.confirm);
        assert_eq!(sd.binding, cd.binding);
        assert_ne!(sd.confirm, sd.binding);
        assert_ne!(*sd.secret.bytes(), sd.confirm);
    }

    #[test]
    fn substituted_keys_break_confirmation() {
        let (c, e, s, mallory) = (key(1), key(2), key(3), key(9));
        let e_c = PublicKey::from(&c).to_bytes();
        let (sd, _) = server_derive(&e, &s, &e_c).unwrap();
        // A relay puts its own ephemeral key in front of the real static key:
        // without the static private key its confirmation cannot match.
        let m_pub = PublicKey::from(&mallory).to_bytes();
        let cd = client_derive(&c, &m_pub, &PublicKey::from(&s).to_bytes()).unwrap();
        assert!(!ct_eq(&cd.confirm, &sd.confirm));
        let (md, _) = server_derive(&mallory, &mallory, &e_c).unwrap();
        assert!(!ct_eq(&cd.confirm, &md.confirm));
    }

    #[test]
    fn low_order_points_refused() {
        // The all-zero point and the order-8 points of Curve25519.
        let zero = [0u8; 32];
        let mut one = [0u8; 32];
        one[0] = 1;
        for p in [zero, one] {
            assert_eq!(dh(&key(1), &p).err(), Some(KeyError::LowOrder));
            assert!(server_derive(&key(2), &key(3), &p).is_err());
            assert!(client_derive(&key(1), &p, &[9; 32]).is_err());
        }
        assert!(ct_eq(&[7; 32], &[7; 32]) && !ct_eq(&[7; 32], &[8; 32]));
    }
}

#[cfg(test)]
mod vector {
    use super::*;

    /// The worked example of docs/PROTOCOL.md §7.3.
    #[test]
    fn protocol_md_vector() {
        let c = StaticSecret::from([0x11; 32]);
        let e = StaticSecret::from([0x22; 32]);
        let s = StaticSecret::from([0x33; 32]);
        let e_c = PublicKey::from(&c).to_bytes();
        let (d, e_s) = server_derive(&e, &s, &e_c).unwrap();
        let s_pub = PublicKey::from(&s).to_bytes();
        let h = transcript(&e_c, &e_s, &s_pub);
        let hx = |b: &[u8]| hex::encode(b);
        assert_eq!(
            hx(&e_c),
            "7b4e909bbe7ffe44c465a220037d608ee35897d31ef972f07f74892cb0f73f13"
        );
        assert_eq!(
            hx(&e_s),
            "0faa684ed28867b97f4a6a2dee5df8ce974e76b7018e3f22a1c4cf2678570f20"
        );
        assert_eq!(
            hx(&s_pub),
            "7b0d47d93427f8311160781c7c733fd89f88970aef490d8aa0ee19a4cb8a1b14"
        );
        assert_eq!(
            hx(&h),
            "b3554c4b3813db33185e89ebf5c363efb79c46523368b70fadf58acda58afdd9"
        );
        assert_eq!(
            hx(d.secret.bytes()),
            "9d2778f55acf9eaa90e31a4411c9192c728ee90669138101d72e5b57add88607"
        );
        assert_eq!(
            hx(&d.confirm),
            "920e750179a07a5fb3bb542ae4827b756ddaa98ae7ceb9c043cdc5739e980bd9"
        );
        assert_eq!(
            hx(&d.binding),
            "b8f404d816ead73ceece18c6503ee7a6861e556440a884147ad39d90ccee688c"
        );
        assert_eq!(
            super::super::hostkey::fingerprint(&s_pub),
            "SHA256:Gb0ZX4+p7Llf2qjd1clvkQHFR9U9ioifDhBeRzsK/zY"
        );
    }
}
