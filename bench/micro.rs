//! Criterion micro-benchmarks of the hot protocol paths: unmasking (each SIMD kernel against the
//! scalar one), frame decoding in place, UTF-8 validation, and permessage-deflate in its three
//! ways of keeping state (shared streams reset per message, a window re-primed into the shared
//! inflater, dedicated streams). Each benchmark checks its answer once before timing it.
//! Run: `cargo bench --bench micro` (or `-- deflate` for one group).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use myriad::proto::decoder::{Decoder, Event};
use myriad::proto::deflate::{Deflater, Inflater, Window};
use myriad::proto::frame::{self, MAX_HEADER, OpCode};
use myriad::proto::mask::{Kernel, apply_mask_naive};
use myriad::proto::utf8::{self, Utf8Stream};
use myriad::proto::{Limits, Role};

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
    };
    let kernel = Kernel::detect();
    let mut g = c.benchmark_group("decode");
    for size in [16usize, 1024] {
        let stream = masked_stream(64, size);
        g.throughput(Throughput::Elements(64));
        // Check: 64 messages, each the original payload.
        let mut check = stream.clone();
        let mut seen = 0;
        Decoder::new()
            .feed(&mut check, &limits, false, kernel, &mut |ev| {
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
                let mut decoder = Decoder::new();
                let mut total = 0usize;
                let _ = decoder.feed(&mut buf, &limits, false, kernel, &mut |ev| {
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

/// JSON-like messages of about `size` bytes, each a little different.
fn json_like(size: usize, seq: usize) -> Vec<u8> {
    let mut s = String::from("[");
    let mut i = 0;
    while s.len() < size {
        s.push_str(&format!(
            "{{\"id\":{},\"sym\":\"SYM{}\",\"px\":{}.{:02},\"qty\":{}}},",
            seq * 1000 + i,
            i % 17,
            100 + (i * 7 + seq) % 50,
            (i * 13) % 100,
            (i * 31) % 1000
        ));
        i += 1;
    }
    s.truncate(size - 1);
    s.push(']');
    s.into_bytes()
}

fn deflate(c: &mut Criterion) {
    let mut g = c.benchmark_group("deflate");
    for size in [100usize, 1024, 16384] {
        let msgs: Vec<Vec<u8>> = (0..16).map(|k| json_like(size, k)).collect();
        g.throughput(Throughput::Bytes((size * msgs.len()) as u64));
        // Shared: one stream, reset after each message (server_no_context_takeover).
        let mut shared = Deflater::new(15, 6);
        let mut inflater = Inflater::new();
        let mut z = Vec::new();
        let mut back = Vec::new();
        for m in &msgs {
            z.clear();
            back.clear();
            shared.compress(m, true, &mut z);
            inflater
                .inflate(&[&z], None, 1 << 24, &mut back)
                .expect("inflate");
            assert_eq!(&back, m);
        }
        g.bench_with_input(BenchmarkId::new("compress shared", size), &size, |b, _| {
            b.iter(|| {
                for m in &msgs {
                    z.clear();
                    shared.compress(black_box(m), true, &mut z);
                }
            })
        });
        // Dedicated: context kept across messages.
        let mut dedicated = Deflater::new(15, 6);
        g.bench_with_input(
            BenchmarkId::new("compress dedicated", size),
            &size,
            |b, _| {
                b.iter(|| {
                    for m in &msgs {
                        z.clear();
                        dedicated.compress(black_box(m), false, &mut z);
                    }
                })
            },
        );
        // Inflate, shared (no context).
        let plain: Vec<Vec<u8>> = msgs
            .iter()
            .map(|m| {
                let mut out = Vec::new();
                Deflater::new(15, 6).compress(m, true, &mut out);
                out
            })
            .collect();
        g.bench_with_input(BenchmarkId::new("inflate shared", size), &size, |b, _| {
            b.iter(|| {
                for p in &plain {
                    back.clear();
                    let _ = inflater.inflate(&[black_box(p)], None, 1 << 24, &mut back);
                }
            })
        });
        // Inflate with the client's context: the connection's window re-primed each message.
        let mut client = Deflater::new(15, 6);
        let with_context: Vec<Vec<u8>> = msgs
            .iter()
            .map(|m| {
                let mut out = Vec::new();
                client.compress(m, false, &mut out);
                out
            })
            .collect();
        let mut window = Window::new(15);
        for (p, m) in with_context.iter().zip(&msgs) {
            back.clear();
            let primed = (!window.bytes().is_empty()).then(|| window.bytes());
            inflater
                .inflate(&[p], primed, 1 << 24, &mut back)
                .expect("primed inflate");
            window.push(&back);
            assert_eq!(&back, m);
        }
        g.bench_with_input(BenchmarkId::new("inflate window", size), &size, |b, _| {
            b.iter(|| {
                let mut w = Window::new(15);
                for p in &with_context {
                    back.clear();
                    let primed = (!w.bytes().is_empty()).then(|| w.bytes());
                    let _ = inflater.inflate(&[black_box(p)], primed, 1 << 24, &mut back);
                    w.push(&back);
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, unmask, decode, utf8_validation, deflate);
criterion_main!(benches);
