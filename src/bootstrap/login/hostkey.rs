//! The daemon's static X25519 host key (docs/PROTOCOL.md §7.5): a file of
//! exactly 32 random bytes, mode 0600, created on first run; clients know
//! the server by the key's fingerprint, `SHA256:` and the unpadded base64
//! of SHA-256(public key), as ssh prints its host keys.

use std::io::{Read, Write};
use std::path::Path;

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

/// The server's static key pair.
#[derive(Clone)]
pub struct HostKey {
    secret: StaticSecret,
    public: [u8; 32],
}

/// Why a host key file was refused.
#[derive(Debug, thiserror::Error)]
pub enum HostKeyError {
    /// The file could not be read or created.
    #[error("host key {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Group or others may read it.
    #[error(
        "host key {path} is readable by group or others (mode {mode:03o}); run: chmod 600 {path}"
    )]
    TooOpen {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// Not 32 bytes, or not a regular file.
    #[error("host key {path} is not a vfer host key (a regular file of exactly 32 bytes); move it away and a new key is created")]
    Malformed {
        /// The file.
        path: String,
    },
}

impl HostKey {
    /// A key from its 32 private bytes.
    pub fn from_bytes(b: [u8; 32]) -> Self {
        let secret = StaticSecret::from(b);
        let public = PublicKey::from(&secret).to_bytes();
        HostKey { secret, public }
    }

    /// A fresh random key.
    pub fn generate() -> std::io::Result<Self> {
        let mut b = Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut b[..]).map_err(std::io::Error::other)?;
        Ok(Self::from_bytes(*b))
    }

    /// The private key, for the Diffie-Hellman computations.
    pub fn secret(&self) -> &StaticSecret {
        &self.secret
    }

    /// The public key sent in ACCEPT.
    pub fn public(&self) -> &[u8; 32] {
        &self.public
    }

    /// `SHA256:<base64>` of the public key.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.public)
    }

    /// Loads the key at `path`, or creates it (mode 0600) if the file does
    /// not exist. Returns the key and whether it was created.
    pub fn load_or_create(path: &Path) -> Result<(HostKey, bool), HostKeyError> {
        let name = path.display().to_string();
        let io = |source| HostKeyError::Io {
            path: name.clone(),
            source,
        };
        match std::fs::File::open(path) {
            Ok(mut f) => {
                let meta = f.metadata().map_err(io)?;
                if !meta.is_file() || meta.len() != 32 {
                    return Err(HostKeyError::Malformed { path: name });
                }
                use std::os::unix::fs::PermissionsExt;
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o044 != 0 {
                    return Err(HostKeyError::TooOpen { path: name, mode });
                }
                let mut b = Zeroizing::new([0u8; 32]);
                f.read_exact(&mut b[..]).map_err(io)?;
                Ok((HostKey::from_bytes(*b), false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut b = Zeroizing::new([0u8; 32]);
                getrandom::fill(&mut b[..]).map_err(|e| io(std::io::Error::other(e)))?;
                use std::os::unix::fs::OpenOptionsExt;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(io)?;
                f.write_all(&b[..]).and_then(|_| f.sync_all()).map_err(io)?;
                Ok((HostKey::from_bytes(*b), true))
            }
            Err(e) => Err(io(e)),
        }
    }
}

/// `SHA256:` and the unpadded standard base64 of SHA-256(`public`).
pub fn fingerprint(public: &[u8; 32]) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(public)))
}

/// Checks a fingerprint given by a user (`SHA256:...`, or the base64 part
/// alone) and returns it in canonical form.
pub fn parse_fingerprint(s: &str) -> Option<String> {
    let b64 = s.trim().strip_prefix("SHA256:").unwrap_or(s.trim());
    let raw = STANDARD_NO_PAD.decode(b64.trim_end_matches('=')).ok()?;
    (raw.len() == 32).then(|| format!("SHA256:{}", STANDARD_NO_PAD.encode(raw)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn created_once_with_mode_0600_then_loaded() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("host_key");
        let (k1, created) = HostKey::load_or_create(&p).unwrap();
        assert!(created);
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (k2, created) = HostKey::load_or_create(&p).unwrap();
        assert!(!created);
        assert_eq!(k1.public(), k2.public());
        assert!(k1.fingerprint().starts_with("SHA256:"));
        assert_eq!(k1.fingerprint().len(), 7 + 43);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = HostKey::load_or_create(&p).err().unwrap().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        let bad = d.path().join("bad");
        std::fs::write(&bad, b"short").unwrap();
        assert!(matches!(
            HostKey::load_or_create(&bad),
            Err(HostKeyError::Malformed { .. })
        ));
    }

    #[test]
    fn fingerprints_parse() {
        let fp = fingerprint(&[1; 32]);
        assert_eq!(parse_fingerprint(&fp), Some(fp.clone()));
        assert_eq!(parse_fingerprint(&fp[7..]), Some(fp.clone()));
        assert_eq!(parse_fingerprint("SHA256:abc"), None);
        assert_eq!(parse_fingerprint("nonsense!"), None);
    }
}
