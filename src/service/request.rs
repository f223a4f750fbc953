//! The service request (docs/PROTOCOL.md §5): the first message of every
//! session with a standing daemon. It names the service the client wants
//! (push or pull files, run the daemon's program, forward a TCP
//! connection), the options that travel with the session (the rate cap:
//! `vfer-recv -l 10M vfer://host/f .` slows the daemon that sends) and
//! the paths. A daemon compares the named service with the one it runs;
//! none guesses from another daemon's bytes.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::codec::{Put, Reader};
use crate::transfer::beneath::request_path;
use crate::transfer::path::RelPath;

/// Magic of the request message.
pub const MAGIC: &[u8; 4] = b"VFRQ";
/// The version this build writes when no option is critical.
pub const VERSION: u8 = 2;
/// The version this build writes when an option is critical (`--pad`):
/// the layout of version 2, and a daemon refuses a critical option (a tag
/// of [`CRITICAL`] or more) it does not know. A daemon older than it refuses the
/// whole request ("unsupported version") instead of skipping the option.
pub const VERSION_3: u8 = 3;
/// The version of earlier releases (files only, no options), still read.
pub const VERSION_1: u8 = 1;
/// Most paths in one request.
pub const MAX_PATHS: usize = 4096;
/// Longest path in a request.
pub const MAX_PATH_LEN: usize = 4096;
/// Option tag: the client's rate cap, be64 bytes per second (`-l`).
pub const OPT_RATE_CAP: u8 = 1;
/// Option tag: the client's fixed rate, be64 bytes per second (`--rate`),
/// which a daemon honours as a cap.
pub const OPT_FIXED_RATE: u8 = 2;
/// Options with this tag or above change what the stream carries: a daemon
/// must know them (version 3 only).
pub const CRITICAL: u8 = 128;
/// Option tag (critical, empty value): the program or forwarded bytes
/// travel in fixed 1,024-byte records both ways (`--pad`, §8.6).
pub const OPT_PAD: u8 = 128;

/// What a client asks a daemon for (the `service` byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// The client sends files into `paths[0]` (1).
    Push,
    /// The daemon sends `paths` (2).
    Pull,
    /// The daemon runs its program joined to the stream (3, §8.3).
    Program,
    /// The daemon connects the stream to its TCP target (4, §8.4).
    Forward,
}

/// What a daemon serves, to compare with what a client asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Push and pull under a root (`--root`).
    Files,
    /// One program per session (`--exec`).
    Program,
    /// One TCP connection per session (`--forward`).
    Forward,
}

impl Offer {
    fn does(self) -> &'static str {
        match self {
            Offer::Files => "serves files",
            Offer::Program => "runs a program (--exec)",
            Offer::Forward => "forwards TCP connections (--forward)",
        }
    }

    fn does_not(self) -> &'static str {
        match self {
            Offer::Files => "serves no files",
            Offer::Program => "runs no program",
            Offer::Forward => "forwards no TCP connections",
        }
    }
}

impl Service {
    /// The `service` byte.
    pub fn code(self) -> u8 {
        match self {
            Service::Push => 1,
            Service::Pull => 2,
            Service::Program => 3,
            Service::Forward => 4,
        }
    }

    fn from_code(c: u8) -> Option<Service> {
        Some(match c {
            1 => Service::Push,
            2 => Service::Pull,
            3 => Service::Program,
            4 => Service::Forward,
            _ => return None,
        })
    }

    /// Which kind of daemon serves this.
    pub fn offer(self) -> Offer {
        match self {
            Service::Push | Service::Pull => Offer::Files,
            Service::Program => Offer::Program,
            Service::Forward => Offer::Forward,
        }
    }

    /// How many paths the service takes.
    fn paths(self) -> std::ops::RangeInclusive<usize> {
        match self {
            Service::Push => 1..=1,
            Service::Pull => 1..=MAX_PATHS,
            Service::Program | Service::Forward => 0..=0,
        }
    }
}

