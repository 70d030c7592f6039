//! Criterion micro-benchmarks of the hot protocol paths: unmasking (each SIMD kernel against the
//! scalar one), frame decoding in place, and UTF-8 validation. Each benchmark checks its answer
//! once before timing it. Run: `cargo bench --bench micro`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use myriad::decoder::{self, Event, Limits};
use myriad::frame::{self, MAX_HEADER, OpCode, Role};
use myriad::mask::{Kernel, apply_mask_naive};
use myriad::utf8::{self, Utf8Stream};

const KEY: [u8; 4] = [0x12, 0x34, 0x56, 0x78];

fn kernels() -> Vec<Kernel> {
    let mut k = vec![Kernel::scalar()];
    k.extend(Kernel::sse2());
    k.extend(Kernel::avx2());
    k
}

fn unmask(c: &mut Criterion) {
    let mut g = c.benchmark_group("unmask");
    for size in [16usize, 1024, 65536] {
        let data: Vec<u8> = (0..size).map(|i| (i * 31 + 7) as u8).collect();
        let mut want = data.clone();
        apply_mask_naive(&mut want, KEY, 1);
        g.throughput(Throughput::Bytes(size as u64));
        for k in kernels() {
            let mut buf = data.clone();
            k.apply(&mut buf, KEY, 1);
            assert_eq!(buf, want, "{} kernel is wrong at {size}", k.name());
            g.bench_with_input(BenchmarkId::new(k.name(), size), &size, |b, _| {
                b.iter(|| k.apply(black_box(&mut buf), KEY, 1));
            });
        }
    }
    g.finish();
}

fn masked_stream(count: usize, size: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..size).map(|i| (i * 7) as u8).collect();
    let mut out = Vec::new();
    for _ in 0..count {
        let mut h = [0u8; MAX_HEADER];
        let n = frame::encode(&mut h, true, false, OpCode::Binary, Some(KEY), size as u64);
        out.extend_from_slice(&h[..n]);
        let mut p = payload.clone();
        apply_mask_naive(&mut p, KEY, 0);
        out.extend_from_slice(&p);
    }
    out
}

fn decode(c: &mut Criterion) {
    let limits = Limits {
        role: Role::Server,
        accept_unmasked: false,
        max_frame: 1 << 24,
        max_message: 1 << 24,
        max_fragments: 1 << 18,
        compression: false,
    };
    let kernel = Kernel::detect();
    let mut g = c.benchmark_group("decode");
    for size in [16usize, 1024] {
        let stream = masked_stream(64, size);
        g.throughput(Throughput::Elements(64));
        // Check: 64 messages, each the original payload.
        let mut check = stream.clone();
        let mut partial = None;
        let mut seen = 0;
        decoder::feed(&mut partial, &mut check, &limits, kernel, &mut |ev| {
            if let Event::Binary(b) = ev {
                assert!(b.iter().enumerate().all(|(i, x)| *x == (i * 7) as u8));
                seen += 1;
            }
            true
        })
        .expect("valid stream");
        assert_eq!(seen, 64);
        let mut buf = stream.clone();
        g.bench_with_input(BenchmarkId::new("64 frames", size), &size, |b, _| {
            b.iter(|| {
                buf.copy_from_slice(&stream);
                let mut partial = None;
                let mut total = 0usize;
                let _ = decoder::feed(&mut partial, &mut buf, &limits, kernel, &mut |ev| {
                    if let Event::Binary(b) = ev {
                        total += b.len();
                    }
                    true
                });
                black_box(total)
            });
        });
    }
    g.finish();
}

fn utf8_validation(c: &mut Criterion) {
    let mut g = c.benchmark_group("utf8");
    let text = "Grüße, κόσμε, 世界 and plain ASCII too. ".repeat(400);
    let bytes = text.as_bytes();
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    assert!(utf8::is_valid(bytes));
    assert!(std::str::from_utf8(bytes).is_ok());
    let mut s = Utf8Stream::new();
    for piece in bytes.chunks(1000) {
        s.feed(piece).expect("valid");
    }
    s.finish().expect("complete");
    g.bench_function("simdutf8 whole", |b| {
        b.iter(|| utf8::is_valid(black_box(bytes)))
    });
    g.bench_function("std whole", |b| {
        b.iter(|| std::str::from_utf8(black_box(bytes)).is_ok())
    });
    g.bench_function("stream in 1000-byte pieces", |b| {
        b.iter(|| {
            let mut s = Utf8Stream::new();
            for piece in black_box(bytes).chunks(1000) {
                let _ = s.feed(piece);
            }
            s.finish().is_ok()
        })
    });
    g.finish();
}

criterion_group!(benches, unmask, decode, utf8_validation);
criterion_main!(benches);
