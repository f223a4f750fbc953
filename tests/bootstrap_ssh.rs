//! SSH starting mode end to end through a real, private OpenSSH server
//! (tests/common/sshd.rs): the client runs the user's ssh, the remote side
//! is the built `vfer-recv`/`vfer-send --server`, found through the remote
//! PATH like in real use.

mod common;

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vfer::bootstrap::ssh_client::{self, RemoteRole, SshOptions, SshTarget};
use vfer::bootstrap::{BootstrapError, Session};

fn bin_dir() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_vfer-recv"))
        .parent()
        .expect("bin dir")
}

async fn echo_roundtrip(s: Session, len: usize) {
    let data = common::pattern(len, 3);
    let (mut r, mut w) = tokio::io::split(s.stream());
    let writer = async {
        w.write_all(&data).await.expect("write");
        common::shutdown_ok(&mut w).await;
    };
    let mut back = Vec::new();
    let (_, n) = tokio::join!(writer, r.read_to_end(&mut back));
    n.expect("read");
    assert!(
        back == data,
        "echo differs ({} of {} bytes)",
        back.len(),
        len
    );
    s.close(0, "done").await;
}

fn opts(sshd: &common::sshd::Sshd, args: &[&str]) -> SshOptions {
    SshOptions {
        rsh: Some(sshd.rsh()),
        remote_args: args.iter().map(|s| s.to_string()).collect(),
        reply_timeout: Duration::from_secs(20),
        ..SshOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_and_pull_through_real_sshd() {
    let Some(sshd) = common::sshd::Sshd::start(bin_dir()) else {
        return;
    };
    let target = SshTarget::parse("127.0.0.1").unwrap();
    for role in [RemoteRole::Recv, RemoteRole::Send] {
        let p = common::free_udp_port();
        let range = format!("{p}-{p}");
        let o = opts(&sshd, &["--echo", "--port-range", &range]);
        let t = std::time::Instant::now();
        let s = ssh_client::connect(&target, role, &o)
            .await
            .unwrap_or_else(|e| panic!("{role:?}: {e}"));
        eprintln!("ssh mode ({role:?}): session up in {:?}", t.elapsed());
        assert_eq!(s.peer().port(), p);
        echo_roundtrip(s, 2 << 20).await;
        // The remote server (a daemon by now) ends with its session.
        let left = common::wait_gone(
            &[role.program(), "--server", &range],
            Duration::from_secs(10),
        );
        assert!(
            left.is_empty(),
            "{role:?}: remote server left running: {left:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_errors_reach_the_user_with_the_host_name() {
    let Some(sshd) = common::sshd::Sshd::start(bin_dir()) else {
        return;
    };
    let target = SshTarget::parse("127.0.0.1").unwrap();

    let e = ssh_client::connect(&target, RemoteRole::Recv, &opts(&sshd, &["--frobnicate"]))
        .await
        .map(|_| ())
        .unwrap_err();
    eprintln!("{e}");
    assert!(matches!(e, BootstrapError::RemotePermanent { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.starts_with("127.0.0.1: ") && text.contains("--frobnicate"),
        "{text}"
    );

    // Temporary: every port of the range is taken.
    let held = std::net::UdpSocket::bind("[::]:0").unwrap();
    let p = held.local_addr().unwrap().port();
    let range = format!("{p}-{p}");
    let e = ssh_client::connect(
        &target,
        RemoteRole::Recv,
        &opts(&sshd, &["--port-range", &range]),
    )
    .await
    .map(|_| ())
    .unwrap_err();
    eprintln!("{e}");
    assert!(matches!(e, BootstrapError::RemoteTemporary { .. }), "{e:?}");
    assert!(e.to_string().contains("no free UDP port"), "{e}");

    let mut o = opts(&sshd, &[]);
    o.remote_path = Some("/nonexistent/vfer-recv".into());
    let e = ssh_client::connect(&target, RemoteRole::Recv, &o)
        .await
        .map(|_| ())
        .unwrap_err();
    eprintln!("{e}");
    assert!(matches!(e, BootstrapError::RemoteNotFound { .. }), "{e:?}");

    let mut o = opts(&sshd, &[]);
    o.rsh = Some(sshd.rsh_with_port(common::free_tcp_port()));
    let e = ssh_client::connect(&target, RemoteRole::Recv, &o)
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(e, BootstrapError::CommandFailed { .. }) && e.to_string().contains("255"),
        "{e:?}"
    );
}
