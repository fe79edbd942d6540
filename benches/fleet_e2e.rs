//! A fleet end to end: N `consume` example processes (separate OS processes, as in
//! production) on one M-shard stream of the embedded emulator, which this process hosts.
//!
//! `cargo build --workspace --all-targets && target/debug/fleet_e2e --shards 200 --workers 4`
//!
//! Prints: time from starting the processes until every shard is owned and until the fleet is
//! balanced; each worker's idle CPU (and the emulator's, this process) over a steady window;
//! then a `kill -9` of one worker and the time until all its shards are owned by the others.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use kinesis_benches::ownership::{balanced, owners, shown, wait_for};
use kinesis_benches::process::pid_cpu_seconds;
use kinesis_testkit::LocalAws;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 200)]
    shards: u32,
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Seconds of steady state for the CPU figures.
    #[arg(long, default_value_t = 20)]
    steady_seconds: u64,
    /// Give up waiting for a state after this many seconds.
    #[arg(long, default_value_t = 180)]
    bound_seconds: u64,
    /// The `consume` example (default: next to this binary, under `examples/`).
    #[arg(long)]
    consume: Option<PathBuf>,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let bound = Duration::from_secs(args.bound_seconds);
    let consume = args.consume.clone().unwrap_or_else(|| {
        let exe = std::env::current_exe().expect("own path");
        exe.parent().expect("a directory").join("examples/consume")
    });
    assert!(
        consume.exists(),
        "{} is missing: cargo build --workspace --all-targets",
        consume.display()
    );
    let aws = LocalAws::builder()
        .shard_limit(args.shards.max(1000))
        .start()
        .await
        .expect("emulators");
    aws.create_stream("fleet-e2e", args.shards)
        .await
        .expect("stream");
    let table = "fleet-e2e-app";
    let observer = aws.dynamodb_client().await;
    let shards = args.shards as usize;
    println!(
        "fleet end to end: {shards} shards, {} consume processes, one embedded emulator, default timings",
        args.workers
    );
    let start = Instant::now();
    let mut fleet: Vec<(String, Child)> = (0..args.workers)
        .map(|i| {
            let id = format!("proc{i}");
            let child = Command::new(&consume)
                .args([
                    "--stream",
                    "fleet-e2e",
                    "--app-name",
                    table,
                    "--worker-id",
                    &id,
                ])
                .args(["--kinesis-endpoint", &aws.kinesis_endpoint()])
                .args(["--dynamodb-endpoint", &aws.dynamodb_endpoint()])
                .env("RUST_LOG", "error")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("consume process");
            (id, child)
        })
        .collect();
    let owned = wait_for(&observer, table, bound, |o| {
        o.values().sum::<usize>() == shards
    })
    .await;
    println!(
        "  every shard owned after    {}",
        shown(owned.map(|_| start.elapsed()))
    );
    let workers = args.workers;
    let even = wait_for(&observer, table, bound, |o| balanced(o, shards, workers)).await;
    println!(
        "  balanced after             {}",
        shown(even.map(|_| start.elapsed()))
    );

    let pids: Vec<String> = fleet.iter().map(|(_, c)| c.id().to_string()).collect();
    let me = std::process::id().to_string();
    let before: Vec<f64> = pids.iter().map(|p| pid_cpu_seconds(p)).collect();
    let emulator_before = pid_cpu_seconds(&me);
    let window = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.steady_seconds)).await;
    let secs = window.elapsed().as_secs_f64();
    let shares: Vec<String> = pids
        .iter()
        .zip(&before)
        .map(|(p, b)| format!("{:.1}%", 100.0 * (pid_cpu_seconds(p) - b) / secs))
        .collect();
    let emulator = 100.0 * (pid_cpu_seconds(&me) - emulator_before) / secs;
    println!(
        "  idle CPU per worker        {} of one core (emulator and observer: {emulator:.0}%)",
        shares.join(", ")
    );

    let (dead, mut child) = fleet.pop().expect("a worker");
    let dead_shards = owners(&observer, table)
        .await
        .get(&dead)
        .copied()
        .unwrap_or(0);
    child.kill().expect("kill -9");
    let killed = Instant::now();
    let _ = child.wait();
    let failover = wait_for(&observer, table, bound, |o| {
        !o.contains_key(&dead) && o.values().sum::<usize>() == shards
    })
    .await;
    println!(
        "  kill -9 of {dead} ({dead_shards} shards): all owned by the others after {}",
        shown(failover.map(|_| killed.elapsed()))
    );
    for (_, mut child) in fleet {
        // SIGTERM: a graceful shutdown.
        let _ = Command::new("kill").arg(child.id().to_string()).status();
        let _ = child.wait();
    }
}
