//! The server side of SSH starting mode, up to the reply: read the secret,
//! bind a UDP port, answer with the port. Blocking code on plain file
//! descriptors, run before any thread exists (the process forks right after,
//! see [`run`]).
//!
//! Ordering rule (VSL spec): nothing is written to stdout or stderr before
//! the 36-byte secret message has been read, even when the arguments are
//! bad — that is why [`prepare`] takes the argument parse result and looks
//! at it only after the secret is in.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::str::FromStr;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use zeroize::Zeroizing;

use super::wire::{self, Secret, SECRET_MSG_LEN};
use super::{Family, DEFAULT_ACCEPT_TIMEOUT, EXIT_PERMANENT, EXIT_TEMPORARY, MAX_ERROR_MESSAGE};
use crate::transport::socket::WANT_SOCKET_BUFFER;
use crate::transport::Config;

pub use super::daemon::run;

/// An inclusive range of UDP ports (`--port-range A-B`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// First port tried.
    pub first: u16,
    /// Last port tried.
    pub last: u16,
}

impl FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("bad port range {s:?}: expected A-B with 1 <= A <= B <= 65535");
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let first: u16 = a.trim().parse().map_err(|_| bad())?;
        let last: u16 = b.trim().parse().map_err(|_| bad())?;
        if first == 0 || first > last {
            return Err(bad());
        }
        Ok(PortRange { first, last })
    }
}

/// Settings of the ssh-started server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Ports to bind from; any free port when `None`.
    pub port_range: Option<PortRange>,
    /// Address family of the UDP socket; see [`bind_udp`] for the default.
    pub family: Option<Family>,
    /// Exit (status 20) if no authenticated client arrives within this.
    pub accept_timeout: Duration,
    /// Diagnostic service: echo the stream back instead of calling the
    /// session handler (`--echo`; used by the tests, handy to check a path).
    pub echo: bool,
    /// Transport settings of the session.
    pub config: Config,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            port_range: None,
            family: None,
            accept_timeout: DEFAULT_ACCEPT_TIMEOUT,
            echo: false,
            config: Config::default(),
        }
    }
}

/// Parses the server's own arguments: `--server [--port-range A-B]
/// [--accept-timeout SECS] [-4|-6] [--echo]` (the program name excluded).
/// The error is a one-line message; pass the result to [`run`] unchanged so
/// the ordering rule holds.
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<ServerOptions, String> {
    let mut o = ServerOptions::default();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "--server" => {}
            "--echo" => o.echo = true,
            "-4" => o.family = Some(Family::V4),
            "-6" => o.family = Some(Family::V6),
            "--port-range" => o.port_range = Some(value("--port-range")?.parse()?),
            "--accept-timeout" => {
                let v = value("--accept-timeout")?;
                let secs: u64 = v
                    .parse()
                    .ok()
                    .filter(|s| (1..=86_400).contains(s))
                    .ok_or_else(|| {
                        format!("bad --accept-timeout {v:?}: expected 1..86400 seconds")
                    })?;
                o.accept_timeout = Duration::from_secs(secs);
            }
            other => return Err(format!("unknown argument {other:?} in --server mode")),
        }
    }
    Ok(o)
}

/// A server-side failure before the session is up, with its exit status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ServerError {
    /// Temporary (exit 20) or permanent (exit 21).
    pub temporary: bool,
    /// What went wrong, for the client's user.
    pub message: String,
}

impl ServerError {
    /// A temporary error (exit status 20).
    pub fn temporary(message: impl Into<String>) -> Self {
        ServerError {
            temporary: true,
            message: message.into(),
        }
    }

    /// A permanent error (exit status 21).
    pub fn permanent(message: impl Into<String>) -> Self {
        ServerError {
            temporary: false,
            message: message.into(),
        }
    }

    /// The process exit status: 20 or 21.
    pub fn exit_code(&self) -> i32 {
        if self.temporary {
            EXIT_TEMPORARY
        } else {
            EXIT_PERMANENT
        }
    }

    /// The stderr text: `PROGRAM: message\n`, cut (at a character boundary)
    /// so the whole is at most [`MAX_ERROR_MESSAGE`] bytes.
    pub fn stderr_text(&self, program: &str) -> String {
        let mut s = format!("{program}: {}", self.message.replace(['\n', '\r'], " "));
        let mut cut = s.len().min(MAX_ERROR_MESSAGE - 1);
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('\n');
        s
    }
}

/// What [`prepare`] hands on: the secret and the bound socket.
#[derive(Debug)]
pub struct Prepared {
    /// The session secret from the client (wiped on drop).
    pub secret: Secret,
    /// The bound UDP socket (non-blocking, large buffers).
    pub socket: UdpSocket,
    /// The server options.
    pub options: ServerOptions,
}

