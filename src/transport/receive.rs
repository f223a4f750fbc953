//! Incoming datagrams: authenticate, then act on the frames.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::cc::AckEvent;
use super::closing::CloseReason;
use super::config::MAX_ACK_DELAY;
use super::connection::{Connection, Event, State};
use super::frame::{Frame, Frames};
use super::handshake::{self, TYPE_DATA, TYPE_REQUEST, TYPE_RESPONSE};
use crate::vsl::{self, Header, OpenError, Role};

/// How many received-packet ranges we remember for ACK frames.
const MAX_ACK_RANGES_KEPT: usize = 64;

impl Connection {
    /// Processes one datagram that arrived at `now` (decrypted in place).
    /// Anything that is not an authentic packet of this connection is
    /// dropped and counted; nothing a forger sends can close or stall it.
    pub fn handle_datagram(&mut self, now: Instant, datagram: &mut [u8]) {
        self.path.from = None;
        self.handle(now, datagram);
    }

    fn handle(&mut self, now: Instant, datagram: &mut [u8]) {
        if matches!(self.state, State::Closed) {
            return;
        }
        let Some(header) = Header::parse(datagram) else {
            self.stats.dropped_malformed += 1;
            return;
        };
        match header.ptype {
            TYPE_DATA => self.handle_data(now, datagram),
            TYPE_RESPONSE if self.auth.role == Role::Client => self.handle_response(now, datagram),
            TYPE_REQUEST if self.auth.role == Role::Server => self.handle_request_again(datagram),
            super::busy::TYPE_BUSY if self.auth.role == Role::Client => {
                self.handle_busy(now, datagram)
            }
            _ => self.stats.dropped_malformed += 1,
        }
    }

    /// [`handle_datagram`](Self::handle_datagram) for a datagram that came
    /// from `from`. An authentic packet newer than any before from an
    /// address other than [`remote`](Self::remote) (the peer's NAT
    /// rebound, or it moved) starts validating that address; the
    /// connection follows once the peer answers there (PROTOCOL §3.9).
    pub fn handle_datagram_from(&mut self, now: Instant, from: SocketAddr, datagram: &mut [u8]) {
        let newest = self.ack.largest;
        let received = self.stats.packets_received;
        let len = datagram.len();
        self.path.from = Some(from);
        self.handle(now, datagram);
        self.path.from = None;
        if self.stats.packets_received != received && self.path.current != Some(from) {
            self.on_authentic_from(now, from, len, self.ack.largest != newest);
        }
    }

    fn count_open_error(&mut self, e: OpenError) {
        match e {
            OpenError::Malformed => self.stats.dropped_malformed += 1,
            OpenError::Replayed => self.stats.dropped_replay += 1,
            OpenError::BadMac => self.stats.dropped_auth += 1,
        }
    }

    /// A BUSY for our REQUEST: wait as `busy::backoff` says, then send the
    /// REQUEST again (moved on, `busy::advance`).
    fn handle_busy(&mut self, now: Instant, datagram: &mut [u8]) {
        let (params, offer) = (self.our_params(), self.our_offer());
        let started = self.started;
        let State::ClientHandshake {
            request,
            next_send,
            interval,
            rnd,
            busy_count,
            first_timestamp,
            ..
        } = &mut self.state
        else {
            self.stats.dropped_malformed += 1;
            return;
        };
        let hint = match super::busy::decode_busy(&self.auth.secret, &rnd.nonce, datagram) {
            Ok(h) => h,
            Err(_) => {
                self.stats.dropped_auth += 1;
                return;
            }
        };
        *busy_count += 1;
        let wait = super::busy::backoff(hint, *busy_count, &rnd.nonce);
        super::busy::advance(rnd, first_timestamp, now.saturating_duration_since(started));
        *request = handshake::encode_request(&self.auth.secret, rnd, &params, &offer);
        *next_send = now + wait;
        *interval = Duration::from_millis(500);
        tracing::debug!(
            "the server is busy ({} so far): retrying in {wait:?}",
            *busy_count
        );
    }

    fn handle_response(&mut self, now: Instant, datagram: &mut [u8]) {
        let State::ClientHandshake {
            rnd,
            first_sent,
            retransmitted,
            ..
        } = &self.state
        else {
            // A duplicate RESPONSE after we are connected: harmless.
            self.stats.dropped_replay += 1;
            return;
        };
        let offer = self.our_offer();
        let resp = match handshake::decode_response(&self.auth.secret, &rnd.nonce, &offer, datagram)
        {
            Ok(r) => r,
            Err(e @ handshake::HandshakeError::NotOffered) => {
                // Authenticated by the secret, yet not a suite we offered.
                self.finish_close(CloseReason::Handshake(e));
                return;
            }
            Err(_) => {
                self.stats.dropped_auth += 1;
                return;
            }
        };
        tracing::info!("VSL suite {} chosen by the server", resp.suite);
        let keys = match handshake::session_keys(
            &self.auth.secret,
            &rnd.nonce,
            &resp.nonce,
            &rnd.dh_secret,
            &resp.public,
            &offer,
            resp.suite,
        ) {
            Ok(k) => k,
            Err(e) => {
                // Authenticated by the secret yet a low-order share: the
                // peer is broken or the secret leaked. Give up.
                self.finish_close(CloseReason::Handshake(e));
                return;
            }
        };
        if let (Some(t), false) = (*first_sent, *retransmitted) {
            self.recovery
                .rtt
                .update(now.saturating_duration_since(t), Duration::ZERO);
        }
        self.vsl = Some(vsl::Session::new(&keys, Role::Client, 0));
        self.apply_peer_params(resp.params);
        self.state = State::Established;
        self.auth.confirmed = true;
        self.last_recv = now;
        // Our first packet under the session keys confirms the handshake.
        self.owed.ping = true;
        self.events.push_back(Event::Connected);
    }

