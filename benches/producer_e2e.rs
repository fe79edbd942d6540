//! End-to-end producer benchmark: N records of B bytes into an S-shard stream on the embedded
//! emulator with AWS's shard write limits enforced, then every record read back.
//!
//! `cargo run --release -p kinesis-benches --bin producer_e2e -- --records 400000 --size 100 --shards 4
//! [--ordered] [--no-limits] [--rate R] [--max-outstanding-mib M] [--max-request-kib K] [--max-aggregate-bytes B]`
//!
//! The emulator runs in a child process (this binary re-run with `--serve`), so the CPU time
//! and peak RSS printed are the producer's alone. Built with `--features heap`, it also counts
//! the heap (a counting global allocator, which costs some CPU: measure CPU without it) and
//! prints the bytes held per outstanding record beyond the record's own key and data.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Instant;

use clap::Parser;
use kinesis_benches::child_emulator::{ChildEmulator, serve};
use kinesis_benches::process::{peak_rss_mib, process_cpu_seconds};
use kinesis_common::aggregation::deaggregate;
use kinesis_producer::{Producer, UserRecord};
use kinesis_testkit::streams;

#[cfg(feature = "heap")]
#[global_allocator]
static HEAP: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);

#[cfg(all(feature = "mimalloc", not(feature = "heap")))]
#[global_allocator]
static MIMALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Bytes on the heap now, when counted.
fn heap_bytes() -> Option<usize> {
    #[cfg(feature = "heap")]
    return Some(HEAP.allocated());
    #[cfg(not(feature = "heap"))]
    None
}

/// The most memory seen while producing, sampled every 20 ms (more often costs the run measurable CPU): the heap (when counted)
/// and the records outstanding at that moment; and the most records outstanding at all. Also
/// the bytes put so far every 500 ms: (seconds since the start, bytes).
#[derive(Debug, Default, Clone)]
struct MemoryPeak {
    heap: usize,
    outstanding_at_heap: usize,
    outstanding: usize,
    bytes_put: Vec<(f64, u64)>,
}

fn sample_memory(producer: Producer, start: Instant) -> tokio::task::JoinHandle<MemoryPeak> {
    tokio::spawn(async move {
        let mut peak = MemoryPeak::default();
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(20));
        for n in 0u64.. {
            tick.tick().await;
            if n % 25 == 0 {
                let at = start.elapsed().as_secs_f64();
                peak.bytes_put.push((at, producer.stats().bytes_put));
            }
            let outstanding = producer.outstanding_records();
            peak.outstanding = peak.outstanding.max(outstanding);
            if let Some(heap) = heap_bytes()
                && heap > peak.heap
            {
                peak.heap = heap;
                peak.outstanding_at_heap = outstanding;
            }
            if PRODUCED.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
        }
        peak
    })
}

/// Set once every record is resolved: the sampler stops.
static PRODUCED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

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
    /// The producer's `max_outstanding_bytes`, in MiB (its default: 64).
    #[arg(long, default_value_t = 64)]
    max_outstanding_mib: usize,
    /// The producer's `max_bytes_per_request`, in KiB (its default: 5 MiB, PutRecords' limit).
    #[arg(long, default_value_t = 5120)]
    max_request_kib: usize,
    /// The producer's `max_aggregate_bytes` (its default: 51,200, KPL's).
    #[arg(long, default_value_t = 51_200)]
    max_aggregate_bytes: usize,
    /// Send at most this many records per second (0: as fast as `send` takes them), to
    /// measure the producer at a steady rate below the stream's limit, as most shards run.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Skip reading the stream back (nothing is counted lost or the busiest shard): the
    /// emulator answers each shard's read in time that grows with the shard count, so at
    /// 10,000 shards reading back takes minutes while producing takes seconds.
    #[arg(long)]
    no_read_back: bool,
    /// Internal: serve the emulator and print its endpoints.
    #[arg(long, hide = true)]
    serve: bool,
}