/// Reads exactly the 36-byte secret message from `stdin`.
pub fn read_secret(stdin: &mut impl Read) -> Result<Secret, ServerError> {
    let mut buf = Zeroizing::new([0u8; SECRET_MSG_LEN]);
    let mut got = 0;
    while got < SECRET_MSG_LEN {
        match stdin.read(&mut buf[got..]) {
            Ok(0) => {
                return Err(ServerError::permanent(format!(
                    "short read: stdin ended after {got} of {SECRET_MSG_LEN} bytes of the secret message"
                )))
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(ServerError::permanent(format!(
                    "cannot read the secret message from stdin: {e}"
                )))
            }
        }
    }
    wire::decode_secret(&buf).map_err(|e| ServerError::permanent(format!("secret message: {e}")))
}

/// The SSH_CONNECTION variable's server address (its third field).
pub fn ssh_connection_server_ip(ssh_connection: &str) -> Option<IpAddr> {
    ssh_connection.split_whitespace().nth(2)?.parse().ok()
}

/// Binds the server's UDP socket. Addresses tried, in order:
/// `-4` -> `0.0.0.0`; `-6` -> `[::]` (IPv6 only); otherwise `[::]` accepting
/// IPv4-mapped peers too (so the client may reach us over either family,
/// whichever its resolver picks), falling back to 0.0.0.0 when IPv6 is
/// unavailable — unless SSH_CONNECTION says ssh itself came in over IPv6,
/// where an IPv4-only socket could not serve the client.
/// Each address is tried with every port of `range` (or port 0).
pub fn bind_udp(
    family: Option<Family>,
    range: Option<PortRange>,
    ssh_server_ip: Option<IpAddr>,
) -> Result<UdpSocket, ServerError> {
    let v4 = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    let v6 = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
    let candidates: Vec<(IpAddr, bool)> = match family {
        Some(Family::V4) => vec![(v4, false)],
        Some(Family::V6) => vec![(v6, true)],
        None if ssh_server_ip.is_some_and(|ip| ip.is_ipv6()) => vec![(v6, false)],
        None => vec![(v6, false), (v4, false)],
    };
    let (first, last) = range.map_or((0, 0), |r| (r.first, r.last));
    let mut last_err: Option<io::Error> = None;
    for (ip, v6only) in candidates {
        for port in first..=last {
            match bind_one(SocketAddr::new(ip, port), v6only) {
                Ok(s) => return Ok(s),
                Err(e) => {
                    let unsupported = matches!(
                        e.raw_os_error(),
                        Some(libc::EAFNOSUPPORT) | Some(libc::EADDRNOTAVAIL)
                    );
                    last_err = Some(e);
                    if unsupported {
                        break; // this family is not available; try the next
                    }
                }
            }
        }
    }
    let why = last_err.map_or_else(String::new, |e| format!(" (last error: {e})"));
    Err(ServerError::temporary(match range {
        Some(r) => format!("no free UDP port in {}-{}{why}", r.first, r.last),
        None => format!("cannot bind a UDP socket{why}"),
    }))
}

fn bind_one(addr: SocketAddr, v6only: bool) -> io::Result<UdpSocket> {
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        sock.set_only_v6(v6only)?;
    }
    let _ = sock.set_recv_buffer_size(WANT_SOCKET_BUFFER);
    let _ = sock.set_send_buffer_size(WANT_SOCKET_BUFFER);
    sock.set_nonblocking(true)?;
    sock.set_cloexec(true)?;
    sock.bind(&addr.into())?;
    Ok(sock.into())
}

/// Writes the port reply and flushes it.
pub fn write_reply(stdout: &mut impl Write, port: u16) -> Result<(), ServerError> {
    stdout
        .write_all(&wire::encode_port(port))
        .and_then(|()| stdout.flush())
        .map_err(|e| ServerError::temporary(format!("cannot write the port reply: {e}")))
}

