//! Outgoing packets: what goes into the next datagram, and when.

use std::time::Instant;

use super::closing::CloseReason;
use super::connection::{Connection, State};
use super::frame::{varint_len, Writer};
use super::handshake::TYPE_DATA;
use super::limits::Limit;
use super::recovery::Carried;
use crate::vsl::{SealError, HEADER_LEN};

impl Connection {
    /// Writes the next datagram to send into `buf` and returns its length,
    /// or `None` when nothing may be sent now (see `poll_timeout`).
    /// `buf` should hold at least `max_udp_payload` bytes.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        match &mut self.state {
            State::Closed => return None,
            State::ClientHandshake {
                request,
                next_send,
                interval,
                first_sent,
                retransmitted,
                ..
            } => {
                if now < *next_send || buf.len() < request.len() {
                    return None;
                }
                if first_sent.is_some() {
                    *retransmitted = true;
                } else {
                    *first_sent = Some(now);
                }
                *next_send = now + *interval;
                *interval = (*interval * 2).min(std::time::Duration::from_secs(4));
                let n = request.len();
                buf[..n].copy_from_slice(request);
                self.stats.packets_sent += 1;
                self.stats.bytes_sent += n as u64;
                return Some(n);
            }
            State::Closing { resend, .. } => {
                if !*resend {
                    return None;
                }
                *resend = false;
                return self.build_close(buf);
            }
            State::Established => {}
        }
        if let Some(hs) = &mut self.auth.server {
            if hs.response_pending && buf.len() >= hs.response.len() {
                hs.response_pending = false;
                hs.sent_at.get_or_insert(now);
                let n = hs.response.len();
                buf[..n].copy_from_slice(&hs.response);
                self.stats.packets_sent += 1;
                self.stats.bytes_sent += n as u64;
                return Some(n);
            }
        }
        if self.path.respond.is_some() {
            if let Some(n) = self.build_path_response(buf) {
                return Some(n);
            }
        }
        self.build_packet(now, buf)
    }

    fn ack_due(&self, now: Instant) -> bool {
        self.ack.immediate || self.ack.deadline.is_some_and(|t| now >= t)
    }

    fn build_close(&mut self, buf: &mut [u8]) -> Option<usize> {
        let size = (self.mtu.current() as usize).min(buf.len());
        let (code, reason) = self.closing.frame()?;
        let mut w = Writer::new(&mut buf[HEADER_LEN..size]);
        // Acknowledge everything first, so the peer learns its last data
        // (and FIN) arrived even if this is the last packet we send.
        if !self.ack.received.is_empty() {
            w.ack(self.ack.received.iter_rev(), 0);
        }
        w.close(code, reason);
        let len = HEADER_LEN + w.pos;
        self.seal(buf, len).map(|_| len)
    }

    pub(super) fn seal(&mut self, buf: &mut [u8], len: usize) -> Option<u64> {
        let session = self.vsl.as_mut()?;
        match session.sealer.seal_in_place(TYPE_DATA, &mut buf[..len]) {
            Ok(pn) => {
                self.stats.packets_sent += 1;
                self.stats.bytes_sent += len as u64;
                Some(pn)
            }
            Err(SealError::MsgnrExhausted) => {
                self.finish_close(CloseReason::Exhausted);
                None
            }
            Err(_) => None,
        }
    }

    fn build_packet(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        let ack_due = self.ack_due(now) && !self.ack.received.is_empty();
        let probe = self.owed.probing();
        let mtu_probe = self
            .mtu
            .probe_size(now)
            .filter(|&s| {
                (s as usize) <= buf.len()
                    && self.recovery.bytes_in_flight() + u64::from(s) <= self.cc.window()
            })
            .filter(|_| self.auth.confirmed && self.recovery.rtt.has_sample())
            // A probe is paced like data and goes before it: at a very low
            // rate (`-l 20K`) a 64 KiB probe would hold the data back for
            // many seconds. Probe only sizes worth at most 100 ms of sending.
            .filter(|&s| u64::from(s) <= self.pacing_rate() / 10);
        let data_pending = self.send.has_pending();
        let ping = self.owed.ping || probe;
        let eliciting_wanted = data_pending || self.owed.max_data || ping || mtu_probe.is_some();
        if !data_pending {
            let why = if self.send.has_unsent() {
                Limit::Flow
            } else if self.send.space() == 0 && !self.send.is_finished() {
                Limit::SendBuffer
            } else {
                Limit::App
            };
            self.limits.set(now, why);
        }
        if !ack_due && !eliciting_wanted {
            if !data_pending {
                self.recovery.set_app_limited();
            }
            return None;
        }
        let mtu = (self.mtu.current() as usize).min(buf.len());
        // Congestion window and pacing apply to ack-eliciting packets
        // except probes (which must go out to recover from a timeout).
        let mut may_elicit = eliciting_wanted;
        if eliciting_wanted && !probe {
            let in_flight = self.recovery.bytes_in_flight();
            if in_flight + mtu as u64 > self.cc.window() {
                may_elicit = false;
                if data_pending {
                    self.limits.set(now, Limit::Cwnd);
                }
            } else {
                let rate = self.pacing_rate();
                match self.pacer.delay(now, mtu as u64, rate, mtu as u64) {
                    None => self.pacing_wait = None,
                    Some(t) => {
                        self.pacing_wait = Some(t);
                        may_elicit = false;
                        if data_pending {
                            self.limits.set(now, Limit::Pacing);
                        }
                    }
                }
            }
        }
        if !may_elicit && !ack_due {
            return None;
        }
        if let (true, Some(size)) = (may_elicit, mtu_probe) {
            return self.build_mtu_probe(now, buf, size as usize);
        }

        let mut w = Writer::new(&mut buf[HEADER_LEN..mtu]);
        if ack_due {
            let delay = self
                .ack
                .largest_time
                .map_or(0, |t| now.saturating_duration_since(t).as_micros() as u64);
            if w.ack(self.ack.received.iter_rev(), delay) {
                self.ack.immediate = false;
                self.ack.deadline = None;
                self.ack.eliciting_since_ack = 0;
            }
        }
        let mut carried = Carried::default();
        let mut eliciting = false;
        if may_elicit {
            if self.owed.max_data {
                let m = self.recv.max_data();
                if w.max_data(m) {
                    self.recv.set_advertised(m);
                    self.owed.max_data = false;
                    carried.max_data = true;
                    eliciting = true;
                }
            }
            // Exactly the room after the STREAM header, so that a full
            // packet is exactly `mtu` bytes: a GSO batch ends at the first
            // shorter datagram, and a header estimate 9 bytes too long made
            // every batch two datagrams.
            let rem = w.remaining();
            let header = 1 + varint_len(self.send.max_offset()) + varint_len(rem as u64);
            let room = rem.saturating_sub(header);
            if room > 0 || self.send.is_finished() {
                if let Some(c) = self.send.next_chunk(room) {
                    if let Some(dst) = w.stream(c.offset, c.len, c.fin) {
                        self.send.read(c.offset, dst);
                        carried.stream = Some(c.offset..c.offset + c.len as u64);
                        self.limits.set(now, Limit::Sending);
                        carried.fin = c.fin;
                        eliciting = true;
                        if c.retransmit {
                            self.stats.stream_bytes_retransmitted += c.len as u64;
                        }
                    }
                }
            }
            if !eliciting && ping && w.ping() {
                eliciting = true;
            }
            if eliciting {
                self.owed.on_eliciting_sent();
            }
        }
        let len = HEADER_LEN + w.pos;
        if len == HEADER_LEN {
            return None;
        }
        let pn = self.seal(buf, len)?;
        if eliciting {
            self.last_eliciting_sent = now;
            self.pacer.on_sent(len as u64);
            self.cc
                .on_sent(now, len as u64, self.recovery.bytes_in_flight());
            self.recovery.on_sent(now, pn, len as u32, carried);
        }
        Some(len)
    }

    fn build_mtu_probe(&mut self, now: Instant, buf: &mut [u8], size: usize) -> Option<usize> {
        let mut w = Writer::new(&mut buf[HEADER_LEN..size]);
        w.ping();
        w.pad_to(size - HEADER_LEN);
        let pn = self.seal(buf, size)?;
        self.mtu.on_probe_sent(pn, size as u16);
        self.last_eliciting_sent = now;
        self.pacer.on_sent(size as u64);
        let probe = Carried {
            mtu_probe: true,
            ..Carried::default()
        };
        self.recovery.on_sent(now, pn, size as u32, probe);
        Some(size)
    }
}
