//! End-to-end latency, polling vs enhanced fan-out: from `send` in the producer to
//! `process_records` in the consumer, on the embedded emulator, with default settings on both
//! sides (the producer buffers up to 100 ms; polling waits 500 ms after an empty read).
//!
//! `cargo run --release -p kinesis-benches --bin latency_e2e -- --seconds 20 --rate 200`
//!
//! For each mode, a fresh stream of 2 shards and one worker; records are sent at a steady
//! rate, each carrying its send time, and the worker notes when it receives them. Prints
//! p50 / p90 / p99 / max per mode and one JSON line.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use kinesis_consumer::{
    Checkpointer, ProcessRecordsInput, ProcessorError, RecordProcessor, Worker,
};
use kinesis_producer::{Producer, UserRecord};
use kinesis_testkit::LocalAws;

#[derive(Parser)]
struct Args {
    /// Seconds of sending per mode.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Records per second.
    #[arg(long, default_value_t = 200)]
    rate: u64,
}

struct Stamp {
    base: Instant,
    latencies: Arc<Mutex<Vec<Duration>>>,
}

impl RecordProcessor for Stamp {
    async fn process_records(
        &mut self,
        input: ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        let now = self.base.elapsed();
        let received: Vec<Duration> = input
            .records
            .iter()
            .filter_map(|r| std::str::from_utf8(&r.data).ok()?.parse::<u64>().ok())
            .map(|sent| now.saturating_sub(Duration::from_micros(sent)))
            .collect();
        self.latencies.lock().unwrap().extend(received);
        checkpointer.checkpoint().await?;
        Ok(())
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

async fn measure(aws: &LocalAws, fan_out: bool, args: &Args) -> Vec<Duration> {
    let stream = if fan_out {
        "latency-efo"
    } else {
        "latency-polling"
    };
    aws.create_stream(stream, 2).await.expect("stream");
    let base = Instant::now();
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let factory = {
        let latencies = latencies.clone();
        move |_: &str| Stamp {
            base,
            latencies: latencies.clone(),
        }
    };
    let mut builder = Worker::builder(format!("{stream}-app"), stream)
        .kinesis_client(aws.kinesis_client().await)
        .dynamodb_client(aws.dynamodb_client().await)
        .initial_position(kinesis_consumer::InitialPosition::TrimHorizon);
    if fan_out {
        builder = builder.fan_out("latency");
    }
    let worker = builder.build(factory).expect("worker");
    let handle = worker.handle();
    let run = tokio::spawn(worker.run());
    // Let the worker take its leases before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let producer = Producer::builder(stream)
        .client(aws.kinesis_client().await)
        .build()
        .expect("producer");
    let total = (args.seconds * args.rate as f64) as u64;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate as f64));
    for i in 0..total {
        tick.tick().await;
        let sent = base.elapsed().as_micros() as u64;
        let _ = producer
            .send(UserRecord::new(format!("k{}", i % 64), sent.to_string()))
            .await;
    }
    producer.flush().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while (latencies.lock().unwrap().len() as u64) < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    handle.shutdown().await;
    let _ = run.await;
    producer.shutdown().await;
    let mut out = latencies.lock().unwrap().clone();
    out.sort();
    out
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let aws = LocalAws::start().await.expect("emulators");
    let mut summary = serde_json::Map::new();
    println!("mode      records  p50 ms  p90 ms  p99 ms  max ms");
    for (name, fan_out) in [("polling", false), ("fan-out", true)] {
        let l = measure(&aws, fan_out, &args).await;
        let (p50, p90, p99) = (
            percentile(&l, 0.5),
            percentile(&l, 0.9),
            percentile(&l, 0.99),
        );
        let max = percentile(&l, 1.0);
        println!(
            "{name:8} {:8} {p50:7.0} {p90:7.0} {p99:7.0} {max:7.0}",
            l.len()
        );
        summary.insert(
            name.into(),
            serde_json::json!({"records": l.len(), "p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "max_ms": max}),
        );
    }
    println!("{}", serde_json::Value::Object(summary));
}