    fn handle_request_again(&mut self, datagram: &mut [u8]) {
        let Some(hs) = &mut self.auth.server else {
            self.stats.dropped_malformed += 1;
            return;
        };
        match handshake::decode_request(&self.auth.secret, datagram) {
            Ok(req) if req.nonce == hs.client_nonce && !self.auth.confirmed => {
                // Our RESPONSE was lost: send it again.
                hs.response_pending = true;
            }
            Ok(_) => self.stats.dropped_replay += 1,
            Err(_) => self.stats.dropped_auth += 1,
        }
    }

    fn handle_data(&mut self, now: Instant, datagram: &mut [u8]) {
        let Some(session) = self.vsl.as_mut() else {
            self.stats.dropped_malformed += 1;
            return;
        };
        let len = datagram.len();
        let opened = match session.opener.open(datagram) {
            Ok(o) => o,
            Err(e) => {
                self.count_open_error(e);
                return;
            }
        };
        let pn = opened.msgnr;
        self.stats.packets_received += 1;
        self.arrivals.on_packet(now, pn, len);
        self.stats.bytes_received += len as u64;
        self.last_recv = now;
        if !self.auth.confirmed {
            self.auth.confirmed = true;
            if let Some(hs) = &mut self.auth.server {
                hs.response_pending = false;
                if let Some(t) = hs.sent_at {
                    self.recovery
                        .rtt
                        .update(now.saturating_duration_since(t), Duration::ZERO);
                }
            }
            self.events.push_back(Event::Connected);
        }
        let mut eliciting = false;
        let mut error = false;
        // Frames borrow the datagram; copy the payload range out of `opened`.
        let payload: &[u8] = opened.payload;
        for frame in Frames::new(payload) {
            let frame = match frame {
                Ok(f) => f,
                Err(_) => {
                    error = true;
                    break;
                }
            };
            eliciting |= frame.is_ack_eliciting();
            match frame {
                Frame::Padding | Frame::Ping => {}
                Frame::Ack(ack) => {
                    let next = session_next_pn(&self.vsl);
                    if ack.largest >= next {
                        let why = format!(
                            "peer acknowledged packet {}, never sent: our next packet number is {next}",
                            ack.largest
                        );
                        self.violation(now, why);
                        return;
                    }
                    let delay = Duration::from_micros(ack.delay_us.min(1_000_000));
                    self.on_ack_frame(now, ack.largest, delay, ack.ranges());
                }
                Frame::MaxData(max) => {
                    self.send.raise_limit(max);
                }
                Frame::PathChallenge(data) => self.path.respond = Some(data),
                Frame::PathResponse(data) => self.on_path_response(now, data),
                Frame::Stream { offset, data, fin } => {
                    if let Err(e) = self.recv.insert(offset, data, fin) {
                        // Past the window or the end of the stream, or too
                        // fragmented: end the connection (PROTOCOL §3.3).
                        self.violation(now, e.to_string());
                        return;
                    }
                }
                Frame::Close { code, reason } => {
                    let reason = String::from_utf8_lossy(reason).into_owned();
                    let peer = CloseReason::Peer { code, reason };
                    self.closing.set_reason(peer.clone());
                    self.finish_close(peer);
                    return;
                }
            }
        }
        if error {
            self.stats.protocol_errors += 1;
        }
        if let State::Closing { resend, .. } = &mut self.state {
            // The peer has not seen our CLOSE yet: send it again.
            *resend = true;
        }
        self.on_packet_received(now, pn, eliciting);
    }

    fn on_packet_received(&mut self, now: Instant, pn: u64, eliciting: bool) {
        let a = &mut self.ack;
        let in_order = a.largest.is_none_or(|l| pn == l + 1);
        a.received.insert(pn..pn + 1);
        a.received.truncate_low(MAX_ACK_RANGES_KEPT);
        if a.largest.is_none_or(|l| pn > l) {
            a.largest = Some(pn);
            a.largest_time = Some(now);
        }
        if !eliciting {
            return;
        }
        a.eliciting_since_ack += 1;
        if !in_order || a.eliciting_since_ack >= self.config.ack_every {
            a.immediate = true;
        } else if a.deadline.is_none() {
            a.deadline = Some(now + MAX_ACK_DELAY);
        }
    }

    fn on_ack_frame(
        &mut self,
        now: Instant,
        largest: u64,
        delay: Duration,
        ranges: impl Iterator<Item = std::ops::Range<u64>>,
    ) {
        let mut out = std::mem::take(&mut self.outcome);
        self.recovery.on_ack(now, largest, delay, ranges, &mut out);
        for p in &out.acked {
            if p.mtu_probe && self.mtu.on_acked(p.pn) {
                self.cc.set_mtu(u64::from(self.mtu.current()));
            }
            if let Some(r) = &p.stream {
                self.send.on_acked(r.clone(), p.fin);
            } else if p.fin {
                self.send.on_acked(0..0, true);
            }
        }
        if out.acked_bytes > 0 {
            let ev = AckEvent {
                now,
                acked_bytes: out.acked_bytes,
                bytes_in_flight: self.recovery.bytes_in_flight(),
                delivered: self.recovery.delivered(),
                rate: out.rate,
                rtt: &self.recovery.rtt,
                rtt_updated: out.rtt_updated,
            };
            self.cc.on_ack(&ev);
        }
        self.on_lost_packets(now, &out);
        self.outcome = out;
    }
}

/// The packet number our next packet will carry: an ACK at or above it
/// acknowledges a packet we never sent.
fn session_next_pn(vsl: &Option<vsl::Session>) -> u64 {
    vsl.as_ref().map_or(0, |v| v.sealer.next_msgnr())
}
