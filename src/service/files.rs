//! The file service of a standing daemon (docs/PROTOCOL.md §5): push into,
//! or pull from, paths under a root directory descriptor. Every path is
//! checked as text ([`confine`]) and opened only beneath the descriptor,
//! never through the path string again.

use std::path::Path;

use super::request::{confine, Offer, Request, Service};
use crate::transfer::{self, Dest, ReceiveOptions, RootDir, SendOptions, Source, Summary};
use crate::transport::{Session, Stats};

/// What a file daemon serves: its root and its umask, both taken once at
/// start.
#[derive(Debug, Clone)]
pub struct Root {
    /// `--root`, a directory descriptor.
    pub dir: RootDir,
    /// The daemon's umask, applied even to `-p` modes.
    pub umask: u32,
}

/// Why `--root` cannot be served.
#[derive(Debug, thiserror::Error)]
#[error(
    "--root {path}: cannot use it as the daemon's root (is it an existing directory?): {source}"
)]
pub struct RootError {
    /// The path given.
    pub path: String,
    /// Why.
    pub source: std::io::Error,
}

impl Root {
    /// Opens `path` once as a directory descriptor (every request path is
    /// resolved beneath it) and reads the process umask.
    pub fn open(path: &Path) -> Result<Root, RootError> {
        let dir = RootDir::open(path).map_err(|source| RootError {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Root {
            dir,
            umask: transfer::process_umask(),
        })
    }
}

/// Serves one file request on `session`: the push or pull `req` asks for,
/// with paths confined beneath `root`.
pub async fn serve(session: &Session, root: &Root, req: &Request) -> anyhow::Result<()> {
    req.check_offer(Offer::Files)?;
    let stream = session.stream();
    if req.service == Service::Push {
        let path = confine(&req.paths[0])?;
        let opts = ReceiveOptions {
            preserve: req.preserve,
            umask: Some(root.umask),
            budget: Some(crate::budget::daemon()),
            ..ReceiveOptions::default()
        };
        let dest = Dest::Beneath {
            root: root.dir.clone(),
            path,
        };
        transfer::receive(stream, dest, &opts).await?;
    } else {
        let mut sources = Vec::with_capacity(req.paths.len());
        for p in &req.paths {
            sources.push(Source::Beneath {
                root: root.dir.clone(),
                // A symlink at or above the source is refused by the walk
                // beneath the root, as a failure of this source (exit 1 at
                // the client, as scp for a missing file), not of the session.
                path: confine(p)?,
            });
        }
        let opts = SendOptions {
            recursive: req.recursive,
            preserve: req.preserve,
            progress: None,
            shown_root: Some(root.dir.path().to_path_buf()),
            budget: Some(crate::budget::daemon()),
            ..SendOptions::default()
        };
        transfer::send(stream, sources, &opts).await?;
    }
    Ok(())
}

/// The ssh-started far side of a pull: sends `operands`, each with `~`
/// and glob characters expanded here (as scp does on the remote side),
/// then closes the session (code 0, or 1 if the transfer failed). Returns
/// the transfer's summary (`None` if it failed) and the session's final
/// counters, for the far side's diagnostics (`cli::farlog`).
pub async fn serve_ssh_send(
    session: Session,
    recursive: bool,
    preserve: bool,
    operands: &[String],
) -> (Option<Summary>, Stats) {
    let opts = SendOptions {
        recursive,
        preserve,
        ..SendOptions::default()
    };
    let sources = operands
        .iter()
        .flat_map(|o| super::expand::source(o))
        .map(Source::from_arg)
        .collect();
    let summary = transfer::send(session.stream(), sources, &opts).await.ok();
    let code = if summary.is_some() { 0 } else { 1 };
    (summary, crate::tunnel::ending::close(session, code).await)
}

/// The ssh-started far side of a push: receives into the one operand
/// (`~` expanded), then closes the session. Returns what
/// [`serve_ssh_send`] returns.
pub async fn serve_ssh_recv(
    session: Session,
    preserve: bool,
    operands: &[String],
) -> (Option<Summary>, Stats) {
    let dest = match operands {
        [d] => Dest::Path(std::path::PathBuf::from(super::expand::tilde(d))),
        _ => {
            // The client always sends exactly one destination.
            return (None, crate::tunnel::ending::close(session, 21).await);
        }
    };
    let opts = ReceiveOptions {
        preserve,
        ..ReceiveOptions::default()
    };
    let summary = transfer::receive(session.stream(), dest, &opts).await.ok();
    let code = if summary.is_some() { 0 } else { 1 };
    (summary, crate::tunnel::ending::close(session, code).await)
}
