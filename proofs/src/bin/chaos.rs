//! Chaos: several demo consumer processes share a stream and a lease table while this driver
//! kills them with SIGKILL at random moments, stops some gracefully, starts new ones, cuts one
//! off from DynamoDB for a while (its calls black-holed while Kinesis works), splits and
//! merges shards, and injects faults into Kinesis and DynamoDB; a producer writes keyed,
//! numbered records all along. At the end the workers' audit logs must show that every
//! acknowledged record was processed, each key in stream order, no shard by two workers at
//! once, and duplicates only after a crash or a lost lease (see `kinesis_proofs::verify`).
//!
//! `cargo build --workspace --all-targets && target/debug/chaos [--seconds 40] [--workers 3]
//! [--rate 1000] [--seed N]` (the workers are the `demo_app` example of the same build)
//!
//! The emulators and an embedded S3 run in this process (their fault rules are set directly);
//! the workers are `demo_app --role consumer` processes talking to them over loopback, their
//! sinks writing to one S3 prefix, where every acknowledged record must be in exactly one
//! object line. Prints one JSON
//! report; exit code 0 only if every check passed.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use kinesis_examples::audit::{EventKind, now_micros, read_events};
use kinesis_producer::{Producer, UserRecord};
use kinesis_proofs::verify::{Expected, verify};
use kinesis_testkit::{FaultRule, LocalAws, LocalS3, streams};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const STREAM: &str = "chaos";
const APP: &str = "chaos-app";
/// The embedded S3 bucket every worker's sink writes to.
const BUCKET: &str = "chaos";

#[derive(Parser)]
struct Args {
    /// How long the chaos lasts (producing, killing, resharding).
    #[arg(long, default_value_t = 40.0)]
    seconds: f64,
    /// Worker processes kept running.
    #[arg(long, default_value_t = 3)]
    workers: usize,
    /// Records produced per second.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Distinct partition keys.
    #[arg(long, default_value_t = 64)]
    keys: u64,
    /// Shards at the start.
    #[arg(long, default_value_t = 4)]
    shards: u32,
    /// Probability of each injected fault per request.
    #[arg(long, default_value_t = 0.02)]
    fault_probability: f64,
    /// Random seed (default: random, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Working folder for audit logs, the embedded S3 (`s3/`) and worker logs.
    #[arg(long, default_value = "target/chaos")]
    dir: PathBuf,
}

struct Workers {
    exe: PathBuf,
    dir: PathBuf,
    env: Vec<(String, String)>,
    running: Vec<Child>,
    started: usize,
    killed: HashMap<u32, u64>,
    /// Each worker signs with a key of its own, so a fault rule can cut off one of them.
    keys: HashMap<u32, String>,
}

impl Workers {
    fn start(&mut self) -> std::io::Result<u32> {
        self.started += 1;
        let n = self.started;
        let log = std::fs::File::create(self.dir.join(format!("logs/worker-{n}.log")))?;
        let child = Command::new(&self.exe)
            .args([
                "--role",
                "consumer",
                "--port",
                "0",
                "--stream",
                STREAM,
                "--app-name",
                APP,
            ])
            .args(["--buffer-size", "1048576", "--buffer-interval", "0.5"])
            // One output for every worker, one prefix of the embedded S3 this process serves:
            // a shard's next owner reads the manifests of the objects its last owner wrote.
            .args(["--output-dir", &format!("s3://{BUCKET}/files")])
            .arg("--audit-log")
            .arg(self.dir.join(format!("audit/worker-{n}.jsonl")))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("AWS_ACCESS_KEY_ID", format!("chaosworker{n}"))
            .env("AWS_SECRET_ACCESS_KEY", LocalS3::SECRET_KEY)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        let pid = child.id();
        self.keys.insert(pid, format!("chaosworker{n}"));
        self.running.push(child);
        Ok(pid)
    }

