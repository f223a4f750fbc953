//! The far side's framing of `--exec` output (docs/PROTOCOL.md §8.2): the
//! program's stdout, its stderr, the end of its stdout and its exit status,
//! interleaved on the one stream towards the client. The client → program
//! direction is not framed (raw stdin bytes, EOF = STREAM_FIN).
//!
//! Sans-IO: [`encode_header`] / [`encode_exit`] build bytes, [`decode`]
//! parses a buffer; the async helpers in `super::io` move them.

/// Frame header: `type u8 || len u16`.
pub const HEADER_LEN: usize = 3;
/// Largest frame payload.
pub const MAX_PAYLOAD: usize = u16::MAX as usize;
/// Longest message text in an EXIT frame.
pub const MAX_EXIT_MESSAGE: usize = 1024;

/// Frame type: bytes the program wrote on its stdout.
pub const TYPE_STDOUT: u8 = 1;
/// Frame type: bytes the program wrote on its stderr.
pub const TYPE_STDERR: u8 = 2;
/// Frame type: the program closed its stdout (empty payload).
pub const TYPE_STDOUT_EOF: u8 = 3;
/// Frame type: the program ended; always the last frame.
pub const TYPE_EXIT: u8 = 4;

/// How the far-side program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// It exited with the status.
    Exited,
    /// A signal killed it; status = 128 + signal number.
    Signaled,
    /// It could not be started (status 126 or 127, as shells use).
    NotStarted,
}

impl How {
    fn to_wire(self) -> u8 {
        match self {
            How::Exited => 0,
            How::Signaled => 1,
            How::NotStarted => 2,
        }
    }

    fn from_wire(b: u8) -> Option<How> {
        match b {
            0 => Some(How::Exited),
            1 => Some(How::Signaled),
            2 => Some(How::NotStarted),
            _ => None,
        }
    }
}

/// The EXIT frame's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// The status the client exits with (0..=255).
    pub status: u8,
    /// How the program ended.
    pub how: How,
    /// Why, for the user (empty when it simply exited).
    pub message: String,
}

impl Exit {
    /// From a process's end: exit code, or 128 + signal.
    pub fn from_status(st: std::process::ExitStatus) -> Exit {
        use std::os::unix::process::ExitStatusExt;
        match (st.code(), st.signal()) {
            (Some(c), _) => Exit {
                status: c.clamp(0, 255) as u8,
                how: How::Exited,
                message: String::new(),
            },
            (None, Some(s)) => Exit {
                status: (128 + s).clamp(0, 255) as u8,
                how: How::Signaled,
                message: format!("killed by signal {s}"),
            },
            (None, None) => Exit {
                status: 255,
                how: How::Signaled,
                message: "ended in an unknown way".to_string(),
            },
        }
    }
}

/// One decoded frame, borrowing its payload from the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<'a> {
    /// Program stdout bytes (never empty).
    Stdout(&'a [u8]),
    /// Program stderr bytes (never empty).
    Stderr(&'a [u8]),
    /// The program's stdout reached EOF.
    StdoutEof,
    /// The program ended.
    Exit(Exit),
}

/// A frame that breaks the rules of §8.2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Unknown frame type.
    #[error("unknown exec frame type {0}")]
    UnknownType(u8),
    /// A data frame without data, or a payload where none belongs.
    #[error("exec frame type {0} with a bad length {1}")]
    BadLength(u8, usize),
    /// An EXIT frame with an unknown `how` byte.
    #[error("EXIT frame with unknown kind {0}")]
    BadExit(u8),
}

/// The header of a data frame (`TYPE_STDOUT` / `TYPE_STDERR`) of `len`
/// bytes; `len` must be 1..=MAX_PAYLOAD (callers read at most that much).
pub fn encode_header(kind: u8, len: usize) -> [u8; HEADER_LEN] {
    let l = len.min(MAX_PAYLOAD) as u16;
    let [a, b] = l.to_be_bytes();
    [kind, a, b]
}

/// The STDOUT_EOF frame.
pub fn encode_stdout_eof() -> [u8; HEADER_LEN] {
    [TYPE_STDOUT_EOF, 0, 0]
}

/// A whole EXIT frame: `4 || len || status u8 || how u8 || message`.
pub fn encode_exit(e: &Exit) -> Vec<u8> {
    let mut msg = e.message.as_bytes();
    if msg.len() > MAX_EXIT_MESSAGE {
        let mut cut = MAX_EXIT_MESSAGE;
        while !e.message.is_char_boundary(cut) {
            cut -= 1;
        }
        msg = &msg[..cut];
    }
    let mut out = Vec::with_capacity(HEADER_LEN + 2 + msg.len());
    out.extend_from_slice(&encode_header(TYPE_EXIT, 2 + msg.len()));
    out.push(e.status);
    out.push(e.how.to_wire());
    out.extend_from_slice(msg);
    out
}

