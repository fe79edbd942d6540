//! What one PutRecords request costs through the AWS SDK, apart from the producer: CPU per
//! request and per entry, for requests shaped like the producer's at few and at many shards.
//!
//! `cargo run --release -p kinesis-benches --bin sdk_request_cost [-- --requests 500]`
//!
//! Requests go one at a time, through the same client setup as the producer's (SDK retries
//! off), to the embedded emulator in a child process without limits, so the CPU printed is
//! this process's alone: building the entries, serialising (base64 and JSON), signing
//! (SHA-256 of the body), HTTP over loopback (whose kernel work is partly charged to the
//! sender) and parsing the answer. The producer's CPU per record at many shards is mostly
//! this fixed cost per request and per entry (README, docs/FIGURES.md).

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use clap::Parser;
use kinesis_benches::child_emulator::{ChildEmulator, serve, without_retries};
use kinesis_benches::process::process_cpu_seconds;

#[derive(Parser)]
struct Args {
    /// Requests per shape (the largest shapes send a fifth of them).
    #[arg(long, default_value_t = 500)]
    requests: usize,
    /// Accepted for the child that serves the emulator (always without limits).
    #[arg(long, hide = true)]
    no_limits: bool,
    /// Internal: serve the emulator and print its endpoints.
    #[arg(long, hide = true)]
    serve: bool,
}

/// Request shapes: (entries, bytes of data per entry, what the shape stands for).
const SHAPES: [(usize, usize, &str); 5] = [
    (1, 100, "one small record"),
    (4, 51_200, "4 shards: a few full aggregates"),
    (
        100,
        300,
        "1,000 shards at 20 records/s each: 2-3 record aggregates",
    ),
    (500, 100, "500 small plain records"),
    (100, 51_200, "100 full aggregates (5 MiB)"),
];

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if args.serve {
        return serve(false).await;
    }
    let emulator = ChildEmulator::start(false);
    // As the producer's put client: the SDK's own retries off.
    let client = without_retries(&emulator.kinesis_with_stream("sdk-cost", 4).await);
    // The hash key of the producer's aggregates: each entry carries one.
    let hash_key = (u128::MAX / 3).to_string();
    let mut rows = Vec::new();
    for (entries, size, shape) in SHAPES {
        let requests = if entries * size > 1 << 20 {
            (args.requests / 5).max(1)
        } else {
            args.requests
        };
        let data = Blob::new(vec![b'x'; size]);
        let cpu_before = process_cpu_seconds();
        let start = std::time::Instant::now();
        for i in 0..requests {
            let batch: Vec<PutRecordsRequestEntry> = (0..entries)
                .map(|j| {
                    PutRecordsRequestEntry::builder()
                        .partition_key(format!("key-{i}-{j}"))
                        .explicit_hash_key(hash_key.clone())
                        .data(data.clone())
                        .build()
                        .expect("entry")
                })
                .collect();
            let out = client
                .put_records()
                .stream_name("sdk-cost")
                .set_records(Some(batch))
                .send()
                .await
                .expect("put");
            assert_eq!(out.failed_record_count(), Some(0));
        }
        let cpu = process_cpu_seconds() - cpu_before;
        let wall = start.elapsed().as_secs_f64();
        let per_request = cpu * 1e6 / requests as f64;
        let per_entry = per_request / entries as f64;
        println!(
            "{entries:>4} entries x {size:>6} B ({shape}): {per_request:.0} µs of CPU per request, {per_entry:.1} µs per entry; {:.0} µs wall per request",
            wall * 1e6 / requests as f64
        );
        rows.push(serde_json::json!({
            "entries": entries, "bytes_per_entry": size, "requests": requests,
            "cpu_us_per_request": per_request, "cpu_us_per_entry": per_entry,
            "wall_us_per_request": wall * 1e6 / requests as f64,
        }));
    }
    println!("{}", serde_json::Value::Array(rows));
}
