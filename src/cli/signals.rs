//! Stop signals during a transfer or a program session: stop cleanly, keep
//! `.vfer-part` files for resume, tell the peer, exit non-zero. The
//! handling lives in [`crate::tunnel::signals`] (every terminating signal,
//! latched).

pub use crate::tunnel::signals::{install, next_stop, stop_requested, STOP_SIGNALS};
