//! The VSL key schedule: per connection, one HKDF-SHA256 PRK salted with
//! both nonces and the suite binding (the client's offer and the server's
//! choice), then each suite's keys expanded from it (docs/PROTOCOL.md §1.3).

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::suite::Suite;

/// Length of the session secret and of every derived key.
pub const KEY_LEN: usize = 32;
/// Length of each side's fresh per-connection nonce.
pub const NONCE_LEN: usize = 32;
/// Length of the AES-256-GCM per-direction IV (and of every GCM nonce).
pub const GCM_IV_LEN: usize = 12;
/// Longest suite binding `SuiteKeys::derive` accepts (an offer of at most
/// 16 suites, its count byte, and the choice: 18 bytes).
pub const MAX_BINDING_LEN: usize = 32;

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

/// All four VSL1 keys of one connection: client-to-server and server-to-client.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SessionKeys {
    /// Keys for packets the client sends.
    pub c2s: DirectionKeys,
    /// Keys for packets the server sends.
    pub s2c: DirectionKeys,
}

impl SessionKeys {
    /// Derives the VSL1 keys of one connection with an empty suite binding
    /// (the handshake keys, and the vectors of `tests/vectors/vsl.json`).
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
        Self::from_prk(&prk(secret, client_nonce, server_nonce, dh_shared, &[]))
    }

    fn from_prk(hk: &Hkdf<Sha256>) -> SessionKeys {
        SessionKeys {
            c2s: DirectionKeys {
                enc: expand(hk, b"VSL1 c2s enc"),
                mac: expand(hk, b"VSL1 c2s mac"),
            },
            s2c: DirectionKeys {
                enc: expand(hk, b"VSL1 s2c enc"),
                mac: expand(hk, b"VSL1 s2c mac"),
            },
        }
    }
}

/// The AES-256-GCM key and IV of one direction.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct GcmDirectionKeys {
    /// AES-256-GCM key.
    pub key: [u8; KEY_LEN],
    /// XORed with `0^32 || be64(msgnr)` to form each packet's nonce.
    pub iv: [u8; GCM_IV_LEN],
}

/// Both directions' AES-256-GCM keys of one connection.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct GcmSessionKeys {
    /// Keys for packets the client sends.
    pub c2s: GcmDirectionKeys,
    /// Keys for packets the server sends.
    pub s2c: GcmDirectionKeys,
}

impl GcmSessionKeys {
    fn from_prk(hk: &Hkdf<Sha256>) -> GcmSessionKeys {
        GcmSessionKeys {
            c2s: GcmDirectionKeys {
                key: expand(hk, b"VSL2 c2s key"),
                iv: expand(hk, b"VSL2 c2s iv"),
            },
            s2c: GcmDirectionKeys {
                key: expand(hk, b"VSL2 s2c key"),
                iv: expand(hk, b"VSL2 s2c iv"),
            },
        }
    }
}

/// A connection's keys for the suite it negotiated.
#[derive(Clone)]
pub enum SuiteKeys {
    /// AES-256-CTR + HMAC-SHA256 keys.
    Vsl1(SessionKeys),
    /// AES-256-GCM keys and IVs.
    Aes256Gcm(GcmSessionKeys),
}

impl SuiteKeys {
    /// Derives the keys of one connection for `suite`, bound to `binding`
    /// (the suite offer as the client sent it, then the chosen suite's id;
    /// docs/PROTOCOL.md §2.4):
    ///
    /// `PRK = HKDF-Extract(salt = "VSL1 session keys" || client_nonce || server_nonce || binding,
    ///                     IKM = secret || dh_shared)`,
    /// then the suite's keys by HKDF-Expand. Two ends that disagree on the
    /// offer or the choice get unrelated keys, so a downgrade fails.
    ///
    /// # Panics
    /// If `binding` is longer than `MAX_BINDING_LEN` (a caller bug).
    pub fn derive(
        suite: Suite,
        secret: &[u8; KEY_LEN],
        client_nonce: &[u8; NONCE_LEN],
        server_nonce: &[u8; NONCE_LEN],
        dh_shared: Option<&[u8; 32]>,
        binding: &[u8],
    ) -> SuiteKeys {
        assert!(binding.len() <= MAX_BINDING_LEN, "suite binding too long");
        let hk = prk(secret, client_nonce, server_nonce, dh_shared, binding);
        match suite {
            Suite::Vsl1 => SuiteKeys::Vsl1(SessionKeys::from_prk(&hk)),
            Suite::Aes256Gcm => SuiteKeys::Aes256Gcm(GcmSessionKeys::from_prk(&hk)),
        }
    }