    fn kill(&mut self, index: usize) -> u32 {
        let mut child = self.running.remove(index);
        let pid = child.id();
        let _ = child.kill(); // SIGKILL
        self.killed.insert(pid, now_micros());
        let _ = child.wait();
        pid
    }

    /// SIGTERM: the demo checkpoints, hands its leases over and exits.
    fn stop(&mut self, index: usize) -> u32 {
        let mut child = self.running.remove(index);
        let pid = child.id();
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return pid;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("chaos: worker {pid} did not stop within 30 s; killing it");
        let _ = child.kill();
        self.killed.insert(pid, now_micros());
        let _ = child.wait();
        pid
    }
}

/// What the workers' files hold of the acknowledged records.
struct FileCheck {
    lines: usize,
    missing: usize,
    duplicated: usize,
}

impl FileCheck {
    /// Every acknowledged record in exactly one file line (the sink's manifests let a
    /// shard's next owner skip what a killed worker wrote but never checkpointed).
    fn ok(&self) -> bool {
        self.missing == 0 && self.duplicated == 0
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"lines": self.lines, "missing": self.missing, "duplicated": self.duplicated})
    }
}

fn check_files(dir: &Path, acknowledged: &HashSet<String>) -> std::io::Result<FileCheck> {
    let lines = kinesis_examples::output::read_local_lines(dir)?;
    let mut count: HashMap<String, usize> = HashMap::new();
    for line in &lines {
        *count
            .entry(String::from_utf8_lossy(line).into_owned())
            .or_default() += 1;
    }
    Ok(FileCheck {
        lines: lines.len(),
        missing: acknowledged
            .iter()
            .filter(|d| !count.contains_key(*d))
            .count(),
        duplicated: count.values().filter(|n| **n > 1).count(),
    })
}

fn delivered(dir: &Path) -> HashSet<String> {
    let mut out = HashSet::new();
    for e in read_events(dir).unwrap_or_default() {
        if let EventKind::Batch { records } = e.kind {
            out.extend(records.into_iter().map(|r| r.2));
        }
    }
    out
}

fn add_faults(aws: &LocalAws, p: f64) {
    aws.kinesis_faults()
        .add(FaultRule::internal_error().on("GetRecords").probability(p))
        .add(FaultRule::throttle().on("GetRecords").probability(p))
        .add(
            FaultRule::fail_entries(0.2)
                .on("PutRecords")
                .probability(p * 5.0),
        )
        .add(
            FaultRule::drop_connection()
                .on("PutRecords")
                .probability(p / 2.0),
        )
        .add(FaultRule::latency(Duration::from_millis(200)).probability(p));
    aws.dynamodb_faults()
        .add(FaultRule::internal_error().probability(p))
        .add(FaultRule::throttle().probability(p / 2.0))
        .add(FaultRule::latency(Duration::from_millis(300)).probability(p));
}

/// The `demo_app` example of the build this driver belongs to (`target/<profile>/examples/`).
fn demo_app() -> Result<PathBuf, Box<dyn std::error::Error>> {
    let exe = std::env::current_exe()?;
    let path = exe
        .parent()
        .map(|p| p.join("examples").join("demo_app"))
        .ok_or("no folder for the demo_app example")?;
    if !path.exists() {
        return Err(format!(
            "{} is missing: build it first with cargo build --workspace --all-targets",
            path.display()
        )
        .into());
    }
    Ok(path)
}

