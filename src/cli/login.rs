//! The client side of challenge-response mode (`vfer://USER@HOST:PORT/PATH`
//! operands): the pre-handshake, the host-key check against known_hosts
//! (or `--host-key-fingerprint`), the password (file, `VFER_PASSWORD`, or a
//! no-echo prompt), the transport session and the login. Nothing is sent
//! under the agreed secret — least of all the password — before the
//! server's key is confirmed and trusted. docs/PROTOCOL.md §7.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use zeroize::Zeroizing;

use super::args::Common;
use crate::bootstrap::login::hostkey::{fingerprint, parse_fingerprint};
use crate::bootstrap::login::known_hosts::{self, Pin};
use crate::bootstrap::login::LoginError;
use crate::service::connect;
use crate::service::forward::client::{Opener, Opening};
use crate::service::login_client::{self, LoginTarget, LoginUi};
use crate::service::request::Request;
use crate::transport::{Config, Session};
use crate::tunnel::ucspi::auth::{Authenticator, Opening as UcspiOpening};
use crate::tunnel::ucspi::wire::{Mode, Upgrade};

/// The environment variable a password may come from.
pub const PASSWORD_ENV: &str = "VFER_PASSWORD";

/// Logs in to the daemon at `host:port` as `user` and sends `request`;
/// returns the session ready for the transfer.
pub async fn open(
    user: &str,
    host: &str,
    port: u16,
    request: &Request,
    c: &Common,
) -> Result<Session> {
    login(user, host, port, None, Some(request), c).await
}

/// Logs in as `user` to the login server at `addr`, known as `host:port`
/// (its known_hosts name), and sends no request: `--ucspi`'s upgrade,
/// whose server got its UDP port in clear and serves nothing else.
pub async fn login_at(
    user: &str,
    host: &str,
    port: u16,
    addr: std::net::SocketAddr,
    c: &Common,
) -> Result<Session> {
    login(user, host, port, Some(addr), None, c).await
}

async fn login(
    user: &str,
    host: &str,
    port: u16,
    addr: Option<std::net::SocketAddr>,
    request: Option<&Request>,
    c: &Common,
) -> Result<Session> {
    check_user(user, host)?;
    let pinned = pinned(c)?;
    // A password file or variable is read before anything goes out.
    let password = early_password(c)?;
    let addr = match addr {
        Some(a) => a,
        None => connect::resolve(host, port, c.reach().family).await?,
    };
    let mut ui = Terminal {
        c,
        pinned,
        password,
        user,
        host,
    };
    let target = LoginTarget {
        addr,
        host,
        port,
        user,
    };
    login_client::open(&target, c.transport_config(), &mut ui, request).await
}

/// A forwarder's way to its login daemon (`--forward-from ADDR
/// vfer://USER@HOST`): each connection logs in anew, with the password
/// read once at start (`--password-file`, `VFER_PASSWORD`, or one prompt)
/// and the host key checked against known_hosts or
/// `--host-key-fingerprint` each time, never asked about later (a
/// forwarder has nobody to ask): an unknown key needs
/// `--accept-new-host-key` or the fingerprint.
pub fn opener(user: &str, host: &str, port: u16, c: &Common) -> Result<Arc<dyn Opener>> {
    check_user(user, host)?;
    let pinned = pinned(c)?;
    let password = match early_password(c)? {
        Some(p) => p,
        None => prompt_password(user, host)?,
    };
    Ok(Arc::new(Forwarder {
        c: c.clone(),
        pinned,
        password,
        user: user.to_string(),
        host: host.to_string(),
        port,
    }))
}

/// What [`opener`] keeps for every connection.
struct Forwarder {
    c: Common,
    pinned: Option<String>,
    password: Zeroizing<Vec<u8>>,
    user: String,
    host: String,
    port: u16,
}

impl Opener for Forwarder {
    fn open<'a>(&'a self, request: &'a Request, config: Config) -> Opening<'a> {
        Box::pin(async move {
            let (user, host, port) = (self.user.as_str(), self.host.as_str(), self.port);
            let addr = connect::resolve(host, port, self.c.reach().family).await?;
            let mut ui = Kept(self);
            let target = LoginTarget {
                addr,
                host,
                port,
                user,
            };
            login_client::open(&target, config, &mut ui, Some(request)).await
        })
    }
}

/// The forwarder's answers: kept from the start, no questions.
struct Kept<'a>(&'a Forwarder);

