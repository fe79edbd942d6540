//! Lease coordination at scale: N in-process workers on one stream of M shards against the
//! embedded DynamoDB, doing lease coordination and nothing else worth mentioning (processors
//! do nothing; each shard is read once, then its reader idles for an hour).
//!
//! `cargo run --release -p kinesis-benches --bin lease_coordination -- --leases 1000 --workers 20`
//!
//! Prints: time from a cold start (all workers within 1 s) until every lease is owned and
//! until the fleet is balanced (every worker within one of the mean); the fleet's lease-table
//! read and write units per second in steady state, as the workers report them (DynamoDB's
//! own `ConsumedCapacity`); a crash failover (one worker's future dropped) and a graceful
//! handoff (one worker shut down); and beside them the same read and write rates computed for
//! KCL 2.x and KCL 3.x from their defaults.

use std::time::{Duration, Instant};

use clap::Parser;
use kinesis_benches::ownership::{balanced, owners, shown, wait_for};
use kinesis_consumer::{
    Checkpointer, ProcessRecordsInput, ProcessorError, RecordProcessor, Worker, WorkerHandle,
};
use kinesis_testkit::LocalAws;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 1000)]
    leases: u32,
    #[arg(long, default_value_t = 20)]
    workers: usize,
    /// Seconds of steady state for the capacity figures.
    #[arg(long, default_value_t = 30)]
    steady_seconds: u64,
    /// Give up waiting for a state after this many seconds.
    #[arg(long, default_value_t = 300)]
    bound_seconds: u64,
    /// The workers' failover time (renewals every third of it); the default is KCL's.
    #[arg(long, default_value_t = 10.0)]
    failover_seconds: f64,
}

struct Idle;

impl RecordProcessor for Idle {
    async fn process_records(
        &mut self,
        _input: ProcessRecordsInput,
        _checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        Ok(())
    }
}

