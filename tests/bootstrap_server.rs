//! Byte-level conformance of `vfer-recv --server` (SSH starting mode,
//! docs/PROTOCOL.md §4): the real binary, raw bytes on its stdin.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{collect, wait_code};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vfer::transport::{Config, Session};

const BIN: &str = env!("CARGO_BIN_EXE_vfer-recv");
const SECRET: [u8; 32] = [0x5a; 32];

fn server(args: &[&str]) -> std::process::Child {
    Command::new(BIN)
        .arg("--server")
        .args(args)
        .env_remove("SSH_CONNECTION")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start vfer-recv --server")
}

fn secret_msg() -> Vec<u8> {
    let mut m = b"VSL1".to_vec();
    m.extend_from_slice(&SECRET);
    m
}

/// Feeds 35 of the 36 bytes, checks silence, then the last byte.
fn feed_slowly(child: &mut std::process::Child, out: &common::Collector, err: &common::Collector) {
    let m = secret_msg();
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(&m[..35]).unwrap();
    stdin.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        out.snapshot().is_empty(),
        "stdout written before the secret was complete"
    );
    assert!(
        err.snapshot().is_empty(),
        "stderr written before the secret was complete"
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "exited before the secret was complete"
    );
    stdin.write_all(&m[35..]).unwrap();
    stdin.flush().unwrap();
    child.stdin = Some(stdin);
}

#[test]
fn replies_with_port_and_exits_0_once_client_connected() {
    let marker = common::free_udp_port().to_string();
    let range = format!("{marker}-{marker}");
    let mut child = server(&["--echo", "--port-range", &range]);
    let (out, err) = collect(&mut child);
    feed_slowly(&mut child, &out, &err);
    let reply = out.wait_for(8, Duration::from_secs(10));
    assert_eq!(reply.len(), 8, "reply {reply:?}");
    assert_eq!(&reply[..4], b"VSL1");
    let port = u32::from_be_bytes(reply[4..8].try_into().unwrap());
    assert_eq!(port.to_string(), marker, "port from --port-range");
    // Not yet daemonized: the setup process waits for the client.
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        child.try_wait().unwrap().is_none(),
        "exited before a client came"
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    let echoed = rt.block_on(async {
        let addr = format!("127.0.0.1:{port}").parse().unwrap();
        let s = Session::connect(addr, &SECRET, Config::default())
            .await
            .expect("connect");
        // The daemon is visible while the session is up (so the check for
        // leftovers below can see one).
        assert!(
            !common::processes_with(&[BIN, "--server", &range]).is_empty(),
            "server process not found by command line"
        );
        let data = common::pattern(300_000, 7);
        let (mut r, mut w) = tokio::io::split(s.stream());
        let writer = async {
            w.write_all(&data).await.unwrap();
            common::shutdown_ok(&mut w).await;
        };
        let mut back = Vec::new();
        let reader = r.read_to_end(&mut back);
        let (_, n) = tokio::join!(writer, reader);
        n.expect("read echo");
        s.close(0, "done").await;
        back == data
    });
    assert!(echoed, "echo service returned different bytes");
    assert_eq!(wait_code(&mut child, Duration::from_secs(10)), Some(0));
    assert_eq!(out.finish(), reply, "nothing after the reply on stdout");
    assert!(err.finish().is_empty(), "stderr must stay empty on success");
    // The daemon ends with its session: no leaked process.
    let left = common::wait_gone(&[BIN, "--server", &range], Duration::from_secs(10));
    assert!(left.is_empty(), "server daemon still running: {left:?}");
}

fn expect_failure(args: &[&str], input: &[u8], code: i32, needle: &str) -> String {
    let mut child = server(args);
    let (out, err) = collect(&mut child);
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(input);
    drop(stdin);
    assert_eq!(wait_code(&mut child, Duration::from_secs(20)), Some(code));
    assert!(out.finish().is_empty(), "no reply on error");
    let err = err.finish();
    assert!(err.len() <= 512, "stderr {} bytes > 512", err.len());
    let text = String::from_utf8_lossy(&err).into_owned();
    assert!(text.contains(needle), "stderr {text:?} lacks {needle:?}");
    text
}

#[test]
fn bad_magic_is_permanent() {
    let mut m = secret_msg();
    m[..4].copy_from_slice(b"VSL2");
    expect_failure(&[], &m, 21, "bad magic");
}

#[test]
fn eof_mid_secret_is_permanent() {
    expect_failure(&[], &secret_msg()[..20], 21, "20 of 36");
    expect_failure(&[], b"", 21, "0 of 36");
}

#[test]
fn bad_arguments_are_permanent_and_reported_only_after_the_secret() {
    let mut child = server(&["--no-such-flag"]);
    let (out, err) = collect(&mut child);
    feed_slowly(&mut child, &out, &err);
    drop(child.stdin.take());
    assert_eq!(wait_code(&mut child, Duration::from_secs(10)), Some(21));
    assert!(out.finish().is_empty());
    let e = String::from_utf8_lossy(&err.finish()).into_owned();
    assert!(e.contains("--no-such-flag"), "{e}");
    expect_failure(
        &["--port-range", "9-3"],
        &secret_msg(),
        21,
        "bad port range",
    );
}

#[test]
fn long_messages_are_cut_to_512_bytes() {
    // An unknown flag whose name is far longer than the limit.
    let huge = format!("--{}", "x".repeat(5000));
    let e = expect_failure(&[&huge], &secret_msg(), 21, "--xxxxxxxx");
    assert!(e.ends_with('\n'));
}

#[test]
fn no_client_is_a_temporary_error() {
    let mut child = server(&["--accept-timeout", "1"]);
    let (out, err) = collect(&mut child);
    child
        .stdin
        .as_mut()
        .unwrap()
        .write_all(&secret_msg())
        .unwrap();
    assert_eq!(out.wait_for(8, Duration::from_secs(10)).len(), 8);
    assert_eq!(wait_code(&mut child, Duration::from_secs(20)), Some(20));
    let e = String::from_utf8_lossy(&err.finish()).into_owned();
    assert!(e.contains("no client"), "{e}");
}

#[test]
fn wrong_secret_client_is_ignored() {
    let mut child = server(&["--accept-timeout", "3"]);
    let (out, err) = collect(&mut child);
    child
        .stdin
        .as_mut()
        .unwrap()
        .write_all(&secret_msg())
        .unwrap();
    let reply = out.wait_for(8, Duration::from_secs(10));
    let port = u32::from_be_bytes(reply[4..8].try_into().unwrap());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let r = rt.block_on(async {
        let cfg = Config {
            handshake_timeout: Duration::from_secs(1),
            ..Config::default()
        };
        let addr = format!("127.0.0.1:{port}").parse().unwrap();
        Session::connect(addr, &[0x11; 32], cfg).await.map(|_| ())
    });
    assert!(
        r.is_err(),
        "a client with the wrong secret must not connect"
    );
    assert_eq!(wait_code(&mut child, Duration::from_secs(20)), Some(20));
    drop(err);
}

#[test]
fn no_free_port_is_a_temporary_error() {
    // Hold the port on the dual-stack wildcard so neither family can bind it.
    let held = std::net::UdpSocket::bind("[::]:0").unwrap();
    let p = held.local_addr().unwrap().port();
    let range = format!("{p}-{p}");
    expect_failure(
        &["--port-range", &range],
        &secret_msg(),
        20,
        "no free UDP port",
    );
}
