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

/// Context on an error that ended a session after this many entries had
/// arrived: the run exits [`PARTIAL`] (some failed, the others arrived).
#[derive(Debug)]
pub struct SomeArrived(pub u64);

impl std::fmt::Display for SomeArrived {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = if self.0 == 1 { "y" } else { "ies" };
        write!(f, "stopped after {} entr{s} arrived", self.0)
    }
}

/// A usage error for `anyhow` chains.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

/// The exit code for a run that ended in an error (README's table): 2
/// for usage and local configuration mistakes, 17 for refused logins, 99
/// for timeouts, 111 for everything else that stopped the copy (network,
/// ssh, the remote side, a fatal transfer error). 1 is never an error's
/// code: it means some files failed while the session went on.
pub fn code_for(e: &anyhow::Error) -> i32 {
    if e.downcast_ref::<SomeArrived>().is_some() {
        let inner = code_for_cause(e);
        return if inner == TEMPORARY { PARTIAL } else { inner };
    }
    code_for_cause(e)
}

fn code_for_cause(e: &anyhow::Error) -> i32 {
    use crate::bootstrap::keyfile::KeyFileError;
    use crate::bootstrap::BootstrapError;
    use crate::transfer::TransferError;
    use crate::transport::{CloseReason, SessionError};
    for cause in e.chain() {
        if cause.is::<UsageError>()
            || cause.is::<super::target::OperandError>()
            || cause.is::<KeyFileError>()
        {
            return USAGE;
        }
        if let Some(e) = cause.downcast_ref::<crate::bootstrap::login::LoginError>() {
            return login_code(e);
        }
        match cause.downcast_ref::<BootstrapError>() {
            Some(BootstrapError::Usage(_)) => return USAGE,
            Some(BootstrapError::Unreachable { source, .. }) => {
                return session_code(source);
            }
            Some(_) => return TEMPORARY,
            None => {}
        }
        if let Some(e) = cause.downcast_ref::<SessionError>() {
            return session_code(e);
        }
        match cause.downcast_ref::<CloseReason>() {
            Some(CloseReason::IdleTimeout(_) | CloseReason::HandshakeTimeout(_)) => return TIMEOUT,
            Some(_) => return TEMPORARY,
            None => {}
        }
        if let Some(TransferError::Usage(_)) = cause.downcast_ref::<TransferError>() {
            return USAGE;
        }
    }
    TEMPORARY
}

fn session_code(e: &crate::transport::SessionError) -> i32 {
    use crate::transport::{CloseReason, SessionError};
    match e {
        SessionError::Closed(CloseReason::IdleTimeout(_) | CloseReason::HandshakeTimeout(_))
        | SessionError::AcceptTimeout(_) => TIMEOUT,
        _ => TEMPORARY,
    }
}

/// Exit code for a login error (README: 17 authentication, 99 timeout).
pub fn login_code(e: &crate::bootstrap::login::LoginError) -> i32 {
    use crate::bootstrap::login::LoginError;
    match e {
        LoginError::NoAnswer { forged: 0, .. } => TIMEOUT,
        LoginError::Io(_) | LoginError::Session { .. } | LoginError::Exchange(_) => TEMPORARY,
        _ => AUTH,
    }
}

/// An error and its causes on one line (see [`crate::tunnel::ending::describe`]).
pub use crate::tunnel::ending::describe;
