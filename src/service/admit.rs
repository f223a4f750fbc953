//! Who may open sessions on a standing daemon, for every service alike:
//! holders of a key (`--key-file`, or one per client with `--key-dir`,
//! §4.3) or users who log in (`--users`, challenge-response mode, §7).
//! [`run`] puts the matching gate on the [runner](super::runner) and
//! hands each admitted session to the service with the [`Client`] it
//! belongs to, so the file, program and forwarding daemons take either
//! kind of client without knowing how it was admitted.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use tokio::sync::watch;

use super::login_check::LoginPolicy;
use super::runner::{self, per_host_limit, KeyGate, RunnerOptions};
use crate::bootstrap::login::hostkey::HostKey;
use crate::bootstrap::login::server::{GateOptions, LoginGate};
use crate::bootstrap::login::users::Users;
use crate::transport::Session;
use crate::tunnel::keys::KeySource;

/// How a daemon admits its clients.
#[derive(Debug, Clone)]
pub enum Admission {
    /// Key-file mode: the key file, or a directory of per-client keys.
    Keys(KeySource),
    /// Challenge-response mode: users log in with a password, the daemon
    /// proves itself with its host key.
    Login {
        /// The users file (`name:argon2id-hash` lines).
        users: PathBuf,
        /// The host key file (default: `vfer_host_key` next to the users
        /// file, [`super::daemons::host_key_path`]).
        host_key: Option<PathBuf>,
    },
}

/// Who an admitted session's client is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Client {
    /// A holder of the daemon's one key: nobody in particular.
    Anyone,
    /// A holder of one of `--key-dir`'s keys: its file name.
    Key(String),
    /// A user who logged in: the login name.
    User(String),
}

impl Client {
    /// The variables a program run for this client gets: `VFER_CLIENT`
    /// (the key's file name, or the login name) and, for a login,
    /// `VFER_USER` (the login name); none for [`Client::Anyone`].
    pub fn env(&self) -> Vec<(&'static str, String)> {
        match self {
            Client::Anyone => Vec::new(),
            Client::Key(name) => vec![("VFER_CLIENT", name.clone())],
            Client::User(name) => vec![("VFER_CLIENT", name.clone()), ("VFER_USER", name.clone())],
        }
    }

    /// How the log names it ("key NAME", "user NAME"), if it has a name.
    pub fn describe(&self) -> Option<String> {
        match self {
            Client::Anyone => None,
            Client::Key(name) => Some(format!("key {name}")),
            Client::User(name) => Some(format!("user {name:?}")),
        }
    }
}

/// Runs `opts` (binding, limits, pidfile, stop: the
/// [runner](super::runner)) with the gate of `admission`: each session
/// whose client was admitted — for a login, whose LOGIN was checked and
/// accepted (a refused one is closed here with "login refused") — runs
/// `on_session` with its [`Client`] and the daemon's stop receiver.
pub async fn run<S, F, Fut>(
    mut opts: RunnerOptions,
    admission: Admission,
    stop: S,
    on_session: F,
) -> Result<()>
where
    S: Future,
    F: Fn(Session, Client, watch::Receiver<bool>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    runner::harden();
    match admission {
        Admission::Keys(source) => {
            let keys = source.load()?;
            runner::run(opts, KeyGate(keys), stop, move |s, name, stop| {
                let client = name.map_or(Client::Anyone, Client::Key);
                if let Some(who) = client.describe() {
                    tracing::info!("{}: {who}", s.peer());
                }
                on_session(s, client, stop)
            })
            .await
        }
        Admission::Login { users, host_key } => {
            opts.max_per_host = per_host_limit(opts.max_connections);
            let Login {
                gate,
                policy,
                banner,
            } = login_gate(&users, host_key, opts.max_connections, opts.max_per_host)?;
            // The host key first: the lines the service added follow.
            opts.banner.splice(0..0, banner);
            let on_session = Arc::new(on_session);
            runner::run(opts, gate, stop, move |s, ctx, stop| {
                let (policy, on_session) = (policy.clone(), on_session.clone());
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
                    on_session(s, Client::User(user), stop).await
                }
            })
            .await
        }
    }
}

/// A login gate and its policy, with the lines a daemon prints about them.
pub struct Login {
    /// Answers the pre-handshake (§7.1) with the host key.
    pub gate: LoginGate,
    /// Checks each LOGIN (§7.7, §7.8).
    pub policy: Arc<LoginPolicy>,
    /// "host key PATH: SHA256:...", "N user(s) of F may log in".
    pub banner: Vec<String>,
}

/// Loads the users and the host key (created if missing) of a login
/// server, and builds its gate (at most `max_connections` handshakes at
/// once, `max_per_host` of one host) and policy.
pub fn login_gate(
    users_file: &std::path::Path,
    host_key: Option<PathBuf>,
    max_connections: usize,
    max_per_host: usize,
) -> Result<Login> {
    let users = Users::load(users_file).with_context(|| {
        "cannot load --users (create it with: vfer-recv --add-user NAME --users FILE)"
    })?;
    if users.is_empty() {
        eprintln!(
            "vfer-recv: warning: {} has no users yet; add one with: vfer-recv --add-user NAME --users {}",
            users_file.display(),
            users_file.display()
        );
    }
    let key_path = super::daemons::host_key_path(users_file, host_key);
    let (key, created) = HostKey::load_or_create(&key_path)?;
    let banner = vec![
        format!(
            "vfer-recv: host key {}{}: {}",
            key_path.display(),
            if created { " (new)" } else { "" },
            key.fingerprint()
        ),
        format!(
            "vfer-recv: {} user(s) of {} may log in",
            users.len(),
            users_file.display()
        ),
    ];
    let gate = LoginGate::new(
        key,
        GateOptions {
            max_handshakes: max_connections.max(1),
            max_per_host,
            ..GateOptions::default()
        },
        Instant::now(),
    )?;
    Ok(Login {
        gate,
        policy: Arc::new(LoginPolicy::new(users)),
        banner,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_learn_the_client_by_name() {
        assert!(Client::Anyone.env().is_empty());
        assert_eq!(
            Client::Key("laptop".into()).env(),
            vec![("VFER_CLIENT", "laptop".to_string())]
        );
        let alice = Client::User("alice".into()).env();
        assert!(alice.contains(&("VFER_USER", "alice".to_string())));
        assert!(alice.contains(&("VFER_CLIENT", "alice".to_string())));
    }
}
