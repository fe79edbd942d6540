//! End-to-end consumer benchmark on the embedded emulators.
//!
//! `cargo run --release -p kinesis-benches --bin consumer_e2e -- --records 200000 --size 100 --shards 4`
//!
//! 1. Throughput: N records are put first; one worker then reads them all. Prints time to
//!    first record, records/s while catching up, and the worker's CPU per million records
//!    (emulator threads excluded), also as the share of a core one shard would need at the
//!    2 MiB/s read limit.
//! 2. Failover: two workers share the stream; one is killed (its future dropped, nothing
//!    released) and the time until the other holds every lease is measured; then a third
//!    joins, the survivor shuts down gracefully, and the handoff is timed.
//! 3. Cost: DynamoDB requests per lease per minute in steady state.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use kinesis_benches::process::worker_cpu_seconds;
use kinesis_consumer::{
    Checkpointer, ProcessRecordsInput, ProcessorError, RecordProcessor, Worker, WorkerHandle,
};
use kinesis_producer::{Producer, UserRecord};
use kinesis_testkit::LocalAws;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 200_000)]
    records: usize,
    #[arg(long, default_value_t = 100)]
    size: usize,
    #[arg(long, default_value_t = 4)]
    shards: u32,
    /// Seconds of steady state for the DynamoDB cost figure.
    #[arg(long, default_value_t = 20)]
    steady_seconds: u64,
}

#[derive(Clone, Default)]
struct Counts {
    records: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
}

struct Count(Counts);

impl RecordProcessor for Count {
    async fn process_records(
        &mut self,
        input: ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        self.0
            .records
            .fetch_add(input.records.len() as u64, Ordering::Relaxed);
        let bytes: usize = input
            .records
            .iter()
            .map(|r| r.data.len() + r.partition_key.len())
            .sum();
        self.0.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        checkpointer.checkpoint().await?;
        Ok(())
    }
}

async fn worker(
    aws: &LocalAws,
    app: &str,
    id: &str,
    counts: &Counts,
) -> (WorkerHandle, tokio::task::JoinHandle<()>) {
    let counts = counts.clone();
    let w = Worker::builder(app, "bench")
        .kinesis_client(aws.kinesis_client().await)
        .dynamodb_client(aws.dynamodb_client().await)
        .worker_id(id.to_owned())
        .build(move |_: &str| Count(counts.clone()))
        .expect("valid worker");
    let handle = w.handle();
    (
        handle,
        tokio::spawn(async move { w.run().await.expect("worker runs") }),
    )
}

async fn owners(aws: &LocalAws, table: &str) -> std::collections::HashMap<String, usize> {
    let client = aws.dynamodb_client().await;
    let mut counts = std::collections::HashMap::new();
    if let Ok(out) = client
        .scan()
        .table_name(table)
        .consistent_read(true)
        .send()
        .await
    {
        for item in out.items() {
            if let Some(owner) = item.get("leaseOwner").and_then(|o| o.as_s().ok()) {
                *counts.entry(owner.clone()).or_insert(0) += 1;
            }
        }
    }
    counts
}

