//! Key-file mode (spiped's job): both ends hold the same key file; the
//! session secret is K = SHA-256(file contents). The transport handshake
//! authenticates its X25519 exchange with K, so sessions still have forward
//! secrecy, and a peer without the key file gets no answer at all.

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::wire::Secret;
use crate::transport::{Config, Session, SessionError};

pub use super::listen::{listen, serve, ListenOptions};

/// Fewest bytes a key file must hold (256 bits of entropy, as spiped asks).
pub const MIN_KEY_FILE_LEN: u64 = 32;

/// Why a key file was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file could not be opened or read.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Group or others may read the file.
    #[error(
        "key file {path} is readable by group or others (mode {mode:03o}); run: chmod 600 {path}"
    )]
    TooOpen {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// Fewer than 32 bytes.
    #[error("key file {path} holds {len} bytes; at least 32 random bytes are needed (e.g. head -c 32 /dev/urandom > {path})")]
    TooShort {
        /// The file.
        path: String,
        /// Its length.
        len: u64,
    },
    /// Not a regular file.
    #[error("key file {path} is not a regular file")]
    NotAFile {
        /// The file.
        path: String,
    },
}

/// Loads a key file and derives K = SHA-256(contents). Refuses files that
/// are shorter than 32 bytes, not regular, or group/world-readable.
pub fn load(path: &Path) -> Result<Secret, KeyFileError> {
    let name = path.display().to_string();
    let io = |source| KeyFileError::Io {
        path: name.clone(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let meta = f.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(KeyFileError::NotAFile { path: name });
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o044 != 0 {
            return Err(KeyFileError::TooOpen { path: name, mode });
        }
    }
    let mut hasher = Sha256::new();
    let mut buf = zeroize::Zeroizing::new([0u8; 8192]);
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf[..]).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    if len < MIN_KEY_FILE_LEN {
        return Err(KeyFileError::TooShort { path: name, len });
    }
    let digest: zeroize::Zeroizing<[u8; 32]> = zeroize::Zeroizing::new(hasher.finalize().into());
    Ok(Secret::from_slice(&digest))
}

/// Connects to a key-file server at `addr`.
pub async fn connect(
    addr: SocketAddr,
    key: &Secret,
    config: Config,
) -> Result<Session, SessionError> {
    Session::connect(addr, key.bytes(), config).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write(dir: &Path, name: &str, data: &[u8], mode: u32) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, data).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn key_is_sha256_of_file() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "k", &[1u8; 40], 0o600);
        let k = load(&p).unwrap();
        let want: [u8; 32] = Sha256::digest([1u8; 40]).into();
        assert_eq!(*k.bytes(), want);
    }

    #[test]
    fn refuses_bad_key_files() {
        let d = tempfile::tempdir().unwrap();
        let short = write(d.path(), "short", &[1u8; 31], 0o600);
        let e = load(&short).unwrap_err().to_string();
        assert!(e.contains("31 bytes") && e.contains("short"), "{e}");
        let open = write(d.path(), "open", &[1u8; 32], 0o644);
        let e = load(&open).unwrap_err().to_string();
        assert!(e.contains("chmod 600") && e.contains("open"), "{e}");
        let group = write(d.path(), "group", &[1u8; 32], 0o640);
        assert!(matches!(load(&group), Err(KeyFileError::TooOpen { .. })));
        assert!(matches!(load(d.path()), Err(KeyFileError::NotAFile { .. })));
        assert!(matches!(
            load(&d.path().join("missing")),
            Err(KeyFileError::Io { .. })
        ));
    }
}
