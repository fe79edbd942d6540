//! Many quiet shards through `kinesis-sink`: objects per buffer interval and memory.
//!
//! A stream of S shards on the embedded emulators gets a trickle of small records spread
//! over every shard (quiet: no buffer comes near its size), while W workers, each with its own
//! sink as separate processes would have, deliver it to a folder. Time is scaled: the buffer
//! interval is `--interval-seconds` instead of Firehose's 300 s and the run lasts
//! `--intervals` of them, so 12 intervals stand for an hour. Firehose writes one object per
//! interval per prefix for such a stream (12 an hour at 300 s); the figure here is objects per
//! interval, the same ratio.
//!
//! `cargo run --release -p kinesis-benches --bin sink_quiet -- --shards 1000 [--workers 1]
//! [--interval-seconds 10] [--intervals 12] [--rate 50] [--pack-kbps 1024]`
//!
//! With `--pack-kbps`, the workers balance with `Balance::Pack` under that cap, so a quiet
//! stream sits on one of them and the fleet writes about as many objects as one worker.

use std::time::{Duration, Instant};

use clap::Parser;
use kinesis_benches::process::{peak_rss_mib, rss_mib, worker_cpu_seconds};
use kinesis_consumer::{Balance, Worker};
use kinesis_producer::{Producer, UserRecord};
use kinesis_sink::{Destination, Sink};
use kinesis_testkit::LocalAws;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 1000)]
    shards: u32,
    /// Workers (each with its own sink).
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// The sinks' buffer interval, standing for Firehose's 300 s.
    #[arg(long, default_value_t = 10)]
    interval_seconds: u64,
    /// How many intervals the traffic lasts (12 stand for an hour).
    #[arg(long, default_value_t = 12)]
    intervals: u64,
    /// Records per second over the whole stream (about 200 bytes each).
    #[arg(long, default_value_t = 50)]
    rate: u64,
    /// Workers balance with `Balance::Pack`, each capped at this many KiB/s (default: the
    /// default balance, by throughput).
    #[arg(long)]
    pack_kbps: Option<f64>,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let aws = LocalAws::start().await.expect("emulators");
    aws.create_stream("quiet", args.shards)
        .await
        .expect("stream");
    let interval = Duration::from_secs(args.interval_seconds);
    let dir = std::env::temp_dir().join(format!("sink-quiet-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let rss_before = rss_mib();

    let mut sinks = Vec::new();
    let mut workers = Vec::new();
    let cpu_before = worker_cpu_seconds();
    for w in 0..args.workers {
        let sink = Sink::builder(Destination::folder(&dir))
            .name(format!("w{w}"))
            .buffer_interval(interval)
            .build()
            .expect("sink");
        let mut builder = Worker::builder("quiet-sink", "quiet")
            .kinesis_client(aws.kinesis_client().await)
            .dynamodb_client(aws.dynamodb_client().await)
            .worker_id(format!("w{w}"));
        if let Some(cap) = args.pack_kbps {
            builder = builder
                .balance(Balance::Pack)
                .max_throughput_per_worker(cap);
        }
        let worker = builder.build(sink.factory()).expect("worker");
        let handle = worker.handle();
        workers.push((handle, tokio::spawn(worker.run())));
        sinks.push(sink);
    }

    let producer = Producer::builder("quiet")
        .client(aws.kinesis_client().await)
        .build()
        .expect("producer");
    let start = Instant::now();
    let run = interval * args.intervals as u32;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let per_tick = (args.rate / 10).max(1);
    let (mut sent, mut max_open, mut max_buffered, mut peak_rss) = (0u64, 0u64, 0u64, 0.0f64);
    let text = "q".repeat(160);
    while start.elapsed() < run {
        tick.tick().await;
        for _ in 0..per_tick {
            let data = format!("{{\"n\":{sent},\"text\":\"{text}\"}}").into_bytes();
            let put = producer
                .send(UserRecord::new(format!("key-{sent}"), data))
                .await
                .expect("valid");
            drop(put);
            sent += 1;
        }
        if sent % (per_tick * 10) == 0 {
            for sink in &sinks {
                let stats = sink.stats();
                max_open = max_open.max(stats.open_buffers);
                max_buffered = max_buffered.max(stats.buffered_bytes);
            }
            peak_rss = peak_rss.max(rss_mib());
        }
    }
    producer.flush().await;
    // Everything sent is written once its interval ends.
    let bound = Instant::now() + interval * 3;
    let written = |sinks: &[Sink]| sinks.iter().map(|s| s.stats().records_written).sum::<u64>();
    while written(&sinks) < sent && Instant::now() < bound {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu = worker_cpu_seconds() - cpu_before;
    let objects: u64 = sinks.iter().map(|s| s.stats().objects_written).sum();
    let records = written(&sinks);
    let periods = seconds / interval.as_secs_f64();
    println!(
        "shards {} workers {} interval {}s: {sent} records sent, {records} written",
        args.shards, args.workers, args.interval_seconds
    );
    println!(
        "objects            {objects} in {periods:.1} intervals: {:.2} per interval \
         (Firehose: 1 per interval and prefix; {:.0} an hour at 300 s)",
        objects as f64 / periods,
        objects as f64 / periods * 12.0
    );
    let per_worker: Vec<u64> = sinks.iter().map(|s| s.stats().objects_written).collect();
    println!("objects per worker {per_worker:?}");
    println!("open buffers       at most {max_open} per sink");
    println!("buffered bytes     at most {max_buffered}");
    println!(
        "RSS                {rss_before:.0} MiB with the emulators and stream, at most \
         {peak_rss:.0} MiB with the workers (peak {:.0} MiB)",
        peak_rss_mib()
    );
    println!(
        "worker CPU         {:.1}% of a core ({cpu:.1} s over {seconds:.0} s)",
        cpu / seconds * 100.0
    );
    println!(
        "{}",
        serde_json::json!({
            "shards": args.shards, "workers": args.workers, "interval_s": args.interval_seconds,
            "pack_kbps": args.pack_kbps, "objects_per_worker": per_worker,
            "sent": sent, "written": records, "objects": objects, "intervals": periods,
            "objects_per_interval": objects as f64 / periods, "max_open_buffers": max_open,
            "max_buffered_bytes": max_buffered, "rss_before_mib": rss_before,
            "rss_max_mib": peak_rss, "cpu_share": cpu / seconds,
        })
    );
    for (handle, task) in workers {
        handle.shutdown().await;
        task.await.expect("worker").expect("worker runs");
    }
    assert_eq!(records, sent, "records not written");
    let _ = std::fs::remove_dir_all(&dir);
}
