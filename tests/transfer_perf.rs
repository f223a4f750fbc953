//! Measurements, ignored by default (they print numbers, they assert no
//! speed): the hash choice and a big transfer for peak-memory checks.
//!
//! ```text
//! cargo test --release --test transfer_perf -- --ignored --nocapture hash_speed
//! VFER_PERF_GIB=10 /usr/bin/time -v target/release/deps/transfer_perf-* --ignored --nocapture big_transfer
//! ```

#[path = "transfer_util/mod.rs"]
mod util;

use std::time::Instant;

use sha2::Digest;
use util::*;
use vfer::transfer::{Dest, ReceiveOptions, SendOptions, Source};

#[test]
#[ignore]
fn hash_speed() {
    // 256 KiB chunks, as the transfer hashes them, over 1 GiB.
    let chunk = data(256 * 1024, 1);
    let n = 4096;
    let t = Instant::now();
    let mut h = blake3::Hasher::new();
    for _ in 0..n {
        h.update(&chunk);
    }
    std::hint::black_box(h.finalize());
    let b3 = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut h = sha2::Sha256::new();
    for _ in 0..n {
        h.update(&chunk);
    }
    std::hint::black_box(h.finalize());
    let sha = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut h = twox_hash::XxHash3_128::new();
    for _ in 0..n {
        h.write(&chunk);
    }
    std::hint::black_box(h.finish_128());
    let xxh3 = t.elapsed().as_secs_f64();
    let gb = (n * chunk.len()) as f64 / 1e9;
    println!(
        "BLAKE3 {:.2} GB/s, SHA-256 {:.2} GB/s, XXH3-128 {:.2} GB/s \
         (1 GiB in 256 KiB chunks, one thread)",
        gb / b3,
        gb / sha,
        gb / xxh3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn big_transfer() {
    let gib: u64 = std::env::var("VFER_PERF_GIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let f = src.path().join("sparse");
    std::fs::File::create(&f)
        .unwrap()
        .set_len(gib << 30)
        .unwrap();
    let t = Instant::now();
    let (s, r) = run(
        vec![Source::Path(f)],
        Dest::Path(dst.path().to_owned()),
        &SendOptions::default(),
        &ReceiveOptions::default(),
    )
    .await;
    let secs = t.elapsed().as_secs_f64();
    let (s, r) = (s.unwrap(), r.unwrap());
    assert_eq!(r.bytes, gib << 30);
    assert_eq!(s.bytes, gib << 30);
    println!(
        "{gib} GiB sparse file over a duplex pipe (read, hash x2, frame, write, fsync): {secs:.1} s, {:.2} GB/s",
        (gib << 30) as f64 / secs / 1e9
    );
}
