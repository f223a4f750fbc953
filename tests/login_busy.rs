//! Issue 19 for challenge-response daemons: past `-n`, a login daemon
//! answers a client's REQUEST with BUSY (under the secret of its
//! pre-handshake, which it keeps for the retry), like a key-file daemon:
//! the client backs off and gets in when a slot frees, or fails with exit
//! 111 and a message saying the daemon was busy when its `--timeout` runs
//! out. No wall-clock performance is asserted.

mod login_common;

use std::fs;
use std::time::Duration;

use login_common::*;

#[test]
fn a_full_login_daemon_answers_busy_and_the_client_retries_then_says_so() {
    let t = Setup::new(&[("alice", "correct horse")]);
    let port = free_udp_port();
    let _d = Daemon::start(&t.users, &t.root, &t.host_key, port, &["-n", "1"]);
    // Pin the host key first, so later clients need no flag.
    let small = t.path("small");
    fs::write(&small, data(10_000, 2)).unwrap();
    let url = |name: &str| format!("vfer://alice@127.0.0.1:{port}/in/{name}");
    let out = run(client(
        SEND,
        &t.home,
        "correct horse",
        &["--accept-new-host-key", s(&small), &url("pin")],
    ));
    assert!(out.status.success(), "{}", stderr(&out));

    // Hold the only slot: 3 MB at 2 Mbit/s is about 12 s.
    let big = t.path("big");
    fs::write(&big, data(3_000_000, 1)).unwrap();
    let mut holder = client(
        SEND,
        &t.home,
        "correct horse",
        &["-q", "--limit", "2M", s(&big), &url("big")],
    )
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(2500));

    // A client whose timeout runs out while the slot is held: exit 111
    // and a message that says the daemon was busy (it used to hear
    // nothing and report a handshake timeout).
    let out = run(client(
        SEND,
        &t.home,
        "correct horse",
        &["--timeout", "3", s(&small), &url("short")],
    ));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(111), "{err}");
    assert!(err.contains("busy"), "{err}");
    assert!(!t.root.join("in/short").exists());

    // A patient client: it backs off, and gets in once the slot is free.
    let out = run(client(
        SEND,
        &t.home,
        "correct horse",
        &["--timeout", "60", s(&small), &url("patient")],
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        fs::read(t.root.join("in/patient")).unwrap(),
        data(10_000, 2)
    );
    assert!(holder.wait().unwrap().success());
    assert_eq!(fs::read(t.root.join("in/big")).unwrap(), data(3_000_000, 1));
}
