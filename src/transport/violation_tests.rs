//! An authenticated peer that breaks the transport's rules (§3): the test
//! holds the client's session keys and seals whatever frames it likes, and
//! the server [`Connection`] must end the connection with CLOSE code
//! [`CLOSE_VIOLATION`](super::CLOSE_VIOLATION) rather than count the frame
//! and acknowledge it.

use std::time::Instant;

use super::frame::{Frame, Frames, Writer};
use super::handshake::{decode_response, session_keys, Offer, TYPE_DATA};
use super::*;
use crate::vsl::{self, Role, HEADER_LEN};

/// A server connection and a hand-driven client holding its session keys.
struct ForgedPeer {
    server: Connection,
    keys: vsl::Session,
    now: Instant,
}

impl ForgedPeer {
    /// Runs the handshake (REQUEST, RESPONSE) with `cfg` on both sides.
    fn new(cfg: Config) -> ForgedPeer {
        let secret = [3u8; 32];
        let now = Instant::now();
        let crnd = HandshakeRandom::from_seed(1);
        let mut c = Connection::client(cfg.clone(), &secret, crnd.clone(), now);
        let mut buf = vec![0u8; 65536];
        let n = c.poll_transmit(now, &mut buf).expect("REQUEST");
        let mut server = Connection::server(
            cfg.clone(),
            &secret,
            HandshakeRandom::from_seed(2),
            now,
            &mut buf[..n],
        )
        .expect("the server accepts the REQUEST");
        let n = server.poll_transmit(now, &mut buf).expect("RESPONSE");
        let offer = Offer::new(cfg.cipher.suites());
        let resp = decode_response(&secret, &crnd.nonce, &offer, &mut buf[..n]).unwrap();
        let keys = session_keys(
            &secret,
            &crnd.nonce,
            &resp.nonce,
            &crnd.dh_secret,
            &resp.public,
            &offer,
            resp.suite,
        )
        .unwrap();
        ForgedPeer {
            server,
            keys: vsl::Session::new(&keys, Role::Client, 0),
            now,
        }
    }

    /// Seals the frames `write` puts in a packet and hands it to the server.
    fn send(&mut self, write: impl FnOnce(&mut Writer)) {
        let mut d = vec![0u8; 1400];
        let mut w = Writer::new(&mut d[HEADER_LEN..]);
        write(&mut w);
        let len = HEADER_LEN + w.pos;
        d.truncate(len);
        self.keys.sealer.seal_in_place(TYPE_DATA, &mut d).unwrap();
        self.server.handle_datagram(self.now, &mut d);
    }

    /// Sends one STREAM frame of `len` bytes at `offset`.
    fn stream(&mut self, offset: u64, len: usize, fin: bool) {
        self.send(|w| {
            w.stream(offset, len, fin)
                .expect("room for the frame")
                .fill(7);
        });
    }

    /// Everything the server sends now; returns the CLOSE frame's code and
    /// reason if one of its packets carries one.
    fn drain(&mut self) -> Option<(u64, String)> {
        let mut buf = vec![0u8; 65536];
        let mut close = None;
        while let Some(n) = self.server.poll_transmit(self.now, &mut buf) {
            let Ok(opened) = self.keys.opener.open(&mut buf[..n]) else {
                continue;
            };
            for f in Frames::new(opened.payload).flatten() {
                if let Frame::Close { code, reason } = f {
                    close = Some((code, String::from_utf8_lossy(reason).into_owned()));
                }
            }
        }
        close
    }

    /// Asserts the server ended the connection as a violation whose reason
    /// contains `why`, and told the peer so.
    fn assert_closed_for(&mut self, why: &str) {
        let (code, reason) = self.drain().expect("the server sends CLOSE");
        assert_eq!(code, CLOSE_VIOLATION, "{reason}");
        assert!(reason.contains(why), "{reason:?} should say {why:?}");
        assert!(
            matches!(self.server.close_reason(), Some(CloseReason::Violation(r)) if r.contains(why)),
            "{:?}",
            self.server.close_reason()
        );
        assert!(self.server.stats().protocol_errors >= 1);
    }
}

fn small_window() -> Config {
    Config {
        max_udp_payload: 1452,
        recv_window: 64 * 1024,
        ..Config::default()
    }
}

