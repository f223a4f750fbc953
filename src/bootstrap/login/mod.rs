//! Challenge-response mode (docs/PROTOCOL.md §7): a standing `vfer-recv
//! --listen` daemon that logs users in with a name and password, safely
//! against a man in the middle.
//!
//! 1. A pre-handshake in the Noise NX pattern on the daemon's UDP port
//!    ([`client`], [`server`], [`wire`], [`crypto`]): the client's
//!    ephemeral key, a stateless address [`cookie`], then the server's
//!    ephemeral key, its static host key ([`hostkey`]) and a key
//!    confirmation. Both derive the transport secret S from both
//!    Diffie-Hellman results and the transcript.
//! 2. The client checks the host key against its pins ([`known_hosts`])
//!    before anything else is sent.
//! 3. The normal transport handshake (§2) under S, from the same address.
//! 4. Inside the encrypted stream, the login ([`auth`]), bound to the
//!    pre-handshake; the server checks it against Argon2id hashes
//!    ([`users`]) under per-user and per-address limits ([`ratelimit`]).

use std::net::SocketAddr;
use std::time::Duration;

pub mod auth;
pub mod client;
pub mod cookie;
pub mod crypto;
pub mod hostkey;
pub mod known_hosts;
pub mod ratelimit;
pub mod server;
pub mod users;
pub mod wire;

/// Why a challenge-response login failed on the client.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// A socket operation failed.
    #[error("UDP socket error: {0}")]
    Io(#[from] std::io::Error),
    /// No genuine ACCEPT within the timeout.
    #[error("{}", no_answer(addr, after, *forged))]
    NoAnswer {
        /// The daemon's address.
        addr: SocketAddr,
        /// How long we tried.
        after: Duration,
        /// ACCEPTs that failed key confirmation meanwhile.
        forged: u64,
    },
    /// The transport handshake under S failed.
    #[error("{addr}: the key exchange succeeded but no session came up: {source}")]
    Session {
        /// The daemon's address.
        addr: SocketAddr,
        /// The transport's reason.
        source: crate::transport::SessionError,
    },
    /// The server's host key is not the pinned one, or not trusted.
    #[error("{0}")]
    HostKey(String),
    /// Wrong user name or password.
    #[error("login refused: wrong user name or password")]
    Refused,
    /// Too many failures for this user or address.
    #[error("login refused: too many failed logins for this user or from this address; try again in {0} s")]
    RateLimited(u32),
    /// The login exchange broke off.
    #[error("login exchange failed: {0}")]
    Exchange(String),
}

fn no_answer(addr: &SocketAddr, after: &Duration, forged: u64) -> String {
    if forged > 0 {
        format!(
            "{addr}: no genuine answer within {after:?}; {forged} answer(s) failed the server's key \
             confirmation: someone may be intercepting this connection (man in the middle). \
             Nothing was sent."
        )
    } else {
        format!(
            "{addr}: no answer from a vfer login daemon within {after:?} (is `vfer-recv --listen \
             --users` running there, and is UDP to that port open? A key-file daemon needs \
             --key-file and no user name)"
        )
    }
}
