//! The least CPU a producer can spend per record on `producer_e2e`'s workload: the same
//! records, built the same way, the same SDK client, the same emulator with the shard limits
//! enforced, the same rate, and only the work the format and the API make necessary.
//!
//! `cargo run --release -p kinesis-benches --bin producer_floor -- --records 400000 --size 100
//! --shards 4 --rate 34000`
//!
//! On one task, with no queue, no gate, no outstanding bounds, no limiter, no retry timing,
//! no statistics and no metrics, each record gets its partition key's MD5 (to find its shard),
//! joins its shard's aggregate (encoded and closed with its MD5, by `kinesis-agg`), and
//! costs its future one reference count on its aggregate's completion. Every 50 ms the
//! aggregates go out in PutRecords calls of up to 500 entries and 5 MiB (throttled entries
//! go again on the next tick); a waiter task awaits every record's future, as
//! `producer_e2e`'s does. What this process spends beyond that in `producer_e2e` at the same
//! rate is the producer's own: its queues, bounds, rate limits, retries and bookkeeping.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use clap::Parser;
use kinesis_benches::child_emulator::{ChildEmulator, serve, without_retries};
use kinesis_benches::process::{peak_rss_mib, process_cpu_seconds};
use kinesis_common::aggregation::Aggregator;
use kinesis_common::shard_map;
use kinesis_common::stream::StreamRef;
use kinesis_common::{KinesisRecord, UserRecord};
use tokio::sync::{Notify, mpsc};

#[derive(Parser)]
struct Args {
    /// User records to send.
    #[arg(long, default_value_t = 400_000)]
    records: usize,
    /// Bytes of data per record.
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Shards of the stream.
    #[arg(long, default_value_t = 4)]
    shards: u32,
    /// Records per second (`producer_e2e` reaches about 34,000 at 100 B on 4 shards).
    #[arg(long, default_value_t = 34_000)]
    rate: u32,
    /// Records between two looks at the clock to keep the rate: each look may put the
    /// sender to sleep, and each sleep and wake-up costs this machine tens of µs of CPU.
    #[arg(long, default_value_t = 1000)]
    pace_every: usize,
    /// Largest aggregate, as the producer's default.
    #[arg(long, default_value_t = 51_200)]
    max_aggregate_bytes: usize,
    /// How often the aggregates go out, in milliseconds: the producer's default buffering
    /// time is 100 ms, but at full rate its aggregates fill and go sooner, and one burst of
    /// 100 ms per shard gets some of them throttled.
    #[arg(long, default_value_t = 50)]
    tick_ms: u64,
    /// Without the emulator's shard limits.
    #[arg(long)]
    no_limits: bool,
    /// Internal: serve the emulator and print its endpoints.
    #[arg(long, hide = true)]
    serve: bool,
}

/// How long a PutRecords call may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The outcome of one aggregate, shared by the futures of the records it carries.
#[derive(Default)]
struct Done {
    put: OnceLock<()>,
    notify: Notify,
}

impl Done {
    fn complete(&self) {
        let _ = self.put.set(());
        self.notify.notify_waiters();
    }

    async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.put.get().is_some() {
                return;
            }
            notified.await;
        }
    }
}

/// One shard's open aggregate and the completion its records share.
struct Lane {
    aggregator: Aggregator,
    done: Arc<Done>,
    records: u64,
}

/// A closed aggregate on its way, and what resolves its records.
struct Ready {
    record: KinesisRecord,
    done: Arc<Done>,
    records: u64,
}

impl Lane {
    fn close(&mut self, ready: &mut Vec<Ready>) {
        if let Some(record) = self.aggregator.finish() {
            let done = std::mem::take(&mut self.done);
            ready.push(Ready {
                record,
                done,
                records: std::mem::take(&mut self.records),
            });
        }
    }
}

/// Counters of the calls.
#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    /// Kinesis records (aggregates) put.
    kinesis_records: AtomicU64,
    throttled_entries: AtomicU64,
    put: AtomicU64,
}

