//! VSL throughput: seal and open at 1,400 and 8,900-byte payloads, beside raw
//! AES-256-CTR and raw HMAC-SHA256 over the same bytes, so the packet layer's
//! overhead reads as a ratio (seal ≈ ctr + hmac + header; the rest is ours).
//!
//! `cargo bench --bench vsl` (add `-- --measurement-time 2` to shorten).

use std::hint::black_box;
use std::time::Duration;

use aes::cipher::{InnerIvInit, KeyInit, StreamCipher};
use aes::Aes256;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use vfer::vsl::{Role, Session, SessionKeys, HEADER_LEN};

const SIZES: [usize; 2] = [1400, 8900];

fn bench(c: &mut Criterion) {
    let keys = SessionKeys::derive(&[1; 32], &[2; 32], &[3; 32], None);
    for size in SIZES {
        let mut g = c.benchmark_group(format!("vsl_{size}"));
        g.throughput(Throughput::Bytes(size as u64));

        // Raw AES-256-CTR: keyed once, state cloned per packet (as vfer does).
        let aes = Aes256::new(&keys.c2s.enc.into());
        let mut data = vec![0x5au8; size];
        g.bench_function("raw_aes256_ctr", |b| {
            b.iter(|| {
                let core = ctr::CtrCore::<Aes256, ctr::flavors::Ctr64BE>::inner_iv_init(
                    aes.clone(),
                    &[0u8; 16].into(),
                );
                let mut c = ctr::Ctr64BE::<Aes256>::from_core(core);
                c.apply_keystream(black_box(&mut data));
            })
        });

        // Raw HMAC-SHA256 over the same bytes: keyed once, cloned per packet.
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&keys.c2s.mac).expect("32-byte key");
        g.bench_function("raw_hmac_sha256", |b| {
            b.iter(|| {
                let mut m = mac.clone();
                m.update(black_box(&data));
                black_box(m.finalize().into_bytes())
            })
        });

        // Seal in place: header + CTR + HMAC.
        let mut tx = Session::new(&keys, Role::Client, 0);
        let mut buf = vec![0x5au8; HEADER_LEN + size];
        g.bench_function("seal", |b| {
            b.iter(|| {
                black_box(
                    tx.sealer
                        .seal_in_place(0, black_box(&mut buf))
                        .expect("seal"),
                );
            })
        });

        // Open: a fresh genuine packet per iteration (the replay window
        // rejects repeats); sealing it is setup, not timed.
        let mut sender = Session::new(&keys, Role::Client, 0);
        let mut rx = Session::new(&keys, Role::Server, 0);
        g.bench_function("open", |b| {
            b.iter_batched_ref(
                || {
                    let mut p = vec![0x5au8; HEADER_LEN + size];
                    sender.sealer.seal_in_place(0, &mut p).expect("seal");
                    p
                },
                |p| {
                    black_box(rx.opener.open(p).expect("open").payload.len());
                },
                BatchSize::SmallInput,
            )
        });
        g.finish();
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

criterion_group! { name = benches; config = config(); targets = bench }
criterion_main!(benches);
