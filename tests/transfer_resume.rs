//! Interruption and resume: a stream cut mid-file leaves a verified-prefix
//! `.vfer-part`; the next session sends only the rest, or the whole file
//! if the source changed. Also large sparse files.

#[path = "transfer_util/mod.rs"]
mod util;

use std::fs;
use std::io::Write;

use util::*;
use vfer::transfer::{Dest, ReceiveOptions, SendOptions, Source, TransferError};

const SIZE: usize = 8 * 1024 * 1024 + 12_345;

async fn interrupted(src: &std::path::Path, dst: &std::path::Path) -> u64 {
    let (s, r) = run_cut(
        vec![Source::Path(src.to_owned())],
        Dest::Path(dst.to_owned()),
        (SIZE / 2) as u64,
        &SendOptions::default(),
        &ReceiveOptions::default(),
    )
    .await;
    let e = r.unwrap_err();
    assert!(
        matches!(e, TransferError::TruncatedFrame),
        "a connection cut mid-frame is named: {e}"
    );
    assert!(s.is_err());
    let name = src.file_name().unwrap().to_string_lossy().into_owned();
    assert!(!dst.join(&name).exists(), "no complete-looking file");
    let part = dst.join(format!("{name}.vfer-part"));
    let kept = fs::metadata(&part).unwrap().len();
    assert!(kept > 0 && kept < SIZE as u64, "kept {kept}");
    kept
}

#[tokio::test]
async fn resume_sends_only_the_missing_part() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let body = data(SIZE, 11);
    let f = src.path().join("big.bin");
    fs::write(&f, &body).unwrap();
    let kept = interrupted(&f, dst.path()).await;
    assert!(kept > (SIZE as u64) / 3, "about half arrived: {kept}");

    let (s, r) = run(
        vec![Source::Path(f.clone())],
        Dest::Path(dst.path().to_owned()),
        &SendOptions::default(),
        &ReceiveOptions::default(),
    )
    .await;
    let (s, r) = (s.unwrap(), r.unwrap());
    assert_eq!(r.bytes, SIZE as u64 - kept, "only the rest crossed");
    assert_eq!(s.bytes, SIZE as u64 - kept);
    assert_eq!(r.bytes_skipped, kept);
    assert_eq!(fs::read(dst.path().join("big.bin")).unwrap(), body);
    assert!(parts(dst.path()).is_empty());
}

/// FILE_END's check is XXH3-128 when both ends offer it and BLAKE3 when
/// either does not (PROTOCOL §6.7); a resume continues the check from the
/// kept prefix in either case, and a peer that offers only BLAKE3 (an older
/// build, another implementation) interoperates both ways.
#[tokio::test]
async fn resume_works_with_either_check_on_either_side() {
    for (send_b3, recv_b3) in [(false, false), (true, false), (false, true), (true, true)] {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let body = data(SIZE, 13);
        let f = src.path().join("big.bin");
        fs::write(&f, &body).unwrap();
        let kept = interrupted(&f, dst.path()).await;
        let so = SendOptions {
            blake3_only: send_b3,
            ..SendOptions::default()
        };
        let ro = ReceiveOptions {
            blake3_only: recv_b3,
            ..ReceiveOptions::default()
        };
        let (s, r) = run(
            vec![Source::Path(f.clone())],
            Dest::Path(dst.path().to_owned()),
            &so,
            &ro,
        )
        .await;
        let case = format!("source BLAKE3-only {send_b3}, sink BLAKE3-only {recv_b3}");
        let (s, r) = (s.expect(&case), r.expect(&case));
        assert!(r.failures.is_empty(), "{case}: {:?}", r.failures);
        assert_eq!(r.bytes_skipped, kept, "{case}");
        assert_eq!(s.bytes, SIZE as u64 - kept, "{case}");
        assert_eq!(
            fs::read(dst.path().join("big.bin")).unwrap(),
            body,
            "{case}"
        );
    }
}

#[tokio::test]
async fn a_changed_source_is_sent_whole() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let mut body = data(SIZE, 12);
    let f = src.path().join("big.bin");
    fs::write(&f, &body).unwrap();
    interrupted(&f, dst.path()).await;

    // Change a byte inside the prefix the sink already holds.
    body[100] ^= 1;
    fs::write(&f, &body).unwrap();
    let (_, r) = run(
        vec![Source::Path(f.clone())],
        Dest::Path(dst.path().to_owned()),
        &SendOptions::default(),
        &ReceiveOptions::default(),
    )
    .await;
    let r = r.unwrap();
    assert_eq!(r.bytes, SIZE as u64, "whole file re-sent");
    assert_eq!(r.bytes_skipped, 0);
    assert_eq!(fs::read(dst.path().join("big.bin")).unwrap(), body);
}

