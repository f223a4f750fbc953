//! VFER: a congestion-controlled, reliable transport on UDP.
//!
//! The protocol core is sans-IO ([`Connection`]): datagrams and timer
//! expiries go in, datagrams and deadlines come out, so whole transfers can
//! be tested through a simulated lossy network in virtual time. The socket
//! driver around it is thin. Wire format: docs/PROTOCOL.md §2-3.

pub mod arrival;
mod auth;
pub(crate) mod busy;
pub(crate) mod cc;
mod closing;
mod config;
mod connection;
mod driver;
pub(crate) mod frame;
pub(crate) mod handshake;
mod limits;
pub(crate) mod mtu;
mod open;
mod owed;
pub(crate) mod pacer;
mod path;
pub(crate) mod pathcache;
pub(crate) mod ranges;
mod receive;
pub(crate) mod recovery;
pub(crate) mod rtt;
mod scratch;
/// Deterministic simulated network in virtual time, for transport tests.
pub mod sim;
pub mod socket;
pub(crate) mod stream;
mod transmit;

pub use closing::{CloseReason, CLOSE_VIOLATION};
pub use config::{Config, Stats, MAX_ACK_DELAY};
pub use connection::{Connection, Event};
pub use driver::{Demuxed, OnAddress, Session, SessionError, VferStream};
pub use handshake::{
    encode_request, HandshakeError, HandshakeRandom, Offer, Tai64n, TransportParams, TYPE_REQUEST,
};
pub use limits::LimitedTimes;
pub use pathcache::PathHint;
#[cfg(test)]
mod path_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod violation_tests;
