//! End-to-end producer benchmark: N records of B bytes into an S-shard stream on the embedded
//! emulator with AWS's shard write limits enforced, then every record read back.
//!
//! `cargo run --release -p kinesis-benches --bin producer_e2e -- --records 400000 --size 100 --shards 4
//! [--ordered] [--no-limits]`
//!
//! The emulator runs in a child process (this binary re-run with `--serve`), so the CPU time
//! and peak RSS printed are the producer's alone.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Instant;

use clap::Parser;
use kinesis_common::aggregation::deaggregate;
use kinesis_common::client::ClientOptions;
use kinesis_producer::{Producer, UserRecord};
use kinesis_testkit::{LocalAws, streams};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 400_000)]
    records: usize,
    #[arg(long, default_value_t = 100)]
    size: usize,
    #[arg(long, default_value_t = 4)]
    shards: u32,
    /// Run without the shard write limits.
    #[arg(long)]
    no_limits: bool,
    /// Keep each key's records in send order (the producer's `ordered` option).
    #[arg(long)]
    ordered: bool,
    /// Internal: serve the emulator and print its endpoints.
    #[arg(long, hide = true)]
    serve: bool,
}

/// Seconds of CPU this process used (user + system), from /proc.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Peak resident set size in MiB, from /proc.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn serve(limits: bool) {
    let aws = LocalAws::builder()
        .enforce_limits(limits)
        .start()
        .await
        .expect("emulator starts");
    println!("{} {}", aws.kinesis_endpoint(), aws.dynamodb_endpoint());
    std::io::stdout().flush().ok();
    // Until the parent closes our stdin.
    let _ = tokio::task::spawn_blocking(|| std::io::stdin().lines().count()).await;
    aws.shutdown().await;
}

async fn read_back(client: &aws_sdk_kinesis::Client, stream: &str) -> HashSet<Vec<u8>> {
    let records = streams::read_stream(client, stream)
        .await
        .expect("read back");
    let mut seen = HashSet::new();
    for (_, r) in records {
        let d = deaggregate(
            r.partition_key(),
            None,
            bytes::Bytes::copy_from_slice(r.data().as_ref()),
        );
        seen.extend(
            d.records
                .into_iter()
                .map(|u| u.data[..12.min(u.data.len())].to_vec()),
        );
    }
    seen
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if args.serve {
        return serve(!args.no_limits).await;
    }
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .arg("--serve")
        .args(args.no_limits.then_some("--no-limits"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("emulator process starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("endpoints");
    let mut endpoints = line.split_whitespace();
    let (kinesis, dynamodb) = (
        endpoints.next().expect("kinesis"),
        endpoints.next().expect("dynamodb"),
    );
    let client = ClientOptions::local(kinesis, dynamodb).kinesis().await;
    streams::create_stream(&client, "bench", args.shards)
        .await
        .expect("stream");

    let producer = Producer::builder("bench")
        .client(client.clone())
        .ordered(args.ordered)
        .build()
        .expect("producer");
    // The first ListShards load (every page of it), which `send` needs to route.
    let building = Instant::now();
    while producer.stats().shard_map_refreshes == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let map_load = building.elapsed().as_secs_f64();
    let rss_before = peak_rss_mib();
    let cpu_before = cpu_seconds();
    let start = Instant::now();
    // Results are awaited as they come, so only the producer's outstanding bounds hold memory.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<kinesis_producer::PutFuture>();
    let waiter = tokio::spawn(async move {
        let mut failed = 0usize;
        while let Some(put) = rx.recv().await {
            failed += usize::from(put.await.is_err());
        }
        failed
    });
    for i in 0..args.records {
        let mut data = format!("{i:012}").into_bytes();
        data.resize(args.size.max(12), b'x');
        let put = producer
            .send(UserRecord::new(format!("pk-{i}"), data))
            .await
            .expect("valid");
        let _ = tx.send(put);
    }
    drop(tx);
    let failed = waiter.await.expect("waiter");
    producer.shutdown().await;
    let seconds = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    let peak_rss = peak_rss_mib(); // before reading back, which holds every id
    let s = producer.stats();
    let seen = read_back(&client, "bench").await;
    drop(child.stdin.take());
    let _ = child.wait();

    let mib = 1024.0 * 1024.0;
    let per_shard = s.bytes_put as f64 / mib / seconds / f64::from(args.shards);
    let lost = args.records - seen.len().min(args.records);
    println!(
        "shard map loaded   {:.3} s ({} shards)",
        map_load, args.shards
    );
    println!("records            {}", args.records);
    println!("seconds            {seconds:.2}");
    println!("records/s          {:.0}", args.records as f64 / seconds);
    println!(
        "MiB/s per shard    {per_shard:.3} ({:.1}% of the 1 MiB/s limit)",
        per_shard * 100.0
    );
    println!(
        "throttled requests {} of {} ({:.2}%)",
        s.throttled_requests,
        s.requests,
        100.0 * s.throttled_requests as f64 / s.requests.max(1) as f64
    );
    println!(
        "Kinesis records    {} ({:.4} per user record)",
        s.kinesis_records_put,
        s.kinesis_records_put as f64 / args.records as f64
    );
    println!(
        "CPU                {cpu:.2} s ({:.2} µs per record)",
        cpu * 1e6 / args.records as f64
    );
    println!("peak RSS           {peak_rss:.1} MiB ({rss_before:.1} MiB before producing)");
    println!("failed {failed}, lost {lost}");
    println!(
        "{}",
        serde_json::json!({
            "records": args.records, "size": args.size, "shards": args.shards, "ordered": args.ordered,
            "shard_map_load_s": map_load, "seconds": seconds,
            "records_per_s": args.records as f64 / seconds, "mib_per_s_per_shard": per_shard,
            "requests": s.requests, "throttled_requests": s.throttled_requests,
            "kinesis_records": s.kinesis_records_put, "cpu_us_per_record": cpu * 1e6 / args.records as f64,
            "peak_rss_mib": peak_rss, "rss_before_mib": rss_before, "failed": failed, "lost": lost,
        })
    );
    if failed > 0 || lost > 0 {
        std::process::exit(1);
    }
}
