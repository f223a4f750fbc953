//! Core dumps off in every vfer process: each holds a session secret, a
//! key file's key, a host key or a password, and a core file (or a
//! debugger attached by another process of the same user) would show it.

/// Sets `RLIMIT_CORE` to 0 (no core file) and, on Linux, the process
/// non-dumpable (no core, no ptrace attach by other processes of the same
/// user, /proc/PID/mem unreadable to them). Failures are ignored: the
/// process still works, only less hardened.
pub fn disable() {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls with valid arguments.
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &zero);
        #[cfg(target_os = "linux")]
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
}

/// Is this process non-dumpable with a zero core limit?
pub fn disabled() -> bool {
    let mut lim = libc::rlimit {
        rlim_cur: 1,
        rlim_max: 1,
    };
    // SAFETY: plain syscalls with a valid out-pointer.
    let (r, dumpable) = unsafe {
        (
            libc::getrlimit(libc::RLIMIT_CORE, &mut lim),
            libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0),
        )
    };
    r == 0 && lim.rlim_cur == 0 && dumpable == 0
}
