//! TCP (or UNIX-socket) forwarding over vfer, spiped style
//! (docs/PROTOCOL.md §8.4): one key-file session per connection, the
//! bytes unchanged both ways, half-close carried (FIN <-> STREAM_FIN).
//!
//! - [`client`]: the accepting side (`vfer-send --forward-from`).
//! - [`server`]: the daemon (`vfer-recv --listen --forward`), on the
//!   [runner](crate::service::runner).

pub mod client;
pub mod server;

use std::time::Duration;

/// How long a connection may take to wind down after a stop signal: the
/// peer's remaining data still arrives for this long.
pub const STOP_GRACE: Duration = crate::tunnel::splice::STOP_GRACE;

pub use crate::tunnel::splice::{stopped, Moved};
