//! The users file (docs/PROTOCOL.md §7.8): one `name:argon2id-PHC-string`
//! per line (`#` comments and blank lines allowed), mode 0600. New hashes
//! use Argon2id with t=3, p=4, m=64 MiB (RFC 9106's second recommended
//! option) and a 16-byte random salt. Unknown users are checked against a
//! dummy hash with the same parameters, so they cost the same time as a
//! wrong password.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version};
use zeroize::Zeroizing;

/// Argon2id time cost (passes).
pub const T_COST: u32 = 3;
/// Argon2id lanes.
pub const P_COST: u32 = 4;
/// Argon2id memory in KiB (64 MiB).
pub const M_COST_KIB: u32 = 64 * 1024;

/// Why the users file or an entry was refused.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// The file could not be read or written.
    #[error("users file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Group or others may read it.
    #[error(
        "users file {path} is readable by group or others (mode {mode:03o}); run: chmod 600 {path}"
    )]
    TooOpen {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// A line that is not `name:argon2id-PHC-string`.
    #[error("users file {path} line {line}: {why}")]
    Line {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// A user name that cannot be used.
    #[error(
        "invalid user name {0:?}: use 1-64 letters, digits, '.', '_' or '-', not starting with '-'"
    )]
    BadName(String),
    /// Hashing failed (parameters, randomness).
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// True for names of 1-64 ASCII letters, digits, `.`, `_`, `-`, not starting with `-`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn argon2() -> Argon2<'static> {
    // Constant, valid parameters: cannot fail.
    let params =
        Params::new(M_COST_KIB, T_COST, P_COST, Some(32)).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes `password` with Argon2id (t=3, p=4, m=64 MiB) and a fresh salt;
/// returns the PHC string.
pub fn hash_password(password: &[u8]) -> Result<String, UsersError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| UsersError::Hash(e.to_string()))?;
    let h = argon2()
        .hash_password_with_salt(password, &salt)
        .map_err(|e| UsersError::Hash(e.to_string()))?;
    Ok(h.to_string())
}

/// Checks an entry's PHC string: Argon2id with parameters we can run.
fn check_phc(phc: &str) -> Result<(), String> {
    let h = PasswordHash::new(phc).map_err(|e| format!("not a PHC hash string ({e})"))?;
    if h.algorithm.as_str() != "argon2id" {
        return Err(format!(
            "algorithm {} is not argon2id",
            h.algorithm.as_str()
        ));
    }
    let p = Params::try_from(&h).map_err(|e| format!("bad Argon2 parameters ({e})"))?;
    if p.m_cost() < M_COST_KIB || p.t_cost() < T_COST || p.p_cost() < P_COST {
        tracing::warn!(
            "a users file entry has Argon2 parameters m={} t={} p={}, below m={M_COST_KIB} t={T_COST} p={P_COST}; re-run --add-user for it",
            p.m_cost(),
            p.t_cost(),
            p.p_cost()
        );
    }
    if h.salt.is_none() || h.hash.is_none() {
        return Err("no salt or no hash".into());
    }
    Ok(())
}

/// True if `password` matches the PHC string.
pub fn verify(phc: &str, password: &[u8]) -> bool {
    match PasswordHash::new(phc) {
        Ok(h) => argon2().verify_password(password, &h).is_ok(),
        Err(_) => false,
    }
}

/// Parses the file's text into `(name, phc)` entries (a later line for the
/// same name replaces an earlier one).
pub fn parse(path: &str, text: &str) -> Result<HashMap<String, String>, UsersError> {
    let mut users = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: String| UsersError::Line {
            path: path.to_string(),
            line: i + 1,
            why,
        };
        let Some((name, phc)) = line.split_once(':') else {
            return Err(bad("expected name:argon2id-hash".into()));
        };
        if !valid_name(name) {
            return Err(bad(format!("invalid user name {name:?}")));
        }
        check_phc(phc).map_err(bad)?;
        users.insert(name.to_string(), phc.to_string());
    }
    Ok(users)
}

/// The users of a running daemon, re-read when the file changes (so
/// `--add-user` takes effect without a restart).
pub struct Users {
    path: PathBuf,
    stamp: Option<(SystemTime, u64)>,
    users: HashMap<String, String>,
    dummy: String,
}

