//! TUN devices: create one inside a named network namespace and keep its
//! file descriptor. The device lives as long as the descriptor (it is not
//! persistent), so a crashed emulator leaves no device behind.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;

#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// An open TUN device (IP packets in and out, no packet-info header).
pub struct Tun {
    fd: OwnedFd,
    name: String,
}

impl Tun {
    /// Create TUN device `dev` inside network namespace `netns` (a name from
    /// `ip netns`, i.e. /run/netns/NAME; "-" = the current namespace). The
    /// calling thread returns to its own namespace afterwards.
    pub fn create_in(netns: &str, dev: &str) -> io::Result<Tun> {
        if netns == "-" {
            return Self::create(dev);
        }
        let own = File::open("/proc/thread-self/ns/net")?;
        let target = File::open(format!("/run/netns/{netns}"))
            .map_err(|e| io::Error::new(e.kind(), format!("network namespace {netns:?}: {e}")))?;
        setns(target.as_raw_fd())?;
        let tun = Self::create(dev);
        // Always go back, even if creation failed.
        setns(own.as_raw_fd())?;
        tun
    }

    /// Create TUN device `dev` in the calling thread's namespace.
    pub fn create(dev: &str) -> io::Result<Tun> {
        if dev.is_empty() || dev.len() >= libc::IFNAMSIZ {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "bad device name",
            ));
        }
        let path = CString::new("/dev/net/tun").map_err(io::Error::other)?;
        // SAFETY: plain open(2) of a NUL-terminated path.
        let raw = unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: raw is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            flags: IFF_TUN | IFF_NO_PI,
            _pad: [0; 22],
        };
        for (d, s) in req.name.iter_mut().zip(dev.bytes()) {
            *d = s as libc::c_char;
        }
        // SAFETY: TUNSETIFF reads and writes a struct ifreq, which IfReq mirrors.
        let rc = unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF as _, &mut req) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Tun {
            fd,
            name: dev.to_string(),
        })
    }

    /// The device name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The raw descriptor (non-blocking).
    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

fn setns(fd: RawFd) -> io::Result<()> {
    // SAFETY: setns(2) on a namespace descriptor we hold open.
    if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Read one packet into `buf`; Ok(None) when nothing is waiting.
pub fn read_packet(fd: RawFd, buf: &mut [u8]) -> io::Result<Option<usize>> {
    // SAFETY: buf is valid for buf.len() bytes.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted {
            return Ok(None);
        }
        return Err(e);
    }
    Ok(Some(n as usize))
}

/// Write one packet; errors are returned, never retried.
pub fn write_packet(fd: RawFd, pkt: &[u8]) -> io::Result<()> {
    // SAFETY: pkt is valid for pkt.len() bytes.
    let n = unsafe { libc::write(fd, pkt.as_ptr().cast(), pkt.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
