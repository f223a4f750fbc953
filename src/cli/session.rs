//! Opening the session a command line asks for (ssh, local child or key-file
//! daemon), and closing it so that both sides know the transfer is over.

use anyhow::{bail, Context, Result};

use super::args::Common;
use super::target::Operand;
use crate::bootstrap::ssh_client::{self, RemoteRole, SshOptions, SshTarget};
pub use crate::service::connect::{self, Far, Reach};
use crate::service::request::{Request, Service};
use crate::transport::Session;

/// Where a remote operand's far side runs, and its path there (`.` when
/// empty). `what` ("source"/"destination") names a local operand in the
/// error when `--local` was not given.
pub fn far_of(op: Operand, local: bool, what: &str) -> Result<(Far, String)> {
    let (far, path) = match op {
        Operand::Ssh { login, path } => (Far::Ssh(login), path),
        Operand::Local(p) if local => (Far::Local, p),
        Operand::Local(p) => {
            return Err(super::exit::usage(format!(
                "{what} '{p}' is local: give [user@]host:path (or --local to copy \
                 through vfer on this machine)"
            )))
        }
        Operand::Daemon {
            user: Some(user),
            host,
            port,
            path,
        } => (Far::Login { user, host, port }, path),
        Operand::Daemon {
            host, port, path, ..
        } => (Far::Daemon { host, port }, path),
    };
    let path = if path.is_empty() {
        ".".to_string()
    } else {
        path
    };
    Ok((far, path))
}

/// How this command line reaches its far side ([`Common::reach`]).
pub fn reach(c: &Common) -> Reach {
    c.reach()
}

/// Starts the far side as `role` with `operands` (its paths) and connects.
pub async fn open(far: &Far, role: RemoteRole, operands: &[String], c: &Common) -> Result<Session> {
    let session = match far {
        Far::Ssh(_) | Far::Local => {
            let mut args = c.remote_flags();
            args.push("--".to_string());
            args.extend(operands.iter().cloned());
            start_child(far, role, args, c).await?
        }
        Far::Daemon { host, port } => {
            let session = connect::key_file_session(host, *port, &reach(c)).await?;
            file_request(role, operands, c)
                .write(&mut session.stream())
                .await
                .with_context(|| format!("{host}:{port}: cannot send the request"))?;
            session
        }
        Far::Login { user, host, port } => {
            let request = file_request(role, operands, c);
            super::login::open(user, host, *port, &request, c).await?
        }
    };
    warn_about_socket(&session, c);
    Ok(session)
}

/// The service request (§5) for a transfer of `operands` in `role`'s
/// direction, with `-r`, `-p` and the session options of `c`.
pub fn file_request(role: RemoteRole, operands: &[String], c: &Common) -> Request {
    Request {
        service: if role == RemoteRole::Recv {
            Service::Push
        } else {
            Service::Pull
        },
        recursive: c.recursive,
        preserve: c.preserve,
        options: c.session_options(),
        paths: operands.to_vec(),
    }
}

/// [`connect::start_child`] with this command line's [`reach`], starting
/// from the path remembered for an ssh host (issue 17).
pub async fn start_child(
    far: &Far,
    role: RemoteRole,
    mut args: Vec<String>,
    c: &Common,
) -> Result<Session> {
    let mut reach = reach(c);
    if let Far::Ssh(login) = far {
        remembered_path(login, &mut args, &mut reach, c).await;
    }
    connect::start_child(far, role, args, &reach).await
}

/// The path cache (issue 17): the hint for this host's path goes to both
/// sides (to the far side as `--path-hint`, before the `--` that ends its
/// options): whichever sends starts from it, both size their buffers by it.
/// A `--path-hint` given on our own command line (the path is known, as
/// qcp's `--rx`/`--rtt` tell it) takes the cache's place.
async fn remembered_path(login: &str, args: &mut Vec<String>, reach: &mut Reach, c: &Common) {
    if c.rate.is_some() {
        return;
    }
    let Ok(target) = SshTarget::parse(login) else {
        return;
    };
    let opts = SshOptions {
        rsh: reach.rsh.clone(),
        family: reach.family,
        ..SshOptions::default()
    };
    let given = reach.config.path_hint;
    let cached = match ssh_client::resolve(&target, &opts).await {
        Ok(ip) => super::pathstore::begin(&target.host, &ip.to_string(), c.no_path_cache),
        Err(_) => None,
    };
    let Some(hint) = given.or(cached) else {
        return;
    };
    reach.config.path_hint = Some(hint);
    let at = args.iter().position(|a| a == "--").unwrap_or(args.len());
    args.splice(at..at, ["--path-hint".to_string(), hint.to_arg()]);
}

/// [`connect::key_file_session`] with this command line's [`reach`].
pub async fn key_file_session(host: &str, port: u16, c: &Common) -> Result<Session> {
    connect::key_file_session(host, port, &reach(c)).await
}

/// Prints the one-line warning about capped socket buffers (unless `-q`).
pub fn warn_about_socket(session: &Session, c: &Common) {
    if !c.quiet {
        if let Some(w) = session.socket_warning() {
            eprintln!("{w}");
        }
    }
}

/// Ending a session (they live in the service layer).
pub use crate::tunnel::ending::{close, close_with, peer_reason};

/// Refuses operand combinations scp would refuse.
pub fn check_one_remote(kinds: &[bool]) -> Result<()> {
    if kinds.iter().filter(|r| **r).count() > 1 {
        bail!("copying between two remote hosts is not supported: run vfer on one of them");
    }
    Ok(())
}
