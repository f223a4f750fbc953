//! The VSL key schedule: four 32-byte keys per connection from HKDF-SHA256.

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length of the session secret and of every derived key.
pub const KEY_LEN: usize = 32;
/// Length of each side's fresh per-connection nonce.
pub const NONCE_LEN: usize = 32;

/// Salt prefix that separates VSL keys from any other use of the secret.
const SALT_LABEL: &[u8] = b"VSL1 session keys";

/// The encryption and MAC keys for one direction.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DirectionKeys {
    /// AES-256-CTR key.
    pub enc: [u8; KEY_LEN],
    /// HMAC-SHA256 key.
    pub mac: [u8; KEY_LEN],
}

/// All four keys of one connection: client-to-server and server-to-client.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SessionKeys {
    /// Keys for packets the client sends.
    pub c2s: DirectionKeys,
    /// Keys for packets the server sends.
    pub s2c: DirectionKeys,
}

impl SessionKeys {
    /// Derives the keys of one connection.
    ///
    /// `PRK = HKDF-Extract(salt = "VSL1 session keys" || client_nonce || server_nonce,
    ///                     IKM = secret || dh_shared)` (no `dh_shared` when there is none),
    /// then one `HKDF-Expand(PRK, label, 32)` per key with the labels
    /// `"VSL1 c2s enc"`, `"VSL1 c2s mac"`, `"VSL1 s2c enc"`, `"VSL1 s2c mac"`.
    /// Fresh nonces from both sides make every connection's keys distinct even
    /// when the secret is reused.
    pub fn derive(
        secret: &[u8; KEY_LEN],
        client_nonce: &[u8; NONCE_LEN],
        server_nonce: &[u8; NONCE_LEN],
        dh_shared: Option<&[u8; 32]>,
    ) -> SessionKeys {
        let mut salt = [0u8; SALT_LABEL.len() + 2 * NONCE_LEN];
        salt[..SALT_LABEL.len()].copy_from_slice(SALT_LABEL);
        salt[SALT_LABEL.len()..SALT_LABEL.len() + NONCE_LEN].copy_from_slice(client_nonce);
        salt[SALT_LABEL.len() + NONCE_LEN..].copy_from_slice(server_nonce);
        let mut ikm = [0u8; KEY_LEN + 32];
        ikm[..KEY_LEN].copy_from_slice(secret);
        let ikm_len = match dh_shared {
            Some(dh) => {
                ikm[KEY_LEN..].copy_from_slice(dh);
                KEY_LEN + 32
            }
            None => KEY_LEN,
        };
        let hk = extract(&salt, &ikm[..ikm_len]);
        ikm.zeroize();
        let expand = |label: &[u8]| {
            let mut k = [0u8; KEY_LEN];
            // 32 bytes is far below HKDF-SHA256's 8160-byte limit: cannot fail.
            hk.expand(label, &mut k)
                .expect("HKDF-SHA256 can always expand 32 bytes");
            k
        };
        SessionKeys {
            c2s: DirectionKeys {
                enc: expand(b"VSL1 c2s enc"),
                mac: expand(b"VSL1 c2s mac"),
            },
            s2c: DirectionKeys {
                enc: expand(b"VSL1 s2c enc"),
                mac: expand(b"VSL1 s2c mac"),
            },
        }
    }
}

/// HKDF-SHA256-Extract: the PRK state every key of a connection is expanded
/// from. Shared with the known-answer tests so they test this exact path.
pub(crate) fn extract(salt: &[u8], ikm: &[u8]) -> Hkdf<Sha256> {
    Hkdf::<Sha256>::new(Some(salt), ikm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_four_keys_differ_and_nonces_matter() {
        let s = [7u8; 32];
        let k1 = SessionKeys::derive(&s, &[1; 32], &[2; 32], None);
        let keys = [k1.c2s.enc, k1.c2s.mac, k1.s2c.enc, k1.s2c.mac];
        for i in 0..4 {
            for j in i + 1..4 {
                assert_ne!(keys[i], keys[j]);
            }
        }
        let k2 = SessionKeys::derive(&s, &[1; 32], &[3; 32], None);
        assert_ne!(k1.c2s.enc, k2.c2s.enc);
        let k3 = SessionKeys::derive(&s, &[1; 32], &[2; 32], Some(&[9; 32]));
        assert_ne!(k1.c2s.enc, k3.c2s.enc);
    }
}