/// Options negotiated with the session, in one unit (bytes per second).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionOptions {
    /// `-l/--limit`: the daemon never sends faster than this.
    pub rate_cap: Option<u64>,
    /// `--rate`: the client's fixed rate; a daemon sends at most this
    /// (it keeps probing: a client cannot switch a daemon's congestion
    /// control off).
    pub fixed_rate: Option<u64>,
    /// `--pad`: the stream after the request is in fixed-size records both
    /// ways (programs and forwarding only).
    pub pad: bool,
}

impl SessionOptions {
    /// The request version these options need: 3 when one is critical.
    pub fn version(&self) -> u8 {
        if self.pad {
            VERSION_3
        } else {
            VERSION
        }
    }

    /// The cap a daemon applies to its sending side: the lower of the
    /// client's cap and fixed rate (`None`: the client asked for none).
    pub fn send_cap(&self) -> Option<u64> {
        match (self.rate_cap, self.fixed_rate) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        for (tag, v) in [
            (OPT_RATE_CAP, self.rate_cap),
            (OPT_FIXED_RATE, self.fixed_rate),
        ] {
            if let Some(v) = v {
                out.put_u8(tag);
                out.put_u8(8);
                out.put_u64(v);
            }
        }
        if self.pad {
            out.put_u8(OPT_PAD);
            out.put_u8(0);
        }
    }

    fn decode(bytes: &[u8], version: u8) -> Result<SessionOptions, RequestError> {
        let bad = RequestError::Malformed;
        let mut o = SessionOptions::default();
        let mut r = Reader::new(bytes);
        let mut seen = [0u64; 4];
        while r.remaining() > 0 {
            let tag = r.u8().map_err(|_| bad("truncated option"))?;
            let len = r.u8().map_err(|_| bad("truncated option"))?;
            let value = r.bytes(len.into()).map_err(|_| bad("truncated option"))?;
            let (word, bit) = (usize::from(tag / 64), tag % 64);
            if seen[word] & (1 << bit) != 0 {
                return Err(bad("an option given twice"));
            }
            seen[word] |= 1 << bit;
            if tag >= CRITICAL && version < VERSION_3 {
                return Err(bad(
                    "a critical option (tag 128 or more) in a version 2 request",
                ));
            }
            let rate = || -> Result<Option<u64>, RequestError> {
                let v = Reader::new(value)
                    .u64()
                    .ok()
                    .filter(|_| value.len() == 8 && value != [0; 8])
                    .ok_or(bad("a rate option is not 8 bytes of at least 1"))?;
                Ok(Some(v))
            };
            match tag {
                OPT_RATE_CAP => o.rate_cap = rate()?,
                OPT_FIXED_RATE => o.fixed_rate = rate()?,
                OPT_PAD if value.is_empty() => o.pad = true,
                OPT_PAD => return Err(bad("the pad option has a value")),
                t if t >= CRITICAL => return Err(RequestError::UnknownCritical(t)),
                _ => {} // unknown: skipped (a later option a daemon may ignore)
            }
        }
        Ok(o)
    }
}

/// What a daemon client wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The service.
    pub service: Service,
    /// `-r`.
    pub recursive: bool,
    /// `-p`.
    pub preserve: bool,
    /// Options negotiated with the session.
    pub options: SessionOptions,
    /// Paths relative to the daemon's root (files only).
    pub paths: Vec<String>,
}

/// A request the daemon refuses.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Not a request, or a malformed one.
    #[error("malformed daemon request: {0}")]
    Malformed(&'static str),
    /// A service this daemon does not run.
    #[error("this daemon {}; it {}", .served.does(), .asked.does_not())]
    WrongService {
        /// What the daemon runs.
        served: Offer,
        /// What the client asked for.
        asked: Offer,
    },
    /// No whole request within the daemon's wait (keep-alives alone must
    /// not hold a slot).
    #[error("malformed daemon request: no daemon request within {} s", .0.as_secs())]
    NoRequest(std::time::Duration),
    /// A critical option (version 3) this daemon does not know.
    #[error(
        "unsupported option {0}: this daemon is older than the client (upgrade it, or leave the option out)"
    )]
    UnknownCritical(u8),
    /// A client without `--pad` at a daemon that pads.
    #[error("this daemon pads its traffic (--pad); run the client with --pad too")]
    PadRequired,
    /// A path that would leave the daemon's root.
    #[error("path {0:?} is outside the daemon's root (no absolute paths, no '..')")]
    Outside(String),
    /// The stream failed.
    #[error("stream error: {0}")]
    Io(#[from] std::io::Error),
}

