//! Hash key → shard lookups, with 1, 100 and 10,000 shards.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kinesis_common::hash_key::HashKey;
use kinesis_common::shard_map::{ShardMap, ShardRange};
use std::hint::black_box;

fn even_map(n: u128) -> ShardMap {
    let width = u128::MAX / n;
    let shards = (0..n)
        .map(|i| ShardRange {
            shard_id: format!("shardId-{i:012}"),
            starting_hash_key: HashKey(i * width),
            ending_hash_key: HashKey(if i == n - 1 {
                u128::MAX
            } else {
                (i + 1) * width - 1
            }),
        })
        .collect();
    ShardMap::new(shards).expect("even shards cover the key space")
}

fn bench(c: &mut Criterion) {
    let keys: Vec<HashKey> = (0..1024)
        .map(|i| HashKey::from_partition_key(&format!("key-{i}")))
        .collect();
    let mut group = c.benchmark_group("shard_map_lookup");
    group.throughput(Throughput::Elements(keys.len() as u64));
    for shards in [1u128, 100, 10_000] {
        let map = even_map(shards);
        group.bench_with_input(BenchmarkId::from_parameter(shards), &map, |b, map| {
            b.iter(|| {
                let mut acc = 0usize;
                for key in &keys {
                    acc += map.shard_for(*key).shard_id.len();
                }
                black_box(acc)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