#[tokio::test]
async fn a_source_shorter_than_the_part_is_sent_whole() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let f = src.path().join("big.bin");
    fs::write(&f, data(SIZE, 13)).unwrap();
    interrupted(&f, dst.path()).await;
    let small = data(1000, 14);
    fs::write(&f, &small).unwrap();
    let (_, r) = run(
        vec![Source::Path(f.clone())],
        Dest::Path(dst.path().to_owned()),
        &SendOptions::default(),
        &ReceiveOptions::default(),
    )
    .await;
    assert_eq!(r.unwrap().bytes, 1000);
    assert_eq!(fs::read(dst.path().join("big.bin")).unwrap(), small);
}

#[tokio::test]
async fn resume_can_be_turned_off() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let f = src.path().join("big.bin");
    fs::write(&f, data(SIZE, 15)).unwrap();
    interrupted(&f, dst.path()).await;
    let opts = ReceiveOptions {
        resume: false,
        ..Default::default()
    };
    let (_, r) = run(
        vec![Source::Path(f.clone())],
        Dest::Path(dst.path().to_owned()),
        &SendOptions::default(),
        &opts,
    )
    .await;
    assert_eq!(r.unwrap().bytes, SIZE as u64);
}

async fn sparse_roundtrip(len: u64) {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let f = src.path().join("sparse");
    let mut file = fs::File::create(&f).unwrap();
    file.set_len(len).unwrap();
    // Some real bytes in the middle and at the end.
    use std::io::{Seek, SeekFrom};
    file.seek(SeekFrom::Start(len / 2)).unwrap();
    file.write_all(b"middle").unwrap();
    file.seek(SeekFrom::Start(len - 3)).unwrap();
    file.write_all(b"end").unwrap();
    drop(file);
    let (s, r) = run(
        vec![Source::Path(f.clone())],
        Dest::Path(dst.path().to_owned()),
        &SendOptions::default(),
        &ReceiveOptions::default(),
    )
    .await;
    assert_eq!(s.unwrap().bytes, len);
    assert_eq!(r.unwrap().bytes, len);
    let out = dst.path().join("sparse");
    assert_eq!(fs::metadata(&out).unwrap().len(), len);
    let hash_of = |p: &std::path::Path| {
        let mut h = blake3::Hasher::new();
        h.update_reader(fs::File::open(p).unwrap()).unwrap();
        h.finalize()
    };
    assert_eq!(hash_of(&f), hash_of(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sparse_file_64_mib() {
    sparse_roundtrip(64 << 20).await;
}

/// The 2 GiB sparse file (needs 2 GiB of free disk at the
/// destination; run with `cargo test --release -- --ignored`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn sparse_file_2_gib() {
    sparse_roundtrip(2 << 30).await;
}

#[tokio::test]
async fn same_size_files_are_compared_by_hash_not_mtime() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let f = src.path().join("same.bin");
    let body = data(SIZE, 21);
    fs::write(&f, &body).unwrap();
    let preserve = SendOptions {
        preserve: true,
        ..SendOptions::default()
    };
    let recv = ReceiveOptions::default();
    let send = || {
        run(
            vec![Source::Path(f.clone())],
            Dest::Path(dst.path().to_owned()),
            &preserve,
            &recv,
        )
    };
    // An identical copy with another mtime is not sent again, and -p gives
    // it the source's mtime.
    fs::write(dst.path().join("same.bin"), &body).unwrap();
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
    fs::File::options()
        .write(true)
        .open(&f)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let r = send().await.1.unwrap();
    assert_eq!((r.bytes, r.bytes_skipped), (0, SIZE as u64));
    let got = fs::metadata(dst.path().join("same.bin")).unwrap();
    assert_eq!(got.modified().unwrap(), old);

    // Same size, other bytes: the whole file is sent.
    let mut other = body.clone();
    other[SIZE - 1] ^= 0x80;
    fs::write(dst.path().join("same.bin"), &other).unwrap();
    let r = send().await.1.unwrap();
    assert_eq!((r.bytes, r.bytes_skipped), (SIZE as u64, 0));
    assert_eq!(fs::read(dst.path().join("same.bin")).unwrap(), body);
}
