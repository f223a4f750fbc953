//! Key-file daemon mode (`vfer-recv --listen`, `vfer://` operands): after
//! the session is up, the client states in one REQUEST message what it
//! wants (push into, or pull from, paths under the daemon's `--root`); then
//! the ordinary transfer protocol runs. Wire format: docs/PROTOCOL.md §5.

use std::path::{Component, Path, PathBuf};

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

/// Maps a request path onto `root`, refusing anything that could leave it:
/// absolute paths, `..`, and (for existing paths) symlinks resolving outside.
pub fn confine(root: &Path, path: &str) -> Result<PathBuf, RequestError> {
    let rel = Path::new(path);
    if path.contains('\0')
        || rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(RequestError::Outside(path.to_string()));
    }
    let full = root.join(rel);
    let real_root = root.canonicalize()?;
    // The deepest part of the path that exists must resolve inside the
    // root: `link/new-file` with `link -> /etc` is refused too.
    let mut probe = full.as_path();
    let real = loop {
        match probe.canonicalize() {
            Ok(real) => break real,
            Err(_) => match probe.parent() {
                Some(up) => probe = up,
                None => return Err(RequestError::Outside(path.to_string())),
            },
        }
    };
    if !real.starts_with(&real_root) {
        return Err(RequestError::Outside(path.to_string()));
    }
    Ok(full)
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
        let root = tempfile::tempdir().unwrap();
        assert!(confine(root.path(), "in/box").is_ok());
        assert!(confine(root.path(), "../etc/passwd").is_err());
        assert!(confine(root.path(), "/etc/passwd").is_err());
        std::os::unix::fs::symlink("/etc", root.path().join("esc")).unwrap();
        assert!(confine(root.path(), "esc/passwd").is_err());
        assert!(confine(root.path(), "esc/not-there/new").is_err());
        assert!(confine(root.path(), "new/deeper/file").is_ok());
        std::os::unix::fs::symlink("in", root.path().join("inner")).unwrap();
        std::fs::create_dir(root.path().join("in")).unwrap();
        assert!(confine(root.path(), "inner/new").is_ok());
    }
}

/// Settings of `vfer-recv --listen`.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// UDP address to listen on.
    pub listen: std::net::SocketAddr,
    /// The key file (K = SHA-256 of it).
    pub key_file: PathBuf,
    /// Every path is under this directory.
    pub root: PathBuf,
    /// Most sessions at once.
    pub max_connections: usize,
    /// Write our process id here.
    pub pidfile: Option<PathBuf>,
    /// Transport settings of each session.
    pub config: crate::transport::Config,
}

/// Runs the standing key-file daemon until killed.
pub async fn serve(opts: DaemonOptions) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::sync::Arc;

    let key = crate::bootstrap::keyfile::load(&opts.key_file)?;
    let root = opts.root.canonicalize().with_context(|| {
        format!(
            "--root {}: cannot use it as the daemon's root (does it exist?)",
            opts.root.display()
        )
    })?;
    if let Some(p) = &opts.pidfile {
        std::fs::write(p, format!("{}\n", std::process::id()))
            .with_context(|| format!("cannot write --pidfile {}", p.display()))?;
    }
    let listen = crate::bootstrap::listen::ListenOptions {
        max_connections: opts.max_connections,
        config: opts.config.clone(),
        ..Default::default()
    };
    let root = Arc::new(root);
    eprintln!(
        "vfer-recv: serving {} on udp {}",
        root.display(),
        opts.listen
    );
    crate::bootstrap::listen::listen(opts.listen, &key, listen, move |session| {
        let root = root.clone();
        async move {
            let peer = session.peer();
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

/// Serves one client's daemon request (§5) with paths confined under `root`
/// (shared by key-file and challenge-response modes).
pub(crate) async fn serve_one(
    session: &crate::transport::Session,
    root: &Path,
) -> anyhow::Result<()> {
    use crate::transfer::{self, Dest, ReceiveOptions, SendOptions, Source};
    let mut stream = session.stream();
    let req = tokio::time::timeout(REQUEST_TIMEOUT, Request::read(&mut stream))
        .await
        .map_err(|_| RequestError::Malformed("no daemon request within 10 s"))??;
    if req.push {
        let dest = confine(root, &req.paths[0])?;
        let opts = ReceiveOptions {
            preserve: req.preserve,
            ..ReceiveOptions::default()
        };
        transfer::receive(stream, Dest::Path(dest), &opts).await?;
    } else {
        let mut sources = Vec::with_capacity(req.paths.len());
        for p in &req.paths {
            sources.push(Source::Path(confine(root, p)?));
        }
        let opts = SendOptions {
            recursive: req.recursive,
            preserve: req.preserve,
            progress: None,
        };
        transfer::send(stream, sources, &opts).await?;
    }
    Ok(())
}
