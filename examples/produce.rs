//! Produce N records of a given size and print one JSON line of figures.
//!
//! `cargo run --example produce -- --stream NAME --records N --size BYTES [--create-shards S]
//! [--keys K] [--rate RECORDS_PER_S] [--seconds S] [--ordered] [--kinesis-endpoint URL]
//! [--enforce-limits] [--aws]`
//!
//! With `--keys K` the records cycle through K partition keys `key-0000`… and each one's data
//! is `KEY:N` (N counting that key's records), so a consumer can check that nothing was lost;
//! otherwise keys are random and data is `--size` random letters.
//!
//! With no endpoint (flag or `AWS_ENDPOINT_URL*`) and no `--aws`, it runs against the
//! embedded emulators. Exit code 0 only if every record was put.

use std::time::{Duration, Instant};

use clap::Parser;
use kinesis_producer::{Producer, UserRecord};
use kinesis_testkit::{Target, TargetChoice, streams};
use rand::Rng;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    stream: String,
    #[arg(long, default_value_t = 10_000)]
    records: usize,
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Create the stream with this many shards if it does not exist.
    #[arg(long)]
    create_shards: Option<u32>,
    #[arg(long)]
    kinesis_endpoint: Option<String>,
    /// With the embedded emulator: enforce shard write limits.
    #[arg(long)]
    enforce_limits: bool,
    /// Use real AWS (default credential chain and region).
    #[arg(long)]
    aws: bool,
    /// Cycle through this many keys, with data `KEY:N`.
    #[arg(long)]
    keys: Option<usize>,
    /// Send no faster than this many records a second.
    #[arg(long)]
    rate: Option<f64>,
    /// Stop sending after this many seconds, even if fewer than --records were sent.
    #[arg(long)]
    seconds: Option<f64>,
    /// Keep each key's records in send order (the producer's `ordered` option).
    #[arg(long)]
    ordered: bool,
}

#[tokio::main]
async fn main() -> Result<std::process::ExitCode, Box<dyn std::error::Error>> {
    let args = Args::parse();
    // RUST_LOG=kinesis_producer=debug shows throttling and retries on stderr.
    tracing_subscriber::fmt()
        .with_env_filter(kinesis_common::logging::env_filter(""))
        .with_writer(std::io::stderr)
        .init();
    let choice = TargetChoice {
        aws: args.aws,
        kinesis_endpoint: args.kinesis_endpoint,
        enforce_limits: args.enforce_limits,
        ..Default::default()
    };
    let target = Target::resolve(choice).await?;
    eprintln!("producing to {}", target.description);
    let client = target.options.kinesis().await;
    if let Some(shards) = args.create_shards {
        streams::ensure_stream(&client, &args.stream, shards).await?;
    }
    let shards = streams::open_shards(&client, &args.stream)
        .await?
        .len()
        .max(1);
    let producer = Producer::builder(args.stream.as_str())
        .client(client)
        .ordered(args.ordered)
        .build()?;

    let start = Instant::now();
    let mut rng = rand::rng();
    let mut puts = Vec::with_capacity(args.records);
    let mut waited = Duration::ZERO;
    for i in 0..args.records {
        if args
            .seconds
            .is_some_and(|s| start.elapsed().as_secs_f64() >= s)
        {
            break;
        }
        if let Some(rate) = args.rate {
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        let (key, data) = match args.keys {
            Some(keys) => {
                let key = format!("key-{:04}", i % keys);
                let data = format!("{key}:{}", i / keys).into_bytes();
                (key, data)
            }
            None => (
                format!("{:016x}", rng.random::<u64>()),
                (0..args.size)
                    .map(|_| rng.random_range(b'a'..=b'z'))
                    .collect(),
            ),
        };
        let before = Instant::now();
        puts.push(producer.send(UserRecord::new(key, data)).await?);
        waited += before.elapsed();
    }
    let sent = puts.len();
    let (mut acknowledged, mut failed) = (0u64, 0u64);
    for put in puts {
        match put.await {
            Ok(_) => acknowledged += 1,
            Err(e) => {
                failed += 1;
                eprintln!("failed: {e}");
            }
        }
    }
    producer.shutdown().await;
    let seconds = start.elapsed().as_secs_f64();
    let s = producer.stats();
    let mib = 1024.0 * 1024.0;
    println!(
        "{}",
        serde_json::json!({
            "records": sent, "acknowledged": acknowledged, "failed": failed,
            "expired": s.user_records_expired, "send_waited_s": waited.as_secs_f64(),
            "seconds": seconds, "records_per_s": acknowledged as f64 / seconds,
            "mb_per_s_per_shard": s.bytes_put as f64 / mib / seconds / shards as f64,
            "user_mb_per_s": s.user_bytes_put as f64 / mib / seconds,
            "kinesis_records": s.kinesis_records_put, "put_payload_units": s.put_payload_units,
            "requests": s.requests, "throttled_requests": s.throttled_requests,
            "throttled_entries": s.throttled_entries, "retries": s.retries,
        })
    );
    Ok(if failed == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}
