//! The client side of challenge-response mode (`vfer://USER@HOST:PORT/PATH`
//! operands): the pre-handshake, the host-key check against known_hosts
//! (or `--host-key-fingerprint`), the password (file, `VFER_PASSWORD`, or a
//! no-echo prompt), the transport session and the login. Nothing is sent
//! under the agreed secret — least of all the password — before the
//! server's key is confirmed and trusted. docs/PROTOCOL.md §7.

use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use zeroize::Zeroizing;

use super::args::Common;
use crate::bootstrap::login::client::{self, Accepted};
use crate::bootstrap::login::hostkey::{fingerprint, parse_fingerprint};
use crate::bootstrap::login::known_hosts::{self, Pin};
use crate::bootstrap::login::{auth, LoginError};
use crate::bootstrap::ssh_client::RemoteRole;
use crate::transport::Session;

/// The environment variable a password may come from.
pub const PASSWORD_ENV: &str = "VFER_PASSWORD";
/// How long the client waits for the login verdict (the daemon may queue
/// Argon2 runs when many clients log in at once).
pub const VERDICT_TIMEOUT: Duration = Duration::from_secs(120);

/// Client options of challenge-response mode.
#[derive(Args, Debug, Clone, Default)]
pub struct LoginArgs {
    /// vfer://USER@HOST daemons: read the password from the first line of
    /// FILE (mode 0600) instead of asking (also: VFER_PASSWORD).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// vfer://USER@HOST daemons: trust a daemon's host key seen for the
    /// first time and pin it in ~/.config/vfer/known_hosts without asking.
    #[arg(long)]
    pub accept_new_host_key: bool,
    /// vfer://USER@HOST daemons: the daemon's host key fingerprint
    /// (SHA256:..., printed by the daemon when it starts); known_hosts is
    /// then neither read nor written.
    #[arg(long, value_name = "SHA256:...")]
    pub host_key_fingerprint: Option<String>,
}

/// Logs in to the daemon at `host:port` as `user` and sends the daemon
/// request for `role` with `operands`; returns the session ready for the
/// transfer.
pub async fn open(
    user: &str,
    host: &str,
    port: u16,
    role: RemoteRole,
    operands: &[String],
    c: &Common,
) -> Result<Session> {
    if !crate::bootstrap::login::users::valid_name(user) {
        return Err(super::exit::usage(format!(
            "invalid user name {user:?} in vfer://{user}@{host}: use letters, digits, '.', '_', '-'"
        )));
    }
    let pinned = match &c.login.host_key_fingerprint {
        Some(fp) => Some(parse_fingerprint(fp).ok_or_else(|| {
            super::exit::usage(format!(
                "--host-key-fingerprint {fp:?} is not a fingerprint like SHA256:<43 base64 characters>"
            ))
        })?),
        None => None,
    };
    let password = early_password(c)?;
    let addr = tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("cannot resolve {host}"))?
        .find(|a| !(c.ipv4 && a.is_ipv6() || c.ipv6 && a.is_ipv4()))
        .with_context(|| format!("{host} has no address of the asked family"))?;
    let config = c.transport_config();
    let bind: SocketAddr = if addr.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let (sock, warning) = crate::transport::socket::bind(bind)?;
    let wait = config.handshake_timeout;
    let mut accepted = client::handshake(&sock, addr, wait).await?;
    let name = known_hosts::host_key(host, port);
    let asked = trust(&name, &accepted.server_static, pinned.as_deref(), c)?;
    let prompted = password.is_none();
    let password = match password {
        Some(p) => p,
        None => prompt_password(user, host)?,
    };
    if asked || prompted {
        // A person answered a prompt: the daemon may have forgotten our
        // pending secret meanwhile. Agree on a fresh one, with the same key.
        let again = client::handshake(&sock, addr, wait).await?;
        if again.server_static != accepted.server_static {
            return Err(LoginError::HostKey(format!(
                "{name}: the daemon's host key changed during the login ({} then {}); \
                 someone may be intercepting this connection. Nothing was sent.",
                fingerprint(&accepted.server_static),
                fingerprint(&again.server_static)
            ))
            .into());
        }
        accepted = again;
    }
    let Accepted {
        secret, binding, ..
    } = accepted;
    let session = Session::connect_on(sock, warning, addr, secret.bytes(), config)
        .await
        .map_err(|source| LoginError::Session { addr, source })?;
    let mut stream = session.stream();
    auth::write_login(&mut stream, &binding, user, &password)
        .await
        .map_err(|e| LoginError::Exchange(e.to_string()))?;
    drop(password);
    let verdict = tokio::time::timeout(VERDICT_TIMEOUT, auth::read_verdict(&mut stream)).await;
    match verdict {
        Ok(Ok(auth::Verdict::Ok)) => {}
        Ok(Ok(auth::Verdict::Refused)) => return Err(LoginError::Refused.into()),
        Ok(Ok(auth::Verdict::RateLimited(s))) => return Err(LoginError::RateLimited(s).into()),
        Ok(Err(e)) => {
            let why = super::session::peer_reason(&session).await;
            return Err(LoginError::Exchange(why.unwrap_or_else(|| e.to_string())).into());
        }
        Err(_) => {
            return Err(LoginError::Exchange(format!(
                "{host}:{port}: no login verdict within {VERDICT_TIMEOUT:?}"
            ))
            .into())
        }
    }
    super::session::send_request(&mut stream, role, operands, c, host, port).await?;
    Ok(session)
}

