//! `vfer-recv --listen ADDR --users FILE --root DIR`: the challenge-response
//! daemon, and `vfer-recv --add-user NAME --users FILE`. Each client proves
//! its address (cookie), agrees on a secret with the daemon's host key,
//! opens a transport session and logs in; then it is served exactly like a
//! key-file client (paths confined under --root). docs/PROTOCOL.md §7.

use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use crate::bootstrap::listen::{serve_gated, ListenOptions};
use crate::bootstrap::login::auth::{self, Verdict};
use crate::bootstrap::login::crypto::ct_eq;
use crate::bootstrap::login::hostkey::HostKey;
use crate::bootstrap::login::ratelimit::LoginLimits;
use crate::bootstrap::login::server::{GateOptions, LoginContext, LoginGate};
use crate::bootstrap::login::users::{self, Users};
use crate::transport::Session;

/// Most Argon2 verifications at once (each takes 64 MiB and one core).
pub const MAX_ARGON2: usize = 2;
/// How long a client has, once its session is up, to send its login (a
/// client sends it at once: it has the password before the session
/// starts). Short, because until then the session holds a slot.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Most sessions and most pending pre-handshakes of one host (IPv4 address
/// or IPv6 /64) for a daemon with `-n max_connections`: half of `-n`, at
/// least 1, so one host never takes every slot (with `-n` ≥ 2) while one
/// busy host (a script, a NAT) may still run many logins at once.
pub fn per_host_limit(max_connections: usize) -> usize {
    (max_connections / 2).max(1)
}
/// Name of the host key file next to the users file when --host-key is not given.
pub const DEFAULT_HOST_KEY_NAME: &str = "vfer_host_key";

/// Settings of the login daemon.
#[derive(Debug, Clone)]
pub struct LoginDaemonOptions {
    /// UDP address to listen on.
    pub listen: SocketAddr,
    /// The users file.
    pub users: PathBuf,
    /// The host key file (default: `vfer_host_key` next to the users file).
    pub host_key: Option<PathBuf>,
    /// Every path is under this directory.
    pub root: PathBuf,
    /// Most sessions at once (also the cap on pending handshakes).
    pub max_connections: usize,
    /// Write our process id here.
    pub pidfile: Option<PathBuf>,
    /// `-o SECS`: drop a client whose handshake takes longer.
    pub handshake_timeout: std::time::Duration,
    /// Transport settings of each session.
    pub config: crate::transport::Config,
}

/// The host key path the daemon uses.
pub fn host_key_path(opts: &LoginDaemonOptions) -> PathBuf {
    key_path(&opts.users, opts.host_key.clone())
}

fn key_path(users: &Path, host_key: Option<PathBuf>) -> PathBuf {
    host_key.unwrap_or_else(|| {
        users
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .join(DEFAULT_HOST_KEY_NAME)
    })
}

/// `vfer-recv --show-host-key --users FILE [--host-key K]`: the line
/// `FINGERPRINT PATH` of the key the daemon would use (created if missing),
/// for the administrator to hand to users.
pub fn show_host_key(users: &Path, host_key: Option<PathBuf>) -> Result<String> {
    let path = key_path(users, host_key);
    let (key, _) = HostKey::load_or_create(&path)?;
    Ok(format!("{} {}", key.fingerprint(), path.display()))
}

/// Logins of one user name are checked one at a time (user names map to
/// one of this many locks), so concurrent attempts cannot overtake the
/// per-user limit: each sees the failures of those before it.
pub const USER_STRIPES: usize = 64;

struct Shared {
    users: Mutex<Users>,
    limits: Mutex<LoginLimits>,
    argon2: Semaphore,
    /// Per-user-name serialisation (see [`USER_STRIPES`]).
    stripes: Vec<tokio::sync::Mutex<()>>,
    /// Keyed hashing of names onto stripes (an attacker cannot aim at a
    /// victim's stripe).
    stripe_hash: std::collections::hash_map::RandomState,
    root: super::daemon::DaemonRoot,
}