async fn wait_owned(
    aws: &LocalAws,
    table: &str,
    want: impl Fn(&std::collections::HashMap<String, usize>) -> bool,
) {
    let start = Instant::now();
    while !want(&owners(aws, table).await) {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "leases never settled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let aws = LocalAws::start().await.expect("emulators");
    aws.create_stream("bench", args.shards)
        .await
        .expect("stream");
    let producer = Producer::builder("bench")
        .client(aws.kinesis_client().await)
        .build()
        .expect("producer");
    let mut puts = Vec::with_capacity(args.records);
    for i in 0..args.records {
        let mut data = format!("{i:012}").into_bytes();
        data.resize(args.size.max(12), b'x');
        puts.push(
            producer
                .send(UserRecord::new(format!("pk-{i}"), data))
                .await
                .expect("valid"),
        );
    }
    for put in puts {
        put.await.expect("put");
    }
    producer.shutdown().await;
    let kinesis_bytes = producer.stats().bytes_put;

    // 1. Throughput.
    let counts = Counts::default();
    let cpu_before = worker_cpu_seconds();
    let start = Instant::now();
    let (h1, t1) = worker(&aws, "bench-throughput", "w1", &counts).await;
    while counts.records.load(Ordering::Relaxed) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let first = start.elapsed();
    while counts.records.load(Ordering::Relaxed) < args.records as u64 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = start.elapsed().as_secs_f64() - first.as_secs_f64();
    let cpu = worker_cpu_seconds() - cpu_before;
    h1.shutdown().await;
    t1.await.expect("worker");
    // What one shard at the 2 MiB/s read limit would cost in CPU, at the measured cost per byte.
    let core_share_at_limit = cpu / kinesis_bytes as f64 * 2.0 * 1024.0 * 1024.0;
    println!("time to first record       {:.2} s", first.as_secs_f64());
    println!(
        "records/s (backlog)        {:.0}",
        args.records as f64 / seconds
    );
    println!(
        "worker CPU                 {:.2} s per million records",
        cpu * 1e6 / args.records as f64
    );
    println!(
        "CPU per shard at 2 MiB/s   {:.1}% of one core",
        core_share_at_limit * 100.0
    );

    // 2. Failover after a crash, and graceful handoff.
    let counts = Counts::default();
    let table = "bench-failover";
    let (_h1, t1) = worker(&aws, table, "w1", &counts).await;
    wait_owned(&aws, table, |o| {
        o.get("w1") == Some(&(args.shards as usize))
    })
    .await;
    let (h2, t2) = worker(&aws, table, "w2", &counts).await;
    wait_owned(&aws, table, |o| o.len() == 2 && o.values().all(|n| *n >= 1)).await;
    t1.abort();
    let crashed = Instant::now();
    wait_owned(&aws, table, |o| {
        o.get("w2") == Some(&(args.shards as usize))
    })
    .await;
    let crash_failover = crashed.elapsed().as_secs_f64();
    let (h3, t3) = worker(&aws, table, "w3", &counts).await;
    wait_owned(&aws, table, |o| o.len() == 2 && o.values().all(|n| *n >= 1)).await;
    let graceful = Instant::now();
    h2.shutdown().await;
    t2.await.expect("w2");
    wait_owned(&aws, table, |o| {
        o.get("w3") == Some(&(args.shards as usize))
    })
    .await;
    let handoff = graceful.elapsed().as_secs_f64();
    println!("failover after a crash     {crash_failover:.1} s (failover time 10 s)");
    println!("graceful handoff           {handoff:.2} s");

    // 3. Steady-state DynamoDB cost with one worker holding every lease.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = aws.dynamodb_faults().stats().requests;
    tokio::time::sleep(Duration::from_secs(args.steady_seconds)).await;
    let requests = aws.dynamodb_faults().stats().requests - before;
    let per_lease_minute =
        requests as f64 / f64::from(args.shards) / (args.steady_seconds as f64 / 60.0);
    println!(
        "DynamoDB requests          {per_lease_minute:.1} per lease per minute ({requests} in {} s, {} leases)",
        args.steady_seconds, args.shards
    );
    h3.shutdown().await;
    t3.await.expect("w3");
    println!(
        "{}",
        serde_json::json!({
            "records": args.records, "size": args.size, "shards": args.shards,
            "first_record_s": first.as_secs_f64(), "records_per_s": args.records as f64 / seconds,
            "core_share_per_shard_at_read_limit": core_share_at_limit, "cpu_s_per_million": cpu * 1e6 / args.records as f64,
            "crash_failover_s": crash_failover, "graceful_handoff_s": handoff,
            "dynamodb_requests_per_lease_minute": per_lease_minute,
        })
    );
}
