//! End-to-end sink benchmark: N JSON records of about B bytes are put into an S-shard stream
//! on the embedded emulators; one worker then delivers them all through `kinesis-sink` to a
//! local folder (or the embedded S3). Prints MB/s of record data, the worker's CPU per MB
//! (emulator threads excluded), objects written and their bytes, and peak RSS.
//!
//! `cargo run --release -p kinesis-benches --bin sink_e2e -- --records 200000 --size 1000
//! [--shards 4] [--format json|raw|parquet] [--compression none|gzip|zstd|snappy] [--s3]`
//!
//! Compare with the disk's raw write speed: `dd if=/dev/zero of=FILE bs=1M count=1024
//! conv=fdatasync`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use kinesis_benches::process::{peak_rss_mib, worker_cpu_seconds};
use kinesis_consumer::Worker;
use kinesis_producer::{Producer, UserRecord};
use kinesis_sink::arrow_schema::{DataType, Field};
use kinesis_sink::{Compression, Destination, Format, JsonLines, Parquet, Schema, Sink};
use kinesis_testkit::{LocalAws, LocalS3};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    Json,
    Raw,
    Parquet,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CompressionArg {
    None,
    Gzip,
    Zstd,
    Snappy,
}

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 200_000)]
    records: usize,
    /// Approximate bytes of each JSON record.
    #[arg(long, default_value_t = 1000)]
    size: usize,
    #[arg(long, default_value_t = 4)]
    shards: u32,
    #[arg(long, value_enum, default_value_t = FormatArg::Json)]
    format: FormatArg,
    /// Whole-object compression (for Parquet: of its column chunks).
    #[arg(long, value_enum, default_value_t = CompressionArg::None)]
    compression: CompressionArg,
    /// Write to the embedded S3 server instead of a folder.
    #[arg(long)]
    s3: bool,
}

fn record(i: usize, size: usize) -> Vec<u8> {
    let text = "x".repeat(size.saturating_sub(40));
    serde_json::json!({"id": i, "text": text})
        .to_string()
        .into_bytes()
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
    let mut data_bytes = 0u64;
    for i in 0..args.records {
        let data = record(i, args.size);
        data_bytes += data.len() as u64;
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

    let dir = std::env::temp_dir().join(format!("sink-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let s3 = args.s3.then(|| LocalS3::start(&dir).expect("embedded S3"));
    let destination = match &s3 {
        Some(s3) => {
            s3.create_bucket("bench").expect("bucket");
            Destination::in_store(s3.object_store("bench").expect("client"), "out", "s3")
        }
        None => Destination::folder(&dir),
    };
    let compression = match args.compression {
        CompressionArg::None => Compression::None,
        CompressionArg::Gzip => Compression::Gzip,
        CompressionArg::Zstd => Compression::Zstd,
        CompressionArg::Snappy => Compression::Snappy,
    };
    let (format, compression) = match args.format {
        FormatArg::Json => (Format::JsonLines(JsonLines::data_only()), compression),
        FormatArg::Raw => (Format::newline_delimited(), compression),
        FormatArg::Parquet => {
            let schema = Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, false),
                Field::new("text", DataType::Utf8, true),
            ]));
            let parquet = Parquet::new(schema).with_compression(compression);
            (Format::Parquet(parquet), Compression::None)
        }
    };
    let sink = Sink::builder(destination)
        .format(format)
        .compression(compression)
        .build()
        .expect("sink");
    let cpu_before = worker_cpu_seconds();
    let start = Instant::now();
    let worker = Worker::builder("bench-sink", "bench")
        .kinesis_client(aws.kinesis_client().await)
        .dynamodb_client(aws.dynamodb_client().await)
        .idle_time_between_reads(Duration::from_millis(50))
        .build(sink.factory())
        .expect("worker");
    let handle = worker.handle();
    let task = tokio::spawn(worker.run());
    while sink.stats().records_received < args.records as u64 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The last buffers are written now rather than after the interval.
    sink.flush().await;
    let seconds = start.elapsed().as_secs_f64();
    let cpu = worker_cpu_seconds() - cpu_before;
    handle.shutdown().await;
    task.await.expect("worker").expect("worker runs");
    let stats = sink.stats();
    let mb = data_bytes as f64 / 1e6;
    println!(
        "records            {} ({mb:.1} MB of record data)",
        args.records
    );
    println!("seconds            {seconds:.2} (worker start to the last object written)");
    println!("MB/s               {:.1}", mb / seconds);
    println!("worker CPU         {:.3} s per MB ({cpu:.2} s)", cpu / mb);
    println!(
        "objects            {} ({:.1} MB stored, {:.1} MB before compression)",
        stats.objects_written,
        stats.bytes_written as f64 / 1e6,
        stats.bytes_before_compression as f64 / 1e6
    );
    println!("peak RSS           {:.1} MiB", peak_rss_mib());
    println!(
        "{}",
        serde_json::json!({
            "records": args.records, "mb": mb, "seconds": seconds, "mb_per_s": mb / seconds,
            "cpu_s_per_mb": cpu / mb, "objects": stats.objects_written,
            "stored_mb": stats.bytes_written as f64 / 1e6, "format": format!("{:?}", args.format),
            "compression": format!("{:?}", args.compression), "s3": args.s3,
            "records_written": stats.records_written, "peak_rss_mib": peak_rss_mib(),
        })
    );
    assert_eq!(stats.records_written, args.records as u64, "records lost");
    drop(s3);
    let _ = std::fs::remove_dir_all(&dir);
}
