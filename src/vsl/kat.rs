//! Known-answer-test hooks, not API: the exact primitive code paths that
//! [`Sealer`](super::Sealer), [`Opener`](super::Opener) and
//! [`SessionKeys::derive`](super::SessionKeys::derive) use, exposed so
//! `tests/vsl_kat.rs` can check them against NIST SP 800-38A, RFC 4231 and
//! RFC 5869. Hidden from the docs; may change without notice.

use aes::cipher::KeyInit;
use aes::Aes256;
use hmac::Mac;

use super::keys;
use super::packet;

/// AES-256-CTR with vfer's cipher type (`Ctr64BE`, keyed once, state cloned
/// per call exactly as per packet) and an arbitrary 16-byte initial counter
/// block. Only the low 64 bits count; the high 64 bits stay fixed.
pub fn aes256_ctr64be(key: &[u8; 32], iv: &[u8; 16], data: &mut [u8]) {
    let aes = Aes256::new(&(*key).into());
    packet::apply_ctr_iv(&aes, iv, data);
}

/// Full HMAC-SHA256 through vfer's keyed-state path.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut m = packet::mac_state(key).clone();
    m.update(data);
    m.finalize().into_bytes().into()
}

/// Does `tag` equal the leftmost `tag.len()` bytes of HMAC-SHA256(key, data)?
/// The constant-time check `Opener::open` uses on the 16-byte MAC.
pub fn hmac_sha256_verify_truncated(key: &[u8], data: &[u8], tag: &[u8]) -> bool {
    let mut m = packet::mac_state(key).clone();
    m.update(data);
    packet::verify_truncated(m, tag)
}

/// HKDF-SHA256 (extract then expand) through the key schedule's path.
/// Returns false if `okm` is longer than HKDF-SHA256 allows (8160 bytes).
pub fn hkdf_sha256(salt: &[u8], ikm: &[u8], info: &[u8], okm: &mut [u8]) -> bool {
    keys::extract(salt, ikm).expand(info, okm).is_ok()
}

/// AES-256-GCM through vfer's key type and calls (ring `LessSafeKey`,
/// seal in place with a separate 16-byte tag). Encrypts `data` in place and
/// returns the tag.
pub fn aes256_gcm_seal(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], data: &mut [u8]) -> [u8; 16] {
    let k = gcm_key(key);
    packet::gcm_seal(&k, *nonce, aad, data).expect("test inputs are far below GCM's limit")
}

/// AES-256-GCM open through vfer's path: verifies `tag`, decrypts in place.
pub fn aes256_gcm_open(
    key: &[u8; 32],
    nonce: &[u8; 12],
    aad: &[u8],
    tag: &[u8; 16],
    data: &mut [u8],
) -> bool {
    packet::gcm_open(&gcm_key(key), *nonce, aad, *tag, data)
}

fn gcm_key(key: &[u8; 32]) -> ring::aead::LessSafeKey {
    use super::DirectionKeying;
    match (super::GcmDirectionKeys {
        key: *key,
        iv: [0; 12],
    })
    .cipher()
    {
        packet::Cipher::Gcm { key, .. } => key,
        packet::Cipher::Vsl1 { .. } => unreachable!("GCM keys make a GCM cipher"),
    }
}