/// Everything up to and including the reply: read the secret (before any
/// output), check the arguments, bind, reply. `ssh_connection` is the
/// SSH_CONNECTION variable, if set.
pub fn prepare(
    options: Result<ServerOptions, String>,
    stdin: &mut impl Read,
    stdout: &mut impl Write,
    ssh_connection: Option<&str>,
) -> Result<Prepared, ServerError> {
    let secret = read_secret(stdin)?;
    let options = options.map_err(|m| ServerError::permanent(format!("bad arguments: {m}")))?;
    let server_ip = ssh_connection.and_then(ssh_connection_server_ip);
    let socket = bind_udp(options.family, options.port_range, server_ip)?;
    let port = socket
        .local_addr()
        .map_err(|e| ServerError::temporary(format!("bound socket has no address: {e}")))?
        .port();
    write_reply(stdout, port)?;
    Ok(Prepared {
        secret,
        socket,
        options,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<ServerOptions, String> {
        parse_args(s.split_whitespace().map(String::from))
    }

    #[test]
    fn parses_arguments() {
        let o = args("--server --port-range 6000-6010 -4 --accept-timeout=5 --echo").unwrap();
        assert_eq!(
            o.port_range,
            Some(PortRange {
                first: 6000,
                last: 6010
            })
        );
        assert_eq!(o.family, Some(Family::V4));
        assert_eq!(o.accept_timeout, Duration::from_secs(5));
        assert!(o.echo);
        assert!(args("--server --port-range").is_err());
        assert!(args("--server --port-range 10-5").is_err());
        assert!(args("--server --port-range 0-5").is_err());
        assert!(args("--server --accept-timeout 0").is_err());
        assert!(args("--server --bogus").is_err());
        assert_eq!(
            "7000".parse(),
            Ok(PortRange {
                first: 7000,
                last: 7000
            })
        );
    }

    #[test]
    fn stderr_text_is_capped_at_512_bytes() {
        let e = ServerError::permanent("é".repeat(1000));
        let t = e.stderr_text("vfer-recv");
        assert!(t.len() <= MAX_ERROR_MESSAGE, "{}", t.len());
        assert!(t.ends_with('\n'));
        assert_eq!(e.exit_code(), 21);
        assert_eq!(ServerError::temporary("x").exit_code(), 20);
    }

    #[test]
    fn ssh_connection_field() {
        assert_eq!(
            ssh_connection_server_ip("10.0.0.1 5555 10.0.0.2 22"),
            Some("10.0.0.2".parse().unwrap())
        );
        assert_eq!(
            ssh_connection_server_ip("::1 5555 ::1 22"),
            Some("::1".parse().unwrap())
        );
        assert_eq!(ssh_connection_server_ip("garbage"), None);
    }

    #[test]
    fn port_range_exhaustion_is_temporary() {
        let a = bind_udp(Some(Family::V4), None, None).unwrap();
        let port = a.local_addr().unwrap().port();
        let r = PortRange {
            first: port,
            last: port,
        };
        let e = bind_udp(Some(Family::V4), Some(r), None).unwrap_err();
        assert_eq!(e.exit_code(), 20);
        assert!(e.message.contains("no free UDP port"), "{}", e.message);
    }

    use std::cell::Cell;
    use std::rc::Rc;

    /// Hands out one byte per read and counts them.
    struct Trickle {
        data: Vec<u8>,
        pos: Rc<Cell<usize>>,
    }
    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let p = self.pos.get();
            if p >= self.data.len() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.data[p];
            self.pos.set(p + 1);
            Ok(1)
        }
    }
    /// Records how many input bytes had been consumed at the first write.
    struct Watch {
        pos: Rc<Cell<usize>>,
        first_write_at: Option<usize>,
        out: Vec<u8>,
    }
    impl Write for Watch {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.first_write_at.get_or_insert(self.pos.get());
            self.out.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn run_prepare(
        input: &[u8],
        opts: Result<ServerOptions, String>,
    ) -> (Result<Prepared, ServerError>, Watch, usize) {
        let pos = Rc::new(Cell::new(0));
        let mut r = Trickle {
            data: input.to_vec(),
            pos: pos.clone(),
        };
        let mut w = Watch {
            pos: pos.clone(),
            first_write_at: None,
            out: Vec::new(),
        };
        let res = prepare(opts, &mut r, &mut w, Some("127.0.0.1 4000 127.0.0.1 22"));
        (res, w, pos.get())
    }

    #[test]
    fn prepare_reads_exactly_36_bytes_before_writing() {
        let mut input = b"VSL1".to_vec();
        input.extend_from_slice(&[9u8; 32]);
        input.extend_from_slice(b"trailing bytes stay unread");
        let o = ServerOptions {
            family: Some(Family::V4),
            ..ServerOptions::default()
        };
        let (res, w, consumed) = run_prepare(&input, Ok(o));
        let p = res.unwrap();
        assert_eq!(consumed, 36, "read past the secret message");
        assert_eq!(w.first_write_at, Some(36));
        assert_eq!(&w.out[..4], b"VSL1");
        let port = u32::from_be_bytes(w.out[4..8].try_into().unwrap());
        assert_eq!(port, u32::from(p.socket.local_addr().unwrap().port()));
        assert_eq!(w.out.len(), 8);
        assert_eq!(p.secret.bytes(), &[9u8; 32]);
    }

    #[test]
    fn prepare_errors_write_nothing_to_stdout() {
        let mut input = b"VSL1".to_vec();
        input.extend_from_slice(&[9u8; 32]);
        let (res, w, consumed) = run_prepare(&input, Err("bad flag".into()));
        assert_eq!(res.unwrap_err().exit_code(), 21);
        assert_eq!(consumed, 36, "arguments are judged only after the secret");
        assert!(w.first_write_at.is_none());
        let (res, w, _) = run_prepare(&input[..35], Ok(ServerOptions::default()));
        assert_eq!(res.unwrap_err().exit_code(), 21);
        assert!(w.first_write_at.is_none());
    }
}
