//! transport (work in progress).

/// Deterministic simulated network in virtual time, for transport tests.
pub mod sim;
