//! Run one worker that counts records (and prints them with `--print`), checkpointing after
//! each batch.
//!
//! `cargo run --example consume -- --stream NAME --app-name APP [--kinesis-endpoint URL]
//! [--dynamodb-endpoint URL] [--initial-position trim-horizon|latest|at-timestamp:RFC3339]
//! [--until-idle SECONDS] [--fan-out CONSUMER] [--worker-id ID] [--aws] [--print]
//! [--records-out FILE] [--prometheus ADDR] [--metrics-granularity worker|stream|shard]`
//!
//! `--prometheus 127.0.0.1:9464` serves the worker's metrics (see the consumer's metrics
//! table) for Prometheus to scrape at `http://ADDR/metrics`, through the
//! `metrics-exporter-prometheus` crate.
//!
//! `--records-out FILE` appends every record processed as `shard TAB key TAB sequence TAB
//! subsequence TAB data`, written out before each checkpoint, after a `#init TAB shard` line
//! for each processor started (the mixed-fleet interop check reads it).
//!
//! With `--until-idle S` it shuts down gracefully once no record arrived for S seconds and
//! prints one JSON line; otherwise it runs until Ctrl-C or SIGTERM. Several copies with the
//! same `--app-name` share the shards.

use std::collections::HashSet;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use kinesis_consumer::{
    Checkpointer, InitialPosition, MetricsGranularity, ProcessRecordsInput, ProcessorError,
    RecordProcessor, Worker,
};
use kinesis_testkit::{Target, TargetChoice};

#[derive(Parser)]
struct Args {
    #[arg(long)]
    stream: String,
    #[arg(long)]
    app_name: String,
    #[arg(long)]
    kinesis_endpoint: Option<String>,
    #[arg(long)]
    dynamodb_endpoint: Option<String>,
    /// trim-horizon, latest, or at-timestamp:RFC3339
    #[arg(long, default_value = "trim-horizon")]
    initial_position: String,
    /// Shut down once no record arrived for this many seconds.
    #[arg(long)]
    until_idle: Option<f64>,
    #[arg(long)]
    aws: bool,
    /// Print each record.
    #[arg(long)]
    print: bool,
    /// Read with enhanced fan-out through this stream consumer (registered if missing).
    #[arg(long)]
    fan_out: Option<String>,
    /// The worker id (`leaseOwner`); default: host name + random suffix.
    #[arg(long)]
    worker_id: Option<String>,
    /// Append every record processed to this file, before each checkpoint.
    #[arg(long)]
    records_out: Option<std::path::PathBuf>,
    /// Serve the metrics for Prometheus at http://ADDR/metrics.
    #[arg(long)]
    prometheus: Option<std::net::SocketAddr>,
    /// worker, stream or shard: how finely the metrics are labelled.
    #[arg(long, default_value = "stream")]
    metrics_granularity: String,
}

#[derive(Default)]
struct Seen {
    records: u64,
    distinct: HashSet<(String, u64)>,
    shards: HashSet<String>,
    first: Option<Instant>,
    last: Option<Instant>,
}

struct Counter {
    seen: Arc<Mutex<Seen>>,
    print: bool,
    out: Option<Arc<Mutex<std::fs::File>>>,
}

impl RecordProcessor for Counter {
    async fn process_records(
        &mut self,
        input: ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        {
            let mut seen = self.seen.lock().unwrap();
            seen.shards.insert(input.shard_id.clone());
            seen.last = Some(Instant::now());
            if !input.records.is_empty() && seen.first.is_none() {
                seen.first = seen.last;
            }
            for r in &input.records {
                seen.records += 1;
                seen.distinct
                    .insert((r.sequence_number.clone(), r.sub_sequence_number));
                if self.print {
                    println!(
                        "{} {} {}",
                        input.shard_id,
                        r.partition_key,
                        String::from_utf8_lossy(&r.data)
                    );
                }
            }
        }
        if let Some(out) = &self.out {
            let mut lines = String::new();
            for r in &input.records {
                lines.push_str(&format!(
                    "{}\t{}\t{}\t{}\t{}\n",
                    input.shard_id,
                    r.partition_key,
                    r.sequence_number,
                    r.sub_sequence_number,
                    String::from_utf8_lossy(&r.data)
                ));
            }
            out.lock()
                .unwrap()
                .write_all(lines.as_bytes())
                .map_err(|e| ProcessorError::from(e.to_string()))?;
        }
        checkpointer.checkpoint().await?;
        Ok(())
    }
}