/// Checks a header: returns the payload length it announces.
pub fn check_header(h: &[u8; HEADER_LEN]) -> Result<usize, FrameError> {
    let [kind, len @ ..] = *h;
    let len = usize::from(u16::from_be_bytes(len));
    match kind {
        TYPE_STDOUT | TYPE_STDERR if len == 0 => Err(FrameError::BadLength(kind, len)),
        TYPE_STDOUT | TYPE_STDERR => Ok(len),
        TYPE_STDOUT_EOF if len != 0 => Err(FrameError::BadLength(kind, len)),
        TYPE_STDOUT_EOF => Ok(0),
        TYPE_EXIT if !(2..=2 + MAX_EXIT_MESSAGE).contains(&len) => {
            Err(FrameError::BadLength(kind, len))
        }
        TYPE_EXIT => Ok(len),
        t => Err(FrameError::UnknownType(t)),
    }
}

/// Parses the frame of type `kind` whose payload is `payload` (the header
/// was accepted by [`check_header`]).
pub fn parse(kind: u8, payload: &[u8]) -> Result<Frame<'_>, FrameError> {
    match kind {
        TYPE_STDOUT => Ok(Frame::Stdout(payload)),
        TYPE_STDERR => Ok(Frame::Stderr(payload)),
        TYPE_STDOUT_EOF => Ok(Frame::StdoutEof),
        TYPE_EXIT => {
            let [status, how, msg @ ..] = payload else {
                return Err(FrameError::BadLength(kind, payload.len()));
            };
            let how = How::from_wire(*how).ok_or(FrameError::BadExit(*how))?;
            Ok(Frame::Exit(Exit {
                status: *status,
                how,
                message: String::from_utf8_lossy(msg).into_owned(),
            }))
        }
        t => Err(FrameError::UnknownType(t)),
    }
}

/// Decodes the first frame of `buf`: `Ok(None)` when `buf` holds only part
/// of one, else the frame and the bytes it used.
pub fn decode(buf: &[u8]) -> Result<Option<(Frame<'_>, usize)>, FrameError> {
    let Some(h) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let len = check_header(h)?;
    let Some(payload) = buf.get(HEADER_LEN..HEADER_LEN + len) else {
        return Ok(None);
    };
    let [kind, ..] = *h;
    Ok(Some((parse(kind, payload)?, HEADER_LEN + len)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn exact_bytes() {
        let mut b = encode_header(TYPE_STDOUT, 3).to_vec();
        b.extend_from_slice(b"abc");
        assert_eq!(b, [1, 0, 3, b'a', b'b', b'c']);
        let e = Exit {
            status: 7,
            how: How::Exited,
            message: String::new(),
        };
        assert_eq!(encode_exit(&e), [4, 0, 2, 7, 0]);
        assert_eq!(encode_stdout_eof(), [3, 0, 0]);
        assert_eq!(decode(&[4, 0, 2, 7, 0]).unwrap(), Some((Frame::Exit(e), 5)));
    }

    #[test]
    fn rejects_bad_frames() {
        assert_eq!(decode(&[1, 0, 0]), Err(FrameError::BadLength(1, 0)));
        assert_eq!(decode(&[3, 0, 1, 0]), Err(FrameError::BadLength(3, 1)));
        assert_eq!(decode(&[4, 0, 1, 0]), Err(FrameError::BadLength(4, 1)));
        assert_eq!(decode(&[4, 0, 2, 0, 9]), Err(FrameError::BadExit(9)));
        assert_eq!(decode(&[9, 0, 0]), Err(FrameError::UnknownType(9)));
        assert_eq!(decode(&[1, 0, 5, 1]), Ok(None));
    }

    #[test]
    fn signal_status() {
        use std::os::unix::process::ExitStatusExt;
        let e = Exit::from_status(std::process::ExitStatus::from_raw(15));
        assert_eq!((e.status, e.how), (143, How::Signaled));
        let e = Exit::from_status(std::process::ExitStatus::from_raw(3 << 8));
        assert_eq!((e.status, e.how), (3, How::Exited));
    }

    fn arb_exit() -> impl Strategy<Value = Exit> {
        (
            any::<u8>(),
            prop_oneof![
                Just(How::Exited),
                Just(How::Signaled),
                Just(How::NotStarted)
            ],
            ".{0,200}",
        )
            .prop_map(|(status, how, message)| Exit {
                status,
                how,
                message,
            })
    }

    proptest! {
        #[test]
        fn round_trips(data in proptest::collection::vec(any::<u8>(), 1..2000),
                       err in any::<bool>(), exit in arb_exit()) {
            let kind = if err { TYPE_STDERR } else { TYPE_STDOUT };
            let mut b = encode_header(kind, data.len()).to_vec();
            b.extend_from_slice(&data);
            b.extend_from_slice(&encode_stdout_eof());
            b.extend_from_slice(&encode_exit(&exit));
            let (f, n) = decode(&b).unwrap().unwrap();
            let want = if err { Frame::Stderr(&data) } else { Frame::Stdout(&data) };
            prop_assert_eq!(f, want);
            let (f, m) = decode(&b[n..]).unwrap().unwrap();
            prop_assert_eq!(f, Frame::StdoutEof);
            let (f, k) = decode(&b[n + m..]).unwrap().unwrap();
            prop_assert_eq!(f, Frame::Exit(exit));
            prop_assert_eq!(n + m + k, b.len());
        }

        #[test]
        fn never_panics(b in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = decode(&b);
        }
    }
}
