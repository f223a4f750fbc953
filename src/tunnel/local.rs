//! The local end of a forwarded connection: a TCP address (`HOST:PORT`)
//! or a UNIX-domain socket (a path: it starts with `/` or `.`), spiped's
//! two kinds of endpoint. A listener on a UNIX socket removes its socket
//! file when dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::watch;

use super::pad::Framing;
use super::splice::{splice, Moved};
use crate::transport::Session;

/// Does `spec` name a UNIX-domain socket (a path) rather than `HOST:PORT`?
pub fn is_unix(spec: &str) -> bool {
    spec.starts_with('/') || spec.starts_with("./") || spec.starts_with("../")
}

/// A connected local stream.
#[derive(Debug)]
pub enum LocalStream {
    /// TCP.
    Tcp(TcpStream),
    /// A UNIX-domain stream socket.
    Unix(UnixStream),
}

impl LocalStream {
    /// Joins it to the session's stream in `framing` ([`splice`]).
    pub async fn splice(
        self,
        session: &Session,
        framing: Framing,
        stop: watch::Receiver<bool>,
        kill_idle: Option<Duration>,
    ) -> std::io::Result<Moved> {
        match self {
            LocalStream::Tcp(t) => {
                let _ = t.set_nodelay(true);
                let (r, w) = t.into_split();
                splice(r, w, session, framing, stop, kill_idle).await
            }
            LocalStream::Unix(u) => {
                let (r, w) = u.into_split();
                splice(r, w, session, framing, stop, kill_idle).await
            }
        }
    }
}

/// Where a forwarding daemon connects each session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A TCP address, resolved once.
    Tcp(SocketAddr),
    /// A UNIX-domain socket's path.
    Unix(PathBuf),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Tcp(a) => write!(f, "tcp {a}"),
            Endpoint::Unix(p) => write!(f, "unix {}", p.display()),
        }
    }
}

impl Endpoint {
    /// Parses (and for TCP resolves) `--forward`'s argument.
    pub async fn resolve(spec: &str) -> std::io::Result<Endpoint> {
        if is_unix(spec) {
            return Ok(Endpoint::Unix(PathBuf::from(spec)));
        }
        tokio::net::lookup_host(spec)
            .await?
            .next()
            .map(Endpoint::Tcp)
            .ok_or_else(|| std::io::Error::other("no address"))
    }

    /// Connects to it.
    pub async fn connect(&self) -> std::io::Result<LocalStream> {
        Ok(match self {
            Endpoint::Tcp(a) => LocalStream::Tcp(TcpStream::connect(a).await?),
            Endpoint::Unix(p) => LocalStream::Unix(UnixStream::connect(p).await?),
        })
    }
}

/// Where a forwarding client accepts connections.
#[derive(Debug)]
pub enum LocalListener {
    /// A TCP listener.
    Tcp(TcpListener),
    /// A UNIX-domain listener and its socket file (removed on drop).
    Unix(UnixListener, PathBuf),
}

impl LocalListener {
    /// Listens on `spec`: `HOST:PORT`, or a path for a UNIX-domain socket.
    /// A socket file left at the path by an earlier run is replaced; any
    /// other file there is an error.
    pub async fn bind(spec: &str) -> std::io::Result<LocalListener> {
        if !is_unix(spec) {
            return Ok(LocalListener::Tcp(TcpListener::bind(spec).await?));
        }
        let path = Path::new(spec);
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            use std::os::unix::fs::FileTypeExt;
            if !meta.file_type().is_socket() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    format!("{spec} exists and is not a socket"),
                ));
            }
            std::fs::remove_file(path)?;
        }
        Ok(LocalListener::Unix(
            UnixListener::bind(path)?,
            path.to_path_buf(),
        ))
    }

    /// The next connection and a name for its peer (for messages).
    pub async fn accept(&self) -> std::io::Result<(LocalStream, String)> {
        match self {
            LocalListener::Tcp(l) => {
                let (s, from) = l.accept().await?;
                Ok((LocalStream::Tcp(s), format!("tcp {from}")))
            }
            LocalListener::Unix(l, p) => {
                let (s, _) = l.accept().await?;
                Ok((LocalStream::Unix(s), format!("unix {}", p.display())))
            }
        }
    }

    /// What it listens on, for messages.
    pub fn name(&self) -> String {
        match self {
            LocalListener::Tcp(l) => l
                .local_addr()
                .map_or_else(|_| "tcp ?".to_string(), |a| format!("tcp {a}")),
            LocalListener::Unix(_, p) => format!("unix {}", p.display()),
        }
    }
}

impl Drop for LocalListener {
    fn drop(&mut self) {
        if let LocalListener::Unix(_, p) = self {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_unix_sockets() {
        assert!(is_unix("/run/db.sock"));
        assert!(is_unix("./db.sock"));
        assert!(!is_unix("127.0.0.1:5432"));
        assert!(!is_unix("[::1]:5432"));
        assert!(!is_unix("db:5432"));
    }
}
