//! Negotiating `--pad` (docs/PROTOCOL.md §5, §8.6): the client asks for
//! fixed-size records with a critical option in a version 3 service
//! request; a daemon honours it, and a daemon started with `--pad` refuses
//! a client that does not ask. The records themselves are
//! [`crate::tunnel::pad`].

use super::request::{Request, RequestError};
use crate::tunnel::pad::Framing;

/// The framing of a daemon session after `req`: padded if the client asked
/// for it; a client that did not ask is refused when the daemon `requires`
/// padding (its own `--pad`).
pub fn framing(req: &Request, requires: bool) -> Result<Framing, RequestError> {
    if requires && !req.options.pad {
        return Err(RequestError::PadRequired);
    }
    Ok(Framing::from_pad(req.options.pad))
}

/// What to add to a daemon's refusal `reason` for the user: a daemon older
/// than `--pad` refuses the version 3 request as an unsupported version.
pub fn hint(pad: bool, reason: &str) -> &'static str {
    if pad && reason.contains("unsupported version") {
        " (the daemon is older than --pad: upgrade it, or run both ends without --pad)"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::request::{Service, SessionOptions};

    #[test]
    fn a_padding_daemon_refuses_plain_clients() {
        let plain = Request::new(Service::Forward, SessionOptions::default());
        let padded = Request::new(
            Service::Forward,
            SessionOptions {
                pad: true,
                ..SessionOptions::default()
            },
        );
        assert_eq!(framing(&plain, false).unwrap(), Framing::Plain);
        assert_eq!(framing(&padded, false).unwrap(), Framing::Padded);
        assert_eq!(framing(&padded, true).unwrap(), Framing::Padded);
        let e = framing(&plain, true).unwrap_err().to_string();
        assert!(e.contains("run the client with --pad"), "{e}");
    }

    #[test]
    fn an_old_daemon_gets_a_hint() {
        let why = "malformed daemon request: unsupported version";
        assert!(hint(true, why).contains("older than --pad"));
        assert_eq!(hint(false, why), "");
        assert_eq!(hint(true, "cannot connect to x"), "");
    }
}