/// Every user record's id, and the bytes (data + partition key) of the busiest shard.
async fn read_back(client: &aws_sdk_kinesis::Client, stream: &str) -> (HashSet<Vec<u8>>, u64) {
    let records = streams::read_stream(client, stream)
        .await
        .expect("read back");
    let mut seen = HashSet::new();
    let mut by_shard: std::collections::HashMap<String, u64> = Default::default();
    for (shard, r) in records {
        *by_shard.entry(shard).or_default() +=
            (r.data().as_ref().len() + r.partition_key().len()) as u64;
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
    (seen, by_shard.into_values().max().unwrap_or(0))
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if args.serve {
        return serve(!args.no_limits).await;
    }
    let emulator = ChildEmulator::start(!args.no_limits);
    let client = emulator.kinesis_with_stream("bench", args.shards).await;

    let producer = Producer::builder("bench")
        .client(client.clone())
        .ordered(args.ordered)
        .max_outstanding_bytes(args.max_outstanding_mib << 20)
        .max_bytes_per_request(args.max_request_kib << 10)
        .max_aggregate_bytes(args.max_aggregate_bytes)
        .build()
        .expect("producer");
    // The first ListShards load (every page of it), which `send` needs to route.
    let building = Instant::now();
    while producer.stats().shard_map_refreshes == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let map_load = building.elapsed().as_secs_f64();
    let rss_before = peak_rss_mib();
    let heap_before = heap_bytes();
    let cpu_before = process_cpu_seconds();
    let start = Instant::now();
    let sampler = sample_memory(producer.clone(), start);
    // Results are awaited as they come, so only the producer's outstanding bounds hold memory.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<kinesis_producer::PutFuture>();
    let waiter = tokio::spawn(async move {
        let mut failed = 0usize;
        while let Some(put) = rx.recv().await {
            failed += usize::from(put.await.is_err());
        }
        failed
    });
    let pace = (args.rate > 0).then(|| std::time::Duration::from_secs(1) / args.rate as u32);
    for i in 0..args.records {
        if let Some(pace) = pace
            && i % 100 == 0
        {
            // In steps of 100 records: the sender's own timer costs little CPU.
            let due = start + pace * i as u32;
            tokio::time::sleep_until(due.into()).await;
        }
        // One allocation each for the key and the data, as an application that builds its
        // records with care makes (`format!` and a `resize` cost three more allocations,
        // about 0.4 µs per record of the CPU this bench reports, measured 2026-12-05).
        let mut data = Vec::with_capacity(args.size.max(12));
        write!(data, "{i:012}").expect("into a Vec");
        data.resize(args.size.max(12), b'x');
        let mut key = String::with_capacity(3 + 20);
        write!(key, "pk-{i}").expect("into a String");
        let put = producer
            .send(UserRecord::new(key, data))
            .await
            .expect("valid");
        let _ = tx.send(put);
    }
    drop(tx);
    let failed = waiter.await.expect("waiter");
    // Every record is resolved: what the heap still holds above its level before producing
    // is what the producer keeps while idle (per shard, the figure that grows with a stream).
    let heap_idle = heap_bytes();
    PRODUCED.store(true, std::sync::atomic::Ordering::Relaxed);
    producer.shutdown().await;
    let seconds = start.elapsed().as_secs_f64();
    let cpu = process_cpu_seconds() - cpu_before;
    let peak_rss = peak_rss_mib(); // before reading back, which holds every id
    let memory = sampler.await.expect("sampler");
    // Each record's own key and data, which the per-record figures leave out.
    let own = format!("pk-{}", args.records / 2).len() + args.size.max(12);
    let per_record =
        |bytes: f64, outstanding: usize| bytes / outstanding.max(1) as f64 - own as f64;
    let rss_per_record = per_record(
        (peak_rss - rss_before) * 1024.0 * 1024.0,
        memory.outstanding,
    );
    let heap_per_record = heap_before.map(|before| {
        per_record(
            memory.heap.saturating_sub(before) as f64,
            memory.outstanding_at_heap,
        )
    });
    let idle_per_shard = heap_idle
        .zip(heap_before)
        .map(|(idle, before)| idle.saturating_sub(before) as f64 / f64::from(args.shards));
    let s = producer.stats();
    let read = if args.no_read_back {
        None
    } else {
        Some(read_back(&client, "bench").await)
    };
    drop(emulator);

    let mib = 1024.0 * 1024.0;
    let per_shard = s.bytes_put as f64 / mib / seconds / f64::from(args.shards);
    // Keys do not spread evenly, so the run lasts as long as its busiest shard needs.
    let busiest_per_s = read
        .as_ref()
        .map_or(f64::NAN, |(_, busiest)| *busiest as f64 / mib / seconds);
    let lost = read.map(|(seen, _)| args.records - seen.len().min(args.records));
    // The steady state: the middle 80% of the run, without the start (the first requests,
    // the limiter learning each shard's pace) and the end (shards whose share of the keys
    // was smaller run dry while the busiest finishes).
    let steady = steady_rate(&memory.bytes_put, seconds) / mib / f64::from(args.shards);
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
        "steady state       {steady:.3} MiB/s per shard ({:.1}% of the limit, 10%–90% of the run)",
        steady * 100.0
    );
    println!(
        "busiest shard      {busiest_per_s:.3} MiB/s ({:.1}% of the limit; {:.2}x the mean shard's bytes)",
        busiest_per_s * 100.0,
        busiest_per_s / per_shard
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
    println!(
        "outstanding        at most {} records; RSS beyond each one's key and data: {rss_per_record:.0} B",
        memory.outstanding
    );
    if let (Some(per_record), Some(before)) = (heap_per_record, heap_before) {
        println!(
            "heap               peak {:.1} MiB ({:.1} MiB before), {} outstanding then; {per_record:.0} B per record beyond its key and data",
            memory.heap as f64 / 1048576.0,
            before as f64 / 1048576.0,
            memory.outstanding_at_heap
        );
    }
    if let Some(per_shard) = idle_per_shard {
        println!(
            "heap when idle     {:.1} KiB per shard above the level before producing (every record resolved)",
            per_shard / 1024.0
        );
    }
    match lost {
        Some(lost) => println!("failed {failed}, lost {lost}"),
        None => println!("failed {failed}, lost not counted (--no-read-back)"),
    }
    println!(
        "{}",
        serde_json::json!({
            "records": args.records, "size": args.size, "shards": args.shards, "ordered": args.ordered, "rate": args.rate,
            "max_outstanding_mib": args.max_outstanding_mib, "max_request_kib": args.max_request_kib,
            "shard_map_load_s": map_load, "seconds": seconds,
            "records_per_s": args.records as f64 / seconds, "mib_per_s_per_shard": per_shard,
            "busiest_shard_mib_per_s": busiest_per_s, "steady_mib_per_s_per_shard": steady,
            "requests": s.requests, "throttled_requests": s.throttled_requests,
            "kinesis_records": s.kinesis_records_put, "cpu_us_per_record": cpu * 1e6 / args.records as f64,
            "peak_rss_mib": peak_rss, "rss_before_mib": rss_before, "failed": failed, "lost": lost,
            "max_outstanding": memory.outstanding, "rss_bytes_per_outstanding": rss_per_record,
            "heap_bytes_per_outstanding": heap_per_record,
            "idle_heap_bytes_per_shard": idle_per_shard,
        })
    );
    if failed > 0 || lost.is_some_and(|lost| lost > 0) {
        std::process::exit(1);
    }
}

/// Bytes per second put between 10% and 90% of a run of `seconds`, from samples of the bytes
/// put so far.
fn steady_rate(samples: &[(f64, u64)], seconds: f64) -> f64 {
    let from = samples.iter().find(|(t, _)| *t >= 0.1 * seconds);
    let to = samples.iter().rev().find(|(t, _)| *t <= 0.9 * seconds);
    match (from, to) {
        (Some((t0, b0)), Some((t1, b1))) if t1 > t0 => (b1 - b0) as f64 / (t1 - t0),
        _ => 0.0,
    }
}
