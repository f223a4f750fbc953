//! The 33-byte VSL packet header: `u64 msgnr | mac[16] | magic | u8 type | u32 datalen`,
//! the same layout for every suite; the magic (`"VSL1"`, `"VSL2"`) names the suite.

use super::suite::Suite;

/// Length of the tag carried in every packet: the truncated HMAC-SHA256
/// (VSL1) or the AES-GCM tag (VSL2).
pub const MAC_LEN: usize = 16;
/// Protocol magic of the seed's suite (VSL1), also used by the handshake
/// and the bootstrap messages.
pub const MAGIC: [u8; 4] = *b"VSL1";
/// Protocol magic of the AES-256-GCM suite.
pub const MAGIC_GCM: [u8; 4] = *b"VSL2";
/// Bytes before the payload.
pub const HEADER_LEN: usize = 8 + MAC_LEN + 4 + 1 + 4;
/// Largest payload: a VSL packet must fit one IPv6 UDP datagram (65,527 bytes of payload).
pub const MAX_DATALEN: usize = 65_527 - HEADER_LEN;

/// A parsed, not yet authenticated, VSL header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Packet number: unique per direction, also the CTR nonce.
    pub msgnr: u64,
    /// The tag as received (truncated HMAC or GCM tag).
    pub mac: [u8; MAC_LEN],
    /// The suite its magic names.
    pub suite: Suite,
    /// Packet type (what the payload is); authenticated, not encrypted.
    pub ptype: u8,
    /// Payload length; must equal the datagram length minus the header.
    pub datalen: u32,
}

impl Header {
    /// Parses a datagram's header, checking that the magic is a known
    /// suite's and that the datagram is exactly `HEADER_LEN + datalen`
    /// bytes long. Returns `None` otherwise.
    pub fn parse(datagram: &[u8]) -> Option<Header> {
        if datagram.len() < HEADER_LEN || datagram.len() - HEADER_LEN > MAX_DATALEN {
            return None;
        }
        let suite = Suite::from_magic(&datagram[24..28])?;
        let msgnr = u64::from_be_bytes(datagram[0..8].try_into().ok()?);
        let mac: [u8; MAC_LEN] = datagram[8..24].try_into().ok()?;
        let ptype = datagram[28];
        let datalen = u32::from_be_bytes(datagram[29..33].try_into().ok()?);
        if datalen as usize != datagram.len() - HEADER_LEN {
            return None;
        }
        Some(Header {
            msgnr,
            mac,
            suite,
            ptype,
            datalen,
        })
    }

    /// Writes the header into the first `HEADER_LEN` bytes of `out`.
    ///
    /// # Panics
    /// If `out` is shorter than `HEADER_LEN` (a caller bug, never input).
    pub fn write(&self, out: &mut [u8]) {
        out[0..8].copy_from_slice(&self.msgnr.to_be_bytes());
        out[8..24].copy_from_slice(&self.mac);
        out[24..28].copy_from_slice(&self.suite.magic());
        out[28] = self.ptype;
        out[29..33].copy_from_slice(&self.datalen.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let h = Header {
            msgnr: 0x0102030405060708,
            mac: [0xaa; MAC_LEN],
            suite: Suite::Vsl1,
            ptype: 7,
            datalen: 3,
        };
        let mut buf = [0u8; HEADER_LEN + 3];
        h.write(&mut buf);
        assert_eq!(&buf[24..28], b"VSL1");
        assert_eq!(Header::parse(&buf), Some(h));
        let g = Header {
            suite: Suite::Aes256Gcm,
            ..h
        };
        g.write(&mut buf);
        assert_eq!(&buf[24..28], b"VSL2");
        assert_eq!(Header::parse(&buf), Some(g));
    }

    #[test]
    fn rejects_length_mismatch_and_bad_magic() {
        let h = Header {
            msgnr: 1,
            mac: [0; MAC_LEN],
            suite: Suite::Vsl1,
            ptype: 0,
            datalen: 2,
        };
        let mut buf = [0u8; HEADER_LEN + 2];
        h.write(&mut buf);
        assert!(Header::parse(&buf[..HEADER_LEN + 1]).is_none());
        let mut longer = buf.to_vec();
        longer.push(0);
        assert!(Header::parse(&longer).is_none());
        buf[24] = b'X';
        assert!(Header::parse(&buf).is_none());
        assert!(Header::parse(&[]).is_none());
    }

    proptest::proptest! {
        /// Any bytes: no panic, and a header is returned exactly when the
        /// magic is right and `datalen` matches the length.
        #[test]
        fn parse_accepts_exactly_well_formed(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let well_formed = bytes.len() >= HEADER_LEN
                && (bytes[24..28] == MAGIC || bytes[24..28] == MAGIC_GCM)
                && u32::from_be_bytes([bytes[29], bytes[30], bytes[31], bytes[32]]) as usize
                    == bytes.len() - HEADER_LEN;
            proptest::prop_assert_eq!(Header::parse(&bytes).is_some(), well_formed);
        }

        /// write then parse gives back the same header.
        #[test]
        fn write_parse_round_trip(msgnr: u64, mac: [u8; MAC_LEN], gcm: bool, ptype: u8, datalen in 0u32..300) {
            let suite = if gcm { Suite::Aes256Gcm } else { Suite::Vsl1 };
            let h = Header { msgnr, mac, suite, ptype, datalen };
            let mut buf = vec![0u8; HEADER_LEN + datalen as usize];
            h.write(&mut buf);
            proptest::prop_assert_eq!(Header::parse(&buf), Some(h));
        }
    }
}
