//! The interactive client on a real pseudo-terminal: the unknown-host-key
//! prompt (answered `yes`, then pinned) and the no-echo password prompt.

mod login_common;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use login_common::*;

fn openpty() -> (OwnedFd, OwnedFd) {
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two descriptors; null name/termios/winsize are allowed.
    let r = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(r, 0, "openpty");
    // SAFETY: both descriptors were just opened and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

fn wait_for(buf: &Mutex<Vec<u8>>, needle: &str) -> String {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let s = String::from_utf8_lossy(&buf.lock().unwrap()).into_owned();
        if s.contains(needle) {
            return s;
        }
        assert!(
            Instant::now() < end,
            "no {needle:?} on the terminal; got: {s}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn prompts_for_host_key_and_password_on_a_terminal() {
    let t = Setup::new(&[("tina", "typed secret")]);
    let port = free_udp_port();
    let d = t.daemon(port);
    let src = t.path("f.bin");
    let payload = data(50_000, 7);
    std::fs::write(&src, &payload).unwrap();
    let (master, slave) = openpty();
    let url = format!("vfer://tina@127.0.0.1:{port}/in/");
    let mut cmd = Command::new(SEND);
    cmd.args(["-q", s(&src), &url])
        .env("HOME", &t.home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("VFER_PASSWORD")
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave));
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn on a pty");
    drop(cmd);
    let mut reader = File::from(master.try_clone().unwrap());
    let mut writer = File::from(master);
    let out = Arc::new(Mutex::new(Vec::new()));
    let o = out.clone();
    std::thread::spawn(move || {
        let mut b = [0u8; 1024];
        while let Ok(n) = reader.read(&mut b) {
            if n == 0 {
                break;
            }
            o.lock().unwrap().extend_from_slice(&b[..n]);
        }
    });
    let text = wait_for(&out, "(yes/no)?");
    assert!(text.contains(&d.fingerprint), "{text}");
    writer.write_all(b"yes\n").unwrap();
    wait_for(&out, "password:");
    writer.write_all(b"typed secret\n").unwrap();
    let end = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < end, "client did not finish");
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = String::from_utf8_lossy(&out.lock().unwrap()).into_owned();
    assert!(status.success(), "{text}");
    assert!(
        !text.contains("typed secret"),
        "the password was echoed: {text}"
    );
    assert_eq!(std::fs::read(t.root.join("in/f.bin")).unwrap(), payload);
    let pins = std::fs::read_to_string(known_hosts(&t.home)).unwrap();
    assert!(pins.contains(&d.fingerprint));
}
