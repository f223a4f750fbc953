//! Key-file daemon mode (`vfer-recv --listen`, `vfer://` operands): after
//! the session is up, the client states in one REQUEST message what it
//! wants (push into, or pull from, paths under the daemon's `--root`); then
//! the ordinary transfer protocol runs. Wire format: docs/PROTOCOL.md §5.

use std::path::PathBuf;

use crate::transfer::beneath::request_path;
use crate::transfer::path::RelPath;
use crate::transfer::RootDir;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Magic and version of the request message.
pub const REQUEST_MAGIC: &[u8; 4] = b"VFRQ";
/// Most paths in one request.
pub const MAX_PATHS: usize = 4096;
/// Longest path in a request.
pub const MAX_PATH_LEN: usize = 4096;
/// The whole request must arrive within this after the session is up
/// (keep-alives alone must not hold a slot forever).
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What a daemon client wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// True: the client sends files into `paths[0]`; false: the daemon sends `paths`.
    pub push: bool,
    /// `-r`.
    pub recursive: bool,
    /// `-p`.
    pub preserve: bool,
    /// Paths relative to the daemon's root.
    pub paths: Vec<String>,
}

/// A request the daemon refuses.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Not a request, or a malformed one.
    #[error("malformed daemon request: {0}")]
    Malformed(&'static str),
    /// A path that would leave the daemon's root.
    #[error("path {0:?} is outside the daemon's root (no absolute paths, no '..')")]
    Outside(String),
    /// A path that is, or passes through, a symlink under the root.
    #[error("{0}")]
    Symlink(String),
    /// The stream failed.
    #[error("stream error: {0}")]
    Io(#[from] std::io::Error),
}

impl Request {
    /// Writes the request: `"VFRQ" | u8 1 | u8 op | u8 flags | u16 count |
    /// count x (u16 len | path bytes)`.
    pub async fn write<W: AsyncWrite + Unpin>(&self, w: &mut W) -> std::io::Result<()> {
        let mut b = Vec::with_capacity(64);
        b.extend_from_slice(REQUEST_MAGIC);
        b.push(1);
        b.push(if self.push { 1 } else { 2 });
        b.push(u8::from(self.recursive) | (u8::from(self.preserve) << 1));
        b.extend_from_slice(&(self.paths.len().min(MAX_PATHS) as u16).to_be_bytes());
        for p in self.paths.iter().take(MAX_PATHS) {
            let p = &p.as_bytes()[..p.len().min(MAX_PATH_LEN)];
            b.extend_from_slice(&(p.len() as u16).to_be_bytes());
            b.extend_from_slice(p);
        }
        w.write_all(&b).await?;
        w.flush().await
    }

    /// Reads and validates a request (sizes are checked before reading).
    pub async fn read<R: AsyncRead + Unpin>(r: &mut R) -> Result<Request, RequestError> {
        let mut head = [0u8; 9];
        r.read_exact(&mut head).await?;
        if &head[..4] != REQUEST_MAGIC || head[4] != 1 {
            return Err(RequestError::Malformed("bad magic or version"));
        }
        let push = match head[5] {
            1 => true,
            2 => false,
            _ => return Err(RequestError::Malformed("unknown operation")),
        };
        let flags = head[6];
        let count = u16::from_be_bytes([head[7], head[8]]) as usize;
        if count == 0 || count > MAX_PATHS || (push && count != 1) {
            return Err(RequestError::Malformed("bad path count"));
        }
        let mut paths = Vec::with_capacity(count);
        for _ in 0..count {
            let mut l = [0u8; 2];
            r.read_exact(&mut l).await?;
            let len = u16::from_be_bytes(l) as usize;
            if len > MAX_PATH_LEN {
                return Err(RequestError::Malformed("path too long"));
            }
            let mut p = vec![0u8; len];
            r.read_exact(&mut p).await?;
            let p = String::from_utf8(p).map_err(|_| RequestError::Malformed("path not UTF-8"))?;
            paths.push(p);
        }
        Ok(Request {
            push,
            recursive: flags & 1 != 0,
            preserve: flags & 2 != 0,
            paths,
        })
    }
}

/// Checks a request path as text: relative, no `..`, no NUL (`.` and
/// empty components are dropped; `None` is the root itself). This is all
/// the daemon decides from the string: the file system is looked at only
/// through the root's descriptor, when the transfer opens the path
/// ([`crate::transfer::RootDir`]), so nothing can change between a check
/// and its use.
pub fn confine(path: &str) -> Result<Option<RelPath>, RequestError> {
    request_path(path).map_err(|_| RequestError::Outside(path.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip_and_limits() {
        let req = Request {
            push: false,
            recursive: true,
            preserve: false,
            paths: vec!["a/b".into(), "c d".into()],
        };
        let mut buf = Vec::new();
        req.write(&mut buf).await.unwrap();
        assert_eq!(Request::read(&mut &buf[..]).await.unwrap(), req);
        assert!(Request::read(&mut &buf[..5]).await.is_err());
        let mut bad = buf.clone();
        bad[0] = b'X';
        assert!(Request::read(&mut &bad[..]).await.is_err());
    }

    #[test]
    fn confinement() {
        assert_eq!(confine("in/box").unwrap().unwrap().as_bytes(), b"in/box");
        assert!(confine("../etc/passwd").is_err());
        assert!(confine("in/../../etc").is_err());
        assert!(confine("/etc/passwd").is_err());
        assert!(confine("a\0b").is_err());
        assert!(confine(".").unwrap().is_none());
        assert!(confine("").unwrap().is_none());
    }
}

/// Settings of `vfer-recv --listen`.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// UDP address to listen on.
    pub listen: std::net::SocketAddr,
    /// The key file (K = SHA-256 of it), or a directory of per-client keys.
    pub keys: crate::tunnel::keys::KeySource,
    /// Every path is under this directory.
    pub root: PathBuf,
    /// Most sessions at once.
    pub max_connections: usize,
    /// Write our process id here.
    pub pidfile: Option<PathBuf>,
    /// `-o SECS`: drop a client whose handshake takes longer.
    pub handshake_timeout: std::time::Duration,
    /// Transport settings of each session.
    pub config: crate::transport::Config,
}

/// Runs the standing key-file daemon until killed.
pub async fn serve(opts: DaemonOptions) -> anyhow::Result<()> {
    use anyhow::Context;

    let keys = opts.keys.load()?;
    let root = open_root(&opts.root)?;
    if let Some(p) = &opts.pidfile {
        std::fs::write(p, format!("{}\n", std::process::id()))
            .with_context(|| format!("cannot write --pidfile {}", p.display()))?;
    }
    let listen = crate::bootstrap::listen::ListenOptions {
        max_connections: opts.max_connections,
        handshake_timeout: opts.handshake_timeout,
        config: opts.config.clone(),
        ..Default::default()
    };
    // Say "serving" only for a port we can have: a port in use fails here,
    // before the banner (the listener binds it again at once).
    drop(
        std::net::UdpSocket::bind(opts.listen)
            .with_context(|| format!("cannot listen on {}", opts.listen))?,
    );
    eprintln!(
        "vfer-recv: serving {} on udp {}",
        root.dir.path().display(),
        opts.listen
    );
    crate::tunnel::keys::listen(opts.listen, keys, listen, move |session, client| {
        let root = root.clone();
        async move {
            let peer = match client {
                Some(name) => format!("{} (key {name})", session.peer()),
                None => session.peer().to_string(),
            };
            match serve_one(&session, &root).await {
                Ok(()) => {
                    super::session::close(session, 0).await;
                }
                Err(e) => {
                    let why = super::exit::describe(&e);
                    tracing::warn!("{peer}: {why}");
                    super::session::close_with(session, 1, &why).await;
                }
            }
        }
    })
    .await
    .with_context(|| format!("cannot listen on {}", opts.listen))
}

/// What a daemon serves: its root and its umask, both taken once at start.
#[derive(Debug, Clone)]
pub(crate) struct DaemonRoot {
    /// `--root`, a directory descriptor.
    pub dir: RootDir,
    /// The daemon's umask, applied even to `-p` modes.
    pub umask: u32,
}

/// Opens `--root` once as a directory descriptor (every request path is
/// resolved beneath it, never through the path string again) and reads the
/// umask.
pub(crate) fn open_root(path: &std::path::Path) -> anyhow::Result<DaemonRoot> {
    use anyhow::Context;
    let dir = RootDir::open(path).with_context(|| {
        format!(
            "--root {}: cannot use it as the daemon's root (is it an existing directory?)",
            path.display()
        )
    })?;
    Ok(DaemonRoot {
        dir,
        umask: crate::transfer::process_umask(),
    })
}

/// Serves one client's daemon request (§5) with paths resolved beneath
/// `root`'s descriptor (shared by key-file and challenge-response modes).
pub(crate) async fn serve_one(
    session: &crate::transport::Session,
    served: &DaemonRoot,
) -> anyhow::Result<()> {
    let root = &served.dir;
    use crate::transfer::{self, Dest, ReceiveOptions, SendOptions, Source};
    let mut stream = session.stream();
    let req = tokio::time::timeout(REQUEST_TIMEOUT, Request::read(&mut stream))
        .await
        .map_err(|_| RequestError::Malformed("no daemon request within 10 s"))??;
    if req.push {
        let path = confine(&req.paths[0])?;
        let opts = ReceiveOptions {
            preserve: req.preserve,
            umask: Some(served.umask),
            ..ReceiveOptions::default()
        };
        let dest = Dest::Beneath {
            root: root.clone(),
            path,
        };
        transfer::receive(stream, dest, &opts).await?;
    } else {
        let mut sources = Vec::with_capacity(req.paths.len());
        for p in &req.paths {
            sources.push(Source::Beneath {
                root: root.clone(),
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
            shown_root: Some(root.path().to_path_buf()),
            ..SendOptions::default()
        };
        transfer::send(stream, sources, &opts).await?;
    }
    Ok(())
}
