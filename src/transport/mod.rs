//! VFER: a congestion-controlled, reliable transport on UDP.
//!
//! The protocol core is sans-IO ([`Connection`]): datagrams and timer
//! expiries go in, datagrams and deadlines come out, so whole transfers can
//! be tested through a simulated lossy network in virtual time. The socket
//! driver around it is thin. Wire format: docs/PROTOCOL.md §2-3.

pub mod busy;
pub mod cc;
mod config;
mod connection;
mod driver;
pub mod frame;
pub mod handshake;
mod limits;
pub mod mtu;
pub mod pacer;
pub mod pathcache;
pub mod ranges;
mod receive;
pub mod recovery;
pub mod rtt;
mod scratch;
/// Deterministic simulated network in virtual time, for transport tests.
pub mod sim;
pub mod socket;
pub mod stream;
mod transmit;

pub use config::{Config, Stats, MAX_ACK_DELAY};
pub use connection::{CloseReason, Connection, Event, CLOSE_VIOLATION};
pub use driver::{Session, SessionError, VferStream};
pub use handshake::{HandshakeError, HandshakeRandom, Tai64n, TransportParams};
pub use limits::LimitedTimes;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod violation_tests;