impl Shared {
    fn stripe(&self, user: &str) -> &tokio::sync::Mutex<()> {
        use std::hash::BuildHasher;
        let i = self.stripe_hash.hash_one(user) as usize % self.stripes.len();
        &self.stripes[i]
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs the login daemon until killed.
pub async fn serve(opts: LoginDaemonOptions) -> Result<()> {
    // Core dumps off: a dump would hold passwords and session secrets
    // (main did it already; a library caller gets it here).
    super::coredump::disable();
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
    let key_path = host_key_path(&opts);
    let (key, created) = HostKey::load_or_create(&key_path)?;
    let root = super::daemon::open_root(&opts.root)?;
    let (sock, warning) = crate::transport::socket::bind(opts.listen)
        .with_context(|| format!("cannot listen on {}", opts.listen))?;
    if let Some(w) = warning {
        tracing::warn!("{w}");
    }
    if let Some(p) = &opts.pidfile {
        std::fs::write(p, format!("{}\n", std::process::id()))
            .with_context(|| format!("cannot write --pidfile {}", p.display()))?;
    }
    eprintln!(
        "vfer-recv: host key {}{}: {}",
        key_path.display(),
        if created { " (new)" } else { "" },
        key.fingerprint()
    );
    eprintln!(
        "vfer-recv: serving {} on udp {} for {} user(s) of {}",
        root.dir.path().display(),
        opts.listen,
        users.len(),
        opts.users.display()
    );
    let gate = LoginGate::new(
        key,
        GateOptions {
            max_handshakes: opts.max_connections.max(1),
            max_per_host: per_host_limit(opts.max_connections),
            ..GateOptions::default()
        },
        Instant::now(),
    )?;
    let shared = Arc::new(Shared {
        users: Mutex::new(users),
        limits: Mutex::new(LoginLimits::default()),
        argon2: Semaphore::new(MAX_ARGON2),
        stripes: (0..USER_STRIPES)
            .map(|_| tokio::sync::Mutex::new(()))
            .collect(),
        stripe_hash: std::collections::hash_map::RandomState::new(),
        root,
    });
    let listen = ListenOptions {
        max_connections: opts.max_connections,
        max_per_host: per_host_limit(opts.max_connections),
        handshake_timeout: opts.handshake_timeout,
        config: opts.config.clone(),
        ..Default::default()
    };
    // Bound, keys read: `--user` takes effect now.
    crate::tunnel::privdrop::apply_pending()?;
    crate::tunnel::background::ready();
    serve_gated(Arc::new(sock), gate, listen, move |session, ctx| {
        let shared = shared.clone();
        async move { serve_client(session, ctx, &shared).await }
    })
    .await
    .with_context(|| format!("cannot listen on {}", opts.listen))
}

async fn serve_client(session: Session, ctx: LoginContext, shared: &Shared) {
    let peer = session.peer();
    match login(&session, &ctx, shared).await {
        Ok(user) => {
            tracing::info!("{peer}: user {user:?} logged in");
            match super::daemon::serve_one(&session, &shared.root).await {
                Ok(()) => {
                    super::session::close(session, 0).await;
                }
                Err(e) => {
                    let why = super::exit::describe(&e);
                    tracing::warn!("{peer} ({user}): {why}");
                    super::session::close_with(session, 1, &why).await;
                }
            }
        }
        Err(why) => {
            tracing::warn!("{peer}: {why}");
            super::session::close_with(session, 1, "login refused").await;
        }
    }
}

/// Reads and checks the login; writes the verdict. Returns the user name.
async fn login(session: &Session, ctx: &LoginContext, shared: &Shared) -> Result<String> {
    // Failure limits per host: an IPv6 /64 is one host, as for the slots.
    let ip = crate::bootstrap::listen::host_of(session.peer().ip());
    let mut stream = session.stream();
    let msg = tokio::time::timeout(LOGIN_TIMEOUT, auth::read_login(&mut stream))
        .await
        .context("no login within the login timeout")??;
    let user = msg.user.clone();
    let bound = ctx.binding.is_some_and(|b| ct_eq(&b, &msg.binding));
    let password: Zeroizing<Vec<u8>> = msg.password;
    let verdict = {
        let _turn = shared.stripe(&user).lock().await;
        let limited = lock(&shared.limits).check(&user, ip, Instant::now());
        match limited {
            Err(wait) => Verdict::RateLimited(
                wait.as_secs().saturating_add(1).min(u64::from(u32::MAX)) as u32,
            ),
            Ok(()) => {
                let (hash, known) = {
                    let mut users = lock(&shared.users);
                    users.refresh();
                    users.hash_for(&user)
                };
                // No Argon2 before here: the client has proven its address
                // (cookie) and completed a transport handshake under the
                // agreed secret.
                let matched = {
                    let _permit = shared.argon2.acquire().await?;
                    tokio::task::spawn_blocking(move || users::verify(&hash, &password)).await?
                };
                if matched && known && bound {
                    Verdict::Ok
                } else {
                    lock(&shared.limits).fail(&user, ip, Instant::now());
                    Verdict::Refused
                }
            }
        }
    };
    auth::write_verdict(&mut stream, verdict).await?;
    match verdict {
        Verdict::Ok => Ok(user),
        Verdict::RateLimited(secs) => bail!("login for user {user:?} rate-limited ({secs} s)"),
        Verdict::Refused => bail!("login refused for user {user:?}"),
    }
}

/// `vfer-recv --add-user NAME --users FILE`: reads a password (twice, with
/// no echo, on a terminal; one line from stdin otherwise) and adds or
/// replaces the user's entry.
pub fn add_user(users_file: &Path, name: &str) -> Result<()> {
    if !users::valid_name(name) {
        return Err(super::exit::usage(format!(
            "invalid user name {name:?}: use 1-64 letters, digits, '.', '_' or '-', not starting with '-'"
        )));
    }
    let password = if std::io::stdin().is_terminal() {
        let a = Zeroizing::new(rpassword::prompt_password(format!(
            "New vfer password for {name}: "
        ))?);
        let b = Zeroizing::new(rpassword::prompt_password("Again: ")?);
        if *a != *b {
            return Err(super::exit::usage(
                "the two passwords differ; nothing changed",
            ));
        }
        Zeroizing::new(a.as_bytes().to_vec())
    } else {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin().lock().read_line(&mut line)?;
        let t = line.strip_suffix('\n').unwrap_or(&line);
        Zeroizing::new(t.strip_suffix('\r').unwrap_or(t).as_bytes().to_vec())
    };
    if password.is_empty() {
        return Err(super::exit::usage("empty password; nothing changed"));
    }
    let replaced = users::add_user(users_file, name, &password)?;
    eprintln!(
        "vfer-recv: {} user {name} in {}",
        if replaced { "updated" } else { "added" },
        users_file.display()
    );
    Ok(())
}
