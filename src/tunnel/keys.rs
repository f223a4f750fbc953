//! The keys a key-file daemon accepts: one key file (`--key-file K`, every
//! client holds it), or a directory of them (`--key-dir D`, one file per
//! client, spiped's job done per client): a client is admitted if its key
//! is any file in D, and the daemon (its log, and a program's
//! `VFER_CLIENT`) learns which: the file's name. Removing a file revokes
//! that client; the directory is read again (at most once a second) when
//! its modification time changes, so no restart is needed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use std::future::Future;

use crate::bootstrap::keyfile;
use crate::bootstrap::listen::{serve_gated, Gate, ListenOptions, StaticKey};
use crate::bootstrap::Secret;
use crate::transport::{Session, SessionError};

/// Most keys a directory may hold: each REQUEST is tried against every
/// key (one HMAC each), so this bounds the work a forged REQUEST costs.
pub const MAX_KEYS: usize = 1024;
/// How often the directory's modification time is looked at.
const RECHECK: Duration = Duration::from_secs(1);

/// Where a daemon's keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `--key-file K`.
    File(PathBuf),
    /// `--key-dir D`.
    Dir(PathBuf),
}

impl Default for KeySource {
    fn default() -> Self {
        KeySource::File(PathBuf::new())
    }
}

/// The loaded keys.
pub enum Keys {
    /// One key for every client.
    One(Secret),
    /// One key per client.
    Dir(KeyDir),
}

impl KeySource {
    /// Loads the key file, or every key file in the directory.
    pub fn load(&self) -> Result<Keys> {
        Ok(match self {
            KeySource::File(p) => Keys::One(keyfile::load(p)?),
            KeySource::Dir(d) => Keys::Dir(KeyDir::load(d)?),
        })
    }
}

/// A directory of client keys (the [`Gate`] of `--key-dir`).
pub struct KeyDir {
    dir: PathBuf,
    names: Arc<Vec<String>>,
    secrets: Vec<Secret>,
    stamp: Option<SystemTime>,
    checked: Instant,
}

impl KeyDir {
    /// Reads every key file in `dir` (files whose name starts with `.` are
    /// skipped; a file refused by the key-file rules is skipped with a
    /// warning). Fails if none is usable.
    pub fn load(dir: &Path) -> Result<KeyDir> {
        let (names, secrets) = read_dir(dir)?;
        if names.is_empty() {
            anyhow::bail!(
                "--key-dir {}: no usable key file in it (each client's key: a file of at least 32 random bytes, mode 0600)",
                dir.display()
            );
        }
        Ok(KeyDir {
            dir: dir.to_path_buf(),
            names: Arc::new(names),
            secrets,
            stamp: modified(dir),
            checked: Instant::now(),
        })
    }

    /// The clients' names (the key files' names), sorted.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    fn refresh(&mut self, now: Instant) {
        if now.saturating_duration_since(self.checked) < RECHECK {
            return;
        }
        self.checked = now;
        let stamp = modified(&self.dir);
        if stamp == self.stamp {
            return;
        }
        self.stamp = stamp;
        match read_dir(&self.dir) {
            Ok((names, secrets)) => {
                tracing::info!(
                    "--key-dir {}: {} client keys",
                    self.dir.display(),
                    names.len()
                );
                self.names = Arc::new(names);
                self.secrets = secrets;
            }
            Err(e) => tracing::warn!(
                "--key-dir {}: {e:#}; keeping the old keys",
                self.dir.display()
            ),
        }
    }
}

fn modified(dir: &Path) -> Option<SystemTime> {
    std::fs::metadata(dir).and_then(|m| m.modified()).ok()
}

fn read_dir(dir: &Path) -> Result<(Vec<String>, Vec<Secret>)> {
    let mut entries: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .with_context(|| format!("--key-dir {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            (!name.starts_with('.')).then(|| (name, e.path()))
        })
        .collect();
    entries.sort();
    if entries.len() > MAX_KEYS {
        anyhow::bail!(
            "--key-dir {}: {} files, more than {MAX_KEYS} keys",
            dir.display(),
            entries.len()
        );
    }
    let mut names = Vec::new();
    let mut secrets = Vec::new();
    for (name, path) in entries {
        match keyfile::load(&path) {
            Ok(k) => {
                names.push(name);
                secrets.push(k);
            }
            Err(e) => tracing::warn!("--key-dir: skipping {e}"),
        }
    }
    Ok((names, secrets))
}

impl Gate for KeyDir {
    type Context = Option<String>;
    fn secret_for(&mut self, _: SocketAddr, _: Instant) -> Option<Secret> {
        self.secrets.first().cloned()
    }
    fn secrets_for(&mut self, _: SocketAddr, now: Instant) -> Vec<Secret> {
        self.refresh(now);
        self.secrets.clone()
    }
    fn admitted(&mut self, _: SocketAddr) -> Option<String> {
        self.names.first().cloned()
    }
    fn admitted_as(&mut self, _: SocketAddr, index: usize) -> Option<String> {
        self.names.get(index).cloned()
    }
    fn reusable_secret(&self) -> bool {
        true
    }
    fn other(&mut self, _: SocketAddr, _: &[u8], _: Instant, _: &mut Vec<u8>) {}
}

/// Like [`crate::bootstrap::listen::listen`] with `keys`: `on_session`
/// also gets the client's name (`Some` with `--key-dir`).
pub async fn listen<F, Fut>(
    addr: SocketAddr,
    keys: Keys,
    opts: ListenOptions,
    on_session: F,
) -> Result<(), SessionError>
where
    F: Fn(Session, Option<String>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (sock, warning) = crate::transport::socket::bind(addr)?;
    if let Some(w) = warning {
        tracing::warn!("{w}");
    }
    // Bound, keys read: `--user` takes effect now.
    if let Err(e) = super::privdrop::apply_pending() {
        return Err(SessionError::Io(std::io::Error::other(format!("{e:#}"))));
    }
    super::background::ready();
    let sock = Arc::new(sock);
    match keys {
        Keys::One(k) => {
            serve_gated(sock, StaticKey(k), opts, move |s, ()| on_session(s, None)).await
        }
        Keys::Dir(d) => serve_gated(sock, d, opts, on_session).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn key(dir: &Path, name: &str, byte: u8, mode: u32) {
        let p = dir.join(name);
        std::fs::write(&p, [byte; 40]).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn loads_each_client_and_names_it() {
        let d = tempfile::tempdir().unwrap();
        key(d.path(), "bob", 2, 0o600);
        key(d.path(), "alice", 1, 0o600);
        key(d.path(), ".hidden", 3, 0o600);
        key(d.path(), "open", 4, 0o644); // refused: readable by others
        let mut kd = KeyDir::load(d.path()).unwrap();
        assert_eq!(kd.names(), ["alice", "bob"]);
        let now = Instant::now();
        let from: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let s = kd.secrets_for(from, now);
        assert_eq!(s.len(), 2);
        assert_eq!(
            s[0].bytes(),
            keyfile::load(&d.path().join("alice")).unwrap().bytes()
        );
        assert_eq!(kd.admitted_as(from, 1), Some("bob".to_string()));
        let empty = tempfile::tempdir().unwrap();
        assert!(KeyDir::load(empty.path()).is_err());
    }
}
