//! Checking a login on a session (docs/PROTOCOL.md §7.7, §7.8): the
//! daemon's policy around Argon2id. Logins of one user name are checked
//! one at a time (so concurrent attempts cannot overtake the per-user
//! failure limit), at most [`MAX_ARGON2`] verifications run at once (each
//! takes 64 MiB and a core), failures are rate-limited per user and per
//! host, and nothing is hashed before the client proved its address and
//! completed a transport handshake under the agreed secret.

use std::hash::BuildHasher;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use crate::bootstrap::listen::host_of;
use crate::bootstrap::login::auth::{self, Verdict};
use crate::bootstrap::login::crypto::ct_eq;
use crate::bootstrap::login::ratelimit::LoginLimits;
use crate::bootstrap::login::server::LoginContext;
use crate::bootstrap::login::users::{self, Users};
use crate::transport::Session;

/// Most Argon2 verifications at once (each takes 64 MiB and one core).
pub const MAX_ARGON2: usize = 2;
/// How long a client has, once its session is up, to send its login (a
/// client sends it at once: it has the password before the session
/// starts). Short, because until then the session holds a slot.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Logins of one user name are checked one at a time (user names map to
/// one of this many locks), so concurrent attempts cannot overtake the
/// per-user limit: each sees the failures of those before it.
pub const USER_STRIPES: usize = 64;

/// The login policy of one daemon, shared by its sessions.
pub struct LoginPolicy {
    users: Mutex<Users>,
    limits: Mutex<LoginLimits>,
    argon2: Semaphore,
    /// Per-user-name serialisation (see [`USER_STRIPES`]).
    stripes: Vec<tokio::sync::Mutex<()>>,
    /// Keyed hashing of names onto stripes (an attacker cannot aim at a
    /// victim's stripe).
    stripe_hash: std::collections::hash_map::RandomState,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl LoginPolicy {
    /// A policy over `users` with fresh limits.
    pub fn new(users: Users) -> Self {
        LoginPolicy {
            users: Mutex::new(users),
            limits: Mutex::new(LoginLimits::default()),
            argon2: Semaphore::new(MAX_ARGON2),
            stripes: (0..USER_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            stripe_hash: std::collections::hash_map::RandomState::new(),
        }
    }

    fn stripe(&self, user: &str) -> &tokio::sync::Mutex<()> {
        let i = self.stripe_hash.hash_one(user) as usize % self.stripes.len();
        &self.stripes[i]
    }

    /// Reads the session's LOGIN, checks it and writes the verdict;
    /// returns the user name when it is Ok.
    pub async fn check(&self, session: &Session, ctx: &LoginContext) -> Result<String> {
        // Failure limits per host: an IPv6 /64 is one host, as for the slots.
        let ip = host_of(session.peer().ip());
        let mut stream = session.stream();
        let msg = tokio::time::timeout(LOGIN_TIMEOUT, auth::read_login(&mut stream))
            .await
            .context("no login within the login timeout")??;
        let user = msg.user.clone();
        let bound = ctx.binding.is_some_and(|b| ct_eq(&b, &msg.binding));
        let password: Zeroizing<Vec<u8>> = msg.password;
        let verdict = {
            let _turn = self.stripe(&user).lock().await;
            let limited = lock(&self.limits).check(&user, ip, Instant::now());
            match limited {
                Err(wait) => Verdict::RateLimited(
                    wait.as_secs().saturating_add(1).min(u64::from(u32::MAX)) as u32,
                ),
                Ok(()) => {
                    let (hash, known) = {
                        let mut users = lock(&self.users);
                        users.refresh();
                        users.hash_for(&user)
                    };
                    // No Argon2 before here: the client has proven its
                    // address (cookie) and completed a transport handshake
                    // under the agreed secret.
                    let matched = {
                        let _permit = self.argon2.acquire().await?;
                        tokio::task::spawn_blocking(move || users::verify(&hash, &password)).await?
                    };
                    if matched && known && bound {
                        Verdict::Ok
                    } else {
                        lock(&self.limits).fail(&user, ip, Instant::now());
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
}