impl Request {
    /// A request for `service` without paths or flags.
    pub fn new(service: Service, options: SessionOptions) -> Request {
        Request {
            service,
            recursive: false,
            preserve: false,
            options,
            paths: Vec::new(),
        }
    }

    /// The message: `"VFRQ" | u8 version (2, or 3 with --pad) | u8 service | u8 flags | u8 opt_len |
    /// options | u16 count | count x (u16 len | path bytes)`.
    pub fn encode(&self) -> Vec<u8> {
        let mut opts = Vec::new();
        self.options.encode(&mut opts);
        let mut b = Vec::with_capacity(64);
        b.put_bytes(MAGIC);
        b.put_u8(self.options.version());
        b.put_u8(self.service.code());
        b.put_u8(u8::from(self.recursive) | (u8::from(self.preserve) << 1));
        b.put_u8(opts.len() as u8);
        b.put_bytes(&opts);
        b.put_u16(self.paths.len().min(MAX_PATHS) as u16);
        for p in self.paths.iter().take(MAX_PATHS) {
            let p = &p.as_bytes()[..p.len().min(MAX_PATH_LEN)];
            b.put_u16(p.len() as u16);
            b.put_bytes(p);
        }
        b
    }

    /// Writes the request and flushes.
    pub async fn write<W: AsyncWrite + Unpin>(&self, w: &mut W) -> std::io::Result<()> {
        w.write_all(&self.encode()).await?;
        w.flush().await
    }

    /// Reads and validates a request; every size is checked before the
    /// bytes it announces are read.
    pub async fn read<R: AsyncRead + Unpin>(r: &mut R) -> Result<Request, RequestError> {
        let bad = RequestError::Malformed;
        let mut head = [0u8; 7];
        r.read_exact(&mut head).await?;
        let mut h = Reader::new(&head);
        let (magic, version) = (h.array::<4>(), h.u8());
        if magic.ok().as_ref() != Some(MAGIC) {
            return Err(bad("not a request (bad magic)"));
        }
        let version = version.map_err(|_| bad("truncated"))?;
        let service = h
            .u8()
            .ok()
            .and_then(Service::from_code)
            .ok_or(bad("unknown service"))?;
        let flags = h.u8().map_err(|_| bad("truncated"))?;
        let options = match version {
            VERSION | VERSION_3 => {
                let n = read_u8(r).await?;
                let mut o = vec![0u8; n.into()];
                r.read_exact(&mut o).await?;
                SessionOptions::decode(&o, version)?
            }
            VERSION_1 if service.offer() == Offer::Files => SessionOptions::default(),
            _ => return Err(bad("unsupported version")),
        };
        if options.pad && service.offer() == Offer::Files {
            return Err(bad(
                "padding (--pad) is for programs and forwarding, not files",
            ));
        }
        let mut c = [0u8; 2];
        r.read_exact(&mut c).await?;
        let count = usize::from(u16::from_be_bytes(c));
        if !service.paths().contains(&count) {
            return Err(bad("bad path count"));
        }
        let mut paths = Vec::with_capacity(count);
        for _ in 0..count {
            let mut l = [0u8; 2];
            r.read_exact(&mut l).await?;
            let len = usize::from(u16::from_be_bytes(l));
            if len > MAX_PATH_LEN {
                return Err(bad("path too long"));
            }
            let mut p = vec![0u8; len];
            r.read_exact(&mut p).await?;
            paths.push(String::from_utf8(p).map_err(|_| bad("path not UTF-8"))?);
        }
        Ok(Request {
            service,
            recursive: flags & 1 != 0,
            preserve: flags & 2 != 0,
            options,
            paths,
        })
    }