impl LoginUi for Kept<'_> {
    fn trust(&mut self, name: &str, key: &[u8; 32]) -> Result<bool> {
        let f = self.0;
        trust(name, key, f.pinned.as_deref(), &f.c, false)
    }

    fn password(&mut self) -> Result<(Zeroizing<Vec<u8>>, bool)> {
        Ok((self.0.password.clone(), false))
    }
}

/// `--ucspi`'s client login: `arg` is `vfer://USER@HOST[:PORT]` (`None`
/// if it is no `vfer://` URL: it is PROG). The server's host key is
/// checked against known_hosts for `HOST:PORT` (or
/// `--host-key-fingerprint`) before the password leaves, as with a login
/// daemon; HOST is also where the session goes when neither `--connect`
/// nor `TCPREMOTEIP` says.
pub fn ucspi(arg: &str, c: &Common) -> Option<Result<Box<dyn Authenticator>>> {
    use super::target::Operand;
    if !arg.starts_with("vfer://") {
        return None;
    }
    Some(match Operand::parse(arg) {
        Ok(Operand::Daemon {
            user: Some(user),
            host,
            port,
            path,
        }) if path.is_empty() || path == "/" => Ok(Box::new(UcspiLogin {
            user,
            host,
            port,
            c: c.clone(),
        })),
        Ok(_) => Err(anyhow::anyhow!(
            "--ucspi takes vfer://USER@HOST[:PORT] (a login, no path), not {arg:?}"
        )),
        Err(e) => Err(e.into()),
    })
}

/// What [`ucspi`] keeps: who logs in where.
struct UcspiLogin {
    user: String,
    host: String,
    port: u16,
    c: Common,
}

impl Authenticator for UcspiLogin {
    fn mode(&self) -> Mode {
        Mode::Login
    }

    fn accept(
        &self,
        _: std::net::UdpSocket,
        _: Upgrade,
        _: Upgrade,
        _: Config,
        _: std::time::Duration,
    ) -> UcspiOpening<'_> {
        Box::pin(async { anyhow::bail!("a --ucspi client does not serve logins") })
    }

    fn connect(
        &self,
        addr: std::net::SocketAddr,
        _: Upgrade,
        _: Upgrade,
        _: Config,
    ) -> UcspiOpening<'_> {
        // The nonces are not used: the login's own handshake makes the keys.
        Box::pin(login_at(&self.user, &self.host, self.port, addr, &self.c))
    }

    fn host(&self) -> Option<String> {
        Some(self.host.clone())
    }
}

/// The login's questions, answered from flags, files and the terminal.
struct Terminal<'a> {
    c: &'a Common,
    pinned: Option<String>,
    password: Option<Zeroizing<Vec<u8>>>,
    user: &'a str,
    host: &'a str,
}

impl LoginUi for Terminal<'_> {
    fn trust(&mut self, name: &str, key: &[u8; 32]) -> Result<bool> {
        trust(name, key, self.pinned.as_deref(), self.c, true)
    }

    fn password(&mut self) -> Result<(Zeroizing<Vec<u8>>, bool)> {
        match self.password.take() {
            Some(p) => Ok((p, false)),
            None => Ok((prompt_password(self.user, self.host)?, true)),
        }
    }
}

/// Refuses a user name no daemon could have.
fn check_user(user: &str, host: &str) -> Result<()> {
    if !crate::bootstrap::login::users::valid_name(user) {
        return Err(super::exit::usage(format!(
            "invalid user name {user:?} in vfer://{user}@{host}: use letters, digits, '.', '_', '-'"
        )));
    }
    Ok(())
}

/// The fingerprint `--host-key-fingerprint` pins, checked.
fn pinned(c: &Common) -> Result<Option<String>> {
    match &c.login.host_key_fingerprint {
        Some(fp) => Ok(Some(parse_fingerprint(fp).ok_or_else(|| {
            super::exit::usage(format!(
                "--host-key-fingerprint {fp:?} is not a fingerprint like SHA256:<43 base64 characters>"
            ))
        })?)),
        None => Ok(None),
    }
}

/// Checks the server's static key; returns whether a person was asked
/// (only if `may_ask` and there is a terminal).
fn trust(
    name: &str,
    key: &[u8; 32],
    pinned: Option<&str>,
    c: &Common,
    may_ask: bool,
) -> Result<bool> {
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
            if !(may_ask && std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
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