/// Checks the server's static key; returns whether a person was asked.
fn trust(name: &str, key: &[u8; 32], pinned: Option<&str>, c: &Common) -> Result<bool> {
    let fp = fingerprint(key);
    if let Some(want) = pinned {
        if want == fp {
            return Ok(false);
        }
        return Err(LoginError::HostKey(format!(
            "{name} presented host key {fp}, but --host-key-fingerprint asks for {want}: \
             someone may be intercepting this connection (man in the middle), or the \
             fingerprint is wrong. Nothing was sent."
        ))
        .into());
    }
    let Some(path) = known_hosts::default_path() else {
        return Err(LoginError::HostKey(format!(
            "{name}: cannot find the known_hosts file (neither $XDG_CONFIG_HOME nor $HOME is set); \
             pass --host-key-fingerprint {fp} after checking it with the daemon's administrator"
        ))
        .into());
    };
    let pin = known_hosts::check(&path, name, &fp)
        .with_context(|| format!("cannot read {}", path.display()))?;
    match pin {
        Pin::Match => Ok(false),
        Pin::Mismatch { line, pinned } => {
            Err(LoginError::HostKey(mismatch(name, &fp, &pinned, &path, line)).into())
        }
        Pin::Unknown if c.login.accept_new_host_key => {
            pin_it(&path, name, &fp)?;
            if !c.quiet {
                eprintln!(
                    "vfer: pinned host key {fp} for {name} in {}",
                    path.display()
                );
            }
            Ok(false)
        }
        Pin::Unknown => {
            if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
                return Err(LoginError::HostKey(format!(
                    "{name}: unknown host key {fp} (not in {}). Check it against the fingerprint \
                     the daemon printed when it started, then re-run with --accept-new-host-key \
                     or --host-key-fingerprint {fp}",
                    path.display()
                ))
                .into());
            }
            eprint!(
                "The authenticity of the vfer daemon {name} can't be established.\n\
                 Its host key fingerprint is {fp}\n\
                 (the daemon printed its fingerprint when it started: compare them).\n\
                 Trust this key and remember it in {} (yes/no)? ",
                path.display()
            );
            let _ = std::io::stderr().flush();
            let mut answer = String::new();
            std::io::stdin().lock().read_line(&mut answer)?;
            if !answer.trim().eq_ignore_ascii_case("yes") {
                return Err(LoginError::HostKey(format!(
                    "{name}: host key {fp} not trusted; nothing was sent"
                ))
                .into());
            }
            pin_it(&path, name, &fp)?;
            Ok(true)
        }
    }
}

fn pin_it(path: &Path, name: &str, fp: &str) -> Result<()> {
    known_hosts::add(path, name, fp)
        .with_context(|| format!("cannot write the host key pin to {}", path.display()))
}

fn mismatch(name: &str, fp: &str, pinned: &str, path: &Path, line: usize) -> String {
    format!(
        "\n@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
         @    WARNING: THE VFER DAEMON'S HOST KEY HAS CHANGED!   @\n\
         @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
         Someone may be intercepting this connection (a man in the middle),\n\
         or the daemon's host key was replaced.\n\
         {name} presented {fp},\n\
         but {} line {line} pins {pinned}.\n\
         Nothing was sent (no password). If the change is expected, delete line {line}\n\
         of {} and connect again.",
        path.display(),
        path.display()
    )
}

/// The password from `--password-file` or `VFER_PASSWORD`, if given.
fn early_password(c: &Common) -> Result<Option<Zeroizing<Vec<u8>>>> {
    if let Some(p) = &c.login.password_file {
        return read_password_file(p).map(Some);
    }
    if let Some(v) = std::env::var_os(PASSWORD_ENV) {
        use std::os::unix::ffi::OsStringExt;
        return Ok(Some(Zeroizing::new(v.into_vec())));
    }
    Ok(None)
}

/// The first line of a password file (mode 0600), without its line end.
pub fn read_password_file(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let name = path.display();
    let meta = std::fs::metadata(path).with_context(|| format!("--password-file {name}"))?;
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o044 != 0 {
        return Err(super::exit::usage(format!(
            "--password-file {name} is readable by group or others (mode {mode:03o}); run: chmod 600 {name}"
        )));
    }
    let data =
        Zeroizing::new(std::fs::read(path).with_context(|| format!("--password-file {name}"))?);
    let end = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let line = &data[..end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Ok(Zeroizing::new(line.to_vec()))
}

fn prompt_password(user: &str, host: &str) -> Result<Zeroizing<Vec<u8>>> {
    match rpassword::prompt_password(format!("{user}@{host}'s vfer password: ")) {
        Ok(p) => Ok(Zeroizing::new(p.into_bytes())),
        Err(e) => Err(super::exit::usage(format!(
            "no password for {user}@{host}: there is no terminal to ask on ({e}); \
             give --password-file FILE or set {PASSWORD_ENV}"
        ))),
    }
}

/// Exit code for a login error (README: 17 authentication, 99 timeout).
pub fn exit_code(e: &LoginError) -> i32 {
    match e {
        LoginError::NoAnswer { forged: 0, .. } => super::exit::TIMEOUT,
        LoginError::Io(_) => super::exit::TEMPORARY,
        LoginError::Session { .. } => super::exit::TEMPORARY,
        LoginError::Exchange(_) => super::exit::TEMPORARY,
        _ => super::exit::AUTH,
    }
}
