//! The end-to-end demo: generated records → producer → stream → consumer workers → batch files,
//! as in the seeds' sample app (a web page, Kinesis, and Firehose writing to S3).
//!
//! `cargo run --example demo_app` serves the page on http://127.0.0.1:8080;
//! `cargo run --example demo_app -- --records 20000 --headless` runs the flow once and prints a
//! summary. `--help` lists every flag.

mod web;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use kinesis_consumer::{Worker, WorkerHandle};
use kinesis_examples::audit::AuditLog;
use kinesis_examples::generator::{Generator, id_of};
use kinesis_examples::observed::{Received, observed};
use kinesis_examples::output::{demo_format, read_local_lines};
use kinesis_producer::{Producer, UserRecord};
use kinesis_sink::{Destination, Sink};
use kinesis_testkit::{LocalS3, Target, TargetChoice, streams};

/// Which parts run in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Role {
    /// Producer and consumer workers.
    All,
    /// Only the producer.
    Producer,
    /// Only consumer workers.
    Consumer,
}

/// Kinesis demo: records → producer → stream → consumer → batch files.
#[derive(Debug, Parser)]
#[command(about)]
struct Args {
    /// Kinesis endpoint URL (default: `AWS_ENDPOINT_URL_KINESIS`, else the embedded emulator).
    #[arg(long)]
    kinesis_endpoint: Option<String>,
    /// DynamoDB endpoint URL (default: `AWS_ENDPOINT_URL_DYNAMODB`, else the embedded emulator).
    #[arg(long)]
    dynamodb_endpoint: Option<String>,
    /// Use real AWS (default credential chain and region).
    #[arg(long)]
    aws: bool,
    /// Stream name.
    #[arg(long, default_value = "demo")]
    stream: String,
    /// Shards of the stream when it is created.
    #[arg(long, default_value_t = 4)]
    shards: u32,
    /// Application name (and lease table).
    #[arg(long, default_value = "demo-app")]
    app_name: String,
    /// Consumer workers in this process.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Output: a local folder or s3://bucket/prefix.
    #[arg(long, default_value = "demo-output")]
    output_dir: String,
    /// With an s3:// output and no S3 endpoint configured (`--aws`, `AWS_ENDPOINT_URL_S3`,
    /// `AWS_ENDPOINT_URL`): the folder the embedded S3 server keeps its buckets in.
    #[arg(long, default_value = "demo-s3")]
    s3_root: std::path::PathBuf,
    /// Write a buffer (one per hour folder, shared by every shard) at this many bytes
    /// (1–128 MiB, as Firehose).
    #[arg(long, default_value_t = 5 * 1024 * 1024)]
    buffer_size: usize,
    /// … or when its oldest record is this many seconds old (0–900).
    #[arg(long, default_value_t = 300.0)]
    buffer_interval: f64,
    /// Gzip the files (with `--parquet`: their column chunks).
    #[arg(long)]
    gzip: bool,
    /// Parquet files (columns id, created_ms, payload) instead of JSON lines, as Firehose's
    /// format conversion.
    #[arg(long)]
    parquet: bool,
    /// Web page port on 127.0.0.1.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Records to produce (headless mode).
    #[arg(long, default_value_t = 10_000)]
    records: u64,
    /// Approximate size of each record in bytes.
    #[arg(long, default_value_t = 100)]
    record_size: usize,
    /// Produce `--records`, wait until the sink has written them all, print a summary, exit.
    #[arg(long)]
    headless: bool,
    /// Read with enhanced fan-out through this stream consumer (registered if missing)
    /// instead of polling.
    #[arg(long)]
    fan_out: Option<String>,
    /// Append one JSON line per record-processor event (start, batch, checkpoint, end) to
    /// this file, for auditing delivery (the chaos test reads it).
    #[arg(long)]
    audit_log: Option<std::path::PathBuf>,
    /// Which parts run here, to share one stream between processes.
    #[arg(long, value_enum, default_value_t = Role::All)]
    role: Role,
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// Producer-side counts for the page and the summary.
#[derive(Debug, Default)]
struct Counters {
    produced: AtomicU64,
    acknowledged: AtomicU64,
    failed: AtomicU64,
}

/// A consumer worker this process runs.
struct Slot {
    id: String,
    handle: WorkerHandle,
    task: Option<tokio::task::JoinHandle<Result<(), kinesis_consumer::ConsumerError>>>,
}

impl Slot {
    fn running(&self) -> bool {
        self.task.as_ref().is_some_and(|t| !t.is_finished())
    }
}

struct Demo {
    args: Args,
    /// Keeps the embedded emulators (if chosen) running as long as the demo.
    _target: Target,
    kinesis: aws_sdk_kinesis::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    producer: Producer,
    /// The Firehose part, shared by the workers of this process.
    sink: Sink,
    /// The embedded S3 server of an s3:// output, when no other is configured.
    s3: Option<LocalS3>,
    /// What the workers' processors received.
    received: Arc<Mutex<Received>>,
    workers: tokio::sync::Mutex<Vec<Slot>>,
    counters: Counters,
}

impl Demo {
    async fn start(args: Args) -> Result<Arc<Demo>, Failure> {
        let choice = TargetChoice {
            aws: args.aws,
            kinesis_endpoint: args.kinesis_endpoint.clone(),
            dynamodb_endpoint: args.dynamodb_endpoint.clone(),
            enforce_limits: true,
        };
        let target = Target::resolve(choice).await?;
        eprintln!("demo_app: using {}", target.description);
        let sdk = target.options.sdk_config().await;
        let kinesis = target.options.kinesis_client(&sdk);
        let dynamodb = target.options.dynamodb_client(&sdk);
        if streams::ensure_stream(&kinesis, &args.stream, args.shards).await? {
            eprintln!(
                "demo_app: created stream {:?} with {} shards",
                args.stream, args.shards
            );
        }
        let producer = Producer::builder(args.stream.as_str())
            .client(kinesis.clone())
            .build()?;
        let (destination, s3) = destination(&args)?;
        let (format, compression) = demo_format(args.parquet, args.gzip);
        let sink = Sink::builder(destination)
            .name(args.stream.as_str())
            .buffer_size(args.buffer_size)
            .buffer_interval(Duration::from_secs_f64(args.buffer_interval.max(0.0)))
            .format(format)
            .compression(compression)
            .build()?;
        let demo = Arc::new(Demo {
            args,
            _target: target,
            kinesis,
            dynamodb,
            producer,
            sink,
            s3,
            received: Arc::default(),
            workers: tokio::sync::Mutex::new(Vec::new()),
            counters: Counters::default(),
        });
        if demo.args.role != Role::Producer {
            for _ in 0..demo.args.workers {
                demo.start_worker().await?;
            }
        }
        Ok(demo)
    }

