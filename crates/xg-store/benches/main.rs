//! Benchmarks of xg-store: the wire codec, and 40 reads pipelined versus one at a time
//! against a real C xenstored (skipped with a message when the fixture is missing).
#![allow(clippy::print_stderr)]

use criterion::{criterion_group, criterion_main, Criterion};

mod codec {
    use criterion::{black_box, Criterion};
    use xg_store::wire::{self, Decoder, MsgType};

    pub fn bench(c: &mut Criterion) {
        let frame = wire::encode(MsgType::Read, 1, 0, b"/local/domain/5/platform/acpi\0").unwrap();
        let stream: Vec<u8> = frame
            .iter()
            .copied()
            .cycle()
            .take(frame.len() * 40)
            .collect();
        c.bench_function("codec/encode_read", |b| {
            b.iter(|| wire::encode(MsgType::Read, black_box(7), 0, black_box(b"/a/b\0")))
        });
        c.bench_function("codec/decode_40_frames", |b| {
            b.iter(|| {
                let mut d = Decoder::new();
                d.feed(black_box(&stream));
                let mut n = 0;
                while let Ok(Some(_)) = d.next_frame() {
                    n += 1;
                }
                n
            })
        });
    }
}

mod pipeline {
    use criterion::Criterion;
    use xg_store::bench_support::{read_pipelined, read_sequential, write_keys};
    use xg_store::fixture::{Daemon, Flavour};

    pub fn bench(c: &mut Criterion) {
        let daemon = match Daemon::start(Flavour::C) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("pipeline benches skipped: {e}");
                return;
            }
        };
        let client = daemon.client().unwrap();
        let keys = write_keys(&client, 40).unwrap();
        let mut group = c.benchmark_group("xenstored_40_reads");
        group.bench_function("one_at_a_time", |b| {
            b.iter(|| read_sequential(&client, &keys).unwrap())
        });
        group.bench_function("pipelined", |b| {
            b.iter(|| read_pipelined(&client, &keys).unwrap())
        });
        group.finish();
    }
}

fn all(c: &mut Criterion) {
    codec::bench(c);
    pipeline::bench(c);
}

criterion_group!(benches, all);
criterion_main!(benches);
