//! Who a connection is in the handshake, the secret that authenticates it,
//! and how far the peer has proven it holds the session keys (PROTOCOL §2).

use std::time::Instant;

use zeroize::Zeroizing;

use crate::vsl::{Role, KEY_LEN};

/// The handshake's lasting state.
pub(super) struct Auth {
    /// Client (sent REQUEST) or server (answered it).
    pub(super) role: Role,
    /// The shared secret that authenticates REQUEST, RESPONSE and BUSY.
    pub(super) secret: Zeroizing<[u8; KEY_LEN]>,
    /// Server only: our RESPONSE, resent until the client is heard.
    pub(super) server: Option<ServerHandshake>,
    /// A packet under the session keys has arrived from the peer (the
    /// server's sign that the client holds the secret and got RESPONSE).
    pub(super) confirmed: bool,
}

impl Auth {
    /// Before any handshake message.
    pub(super) fn new(role: Role, secret: &[u8; KEY_LEN]) -> Auth {
        Auth {
            role,
            secret: Zeroizing::new(*secret),
            server: None,
            confirmed: false,
        }
    }
}

/// Server-side handshake memory: resend RESPONSE until the client is heard
/// under the session keys.
pub(super) struct ServerHandshake {
    pub(super) client_nonce: [u8; 32],
    pub(super) response: Vec<u8>,
    pub(super) response_pending: bool,
    pub(super) sent_at: Option<Instant>,
}