    async fn start_worker(&self) -> Result<String, Failure> {
        let audit = match &self.args.audit_log {
            Some(path) => Some(AuditLog::open(path)?),
            None => None,
        };
        let mut builder = Worker::builder(self.args.app_name.as_str(), self.args.stream.as_str())
            .kinesis_client(self.kinesis.clone())
            .dynamodb_client(self.dynamodb.clone())
            .deliver_empty_batches(true)
            .idle_time_between_reads(Duration::from_millis(200));
        if let Some(consumer) = &self.args.fan_out {
            builder = builder.fan_out(consumer.clone());
        }
        let worker = builder.build(observed(self.sink.factory(), audit, self.received.clone()))?;
        let id = worker.worker_id().to_owned();
        eprintln!("demo_app: worker {id} writing to {}", self.args.output_dir);
        let handle = worker.handle();
        self.workers.lock().await.push(Slot {
            id: id.clone(),
            handle,
            task: Some(tokio::spawn(worker.run())),
        });
        Ok(id)
    }

    /// Stops a running worker gracefully (its leases are handed over at once).
    async fn stop_worker(&self, index: usize) -> Option<String> {
        let (id, handle, task) = {
            let mut workers = self.workers.lock().await;
            let slot = workers.get_mut(index).filter(|s| s.running())?;
            (slot.id.clone(), slot.handle.clone(), slot.task.take())
        };
        handle.shutdown().await;
        if let Some(task) = task {
            let _ = task.await;
        }
        Some(id)
    }

    async fn stop_workers(&self) -> Result<(), Failure> {
        let slots: Vec<Slot> = self.workers.lock().await.drain(..).collect();
        for mut slot in slots {
            slot.handle.shutdown().await;
            if let Some(task) = slot.task.take() {
                task.await??;
            }
        }
        Ok(())
    }

