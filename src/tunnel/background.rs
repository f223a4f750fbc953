//! `--daemon`: a standing daemon goes to the background once it is ready
//! (socket bound, keys read), as spiped does without `-F`. The process
//! forks before any runtime or thread starts; the parent waits until the
//! child says it is listening ([`ready`]) and exits 0, or, if the child
//! fails first, prints nothing more (the child's own error is on stderr)
//! and exits with the child's status. The child leaves the terminal's
//! session and reads nothing (stdin is /dev/null).

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Mutex;

/// The child's end of the readiness pipe, until [`ready`] uses it.
static READY: Mutex<Option<OwnedFd>> = Mutex::new(None);

/// Forks. Returns in the child (now in its own session); the parent never
/// returns: it exits 0 once the child is ready, else with its status.
/// Call before any thread exists.
pub fn fork_or_exit(program: &str) {
    let mut fds = [0i32; 2];
    // SAFETY: fds is a valid 2-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        eprintln!(
            "{program}: --daemon: pipe: {}",
            std::io::Error::last_os_error()
        );
        std::process::exit(111);
    }
    // SAFETY: pipe2 gave us two fresh descriptors.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: single-threaded here (the documented contract).
    match unsafe { libc::fork() } {
        -1 => {
            eprintln!(
                "{program}: --daemon: fork: {}",
                std::io::Error::last_os_error()
            );
            std::process::exit(111);
        }
        0 => {
            drop(r);
            // SAFETY: plain system calls in the child.
            unsafe {
                libc::setsid();
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                if null >= 0 {
                    libc::dup2(null, 0);
                    if null > 2 {
                        libc::close(null);
                    }
                }
            }
            *READY.lock().unwrap_or_else(|e| e.into_inner()) = Some(w);
        }
        child => {
            drop(w);
            let mut f = std::fs::File::from(r);
            let mut b = [0u8; 1];
            if matches!(f.read(&mut b), Ok(1)) {
                std::process::exit(0);
            }
            let mut status = 0;
            // SAFETY: waits for our own child.
            unsafe { libc::waitpid(child, &mut status, 0) };
            let code = if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                111
            };
            std::process::exit(if code == 0 { 111 } else { code });
        }
    }
}

/// The daemon is listening: let the parent exit 0 (no-op without
/// `--daemon`, and after the first call). Stdout goes to /dev/null from
/// here on; stderr stays where it was (a log file, say).
pub fn ready() {
    let w = READY.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(w) = w {
        let mut f = std::fs::File::from(w);
        let _ = std::io::Write::write_all(&mut f, b"r");
        // SAFETY: plain system calls on our own descriptors.
        unsafe {
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
            if null >= 0 {
                libc::dup2(null, 1);
                if null > 2 {
                    libc::close(null);
                }
            }
        }
    }
}
