//! Opening UDP sockets for VFER: large kernel buffers (with a clear warning
//! when the kernel caps them) and batched I/O through `quinn-udp`.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// Kernel socket buffer size we ask for: enough for ~1 Gbit/s x 60 ms of bursts.
pub const WANT_SOCKET_BUFFER: usize = 8 << 20;

/// Binds a UDP socket on `addr` with large buffers, ready for tokio.
/// Returns the socket and, if the kernel capped a buffer, a warning line.
pub fn bind(addr: SocketAddr) -> io::Result<(tokio::net::UdpSocket, Option<String>)> {
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // Accept IPv4-mapped peers too when bound to [::].
        let _ = sock.set_only_v6(false);
    }
    let _ = sock.set_recv_buffer_size(WANT_SOCKET_BUFFER);
    let _ = sock.set_send_buffer_size(WANT_SOCKET_BUFFER);
    let warning = buffer_warning(&sock);
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    let std_sock: std::net::UdpSocket = sock.into();
    Ok((tokio::net::UdpSocket::from_std(std_sock)?, warning))
}

fn buffer_warning(sock: &Socket) -> Option<String> {
    // Linux reports twice the usable size; half of what we asked is the floor.
    let rcv = sock.recv_buffer_size().ok()?;
    let snd = sock.send_buffer_size().ok()?;
    let mut short = Vec::new();
    if rcv < WANT_SOCKET_BUFFER {
        short.push(format!(
            "receive buffer {} KiB (raise net.core.rmem_max)",
            rcv >> 10
        ));
    }
    if snd < WANT_SOCKET_BUFFER {
        short.push(format!(
            "send buffer {} KiB (raise net.core.wmem_max)",
            snd >> 10
        ));
    }
    (!short.is_empty()).then(|| {
        format!(
            "warning: the kernel capped UDP socket buffers: {}; fast transfers may lose packets. \
             e.g. sysctl -w net.core.rmem_max={} net.core.wmem_max={}",
            short.join(", "),
            WANT_SOCKET_BUFFER,
            WANT_SOCKET_BUFFER
        )
    })
}
