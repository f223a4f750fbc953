//! The service layer without the command line: a file daemon run in
//! process on the one runner, a client that reaches it with
//! `service::connect`, asks for a pull with a rate cap, and a stop that
//! winds the daemon down.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use vfer::service::connect::{self, Reach};
use vfer::service::daemons::{files_daemon, FileDaemonOptions};
use vfer::service::request::{Request, Service, SessionOptions};
use vfer::service::runner::RunnerOptions;
use vfer::transfer::{self, Dest, ReceiveOptions};
use vfer::transport::Config;
use vfer::tunnel::ending;
use vfer::tunnel::keys::KeySource;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_from_an_in_process_daemon_then_stop_it() {
    let d = tempfile::tempdir().unwrap();
    fs::create_dir(d.path().join("root")).unwrap();
    let data = common::pattern(300_000, 9);
    fs::write(d.path().join("root/f"), &data).unwrap();
    let key = d.path().join("key");
    fs::write(&key, [3u8; 32]).unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    let port = common::free_udp_port();
    let listen = format!("127.0.0.1:{port}").parse().unwrap();
    let pidfile = d.path().join("pid");
    let opts = FileDaemonOptions {
        runner: RunnerOptions {
            pidfile: Some(pidfile.clone()),
            ..RunnerOptions::new(listen, Config::default())
        },
        keys: KeySource::File(key.clone()),
        root: d.path().join("root"),
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let daemon = tokio::spawn(files_daemon(opts, stop_rx));
    while !pidfile.exists() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reach = Reach {
        key_file: Some(key),
        ..Reach::default()
    };
    let session = connect::key_file_session("127.0.0.1", port, &reach)
        .await
        .unwrap();
    let mut req = Request::new(
        Service::Pull,
        SessionOptions {
            rate_cap: Some(10_000_000),
            fixed_rate: None,
            pad: false,
        },
    );
    req.paths = vec!["f".into()];
    req.write(&mut session.stream()).await.unwrap();
    let got = d.path().join("got");
    let summary = transfer::receive(
        session.stream(),
        Dest::Path(got.clone()),
        &ReceiveOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(summary.files, 1);
    ending::close(session, 0).await;
    assert_eq!(fs::read(&got).unwrap(), data);
    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(20), daemon)
        .await
        .expect("the daemon wound down")
        .unwrap()
        .unwrap();
}