    async fn produce(&self, count: u64, size: usize) -> Generator {
        let generator = Generator::new(size);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<kinesis_producer::PutFuture>();
        let waiter = async {
            while let Some(put) = rx.recv().await {
                match put.await {
                    Ok(_) => self.counters.acknowledged.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        eprintln!("demo_app: a record was not put: {e}");
                        self.counters.failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        };
        let sender = async {
            for n in 0..count {
                let (key, line) = generator.record(n);
                match self.producer.send(UserRecord::new(key, line)).await {
                    Ok(put) => {
                        self.counters.produced.fetch_add(1, Ordering::Relaxed);
                        let _ = tx.send(put);
                    }
                    Err(e) => {
                        eprintln!("demo_app: {e}");
                        self.counters.failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            drop(tx);
        };
        tokio::join!(sender, waiter);
        generator
    }

    fn producer_stats(&self) -> kinesis_producer::ProducerStats {
        self.producer.stats()
    }

    async fn leases(&self) -> Vec<kinesis_consumer::Lease> {
        let Ok(out) = self
            .dynamodb
            .scan()
            .table_name(&self.args.app_name)
            .consistent_read(true)
            .send()
            .await
        else {
            return Vec::new();
        };
        out.items()
            .iter()
            .filter_map(|i| kinesis_consumer::Lease::from_item(i).ok())
            .collect()
    }
}

async fn headless(args: Args) -> Result<bool, Failure> {
    let (records, size) = (args.records, args.record_size);
    let demo = Demo::start(args).await?;
    let start = Instant::now();
    let generator = if demo.args.role != Role::Consumer {
        demo.produce(records, size).await
    } else {
        Generator::new(size)
    };
    demo.producer.shutdown().await;
    let failed = demo.counters.failed.load(Ordering::Relaxed);
    eprintln!(
        "demo_app: produced {} records ({failed} failed) in {:.1} s",
        demo.counters.acknowledged.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64()
    );
    if demo.args.role == Role::Producer {
        return Ok(failed == 0);
    }
    // Wait (bounded) until the sinks hold every record, then shut down so they write them.
    // The bar shows only on a terminal.
    let bar = indicatif::ProgressBar::new(records).with_message("records consumed");
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {msg} ({per_sec})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let bound = Duration::from_secs(120) + Duration::from_millis(records);
    loop {
        let received = demo.sink.stats().records_received;
        bar.set_position(received.min(records));
        if received >= records {
            break;
        }
        if start.elapsed() > bound {
            eprintln!("demo_app: gave up waiting after {bound:?}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bar.finish_and_clear();
    demo.stop_workers().await?;
    demo.sink.shutdown().await;
    let seconds = start.elapsed().as_secs_f64();
    let stats = demo.sink.stats();
    let files = stats.objects_written;

    let root = match (Destination::parse(&demo.args.output_dir)?, &demo.s3) {
        (Destination::Folder(root), _) => Some(root),
        // The embedded S3 keeps a bucket's objects as files under its root.
        (_, Some(s3)) => demo
            .args
            .output_dir
            .strip_prefix("s3://")
            .map(|rest| s3.root().join(rest)),
        _ => None,
    };
    let Some(root) = root else {
        println!(
            "produced {records}, written {}, files {files}, seconds {seconds:.1}",
            stats.records_written,
        );
        return Ok(stats.records_written >= records);
    };
    let mut seen = std::collections::HashSet::new();
    for line in read_local_lines(&root)? {
        // A consumer-only process does not know the producer's run: it counts every record.
        if let Some(id) = id_of(&line)
            && (demo.args.role == Role::Consumer || id.starts_with(generator.run()))
        {
            seen.insert(id.to_owned());
        }
    }
    let missing = records.saturating_sub(seen.len() as u64);
    println!(
        "produced {records}, delivered {}, missing {missing}, files {files}, seconds {seconds:.1}, records/s {:.0}",
        seen.len(),
        seen.len() as f64 / seconds
    );
    if missing > 0 {
        eprintln!(
            "demo_app: {missing} records are not in any file under {}",
            root.display()
        );
    }
    Ok(missing == 0 && failed == 0)
}

/// Where the sink writes: `--output-dir`, with an embedded S3 server behind an s3:// output
/// when no S3 endpoint is configured (so it works with no account).
fn destination(args: &Args) -> Result<(Destination, Option<LocalS3>), Failure> {
    let configured = args.aws
        || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some()
        || std::env::var_os("AWS_ENDPOINT_URL").is_some();
    let Some(rest) = args
        .output_dir
        .strip_prefix("s3://")
        .filter(|_| !configured)
    else {
        return Ok((Destination::parse(&args.output_dir)?, None));
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!("--output-dir {}: no bucket", args.output_dir).into());
    }
    let s3 = LocalS3::start(&args.s3_root)?;
    s3.create_bucket(bucket)?;
    eprintln!(
        "demo_app: embedded S3 on {} keeping buckets in {}",
        s3.endpoint(),
        args.s3_root.display()
    );
    let destination =
        Destination::in_store(s3.object_store(bucket)?, prefix, args.output_dir.as_str());
    Ok((destination, Some(s3)))
}

async fn serve(args: Args) -> Result<bool, Failure> {
    let port = args.port;
    let demo = Demo::start(args).await?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
    let addr = listener.local_addr()?;
    println!("demo_app: open http://{addr}");
    let shutdown = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
    };
    axum::serve(listener, web::router(demo.clone()))
        .with_graceful_shutdown(shutdown)
        .await?;
    eprintln!("demo_app: shutting down (flushing the producer, checkpointing, releasing leases)");
    demo.producer.shutdown().await;
    demo.stop_workers().await?;
    demo.sink.shutdown().await;
    Ok(true)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(kinesis_common::logging::env_filter(""))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let result = if args.headless {
        headless(args).await
    } else {
        serve(args).await
    };
    match result {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("demo_app: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