fn granularity(value: &str) -> Result<MetricsGranularity, String> {
    match value {
        "worker" => Ok(MetricsGranularity::Worker),
        "stream" => Ok(MetricsGranularity::Stream),
        "shard" => Ok(MetricsGranularity::Shard),
        other => Err(format!("unknown metrics granularity {other:?}")),
    }
}

fn initial_position(value: &str) -> Result<InitialPosition, String> {
    match value {
        "trim-horizon" => Ok(InitialPosition::TrimHorizon),
        "latest" => Ok(InitialPosition::Latest),
        other => match other.strip_prefix("at-timestamp:") {
            Some(t) => humantime::parse_rfc3339(t)
                .map(InitialPosition::AtTimestamp)
                .map_err(|e| format!("{t}: {e}")),
            None => Err(format!("unknown initial position {other:?}")),
        },
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(kinesis_common::logging::env_filter(""))
        .with_writer(std::io::stderr)
        .init();
    let choice = TargetChoice {
        aws: args.aws,
        kinesis_endpoint: args.kinesis_endpoint,
        dynamodb_endpoint: args.dynamodb_endpoint,
        enforce_limits: false,
    };
    if let Some(addr) = args.prometheus {
        // Before the worker is built: its metric handles register with this recorder.
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(addr)
            .install()?;
        eprintln!("metrics at http://{addr}/metrics");
    }
    let target = Target::resolve(choice).await?;
    eprintln!("consuming from {}", target.description);
    let config = target.options.sdk_config().await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let out = match &args.records_out {
        Some(path) => Some(Arc::new(Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        ))),
        None => None,
    };
    let factory = {
        let (seen, print) = (seen.clone(), args.print);
        move |shard: &str| {
            if let Some(out) = &out {
                // Marks where this processor's records begin.
                let _ = writeln!(out.lock().unwrap(), "#init\t{shard}");
            }
            Counter {
                seen: seen.clone(),
                print,
                out: out.clone(),
            }
        }
    };
    let mut builder = Worker::builder(args.app_name.as_str(), args.stream.as_str())
        .kinesis_client(target.options.kinesis_client(&config))
        .dynamodb_client(target.options.dynamodb_client(&config))
        .initial_position(initial_position(&args.initial_position)?)
        .metrics_granularity(granularity(&args.metrics_granularity)?);
    if let Some(consumer) = args.fan_out {
        builder = builder.fan_out(consumer);
    }
    if let Some(id) = args.worker_id {
        builder = builder.worker_id(id);
    }
    let worker = builder.build(factory)?;
    let handle = worker.handle();
    let start = Instant::now();
    let run = tokio::spawn(worker.run());

    match args.until_idle {
        Some(idle) => loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let last = seen.lock().unwrap().last.unwrap_or(start);
            if last.elapsed().as_secs_f64() >= idle || run.is_finished() {
                break;
            }
        },
        None => {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term.recv() => {}, _ = async { while !run.is_finished() { tokio::time::sleep(Duration::from_millis(200)).await } } => {} }
        }
    }
    handle.shutdown().await;
    run.await??;
    let seen = seen.lock().unwrap();
    println!(
        "{}",
        serde_json::json!({
            "records": seen.records, "distinct": seen.distinct.len(), "shards": seen.shards.len(),
            "seconds": start.elapsed().as_secs_f64(),
            "first_record_s": seen.first.map(|f| f.duration_since(start).as_secs_f64()),
        })
    );
    Ok(())
}
