//! Local mode: the server side as a local child over pipes (the exact SSH
//! starting-mode bytes), the data over loopback UDP.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vfer::bootstrap::local::{self, LocalOptions};
use vfer::bootstrap::ssh_client::RemoteRole;
use vfer::bootstrap::BootstrapError;

fn opts(program: &str, args: &[&str]) -> LocalOptions {
    LocalOptions {
        program: Some(PathBuf::from(program)),
        server_args: args.iter().map(|s| s.to_string()).collect(),
        reply_timeout: Duration::from_secs(10),
        ..LocalOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_echo_session() {
    for bin in [
        env!("CARGO_BIN_EXE_vfer-recv"),
        env!("CARGO_BIN_EXE_vfer-send"),
    ] {
        let p = common::free_udp_port();
        let range = format!("{p}-{p}");
        let t = std::time::Instant::now();
        let s = local::connect(
            RemoteRole::Recv,
            &opts(bin, &["--echo", "--port-range", &range]),
        )
        .await
        .unwrap_or_else(|e| panic!("{bin}: {e}"));
        eprintln!("local mode: session up in {:?}", t.elapsed());
        let data = common::pattern(1 << 20, 9);
        let (mut r, mut w) = tokio::io::split(s.stream());
        let writer = async {
            w.write_all(&data).await.unwrap();
            common::shutdown_ok(&mut w).await;
        };
        let mut back = Vec::new();
        let (_, n) = tokio::join!(writer, r.read_to_end(&mut back));
        n.unwrap();
        assert!(back == data, "echo differs");
        s.close(0, "done").await;
        let left = common::wait_gone(&[bin, "--server", &range], Duration::from_secs(10));
        assert!(left.is_empty(), "server left running: {left:?}");
    }
}

#[tokio::test]
async fn local_errors_are_classified() {
    let bin = env!("CARGO_BIN_EXE_vfer-recv");
    let e = local::connect(RemoteRole::Recv, &opts(bin, &["--nope"]))
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(e, BootstrapError::RemotePermanent { .. }), "{e:?}");
    assert!(e.to_string().contains("--nope"), "{e}");

    // A program that prints text instead of the port reply.
    let e = local::connect(RemoteRole::Recv, &opts("/bin/echo", &["hello", "world"]))
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(e, BootstrapError::BadReply { .. }), "{e:?}");
    assert!(e.to_string().contains("--server hello"), "{e}");

    let e = local::connect(RemoteRole::Recv, &opts("/nonexistent/vfer-recv", &[]))
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(e, BootstrapError::Spawn { .. }), "{e:?}");

    // A server that never replies: the client gives up after its timeout.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("silent-server");
    std::fs::write(&script, "#!/bin/sh\nexec sleep 30\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut o = opts(script.to_str().unwrap(), &[]);
    o.reply_timeout = Duration::from_millis(500);
    let e = local::connect(RemoteRole::Recv, &o)
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(e, BootstrapError::NoReply { .. }), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_mode_over_each_address_family() {
    let bin = env!("CARGO_BIN_EXE_vfer-recv");
    for fam in ["-4", "-6"] {
        let s = match local::connect(RemoteRole::Recv, &opts(bin, &["--echo", fam])).await {
            Ok(s) => s,
            Err(e) if fam == "-6" && std::net::UdpSocket::bind("[::1]:0").is_err() => {
                eprintln!("SKIPPED -6: no IPv6 loopback ({e})");
                continue;
            }
            Err(e) => panic!("{fam}: {e}"),
        };
        assert_eq!(s.peer().is_ipv6(), fam == "-6", "{fam}: peer {}", s.peer());
        let (mut r, mut w) = tokio::io::split(s.stream());
        let writer = async {
            w.write_all(b"ping").await.unwrap();
            common::shutdown_ok(&mut w).await;
        };
        let mut back = Vec::new();
        let (_, n) = tokio::join!(writer, r.read_to_end(&mut back));
        n.unwrap();
        assert_eq!(back, b"ping");
        s.close(0, "done").await;
    }
}
