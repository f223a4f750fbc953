//! How a session gets its secret (docs/PROTOCOL.md §4).
//!
//! - [`ssh_server`]: the remote side of SSH starting mode (`vfer-recv
//!   --server`, `vfer-send --server`): read `"VSL1" || secret` on stdin,
//!   bind a UDP port, reply `"VSL1" || port` on stdout, daemonize once the
//!   client's first authenticated datagram arrives.
//! - [`ssh_client`]: the local side: run the user's own `ssh` to start the
//!   server, hand it a fresh secret, connect a [`Session`] to the port.
//! - [`local`]: the same bytes with a local child process instead of ssh.
//! - [`keyfile`]: spiped-style pre-shared key files, K = SHA-256(file).
//!
//! In every mode the transport handshake then runs an X25519 exchange
//! authenticated by the secret, so sessions have forward secrecy.

use std::time::Duration;

use crate::transport::SessionError;

pub mod admission;
mod child;
pub mod coredump;
mod daemon;
pub mod endpoint;
pub mod keyfile;
pub mod listen;
pub mod local;
pub mod login;
pub mod replay;
pub mod ssh_client;
pub mod ssh_server;
pub mod wire;

pub use crate::transport::Session;
pub use wire::Secret;

/// Exit status of the ssh-started server: session set up and daemonized.
pub const EXIT_OK: i32 = 0;
/// Exit status of the ssh-started server: temporary error (no free port,
/// no client in time); retrying may help.
pub const EXIT_TEMPORARY: i32 = 20;
/// Exit status of the ssh-started server: permanent error (bad magic, short
/// read, bad arguments); retrying will not help.
pub const EXIT_PERMANENT: i32 = 21;
/// Most bytes of error message the server writes to stderr.
pub const MAX_ERROR_MESSAGE: usize = 512;
/// How long the server waits for the client's first authenticated datagram.
pub const DEFAULT_ACCEPT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a client waits for the server's port reply (covers an ssh
/// password prompt).
pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(120);

/// IP address family restriction (`-4` / `-6`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// IPv4 only.
    V4,
    /// IPv6 only.
    V6,
}

/// Why the client side could not start a session.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The ssh (or local server) command could not be started.
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The `-e/--rsh` command or the host name is unusable.
    #[error("{0}")]
    Usage(String),
    /// The remote server reported a temporary error (exit status 20).
    #[error("{host}: temporary failure on the remote side (exit 20): {message}")]
    RemoteTemporary {
        /// Host name as the user gave it.
        host: String,
        /// The server's message.
        message: String,
    },
    /// The remote server refused to start (exit status 21).
    #[error("{host}: the remote vfer server refused to start (exit 21): {message}")]
    RemotePermanent {
        /// Host name as the user gave it.
        host: String,
        /// The server's message.
        message: String,
    },
    /// The remote program does not exist (exit status 127 from the shell).
    #[error("{host}: remote program `{program}` not found: {message} (install vfer on {host} or pass --remote-path)")]
    RemoteNotFound {
        /// Host name as the user gave it.
        host: String,
        /// The program we asked for.
        program: String,
        /// The shell's message.
        message: String,
    },
    /// ssh itself failed (exit status 255: connection or authentication),
    /// or the remote command ended with another status before replying.
    #[error("{host}: `{command}` failed ({status}){}", if message.is_empty() { String::new() } else { format!(": {message}") })]
    CommandFailed {
        /// Host name as the user gave it.
        host: String,
        /// The command's name (ssh or the local program).
        command: String,
        /// Exit status description.
        status: String,
        /// What the command wrote on stderr.
        message: String,
    },
    /// No port reply within the timeout.
    #[error("{host}: no reply from the remote vfer server within {timeout:?}")]
    NoReply {
        /// Host name as the user gave it.
        host: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The remote command wrote something other than the port message.
    #[error("{host}: unexpected reply {got} from the remote command (expected \"VSL1\" and a port; does a login script print to stdout?)")]
    BadReply {
        /// Host name as the user gave it.
        host: String,
        /// The bytes received, escaped.
        got: String,
    },
    /// The host name did not resolve.
    #[error("{host}: cannot resolve address: {message}")]
    Resolve {
        /// Host name as the user gave it.
        host: String,
        /// Why.
        message: String,
    },
    /// The secret was shared but no UDP session came up.
    #[error("{host}: the server started but no UDP session to {addr} came up: {source} (is UDP to that port blocked by a firewall?)")]
    Unreachable {
        /// Host name as the user gave it.
        host: String,
        /// The address we tried.
        addr: std::net::SocketAddr,
        /// The transport's reason.
        source: SessionError,
    },
    /// Local I/O failed (pipes, random numbers).
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
