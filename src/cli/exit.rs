//! Exit codes of `vfer-send` and `vfer-recv` (documented in README.md).
//! The ssh-started server's own codes (0/20/21) are in `bootstrap`.

/// Everything was transferred.
pub const SUCCESS: i32 = 0;
/// Some files failed; the others were transferred.
pub const PARTIAL: i32 = 1;
/// Bad command line.
pub const USAGE: i32 = 2;
/// Authentication failed beyond the retry budget (minssl-tunnel's 17).
pub const AUTH: i32 = 17;
/// No progress within the timeout (minssl-tunnel's 99).
pub const TIMEOUT: i32 = 99;
/// A temporary system error: try again later (minssl-tunnel's 111).
pub const TEMPORARY: i32 = 111;
/// Interrupted by SIGINT/SIGTERM (128 + signal, as shells report).
pub const INTERRUPTED: i32 = 130;

/// A command-line mistake (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A usage error for `anyhow` chains.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

/// The exit code for a failed run.
pub fn code_for(e: &anyhow::Error) -> i32 {
    use crate::bootstrap::BootstrapError;
    use crate::transport::{CloseReason, SessionError};
    for cause in e.chain() {
        if cause.is::<UsageError>() || cause.is::<super::target::OperandError>() {
            return USAGE;
        }
        if let Some(e) = cause.downcast_ref::<crate::bootstrap::login::LoginError>() {
            return super::login::exit_code(e);
        }
        if let Some(BootstrapError::Usage(_)) = cause.downcast_ref::<BootstrapError>() {
            return USAGE;
        }
        if let Some(BootstrapError::RemoteTemporary { .. }) = cause.downcast_ref::<BootstrapError>()
        {
            return TEMPORARY;
        }
        match cause.downcast_ref::<SessionError>() {
            Some(SessionError::Closed(
                CloseReason::IdleTimeout(_) | CloseReason::HandshakeTimeout(_),
            ))
            | Some(SessionError::AcceptTimeout(_)) => return TIMEOUT,
            Some(SessionError::Io(_)) => return TEMPORARY,
            _ => {}
        }
        match cause.downcast_ref::<CloseReason>() {
            Some(CloseReason::IdleTimeout(_) | CloseReason::HandshakeTimeout(_)) => return TIMEOUT,
            Some(_) => return TEMPORARY,
            None => {}
        }
    }
    PARTIAL
}
