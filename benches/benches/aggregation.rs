//! Aggregation + encoding throughput, with raw MD5 over the same bytes as the yardstick:
//! every aggregate ends in an MD5 of its body, so MD5 speed bounds this stage.

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kinesis_common::aggregation::{Aggregator, DEFAULT_MAX_AGGREGATE_BYTES, deaggregate};
use kinesis_common::{HashKey, UserRecord};
use md5::{Digest, Md5};
use std::hint::black_box;

const RECORDS: usize = 10_000;

fn records(size: usize) -> Vec<(UserRecord, HashKey)> {
    (0..RECORDS)
        .map(|i| {
            let record =
                UserRecord::new(format!("pk-{i}"), Bytes::from(vec![(i % 251) as u8; size]));
            let hash = HashKey::from_partition_key(&record.partition_key);
            (record, hash)
        })
        .collect()
}

fn aggregate_all(input: &[(UserRecord, HashKey)]) -> usize {
    let mut agg = Aggregator::new(DEFAULT_MAX_AGGREGATE_BYTES).expect("valid limit");
    let mut out = 0;
    for (record, hash) in input {
        if agg.try_add(record, *hash).is_err() {
            out += agg.finish().map_or(0, |r| r.data.len());
            agg.try_add(record, *hash)
                .expect("empty aggregator takes any record");
        }
    }
    out + agg.finish().map_or(0, |r| r.data.len())
}

fn bench(c: &mut Criterion) {
    for size in [100usize, 1024] {
        let input = records(size);
        let payload: usize = input
            .iter()
            .map(|(r, _)| r.data.len() + r.partition_key.len())
            .sum();
        let mut group = c.benchmark_group(format!("aggregate_{size}B"));
        group.throughput(Throughput::Elements(RECORDS as u64));
        group.bench_function("aggregate+encode", |b| {
            b.iter(|| black_box(aggregate_all(&input)))
        });
        // MD5 over the same bytes in one pass: what the checksum alone costs.
        let flat: Vec<u8> = input
            .iter()
            .flat_map(|(r, _)| r.data.iter().copied())
            .collect();
        group.bench_function("raw_md5_same_bytes", |b| {
            b.iter(|| black_box(Md5::digest(&flat)))
        });
        // Records come in with their partition key hashed: the producer's full per-record cost.
        group.bench_function("hash_key+aggregate+encode", |b| {
            b.iter(|| {
                let mut agg = Aggregator::default();
                let mut n = 0;
                for (record, _) in &input {
                    let hash = HashKey::from_partition_key(&record.partition_key);
                    if agg.try_add(record, hash).is_err() {
                        n += agg.finish().map_or(0, |r| r.data.len());
                        agg.try_add(record, hash)
                            .expect("empty aggregator takes any record");
                    }
                }
                black_box(n)
            })
        });
        group.finish();
        let _ = payload;

        // Deaggregation of the same records, as the consumer does it.
        let mut agg = Aggregator::default();
        let mut aggregates = Vec::new();
        for (record, hash) in &input {
            if agg.try_add(record, *hash).is_err() {
                aggregates.extend(agg.finish());
                agg.try_add(record, *hash)
                    .expect("empty aggregator takes any record");
            }
        }
        aggregates.extend(agg.finish());
        let mut group = c.benchmark_group(format!("deaggregate_{size}B"));
        group.throughput(Throughput::Elements(RECORDS as u64));
        group.bench_function("deaggregate", |b| {
            b.iter(|| {
                let mut n = 0;
                for a in &aggregates {
                    n += deaggregate(
                        &a.partition_key,
                        a.explicit_hash_key.as_deref(),
                        a.data.clone(),
                    )
                    .records
                    .len();
                }
                black_box(n)
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
