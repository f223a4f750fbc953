//! The client's pins of daemon host keys (docs/PROTOCOL.md §7.5), like
//! ssh's known_hosts: `$XDG_CONFIG_HOME/vfer/known_hosts` (or
//! `~/.config/vfer/known_hosts`), one `HOST:PORT SHA256:...` per line, `#`
//! comments. HOST is as the user wrote it in the URL, lower-cased; IPv6
//! addresses in brackets.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::hostkey::parse_fingerprint;

/// What the file says about a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pin {
    /// The presented key is the pinned one.
    Match,
    /// Another key is pinned for this host, at this 1-based line.
    Mismatch {
        /// Line of the first pin for the host.
        line: usize,
        /// The pinned fingerprint.
        pinned: String,
    },
    /// Nothing is pinned for this host.
    Unknown,
}

/// The `HOST:PORT` key of a daemon in the file.
pub fn host_key(host: &str, port: u16) -> String {
    let h = host.to_ascii_lowercase();
    if h.contains(':') && !h.starts_with('[') {
        format!("[{h}]:{port}")
    } else {
        format!("{h}:{port}")
    }
}

/// The default file: `$XDG_CONFIG_HOME/vfer/known_hosts`, else
/// `$HOME/.config/vfer/known_hosts`.
pub fn default_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        })?;
    Some(base.join("vfer").join("known_hosts"))
}

/// Looks `host` (from [`host_key`]) up in the file's text.
pub fn lookup(text: &str, host: &str, fingerprint: &str) -> Pin {
    let mut first = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some(h), Some(fp)) = (words.next(), words.next()) else {
            continue;
        };
        if !h.eq_ignore_ascii_case(host) {
            continue;
        }
        let Some(fp) = parse_fingerprint(fp) else {
            continue;
        };
        if fp == fingerprint {
            return Pin::Match;
        }
        first.get_or_insert(Pin::Mismatch {
            line: i + 1,
            pinned: fp,
        });
    }
    first.unwrap_or(Pin::Unknown)
}

/// Reads the file (a missing file pins nothing).
pub fn check(path: &Path, host: &str, fingerprint: &str) -> std::io::Result<Pin> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(lookup(&t, host, fingerprint)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Pin::Unknown),
        Err(e) => Err(e),
    }
}

/// Appends a pin, creating the directory (0700) and file (0600) if needed.
pub fn add(path: &Path, host: &str, fingerprint: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    writeln!(f, "{host} {fingerprint}")
}

#[cfg(test)]
mod tests {
    use super::super::hostkey::fingerprint;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn pin_lookup_and_add() {
        let a = fingerprint(&[1; 32]);
        let b = fingerprint(&[2; 32]);
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("cfg/vfer/known_hosts");
        let h = host_key("Example.ORG", 7878);
        assert_eq!(h, "example.org:7878");
        assert_eq!(host_key("::1", 9), "[::1]:9");
        assert_eq!(check(&p, &h, &a).unwrap(), Pin::Unknown);
        add(&p, "other:1", &b).unwrap();
        add(&p, &h, &a).unwrap();
        assert_eq!(check(&p, &h, &a).unwrap(), Pin::Match);
        assert_eq!(
            check(&p, &h, &b).unwrap(),
            Pin::Mismatch {
                line: 2,
                pinned: a.clone()
            }
        );
        assert_eq!(check(&p, "example.org:7879", &a).unwrap(), Pin::Unknown);
        let text = "# comment\n\ngarbage\nexample.org:7878 SHA256:bad\n";
        assert_eq!(lookup(text, &h, &a), Pin::Unknown);
    }

    proptest! {
        #[test]
        fn lookup_never_panics(s in "\\PC{0,300}") {
            let _ = lookup(&s, "h:1", "SHA256:x");
        }
    }
}
