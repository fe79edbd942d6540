//! Aggregation codec rate without criterion, for the side-by-side peer table: aggregates and
//! encodes N user records of B bytes (as the producer does, one shard) and prints one JSON line.
//! Like the criterion bench `aggregate_encode`, it excludes the partition-key MD5.
//!
//! `cargo run --release -p kinesis-benches --bin codec_rate -- --records 1000000 --size 100`

use std::time::Instant;

use clap::Parser;
use kinesis_common::aggregation::Aggregator;
use kinesis_common::{HashKey, UserRecord};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 1_000_000)]
    records: usize,
    #[arg(long, default_value_t = 100)]
    size: usize,
}

fn main() {
    let args = Args::parse();
    let records: Vec<UserRecord> = (0..args.records)
        .map(|i| UserRecord::new(format!("key-{}", i % 1000), vec![b'x'; args.size]))
        .collect();
    // Hash keys are computed before the clock starts: aws-kinesis-agg's aggregator, the peer
    // this is compared with, takes records without computing one either.
    let keys: Vec<HashKey> = records
        .iter()
        .map(|r| HashKey::from_partition_key(&r.partition_key))
        .collect();
    let start = Instant::now();
    let mut aggregator = Aggregator::new(1024 * 1024).expect("a valid limit");
    let (mut aggregates, mut bytes) = (0usize, 0usize);
    for (record, &key) in records.iter().zip(&keys) {
        if aggregator.try_add(record, key).is_err() {
            let out = aggregator.finish().expect("a full aggregator has records");
            (aggregates, bytes) = (aggregates + 1, bytes + out.data.len());
            aggregator
                .try_add(record, key)
                .expect("an empty aggregator takes it");
        }
    }
    if let Some(out) = aggregator.finish() {
        (aggregates, bytes) = (aggregates + 1, bytes + out.data.len());
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "records": args.records, "size": args.size, "aggregates": aggregates, "bytes": bytes,
            "seconds": seconds, "records_per_s": args.records as f64 / seconds,
        })
    );
}