/// Bytes at or past the advertised limit close the connection; the old
/// code dropped the frame, counted it and acknowledged the packet, so the
/// sender believed it delivered and the stream stalled.
#[test]
fn stream_beyond_the_window_closes_the_connection() {
    let mut p = ForgedPeer::new(small_window());
    p.stream(0, 1000, false);
    assert!(p.drain().is_none(), "data inside the window is fine");
    p.stream(64 * 1024 - 10, 20, false);
    p.assert_closed_for("flow-control");
    assert!(p.server.poll_transmit(p.now, &mut [0u8; 2048]).is_none());
}

/// The limit is what the receiver advertised, not what its buffer could
/// take: reading frees buffer space long before the next MAX_DATA.
#[test]
fn stream_beyond_the_advertised_limit_closes_even_with_buffer_room() {
    let mut p = ForgedPeer::new(small_window());
    p.stream(0, 1000, false);
    let mut out = vec![0u8; 4096];
    assert_eq!(p.server.read(&mut out), 1000);
    assert!(!p.server.window_update_due(), "less than a quarter read");
    assert!(p.drain().is_none());
    // Inside the buffer (read + 64 KiB) but past the advertised 64 KiB.
    p.stream(64 * 1024, 10, false);
    p.assert_closed_for("flow-control");
}

/// Data past the end of the stream (or a second, different end).
#[test]
fn data_beyond_the_fin_closes_the_connection() {
    let mut p = ForgedPeer::new(small_window());
    p.stream(0, 100, true);
    assert!(p.drain().is_none());
    p.stream(100, 10, false);
    p.assert_closed_for("end of the stream");
}

/// An ACK for a packet number the server never sent closes the connection;
/// the old code took it as the largest acknowledged and declared every
/// packet in flight lost (packet threshold), so a peer could force
/// retransmissions and collapse the congestion window at will.
#[test]
fn ack_of_a_packet_never_sent_closes_the_connection() {
    let mut p = ForgedPeer::new(small_window());
    p.server.write(&[1u8; 20_000]);
    let mut buf = vec![0u8; 65536];
    let mut sent = 0u64;
    while p.server.poll_transmit(p.now, &mut buf).is_some() {
        sent += 1;
    }
    assert!(sent >= 2, "the server sends data");
    // An ACK of exactly what was sent is fine.
    p.send(|w| assert!(w.ack(std::iter::once(0..sent), 0)));
    assert!(p.drain().is_none());
    assert!(!p.server.is_closed());
    let lost = p.server.stats().packets_lost;
    p.send(|w| assert!(w.ack(std::iter::once(0..sent + 10), 0)));
    p.assert_closed_for("never sent");
    assert_eq!(p.server.stats().packets_lost, lost, "nothing declared lost");
}

/// An authenticated peer sending 1-byte STREAM frames at alternating
/// offsets (a gap after each) is cut off once the receive buffer holds
/// `max_pieces` pieces, instead of growing it without bound (issue 13:
/// 65 MB for 2 M gaps).
#[test]
fn fragmenting_peer_is_closed_with_a_protocol_error() {
    let mut p = ForgedPeer::new(Config {
        max_udp_payload: 1452,
        ..Config::default()
    });
    let mut gaps = 0u64;
    for _ in 0..10_000 {
        p.send(|w| {
            while let Some(room) = w.stream(1 + 2 * gaps, 1, false) {
                room[0] = b'x';
                gaps += 1;
            }
        });
        if p.server.close_reason().is_some() {
            break;
        }
        p.drain();
    }
    assert!(gaps < 20_000, "closed only after {gaps} gaps");
    p.assert_closed_for("pieces with gaps");
}

/// A violation while we are already closing keeps our CLOSE and its reason.
#[test]
fn a_violation_while_closing_keeps_our_close() {
    let mut p = ForgedPeer::new(small_window());
    p.server.close(p.now, 0, "done");
    assert_eq!(p.drain(), Some((0, "done".to_string())));
    p.stream(64 * 1024, 10, false);
    assert_eq!(p.drain(), Some((0, "done".to_string())), "CLOSE sent again");
    assert_eq!(
        p.server.close_reason(),
        Some(&CloseReason::Local { code: 0 })
    );
}