/// Sends `ready` in calls of at most 500 entries and 5 MiB; what comes back throttled or
/// failed goes to `again`.
fn send(
    client: &aws_sdk_kinesis::Client,
    ready: &mut Vec<Ready>,
    again: &mpsc::UnboundedSender<Ready>,
    counts: &Arc<Counts>,
) {
    while !ready.is_empty() {
        let mut bytes = 0;
        let take = ready
            .iter()
            .take(500)
            .take_while(|r| {
                bytes += r.record.size();
                bytes <= 5 << 20
            })
            .count()
            .max(1);
        let batch: Vec<Ready> = ready.drain(..take).collect();
        let entries = batch
            .iter()
            .map(|r| {
                PutRecordsRequestEntry::builder()
                    .partition_key(r.record.partition_key.clone())
                    .set_explicit_hash_key(r.record.explicit_hash_key.clone())
                    .data(Blob::new(r.record.data.to_vec()))
                    .build()
                    .expect("entry")
            })
            .collect();
        let call = client
            .put_records()
            .stream_name("floor")
            .set_records(Some(entries));
        let (again, counts) = (again.clone(), counts.clone());
        counts.requests.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            // Bounded as the producer bounds its calls; a call that fails or times out goes
            // again whole.
            let answers = match tokio::time::timeout(REQUEST_TIMEOUT, call.send()).await {
                Ok(Ok(out)) => out.records,
                Ok(Err(_)) | Err(_) => Vec::new(),
            };
            for (i, r) in batch.into_iter().enumerate() {
                if answers.get(i).is_some_and(|a| a.error_code.is_none()) {
                    counts.put.fetch_add(r.records, Ordering::Relaxed);
                    counts.kinesis_records.fetch_add(1, Ordering::Relaxed);
                    r.done.complete();
                } else {
                    counts.throttled_entries.fetch_add(1, Ordering::Relaxed);
                    let _ = again.send(r);
                }
            }
        });
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if args.serve {
        return serve(!args.no_limits).await;
    }
    let emulator = ChildEmulator::start(!args.no_limits);
    let client = without_retries(&emulator.kinesis_with_stream("floor", args.shards).await);
    let map = shard_map::load(&client, &StreamRef::from("floor"))
        .await
        .expect("shard map");
    let mut lanes: Vec<Lane> = map
        .shards()
        .iter()
        .map(|_| Lane {
            aggregator: Aggregator::new(args.max_aggregate_bytes).expect("limit"),
            done: Arc::default(),
            records: 0,
        })
        .collect();
    let counts = Arc::new(Counts::default());
    let (again_tx, mut again_rx) = mpsc::unbounded_channel::<Ready>();
    let mut ready: Vec<Ready> = Vec::new();

    let cpu_before = process_cpu_seconds();
    let start = Instant::now();
    let (tx, mut rx) = mpsc::unbounded_channel::<Arc<Done>>();
    let waiter = tokio::spawn(async move {
        while let Some(done) = rx.recv().await {
            done.wait().await;
        }
    });
    let tick = Duration::from_millis(args.tick_ms);
    let mut bytes = 0usize;
    let mut next_tick = start + tick;
    let pace = Duration::from_secs(1) / args.rate.max(1);
    for i in 0..args.records {
        if i % args.pace_every.max(1) == 0 {
            tokio::time::sleep_until((start + pace * i as u32).into()).await;
            if Instant::now() >= next_tick {
                next_tick += tick;
                lanes.iter_mut().for_each(|lane| lane.close(&mut ready));
                while let Ok(r) = again_rx.try_recv() {
                    ready.push(r);
                }
                send(&client, &mut ready, &again_tx, &counts);
            }
        }
        // Built as `producer_e2e` builds its records.
        let mut data = Vec::with_capacity(args.size.max(12));
        write!(data, "{i:012}").expect("into a Vec");
        data.resize(args.size.max(12), b'x');
        let mut key = String::with_capacity(3 + 20);
        write!(key, "pk-{i}").expect("into a String");
        let record = UserRecord::new(key, data);
        bytes += record.size();
        let hash_key = record.validate(1 << 20).expect("valid");
        let index = map
            .shards()
            .partition_point(|s| s.ending_hash_key < hash_key)
            .min(lanes.len() - 1);
        let lane = &mut lanes[index];
        if lane.aggregator.try_add(&record, hash_key).is_err() {
            lane.close(&mut ready);
            lane.aggregator
                .try_add(&record, hash_key)
                .expect("an empty aggregator takes any record");
        }
        lane.records += 1;
        let _ = tx.send(lane.done.clone());
    }
    drop(tx);
    lanes.iter_mut().for_each(|lane| lane.close(&mut ready));
    while !waiter.is_finished() {
        while let Ok(r) = again_rx.try_recv() {
            ready.push(r);
        }
        send(&client, &mut ready, &again_tx, &counts);
        tokio::time::sleep(tick).await;
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu = process_cpu_seconds() - cpu_before;
    let put = counts.put.load(Ordering::Relaxed);
    let requests = counts.requests.load(Ordering::Relaxed);
    let throttled = counts.throttled_entries.load(Ordering::Relaxed);
    let kinesis_records = counts.kinesis_records.load(Ordering::Relaxed);
    let per_shard = bytes as f64 / seconds / f64::from(args.shards) / (1 << 20) as f64;
    println!(
        "{} records of {} B into {} shards in {seconds:.2} s ({:.0} records/s, about {per_shard:.3} MiB/s per shard)",
        args.records,
        args.size,
        args.shards,
        args.records as f64 / seconds
    );
    println!(
        "CPU {cpu:.2} s ({:.2} µs per record); {requests} PutRecords calls, {kinesis_records} Kinesis records, {throttled} entries throttled; {put} put, {} lost",
        cpu * 1e6 / args.records as f64,
        args.records as u64 - put
    );
    let json = serde_json::json!({
        "records": args.records, "size": args.size, "shards": args.shards, "rate": args.rate,
        "seconds": seconds, "records_per_s": args.records as f64 / seconds,
        "mib_per_s_per_shard": per_shard,
        "cpu_us_per_record": cpu * 1e6 / args.records as f64, "requests": requests,
        "throttled_entries": throttled, "kinesis_records": kinesis_records, "put": put, "lost": args.records as u64 - put,
        "peak_rss_mib": peak_rss_mib(),
    });
    let _ = writeln!(std::io::stdout(), "{json}");
}
