//! One entry point per decoder that takes a peer's bytes, for the fuzz
//! targets in `fuzz/` (cargo-fuzz, libFuzzer) and for the stable-Rust
//! property tests in `tests/decoders_fuzz.rs` that CI runs. Each must
//! return without panicking, whatever `data` holds. Not part of the API.
//!
//! The handshake decoders authenticate first, so random bytes would stop at
//! the MAC: their entry points seal `data` under the handshake keys of a
//! fixed secret first, so the parser behind the MAC is exercised too.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use crate::transport::handshake::{decode_request, decode_response, TYPE_REQUEST, TYPE_RESPONSE};
use crate::vsl::{Sealer, SessionKeys, HEADER_LEN, MAX_DATALEN};

const SECRET: [u8; 32] = [7; 32];

/// Polls a future over an in-memory reader once: reading a byte slice
/// never waits, so it is ready (or it is a bug worth a panic).
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a decoder over a byte slice waited"),
    }
}

fn sealed(ptype: u8, payload: &[u8], c2s: bool) -> Vec<u8> {
    let keys = SessionKeys::derive(&SECRET, &[0; 32], &[0; 32], None);
    let dir = if c2s { &keys.c2s } else { &keys.s2c };
    let payload = &payload[..payload.len().min(MAX_DATALEN)];
    let mut d = vec![0u8; HEADER_LEN + payload.len()];
    d[HEADER_LEN..].copy_from_slice(payload);
    let _ = Sealer::new(dir, 1).seal_in_place(ptype, &mut d);
    d
}

/// REQUEST and RESPONSE (§2): raw bytes, and `data` sealed as a payload
/// of either type under the handshake keys.
pub fn handshake(data: &[u8]) {
    let _ = decode_request(&SECRET, &mut data.to_vec());
    let offer = crate::transport::handshake::Offer::new(crate::vsl::ALL_SUITES);
    let _ = decode_response(&SECRET, &[0; 32], &offer, &mut data.to_vec());
    for ptype in [
        TYPE_REQUEST,
        TYPE_RESPONSE,
        data.first().copied().unwrap_or(0),
    ] {
        let _ = decode_request(&SECRET, &mut sealed(ptype, data, true));
        let nonce: [u8; 32] = data
            .get(4..36)
            .and_then(|n| n.try_into().ok())
            .unwrap_or([0; 32]);
        let _ = decode_response(&SECRET, &nonce, &offer, &mut sealed(ptype, data, false));
    }
}

/// A VFER packet payload (§3.2): every frame, including ACK ranges.
pub fn transport_frames(data: &[u8]) {
    use crate::transport::frame::{Frame, Frames};
    for f in Frames::new(data) {
        match f {
            Ok(Frame::Ack(ack)) => for _ in ack.ranges() {},
            Ok(_) => {}
            Err(_) => break,
        }
    }
}