    /// Refuses a request for a service other than `served`.
    pub fn check_offer(&self, served: Offer) -> Result<(), RequestError> {
        if self.service.offer() == served {
            Ok(())
        } else {
            Err(RequestError::WrongService {
                served,
                asked: self.service.offer(),
            })
        }
    }
}

async fn read_u8<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<u8> {
    let mut b = [0u8; 1];
    r.read_exact(&mut b).await?;
    Ok(b[0])
}

/// Checks a request path as text: relative, no `..`, no NUL (`.` and
/// empty components are dropped; `None` is the root itself). This is all
/// the daemon decides from the string: the file system is looked at only
/// through the root's descriptor, when the transfer opens the path
/// ([`crate::transfer::RootDir`]), so nothing can change between a check
/// and its use.
pub fn confine(path: &str) -> Result<Option<RelPath>, RequestError> {
    request_path(path).map_err(|_| RequestError::Outside(path.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(b: &[u8]) -> Result<Request, RequestError> {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(Request::read(&mut &b[..]))
    }

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }

    /// docs/PROTOCOL.md §5's example, byte for byte.
    #[test]
    fn the_documented_vector() {
        let req = Request {
            service: Service::Pull,
            recursive: true,
            preserve: false,
            options: SessionOptions {
                rate_cap: Some(500_000),
                fixed_rate: None,
                pad: false,
            },
            paths: vec!["in/f".into()],
        };
        let want = hex("56465251 02 02 01 0a 0108000000000007a120 0001 0004 696e2f66");
        assert_eq!(req.encode(), want);
        assert_eq!(read(&want).unwrap(), req);
        // The forwarding client's request: nothing but the service.
        let fw = Request::new(Service::Forward, SessionOptions::default()).encode();
        assert_eq!(fw, hex("56465251 02 04 00 00 00 00"));
        let prog = Request::new(Service::Program, SessionOptions::default()).encode();
        assert_eq!(prog, hex("56465251 02 03 00 00 00 00"));
    }

    #[test]
    fn round_trip_and_limits() {
        let req = Request {
            service: Service::Pull,
            recursive: true,
            preserve: true,
            options: SessionOptions {
                rate_cap: Some(1),
                fixed_rate: Some(9),
                pad: false,
            },
            paths: vec!["a/b".into(), "c d".into()],
        };
        let buf = req.encode();
        assert_eq!(read(&buf).unwrap(), req);
        assert_eq!(req.options.send_cap(), Some(1));
        assert!(read(&buf[..5]).is_err());
        let mut bad = buf.clone();
        bad[0] = b'X';
        assert!(read(&bad).is_err());
        // Push takes exactly one path; program and forward none.
        let mut push = Request::new(Service::Push, SessionOptions::default());
        assert!(read(&push.encode()).is_err());
        push.paths = vec!["x".into()];
        assert_eq!(read(&push.encode()).unwrap(), push);
        let mut prog = Request::new(Service::Program, SessionOptions::default());
        prog.paths = vec!["x".into()];
        assert!(read(&prog.encode()).is_err());
    }

    #[test]
    fn options_unknown_skipped_repeated_refused() {
        let mut b = b"VFRQ\x02\x03\x00".to_vec();
        b.extend_from_slice(&[4, 9, 2, 1, 2, 0, 0]);
        let r = read(&b).unwrap();
        assert_eq!(r.service, Service::Program);
        assert_eq!(r.options, SessionOptions::default());
        let mut twice = b"VFRQ\x02\x03\x00\x14".to_vec();
        for _ in 0..2 {
            twice.extend_from_slice(&[1, 8, 0, 0, 0, 0, 0, 0, 0, 5]);
        }
        twice.extend_from_slice(&[0, 0]);
        assert!(read(&twice).is_err());
        let zero = b"VFRQ\x02\x03\x00\x0a\x01\x08\0\0\0\0\0\0\0\0\0\0";
        assert!(read(zero).is_err());
    }

    /// docs/PROTOCOL.md §5's `--pad` example: version 3, the critical
    /// option 128 with no value.
    #[test]
    fn pad_is_a_critical_option_in_version_3() {
        let pad = SessionOptions {
            pad: true,
            ..SessionOptions::default()
        };
        let fw = Request::new(Service::Forward, pad).encode();
        assert_eq!(fw, hex("56465251 03 04 00 02 8000 0000"));
        let r = read(&fw).unwrap();
        assert!(r.options.pad);
        let prog = Request::new(
            Service::Program,
            SessionOptions {
                rate_cap: Some(500_000),
                ..pad
            },
        );
        let b = prog.encode();
        assert_eq!(
            b,
            hex("56465251 03 03 00 0c 0108000000000007a120 8000 0000")
        );
        assert_eq!(read(&b).unwrap(), prog);
        // Without a critical option the version stays 2 (older daemons
        // still serve it).
        let plain = Request::new(Service::Forward, SessionOptions::default());
        assert_eq!(plain.encode()[4], 2);
        // The pad option in a version 2 request: malformed (an older
        // daemon would have skipped it and read records as data).
        let mut v2 = fw.clone();
        v2[4] = 2;
        assert!(read(&v2).unwrap_err().to_string().contains("critical"));
        // A value on it, or twice: malformed.
        let bad = hex("56465251 03 04 00 03 800101 0000");
        assert!(read(&bad).is_err());
        let twice = hex("56465251 03 04 00 04 8000 8000 0000");
        assert!(read(&twice).is_err());
        // An unknown critical option: refused by number.
        let unknown = hex("56465251 03 04 00 02 c800 0000");
        let e = read(&unknown).unwrap_err();
        assert!(matches!(e, RequestError::UnknownCritical(200)), "{e}");
        assert!(e.to_string().contains("unsupported option 200"), "{e}");
        // An unknown option below 128 is still skipped in version 3.
        let skip = hex("56465251 03 04 00 03 050100 0000");
        assert!(!read(&skip).unwrap().options.pad);
        // Files are never padded.
        let mut push = Request::new(Service::Push, pad);
        push.paths = vec!["x".into()];
        let e = read(&push.encode()).unwrap_err().to_string();
        assert!(e.contains("not files"), "{e}");
        // A version this build does not know.
        let mut v4 = fw;
        v4[4] = 4;
        assert!(read(&v4)
            .unwrap_err()
            .to_string()
            .contains("unsupported version"));
    }

    #[test]
    fn version_1_still_reads_for_files() {
        let v1 = b"VFRQ\x01\x01\x00\x00\x01\x00\x03in/";
        let r = read(v1).unwrap();
        assert_eq!(r.service, Service::Push);
        assert_eq!(r.paths, ["in/"]);
        assert!(read(b"VFRQ\x01\x04\x00\x00\x00").is_err());
    }

    #[test]
    fn wrong_service_names_both() {
        let r = Request::new(Service::Forward, SessionOptions::default());
        let e = r.check_offer(Offer::Files).unwrap_err().to_string();
        assert_eq!(
            e,
            "this daemon serves files; it forwards no TCP connections"
        );
        let r = Request::new(Service::Pull, SessionOptions::default());
        let e = r.check_offer(Offer::Forward).unwrap_err().to_string();
        assert_eq!(
            e,
            "this daemon forwards TCP connections (--forward); it serves no files"
        );
    }

    #[test]
    fn confinement() {
        assert_eq!(confine("in/box").unwrap().unwrap().as_bytes(), b"in/box");
        assert!(confine("../etc/passwd").is_err());
        assert!(confine("in/../../etc").is_err());
        assert!(confine("/etc/passwd").is_err());
        assert!(confine("a\0b").is_err());
        assert!(confine(".").unwrap().is_none());
        assert!(confine("").unwrap().is_none());
    }
}