/// Read and write units so far: (lease table, coordinator table), each (reads, writes).
fn total_capacity(handles: &[WorkerHandle]) -> ((f64, f64), (f64, f64)) {
    handles
        .iter()
        .fold(((0.0, 0.0), (0.0, 0.0)), |((lr, lw), (cr, cw)), h| {
            let l = h.lease_table_capacity();
            let c = h.coordinator_table_capacity();
            (
                (lr + l.read_units, lw + l.write_units),
                (cr + c.read_units, cw + c.write_units),
            )
        })
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let leases = args.leases as usize;
    let bound = Duration::from_secs(args.bound_seconds);
    let aws = LocalAws::builder()
        .shard_limit(args.leases.max(1000))
        .start()
        .await
        .expect("emulators");
    aws.create_stream("fleet", args.leases)
        .await
        .expect("stream");
    let table = "fleet-app";
    let observer = aws.dynamodb_client().await;
    let failover = Duration::from_secs_f64(args.failover_seconds);
    let start_worker = |i: usize| {
        let aws = &aws;
        async move {
            let worker = Worker::builder("fleet-app", "fleet")
                .kinesis_client(aws.kinesis_client().await)
                .dynamodb_client(aws.dynamodb_client().await)
                .worker_id(format!("w{i:03}"))
                .idle_time_between_reads(Duration::from_secs(3600))
                .failover_time(failover)
                .renewal_interval(failover / 3)
                .build(|_: &str| Idle)
                .expect("worker");
            let handle = worker.handle();
            (handle, tokio::spawn(worker.run()))
        }
    };
    println!(
        "lease coordination: {} leases, {} workers, failover {} s (renewals every third)",
        leases, args.workers, args.failover_seconds
    );
    let cold = Instant::now();
    let mut fleet = Vec::new();
    for i in 0..args.workers {
        fleet.push(start_worker(i).await);
    }
    println!(
        "  workers started within {:.2} s",
        cold.elapsed().as_secs_f64()
    );
    let owned = wait_for(&observer, table, bound, |o| {
        o.values().sum::<usize>() == leases
    })
    .await;
    let owned = owned.map(|_| cold.elapsed());
    println!("  every lease owned after   {}", shown(owned));
    let starting: Vec<WorkerHandle> = fleet.iter().map(|(h, _)| h.clone()).collect();
    let ((lr, lw), (cr, cw)) = total_capacity(&starting);
    println!(
        "  until then: {:.0} read units, {:.0} write units (coordinator table: {cr:.0} and {cw:.0} of them)",
        lr + cr,
        lw + cw
    );
    let workers = args.workers;
    let even = wait_for(&observer, table, bound, |o| balanced(o, leases, workers)).await;
    println!(
        "  balanced after            {}",
        shown(even.map(|_| cold.elapsed()))
    );

    let handles: Vec<WorkerHandle> = fleet.iter().map(|(h, _)| h.clone()).collect();
    let before = total_capacity(&handles);
    let window = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.steady_seconds)).await;
    let after = total_capacity(&handles);
    let secs = window.elapsed().as_secs_f64();
    let rate = |a: f64, b: f64| (a - b) / secs;
    let (lease_r, lease_w) = (rate(after.0.0, before.0.0), rate(after.0.1, before.0.1));
    let (coord_r, coord_w) = (rate(after.1.0, before.1.0), rate(after.1.1, before.1.1));
    let (rps, wps) = (lease_r + coord_r, lease_w + coord_w);
    println!(
        "  steady state: {rps:.1} read units/s, {wps:.1} write units/s ({:.4} RU/s and {:.3} WU/s per lease)",
        rps / leases as f64,
        wps / leases as f64
    );
    println!(
        "    lease table {lease_r:.1} RU/s {lease_w:.1} WU/s; coordinator table {coord_r:.1} RU/s {coord_w:.1} WU/s ({:.2} RU/s and {:.2} WU/s per worker)",
        coord_r / workers as f64,
        coord_w / workers as f64
    );
    // KCL from its defaults: a lease item ≈ 350 B; failover 10 s, renewal every 3.33 s.
    let table_kb = leases as f64 * 350.0 / 1024.0;
    let scan_eventual = (table_kb / 8.0).ceil().max(1.0);
    let kcl2 = scan_eventual * workers as f64 / 20.0;
    let kcl3 = scan_eventual / 20.0 + workers as f64 * 0.5 / 10.0;
    let renew = leases as f64 / 3.33;
    println!(
        "  KCL 2.x from its defaults: {kcl2:.1} read units/s; KCL 3.x: {kcl3:.1} read units/s; both {renew:.0} write units/s"
    );

    let expired: u64 = handles.iter().map(|h| h.leases_expired()).sum();
    println!("  leases that expired while their worker was alive: {expired}");

    // Crash: the last worker's future is dropped, nothing released.
    let (dead_handle, dead_task) = fleet.pop().expect("a worker");
    let dead_id = format!("w{:03}", fleet.len());
    let dead_leases = owners(&observer, table)
        .await
        .get(&dead_id)
        .copied()
        .unwrap_or(0);
    dead_task.abort();
    drop(dead_handle);
    let crashed = Instant::now();
    let failover = wait_for(&observer, table, bound, |o| {
        !o.contains_key(&dead_id) && o.values().sum::<usize>() == leases
    })
    .await;
    println!(
        "  crash of {dead_id} ({dead_leases} leases): all owned by live workers after {}",
        shown(failover.map(|_| crashed.elapsed()))
    );

    // Graceful: the next one shuts down and releases.
    let (gone_handle, gone_task) = fleet.pop().expect("a worker");
    let gone_id = format!("w{:03}", fleet.len());
    let gone_leases = owners(&observer, table)
        .await
        .get(&gone_id)
        .copied()
        .unwrap_or(0);
    let leaving = Instant::now();
    gone_handle.shutdown().await;
    let _ = gone_task.await;
    let shutdown_took = leaving.elapsed();
    let handoff = wait_for(&observer, table, bound, |o| {
        !o.contains_key(&gone_id) && o.values().sum::<usize>() == leases
    })
    .await;
    println!(
        "  graceful shutdown of {gone_id} ({gone_leases} leases) took {:.2} s; all owned by others after {}",
        shutdown_took.as_secs_f64(),
        shown(handoff.map(|_| leaving.elapsed()))
    );
    for (handle, task) in fleet {
        handle.request_shutdown();
        let _ = task.await;
    }
}