#[tokio::main]
async fn main() -> Result<std::process::ExitCode, Box<dyn std::error::Error>> {
    let args = Args::parse();
    let seed = args.seed.unwrap_or_else(rand::random);
    eprintln!("chaos: seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let _ = std::fs::remove_dir_all(&args.dir);
    for sub in ["audit", "logs"] {
        std::fs::create_dir_all(args.dir.join(sub))?;
    }
    let audit_dir = args.dir.join("audit");

    let aws = LocalAws::builder().worker_threads(2).start().await?;
    let s3 = LocalS3::start(args.dir.join("s3"))?;
    s3.create_bucket(BUCKET)?;
    aws.create_stream(STREAM, args.shards).await?;
    let kinesis = aws.kinesis_client().await;
    let exe = demo_app()?;
    let mut workers = Workers {
        exe,
        dir: args.dir.clone(),
        env: vec![
            ("AWS_ENDPOINT_URL_KINESIS".into(), aws.kinesis_endpoint()),
            ("AWS_ENDPOINT_URL_DYNAMODB".into(), aws.dynamodb_endpoint()),
            ("AWS_ENDPOINT_URL_S3".into(), s3.endpoint()),
            ("RUST_LOG".into(), "info".into()),
        ],
        running: Vec::new(),
        started: 0,
        killed: HashMap::new(),
        keys: HashMap::new(),
    };
    for _ in 0..args.workers {
        workers.start()?;
    }
    add_faults(&aws, args.fault_probability);

    // The producer: keyed, numbered records at a steady rate until the chaos ends.
    let producer = Producer::builder(STREAM).client(kinesis.clone()).build()?;
    let acknowledged = Arc::new(Mutex::new(HashSet::new()));
    let failed = Arc::new(Mutex::new(0u64));
    let stop_producing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let producing = {
        let (producer, acknowledged, failed) =
            (producer.clone(), acknowledged.clone(), failed.clone());
        let (stop, rate, keys) = (stop_producing.clone(), args.rate, args.keys);
        tokio::spawn(async move {
            let mut next = vec![0u64; keys as usize];
            let mut puts = tokio::task::JoinSet::new();
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let mut k = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                tick.tick().await;
                for _ in 0..rate.div_ceil(100) {
                    k = (k * 31 + 17) % keys;
                    let data = format!("k{k}:{}", next[k as usize]);
                    next[k as usize] += 1;
                    let Ok(put) = producer
                        .send(UserRecord::new(format!("k{k}"), data.clone()))
                        .await
                    else {
                        *failed.lock().unwrap() += 1;
                        continue;
                    };
                    let (acknowledged, failed) = (acknowledged.clone(), failed.clone());
                    puts.spawn(async move {
                        match put.await {
                            Ok(_) => acknowledged.lock().unwrap().insert(data),
                            Err(_) => {
                                *failed.lock().unwrap() += 1;
                                false
                            }
                        };
                    });
                }
            }
            while puts.join_next().await.is_some() {}
        })
    };

    // The chaos.
    let start = Instant::now();
    let mut actions: Vec<String> = Vec::new();
    let mut partitions: Vec<(kinesis_testkit::RuleId, Instant, u32)> = Vec::new();
    while start.elapsed().as_secs_f64() < args.seconds {
        tokio::time::sleep(Duration::from_millis(rng.random_range(1500..4000))).await;
        for (rule, _, pid) in
            partitions.extract_if(.., |(_, heal_at, _)| *heal_at <= Instant::now())
        {
            aws.dynamodb_faults().remove(rule);
            eprintln!(
                "chaos: {:5.1} s  healed worker {pid}'s partition",
                start.elapsed().as_secs_f64()
            );
        }
        let roll: f64 = rng.random();
        let open = streams::open_shards(&kinesis, STREAM).await?;
        let action = if roll < 0.35 && !workers.running.is_empty() {
            let i = rng.random_range(0..workers.running.len());
            let pid = workers.kill(i);
            if rng.random_bool(0.5) {
                workers.start()?;
            }
            format!("SIGKILL worker {pid}")
        } else if roll < 0.45 && workers.running.len() > 1 {
            let i = rng.random_range(0..workers.running.len());
            let pid = workers.stop(i);
            format!("SIGTERM worker {pid}")
        } else if roll < 0.55 && !workers.running.is_empty() {
            // A network partition: the worker's DynamoDB calls hang unanswered while Kinesis
            // works. It must stop before its leases move (the checker sees every overlap).
            let i = rng.random_range(0..workers.running.len());
            let pid = workers.running[i].id();
            let key = workers.keys[&pid].clone();
            let lasts = Duration::from_millis(rng.random_range(3000..15000));
            let rule = aws
                .dynamodb_faults()
                .add_rule(FaultRule::black_hole().from_client(key));
            partitions.push((rule, Instant::now() + lasts, pid));
            format!(
                "DynamoDB of worker {pid} black-holed for {:.1} s",
                lasts.as_secs_f64()
            )
        } else if roll < 0.65 && workers.running.len() <= args.workers {
            format!("started worker {}", workers.start()?)
        } else if roll < 0.82 && open.len() < 8 {
            let shard = &open[rng.random_range(0..open.len())].shard_id;
            aws.split_shard(STREAM, shard).await?;
            format!("split {shard}")
        } else if open.len() > 2 {
            let i = rng.random_range(0..open.len() - 1);
            let (a, b) = (&open[i].shard_id, &open[i + 1].shard_id);
            aws.merge_shards(STREAM, a, b).await?;
            format!("merged {a} and {b}")
        } else {
            format!("started worker {}", workers.start()?)
        };
        eprintln!("chaos: {:5.1} s  {action}", start.elapsed().as_secs_f64());
        actions.push(action);
        while workers.running.is_empty() {
            workers.start()?;
        }
    }

    // Calm: stop producing and faults, bring the workers back, wait for every record.
    stop_producing.store(true, std::sync::atomic::Ordering::Relaxed);
    producing.await?;
    producer.shutdown().await;
    aws.kinesis_faults().clear();
    aws.dynamodb_faults().clear();
    while workers.running.len() < args.workers {
        workers.start()?;
    }
    let acknowledged = std::mem::take(&mut *acknowledged.lock().unwrap());
    let wait_start = Instant::now();
    let bound = Duration::from_secs(90);
    loop {
        let seen = delivered(&audit_dir);
        let missing = acknowledged.iter().filter(|d| !seen.contains(*d)).count();
        if missing == 0 || wait_start.elapsed() > bound {
            eprintln!(
                "chaos: {missing} records not yet delivered after {:.1} s of calm",
                wait_start.elapsed().as_secs_f64()
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    while !workers.running.is_empty() {
        workers.stop(0);
    }

    let mut shard_rank: HashMap<String, u32> = HashMap::new();
    let all = kinesis_common::shard_map::list_shards(
        &kinesis,
        &kinesis_common::stream::StreamRef::parse(STREAM),
        false,
    )
    .await?;
    for shard in &all {
        // Shard ids grow with creation, so parents are ranked before their children.
        let rank = [shard.parent_shard_id(), shard.adjacent_parent_shard_id()]
            .into_iter()
            .flatten()
            .filter_map(|p| shard_rank.get(p))
            .map(|r| r + 1)
            .max()
            .unwrap_or(0);
        shard_rank.insert(shard.shard_id().to_owned(), rank);
    }
    let expected = Expected {
        acknowledged,
        killed: workers.killed.clone(),
        shard_rank,
    };
    // The embedded S3 keeps the bucket's objects as files.
    let files = check_files(
        &s3.root().join(BUCKET).join("files"),
        &expected.acknowledged,
    )?;
    let events = read_events(&audit_dir)?;
    let report = verify(&events, &expected);
    let mut summary = report.to_json();
    summary["files"] = files.to_json();
    summary["ok"] = (report.ok() && files.ok()).into();
    summary["seed"] = seed.into();
    summary["seconds"] = args.seconds.into();
    summary["failed_puts"] = (*failed.lock().unwrap()).into();
    summary["workers_started"] = workers.started.into();
    summary["killed"] = workers.killed.len().into();
    summary["shards"] = all.len().into();
    summary["actions"] = actions.len().into();
    summary["faults"] = serde_json::json!({
        "kinesis": format!("{:?}", aws.kinesis_faults().stats()),
        "dynamodb": format!("{:?}", aws.dynamodb_faults().stats()),
    });
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(if report.ok() && files.ok() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}
