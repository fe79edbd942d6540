//! A lease table in trouble: hard to create at first (passing faults are retried until the
//! worker starts), throttled for half the failover time (no lease lost, no shard stopped), gone
//! during a graceful shutdown (which still ends in bounded time), and the capacity a worker
//! reports against what the table was billed.

use crate::support;

use std::time::{Duration, Instant};

use kinesis_testkit::{FaultRule, LocalAws};
use support::{Log, builder, leases, produce, spawn_worker};

const FAILOVER: Duration = Duration::from_secs(4);

/// The defaults' proportions on a 4 s failover time: the margin is a tenth of it, as 1 s is of
/// the default 10 s. A lease then outlives any outage of the table shorter than failover −
/// margin − renewal interval (2.4 s) whenever it begins, half the failover time included;
/// with a 1 s margin (1.8 s) it outlived 2 s only when the outage began early in a cycle.
fn fast(b: kinesis_consumer::WorkerBuilder) -> kinesis_consumer::WorkerBuilder {
    b.failover_time(FAILOVER)
        .lease_deadline_margin(Duration::from_millis(400))
        .renewal_interval(Duration::from_millis(1200))
        .taking_interval(Duration::from_millis(500))
        .dynamodb_call_timeout(Duration::from_secs(1))
}

async fn owned_by(aws: &LocalAws, table: &str, worker: &str) -> usize {
    leases(aws, table)
        .await
        .values()
        .filter(|i| i.get("leaseOwner").and_then(|o| o.as_s().ok()) == Some(&worker.to_owned()))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_throttled_for_half_the_failover_time_loses_no_lease() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("throttled", 4).await.unwrap();
    let log = Log::default();
    let (handle, task) = spawn_worker(
        fast(builder(&aws, "throttled-app", "throttled", "w1").await),
        "w1",
        &log,
    )
    .await;
    produce(&aws, "throttled", 400, "a").await;
    log.wait_for(400, Duration::from_secs(30)).await;
    assert_eq!(owned_by(&aws, "throttled-app", "w1").await, 4);

    // Every DynamoDB call of every client is throttled for half the failover time.
    let rule = aws.dynamodb_faults().add_rule(FaultRule::throttle());
    tokio::time::sleep(FAILOVER / 2).await;
    assert!(aws.dynamodb_faults().remove(rule));
    assert!(aws.dynamodb_faults().stats().throttled > 0);

    produce(&aws, "throttled", 400, "b").await;
    log.wait_for(800, Duration::from_secs(30)).await;
    let lost: Vec<_> = log
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.2 == "lost")
        .cloned()
        .collect();
    assert!(lost.is_empty(), "leases lost: {lost:?}");
    assert_eq!(owned_by(&aws, "throttled-app", "w1").await, 4);
    assert_eq!(
        handle.leases_expired(),
        0,
        "no lease expired while the worker ran"
    );

    // What the worker reports is what the table was billed: every write to the table is the
    // worker's; the reads include this test's own scans, which only the testkit sees.
    handle.shutdown().await;
    task.await.unwrap().unwrap();
    let reported = handle.lease_table_capacity();
    let (billed_reads, billed_writes) = aws.dynamodb_capacity().table("throttled-app");
    println!("worker reported {reported:?}; table billed {billed_reads} RU, {billed_writes} WU");
    assert!(reported.read_units > 0.0 && reported.read_units <= billed_reads);
    assert!(
        (reported.write_units - billed_writes).abs() < 1e-9,
        "{reported:?} vs {billed_writes} write units"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_ends_in_bounded_time_when_dynamodb_is_gone() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("gone", 8).await.unwrap();
    let log = Log::default();
    let (handle, task) = spawn_worker(
        fast(builder(&aws, "gone-app", "gone", "w1").await),
        "w1",
        &log,
    )
    .await;
    produce(&aws, "gone", 200, "a").await;
    log.wait_for(200, Duration::from_secs(30)).await;
    assert_eq!(owned_by(&aws, "gone-app", "w1").await, 8);

    aws.dynamodb_faults().add(FaultRule::black_hole());
    let start = Instant::now();
    handle.shutdown().await;
    task.await.unwrap().unwrap();
    let took = start.elapsed();
    println!("shutdown with DynamoDB gone: {took:?} for 8 leases");
    // Checkpoints at shutdown (in parallel, one per shard) and releases (concurrent) each
    // wait one call timeout at most; in turn, 8 releases alone would take 8.
    assert!(took < Duration::from_secs(4), "shutdown took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_table_that_fails_to_be_created_at_first_is_created_on_retry() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("cold", 2).await.unwrap();
    // A DynamoDB still starting, as DynamoDB Local is in CI: the first two CreateTable calls
    // fail with a 500, the third is answered only after the worker's call timeout (the table
    // is made; the worker has given up on the call), and the first DescribeTable calls are
    // throttled. None of these is fatal to the worker.
    let faults = aws.dynamodb_faults();
    faults
        .add(FaultRule::internal_error().on("CreateTable").times(2))
        .add(
            FaultRule::latency(Duration::from_secs(2))
                .on("CreateTable")
                .times(1),
        )
        .add(FaultRule::throttle().on("DescribeTable").times(3));
    let log = Log::default();
    let (handle, task) = spawn_worker(
        fast(builder(&aws, "cold-app", "cold", "w1").await),
        "w1",
        &log,
    )
    .await;
    produce(&aws, "cold", 100, "a").await;
    log.wait_for(100, Duration::from_secs(60)).await;
    assert_eq!(owned_by(&aws, "cold-app", "w1").await, 2);
    let stats = faults.stats();
    println!("faults before the worker started: {stats:?}");
    assert!(stats.errors >= 2, "{stats:?}");
    assert!(stats.delayed >= 1, "{stats:?}");
    assert!(stats.throttled >= 3, "{stats:?}");
    handle.shutdown().await;
    task.await.unwrap().unwrap();
}