/// The transport's stream reassembly fed with STREAM frames from `data`
/// (the receive buffer's range set, bounded by §3.3's fragmentation rule).
pub fn stream_reassembly(data: &[u8]) {
    use crate::transport::frame::{Frame, Frames};
    use crate::transport::stream::RecvBuffer;
    let mut r = RecvBuffer::new(1 << 16);
    let mut out = [0u8; 4096];
    for f in Frames::new(data) {
        match f {
            Ok(Frame::Stream { offset, data, fin }) => {
                let _ = r.insert(offset, data, fin);
                let _ = r.read(&mut out);
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
}

/// Transfer messages (§6.2): `data` cut into frames by their own length
/// fields, each decoded.
pub fn transfer_messages(data: &[u8]) {
    use crate::transfer::frame::decode;
    let _ = decode(data);
    let mut rest = data;
    while rest.len() >= 4 {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let take = len.min(rest.len() - 4);
        let _ = decode(&rest[..4 + take]);
        rest = &rest[4 + take..];
    }
}

/// Login datagrams (§7.1) and the login messages on the stream (§7.7).
pub fn login(data: &[u8]) {
    use crate::bootstrap::login::auth::{read_login, read_verdict};
    use crate::bootstrap::login::wire::{Accept, Cookie, Hello};
    let _ = Hello::decode(data);
    let _ = Cookie::decode(data);
    let _ = Accept::decode(data);
    let _ = ready(read_login(&mut &data[..]));
    let _ = ready(read_verdict(&mut &data[..]));
}

/// The daemon request (§5).
pub fn daemon_request(data: &[u8]) {
    let _ = ready(crate::service::request::Request::read(&mut &data[..]));
}

/// `--pad`'s records (§8.6): a stream read to its end through them.
pub fn padded_records(data: &[u8]) {
    use tokio::io::AsyncReadExt;
    let mut r = crate::tunnel::pad::Padded::new(data);
    let mut out = Vec::new();
    let _ = ready(r.read_to_end(&mut out));
}

/// The `--exec` stream framing (§8.2).
pub fn exec_frames(data: &[u8]) {
    let mut rest = data;
    while let Ok(Some((_, used))) = crate::service::exec::frame::decode(rest) {
        if used == 0 || used > rest.len() {
            break;
        }
        rest = &rest[used..];
    }
}

/// The standing server's endpoint (§4.3, §3.9): `data` as a datagram from
/// a known client's address, from a new port of its host and from
/// another host, raw and sealed as a DATA or REQUEST packet.
pub fn endpoint(data: &[u8]) {
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::{Instant, SystemTime};

    use crate::bootstrap::admission::Load;
    use crate::bootstrap::endpoint::{DatagramEvent, Endpoint, ListenOptions, StaticKey};
    use crate::bootstrap::Secret;
    use crate::transport::handshake::TYPE_DATA;
    use crate::transport::{Config, HandshakeRandom, Offer, Tai64n, TransportParams};

    struct Idle;
    impl Load for Idle {
        fn short_of_resources(&mut self, _: Instant) -> bool {
            false
        }
    }
    let (now, wall) = (Instant::now(), SystemTime::now());
    let slots = Arc::new(tokio::sync::Semaphore::new(4));
    let opts = ListenOptions {
        max_connections: 4,
        ..ListenOptions::default()
    };
    let mut e = Endpoint::new(
        StaticKey(Secret::from_bytes(SECRET)),
        opts,
        slots,
        Box::new(Idle),
        now,
    );
    let client: SocketAddr = ([192, 0, 2, 1], 1000).into();
    let mut rnd = HandshakeRandom::from_seed(1);
    rnd.timestamp = Tai64n::from_system(wall);
    let params = TransportParams {
        max_udp_payload: 1500,
        initial_max_data: 1 << 20,
        idle_timeout_ms: 30_000,
    };
    let offer = Offer::new(Config::default().cipher.suites());
    let request = crate::transport::encode_request(&SECRET, &rnd, &params, &offer);
    let id = match e.handle(now, wall, client, &request) {
        DatagramEvent::New(id, ..) => Some(id),
        _ => None,
    };
    let moved: SocketAddr = ([192, 0, 2, 1], 2000).into();
    let other: SocketAddr = ([198, 51, 100, 1], 1000).into();
    for d in [
        data.to_vec(),
        sealed(TYPE_DATA, data, true),
        sealed(TYPE_REQUEST, data, true),
    ] {
        for from in [client, moved, other] {
            let _ = e.handle(now, wall, from, &d);
        }
    }
    if let Some(id) = id {
        e.learned(id, moved);
        let _ = e.handle(now, wall, moved, data);
        e.forget(id, now);
    }
}

/// Every decoder above on the same bytes.
pub fn all(data: &[u8]) {
    handshake(data);
    transport_frames(data);
    stream_reassembly(data);
    transfer_messages(data);
    login(data);
    daemon_request(data);
    padded_records(data);
    exec_frames(data);
    endpoint(data);
}