fn read_checked(path: &Path) -> Result<(String, (SystemTime, u64)), UsersError> {
    let name = path.display().to_string();
    let io = |source| UsersError::Io {
        path: name.clone(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o044 != 0 {
        return Err(UsersError::TooOpen { path: name, mode });
    }
    let stamp = (meta.modified().map_err(io)?, meta.len());
    let text = std::fs::read_to_string(path).map_err(io)?;
    Ok((text, stamp))
}

impl Users {
    /// Loads the users file (refusing a group/world-readable one) and
    /// computes the dummy hash for unknown users.
    pub fn load(path: &Path) -> Result<Users, UsersError> {
        let (text, stamp) = read_checked(path)?;
        let users = parse(&path.display().to_string(), &text)?;
        let mut pw = Zeroizing::new([0u8; 24]);
        getrandom::fill(&mut pw[..]).map_err(|e| UsersError::Hash(e.to_string()))?;
        let dummy = hash_password(&pw[..])?;
        Ok(Users {
            path: path.to_path_buf(),
            stamp: Some(stamp),
            users,
            dummy,
        })
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// True when there is no user.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Re-reads the file if its modification time or size changed; keeps
    /// the old table (with a warning) if the new file is unusable.
    pub fn refresh(&mut self) {
        let Ok(meta) = std::fs::metadata(&self.path) else {
            return;
        };
        let stamp = meta.modified().ok().map(|m| (m, meta.len()));
        if stamp == self.stamp {
            return;
        }
        match read_checked(&self.path)
            .and_then(|(text, st)| Ok((parse(&self.path.display().to_string(), &text)?, st)))
        {
            Ok((users, st)) => {
                self.users = users;
                self.stamp = Some(st);
            }
            Err(e) => {
                tracing::warn!("keeping the previous users: {e}");
                self.stamp = stamp;
            }
        }
    }

    /// The hash to check a login for `user` against: the user's, or the
    /// dummy one; and whether the user exists. Both cost one Argon2 run.
    pub fn hash_for(&self, user: &str) -> (String, bool) {
        match self.users.get(user) {
            Some(h) => (h.clone(), true),
            None => (self.dummy.clone(), false),
        }
    }
}

/// Adds or replaces `name`'s entry in the users file at `path` (created
/// with mode 0600 if missing), atomically (write a temporary file, rename).
/// Returns true if an entry was replaced.
pub fn add_user(path: &Path, name: &str, password: &[u8]) -> Result<bool, UsersError> {
    if !valid_name(name) {
        return Err(UsersError::BadName(name.to_string()));
    }
    let pname = path.display().to_string();
    let io = |source| UsersError::Io {
        path: pname.clone(),
        source,
    };
    let old = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io(e)),
    };
    parse(&pname, &old)?;
    let entry = format!("{name}:{}", hash_password(password)?);
    let mut replaced = false;
    let mut out = String::with_capacity(old.len() + entry.len() + 1);
    for line in old.lines() {
        let is_it = line.trim().split_once(':').is_some_and(|(n, _)| n == name);
        if is_it {
            if !replaced {
                out.push_str(&entry);
                out.push('\n');
            }
            replaced = true;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !replaced {
        out.push_str(&entry);
        out.push('\n');
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file}.tmp{}", std::process::id()));
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        f.write_all(out.as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(replaced)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn add_verify_replace() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("users");
        assert!(!add_user(&p, "alice", b"secret one").unwrap());
        assert!(!add_user(&p, "bob", b"bob's").unwrap());
        assert!(add_user(&p, "alice", b"secret two").unwrap());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.contains("$argon2id$v=19$m=65536,t=3,p=4$"), "{text}");
        let u = Users::load(&p).unwrap();
        assert_eq!(u.len(), 2);
        let (h, known) = u.hash_for("alice");
        assert!(known && verify(&h, b"secret two") && !verify(&h, b"secret one"));
        let (h, known) = u.hash_for("mallory");
        assert!(!known && !verify(&h, b"secret two"));
        assert!(matches!(
            add_user(&p, "-x", b"p"),
            Err(UsersError::BadName(_))
        ));
    }

    #[test]
    fn bad_files_named_with_line() {
        let e = parse("f", "# c\n\nalice:nothash\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 3"), "{e}");
        let e = parse("f", "no colon\n").unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
        let argon2i = "a:$argon2i$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
        assert!(parse("f", argon2i)
            .unwrap_err()
            .to_string()
            .contains("not argon2id"));
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,200}") {
            let _ = parse("f", &s);
        }

        #[test]
        fn names(s in "[a-zA-Z0-9._-]{1,64}") {
            prop_assert_eq!(valid_name(&s), !s.starts_with('-'));
        }
    }
}
