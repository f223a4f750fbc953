//! `--pad` behind a login (challenge-response mode, §7): the version 3
//! request follows the login verdict and the program's bytes travel in
//! records, both ways, intact.

mod login_common;

use std::process::Stdio;

use login_common::*;

#[test]
fn a_padded_program_behind_a_login() {
    let t = Setup::new(&[("alice", "wonderland")]);
    let port = free_udp_port();
    let d = Daemon::serving(
        &format!("127.0.0.1:{port}"),
        &t.users,
        &t.host_key,
        port,
        &["--pad", "--exec", "cat"],
    );
    let url = format!("vfer://alice@127.0.0.1:{port}");
    let pin = ["--host-key-fingerprint", d.fingerprint.as_str()];
    let input = t.path("in");
    let sent = data(1_000_001, 3);
    std::fs::write(&input, &sent).unwrap();
    let mut c = client(SEND, &t.home, "wonderland", &["--pad", "--exec", "-", &url]);
    c.args(pin)
        .stdin(Stdio::from(std::fs::File::open(&input).unwrap()));
    let out = run(c);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(out.stdout == sent, "{} bytes came back", out.stdout.len());
    // Without --pad: refused after the login, by name.
    let mut c = client(SEND, &t.home, "wonderland", &["--exec", "-", &url]);
    c.args(pin);
    let out = run(c);
    assert_eq!(out.status.code(), Some(111), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("run the client with --pad"),
        "{}",
        stderr(&out)
    );
}
