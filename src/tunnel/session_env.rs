//! The session facts a program joined to a session is given in its
//! environment (`--exec`, program daemons, `--ucspi`; PROTOCOL §8).

use std::net::SocketAddr;

use crate::vsl::Suite;

/// `VSL_KEX`: the key exchange of the handshake (§2, forward secrecy).
pub const VSL_KEX: &str = "X25519";

/// The session facts given to a program, s6-tlsd style (nothing secret):
/// `VSL_PROTOCOL` (the packet format of the negotiated suite, `VSL1` or
/// `VSL2`), `VSL_CIPHER` (its exact construction, e.g. `AES-256-GCM` or
/// `AES-256-CTR+HMAC-SHA256-128`), `VSL_KEX`, `VFER_PEER` (`ip:port` of the
/// other end's UDP socket, IPv4-mapped addresses shown as IPv4), and the
/// same protocol and cipher under s6-tlsd's names `SSL_PROTOCOL` and
/// `SSL_CIPHER`, so that programs written for s6-tlsd find them. `suite` is
/// the session's (`Stats::suite`); `None` only before a handshake.
pub fn session_env(peer: SocketAddr, suite: Option<Suite>) -> [(&'static str, String); 6] {
    let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
    let protocol = suite.map_or("", Suite::protocol_name).to_string();
    let cipher = suite.map_or("", Suite::cipher_name).to_string();
    [
        ("VSL_PROTOCOL", protocol.clone()),
        ("VSL_CIPHER", cipher.clone()),
        ("VSL_KEX", VSL_KEX.to_string()),
        ("VFER_PEER", peer.to_string()),
        ("SSL_PROTOCOL", protocol),
        ("SSL_CIPHER", cipher),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_shows_mapped_peers_as_ipv4() {
        let env = session_env("[::ffff:10.1.2.3]:4000".parse().unwrap(), Some(Suite::Vsl1));
        assert_eq!(env[3], ("VFER_PEER", "10.1.2.3:4000".to_string()));
        assert_eq!(env[0].1, "VSL1");
        assert_eq!(env[1].1, "AES-256-CTR+HMAC-SHA256-128");
        assert_eq!(env[4], ("SSL_PROTOCOL", "VSL1".to_string()));
        assert_eq!(env[5], ("SSL_CIPHER", env[1].1.clone()));
        let env = session_env("10.1.2.3:4000".parse().unwrap(), Some(Suite::Aes256Gcm));
        assert_eq!(env[0].1, "VSL2");
        assert_eq!(env[1].1, "AES-256-GCM");
    }
}