    /// The suite these keys are for.
    pub fn suite(&self) -> Suite {
        match self {
            SuiteKeys::Vsl1(_) => Suite::Vsl1,
            SuiteKeys::Aes256Gcm(_) => Suite::Aes256Gcm,
        }
    }
}

const SALT_MAX: usize = SALT_LABEL.len() + 2 * NONCE_LEN + MAX_BINDING_LEN;

/// The PRK of one connection (§1.3): salt = label || nonces || binding,
/// IKM = secret [|| dh_shared].
fn prk(
    secret: &[u8; KEY_LEN],
    client_nonce: &[u8; NONCE_LEN],
    server_nonce: &[u8; NONCE_LEN],
    dh_shared: Option<&[u8; 32]>,
    binding: &[u8],
) -> Hkdf<Sha256> {
    let mut salt = [0u8; SALT_MAX];
    let n = SALT_LABEL.len();
    salt[..n].copy_from_slice(SALT_LABEL);
    salt[n..n + NONCE_LEN].copy_from_slice(client_nonce);
    salt[n + NONCE_LEN..n + 2 * NONCE_LEN].copy_from_slice(server_nonce);
    let salt_len = n + 2 * NONCE_LEN + binding.len();
    salt[n + 2 * NONCE_LEN..salt_len].copy_from_slice(binding);
    let mut ikm = [0u8; KEY_LEN + 32];
    ikm[..KEY_LEN].copy_from_slice(secret);
    let ikm_len = match dh_shared {
        Some(dh) => {
            ikm[KEY_LEN..].copy_from_slice(dh);
            KEY_LEN + 32
        }
        None => KEY_LEN,
    };
    let hk = extract(&salt[..salt_len], &ikm[..ikm_len]);
    ikm.zeroize();
    hk
}

/// `HKDF-Expand(PRK, label, N)` for a key or IV of N bytes.
fn expand<const N: usize>(hk: &Hkdf<Sha256>, label: &[u8]) -> [u8; N] {
    let mut k = [0u8; N];
    // At most 32 bytes, far below HKDF-SHA256's 8160-byte limit: cannot fail.
    hk.expand(label, &mut k)
        .expect("HKDF-SHA256 can always expand 32 bytes");
    k
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

    #[test]
    fn empty_binding_is_the_vsl1_schedule_and_binding_matters() {
        let s = [7u8; 32];
        let plain = SessionKeys::derive(&s, &[1; 32], &[2; 32], Some(&[9; 32]));
        let SuiteKeys::Vsl1(same) =
            SuiteKeys::derive(Suite::Vsl1, &s, &[1; 32], &[2; 32], Some(&[9; 32]), &[])
        else {
            panic!("VSL1 keys expected")
        };
        assert_eq!(plain.c2s.enc, same.c2s.enc);
        assert_eq!(plain.s2c.mac, same.s2c.mac);
        let gcm = |binding: &[u8]| match SuiteKeys::derive(
            Suite::Aes256Gcm,
            &s,
            &[1; 32],
            &[2; 32],
            None,
            binding,
        ) {
            SuiteKeys::Aes256Gcm(k) => k,
            SuiteKeys::Vsl1(_) => panic!("GCM keys expected"),
        };
        let a = gcm(&[2, 2, 1, 2]);
        let b = gcm(&[1, 2, 2]);
        assert_ne!(a.c2s.key, b.c2s.key);
        assert_ne!(a.c2s.key, a.s2c.key);
        assert_ne!(a.c2s.iv, a.s2c.iv);
    }
}
