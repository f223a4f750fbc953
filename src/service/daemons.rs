//! The file daemons, as uses of the [`runner`](super::runner): key-file
//! mode (`vfer-recv --listen --key-file K --root DIR`, §4.3) and
//! challenge-response mode (`vfer-recv --listen --users FILE --root DIR`,
//! §7), which logs each client in first. Both then serve exactly the same
//! file service under the root descriptor.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::files::{self, Root};
use super::login_check::LoginPolicy;
use super::request::Offer;
use super::runner::{self, accept_request, finish, per_host_limit, KeyGate, RunnerOptions};
use crate::bootstrap::login::hostkey::HostKey;
use crate::bootstrap::login::server::{GateOptions, LoginGate};
use crate::bootstrap::login::users::Users;
use crate::tunnel::keys::KeySource;

/// The whole service request must arrive within this after the session is
/// up (in login mode: after the verdict); keep-alives alone must not hold
/// a slot forever.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Name of the host key file next to the users file when --host-key is not given.
pub const DEFAULT_HOST_KEY_NAME: &str = "vfer_host_key";

/// Settings of the key-file file daemon.
#[derive(Debug, Clone)]
pub struct FileDaemonOptions {
    /// What every daemon has.
    pub runner: RunnerOptions,
    /// The key file (K = SHA-256 of it), or a directory of per-client keys.
    pub keys: KeySource,
    /// Every path is under this directory.
    pub root: PathBuf,
}

/// Runs the key-file file daemon until `stop` resolves (then winds down).
pub async fn files_daemon(opts: FileDaemonOptions, stop: impl std::future::Future) -> Result<()> {
    runner::harden();
    let keys = opts.keys.load()?;
    let root = Root::open(&opts.root)?;
    let mut r = opts.runner;
    r.banner.push(format!(
        "vfer-recv: serving {} on udp {}",
        root.dir.path().display(),
        r.listen
    ));
    runner::run(r, KeyGate(keys), stop, move |s, client, _stop| {
        let root = root.clone();
        async move {
            if let Some(name) = client {
                tracing::info!("{}: key {name}", s.peer());
            }
            serve_files(s, &root).await
        }
    })
    .await
}

/// Settings of the login daemon.
#[derive(Debug, Clone)]
pub struct LoginDaemonOptions {
    /// What every daemon has (its `max_per_host` is replaced by
    /// [`per_host_limit`]: strangers may knock).
    pub runner: RunnerOptions,
    /// The users file.
    pub users: PathBuf,
    /// The host key file (default: `vfer_host_key` next to the users file).
    pub host_key: Option<PathBuf>,
    /// Every path is under this directory.
    pub root: PathBuf,
}

/// The host key path a login daemon with `users` uses.
pub fn host_key_path(users: &Path, host_key: Option<PathBuf>) -> PathBuf {
    host_key.unwrap_or_else(|| {
        users
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .join(DEFAULT_HOST_KEY_NAME)
    })
}

/// The line `FINGERPRINT PATH` of the host key a login daemon would use
/// (created if missing), for the administrator to hand to users.
pub fn show_host_key(users: &Path, host_key: Option<PathBuf>) -> Result<String> {
    let path = host_key_path(users, host_key);
    let (key, _) = HostKey::load_or_create(&path)?;
    Ok(format!("{} {}", key.fingerprint(), path.display()))
}

/// Runs the login daemon until `stop` resolves (then winds down).
pub async fn login_daemon(opts: LoginDaemonOptions, stop: impl std::future::Future) -> Result<()> {
    // Core dumps off before any password or key is in memory.
    runner::harden();
    let users = Users::load(&opts.users).with_context(|| {
        "cannot load --users (create it with: vfer-recv --add-user NAME --users FILE)"
    })?;
    if users.is_empty() {
        eprintln!(
            "vfer-recv: warning: {} has no users yet; add one with: vfer-recv --add-user NAME --users {}",
            opts.users.display(),
            opts.users.display()
        );
    }
    let key_path = host_key_path(&opts.users, opts.host_key.clone());
    let (key, created) = HostKey::load_or_create(&key_path)?;
    let root = Root::open(&opts.root)?;
    let mut r = opts.runner;
    r.max_per_host = per_host_limit(r.max_connections);
    r.banner.push(format!(
        "vfer-recv: host key {}{}: {}",
        key_path.display(),
        if created { " (new)" } else { "" },
        key.fingerprint()
    ));
    r.banner.push(format!(
        "vfer-recv: serving {} on udp {} for {} user(s) of {}",
        root.dir.path().display(),
        r.listen,
        users.len(),
        opts.users.display()
    ));
    let gate = LoginGate::new(
        key,
        GateOptions {
            max_handshakes: r.max_connections.max(1),
            max_per_host: r.max_per_host,
            ..GateOptions::default()
        },
        Instant::now(),
    )?;
    let policy = Arc::new(LoginPolicy::new(users));
    runner::run(r, gate, stop, move |s, ctx, _stop| {
        let (policy, root) = (policy.clone(), root.clone());
        async move {
            let user = match policy.check(&s, &ctx).await {
                Ok(user) => user,
                Err(why) => {
                    tracing::warn!("{}: {why}", s.peer());
                    crate::tunnel::ending::close_with(s, 1, "login refused").await;
                    return;
                }
            };
            tracing::info!("{}: user {user:?} logged in", s.peer());
            serve_files(s, &root).await
        }
    })
    .await
}

/// One file session: the request, the transfer, the CLOSE.
async fn serve_files(s: crate::transport::Session, root: &Root) {
    let served = async {
        let req = accept_request(&s, Offer::Files, REQUEST_TIMEOUT).await?;
        files::serve(&s, root, &req).await
    };
    let result = served.await;
    finish(s, result).await
}
