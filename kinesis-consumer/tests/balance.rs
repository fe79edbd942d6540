//! Several workers: balancing, late joiners, crash failover, graceful handoff, and never two
//! workers on one shard at a time.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use kinesis_testkit::LocalAws;
use support::{Log, assert_exclusive, builder, leases, produce, spawn_worker};

/// Owners of the table's leases: worker → count.
async fn owners(aws: &LocalAws, table: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for item in leases(aws, table).await.values() {
        if let Some(owner) = item.get("leaseOwner").and_then(|o| o.as_s().ok()) {
            *counts.entry(owner.clone()).or_insert(0) += 1;
        }
    }
    counts
}

async fn wait_for_owners(aws: &LocalAws, table: &str, want: &[(&str, usize)], bound: Duration) {
    let start = Instant::now();
    loop {
        let got = owners(aws, table).await;
        if want.iter().all(|(w, n)| got.get(*w) == Some(n)) && got.len() == want.len() {
            return;
        }
        assert!(
            start.elapsed() < bound,
            "owners {got:?} after {bound:?}, wanted {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_balance_twelve_shards_and_a_fourth_gets_its_share() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("balance", 12).await.unwrap();
    produce(&aws, "balance", 3_000, "a").await;
    let log = Log::default();
    let mut handles = Vec::new();
    for w in ["w1", "w2", "w3"] {
        handles.push(spawn_worker(builder(&aws, "balance-app", "balance", w).await, w, &log).await);
    }
    wait_for_owners(
        &aws,
        "balance-app",
        &[("w1", 4), ("w2", 4), ("w3", 4)],
        Duration::from_secs(60),
    )
    .await;
    log.wait_for(3_000, Duration::from_secs(30)).await;

    handles.push(
        spawn_worker(
            builder(&aws, "balance-app", "balance", "w4").await,
            "w4",
            &log,
        )
        .await,
    );
    wait_for_owners(
        &aws,
        "balance-app",
        &[("w1", 3), ("w2", 3), ("w3", 3), ("w4", 3)],
        Duration::from_secs(60),
    )
    .await;
    produce(&aws, "balance", 1_000, "b").await;
    log.wait_for(4_000, Duration::from_secs(30)).await;

    for (handle, task) in handles {
        handle.shutdown().await;
        task.await.unwrap().unwrap();
    }
    assert_exclusive(&log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_workers_shards_resume_elsewhere_after_the_failover_time() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("crash", 4).await.unwrap();
    produce(&aws, "crash", 1_000, "a").await;
    let failover = Duration::from_secs(3);
    let fast = |b: kinesis_consumer::WorkerBuilder| {
        b.failover_time(failover)
            .renewal_interval(Duration::from_secs(1))
            .taking_interval(Duration::from_millis(500))
    };
    let log = Log::default();
    let (_h1, t1) = spawn_worker(
        fast(builder(&aws, "crash-app", "crash", "w1").await),
        "w1",
        &log,
    )
    .await;
    wait_for_owners(&aws, "crash-app", &[("w1", 4)], Duration::from_secs(30)).await;
    log.wait_for(1_000, Duration::from_secs(30)).await;
    let (h2, t2) = spawn_worker(
        fast(builder(&aws, "crash-app", "crash", "w2").await),
        "w2",
        &log,
    )
    .await;
    wait_for_owners(
        &aws,
        "crash-app",
        &[("w1", 2), ("w2", 2)],
        Duration::from_secs(30),
    )
    .await;

    // Crash: the worker's future is dropped; nothing is released.
    t1.abort();
    let crashed = Instant::now();
    wait_for_owners(&aws, "crash-app", &[("w2", 4)], Duration::from_secs(30)).await;
    let took = crashed.elapsed();
    assert!(
        took <= failover + Duration::from_secs(3),
        "failover took {took:?} (failover time {failover:?})"
    );
    // Its shards continue from the checkpoints: new records arrive, old ones are not lost.
    produce(&aws, "crash", 500, "b").await;
    log.wait_for(1_500, Duration::from_secs(30)).await;
    h2.shutdown().await;
    t2.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_hands_leases_over_within_two_seconds() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("handoff", 4).await.unwrap();
    produce(&aws, "handoff", 1_000, "a").await;
    let log = Log::default();
    let (h1, t1) = spawn_worker(
        builder(&aws, "handoff-app", "handoff", "w1").await,
        "w1",
        &log,
    )
    .await;
    wait_for_owners(&aws, "handoff-app", &[("w1", 4)], Duration::from_secs(30)).await;
    log.wait_for(1_000, Duration::from_secs(30)).await;
    let (h2, t2) = spawn_worker(
        builder(&aws, "handoff-app", "handoff", "w2").await,
        "w2",
        &log,
    )
    .await;
    wait_for_owners(
        &aws,
        "handoff-app",
        &[("w1", 2), ("w2", 2)],
        Duration::from_secs(30),
    )
    .await;

    let start = Instant::now();
    h1.shutdown().await;
    t1.await.unwrap().unwrap();
    wait_for_owners(&aws, "handoff-app", &[("w2", 4)], Duration::from_secs(10)).await;
    let took = start.elapsed();
    assert!(
        took <= Duration::from_secs(2) + Duration::from_millis(500),
        "handoff took {took:?}"
    );
    produce(&aws, "handoff", 500, "b").await;
    log.wait_for(1_500, Duration::from_secs(30)).await;
    h2.shutdown().await;
    t2.await.unwrap().unwrap();
    assert_exclusive(&log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_refused_for_a_taken_lease_ends_the_shard_without_redelivery() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("taken", 1).await.unwrap();
    let log = Log::default();
    let (handle, task) =
        spawn_worker(builder(&aws, "taken-app", "taken", "w1").await, "w1", &log).await;
    produce(&aws, "taken", 10, "before").await;
    log.wait_for(10, Duration::from_secs(20)).await;

    // Another worker takes the lease behind w1's back, as a steal or an expiry would.
    let shard = leases(&aws, "taken-app").await.into_keys().next().unwrap();
    aws.dynamodb_client()
        .await
        .update_item()
        .table_name("taken-app")
        .key("leaseKey", AttributeValue::S(shard.clone()))
        .update_expression("SET leaseOwner = :owner ADD leaseCounter :one")
        .expression_attribute_values(":owner", AttributeValue::S("thief".into()))
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .send()
        .await
        .unwrap();
    produce(&aws, "taken", 5, "after").await;

    // w1 may see the new batch once (and its checkpoint is refused), never twice, and is told
    // the lease is lost; the new owner reads the batch from the checkpoint.
    let start = Instant::now();
    while !log.events_for(&shard).contains(&("w1".to_owned(), "lost")) {
        assert!(
            start.elapsed() < Duration::from_secs(8),
            "{:?}",
            log.events_for(&shard)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut counts: HashMap<String, usize> = HashMap::new();
    for d in log.deliveries.lock().unwrap().iter() {
        *counts
            .entry(String::from_utf8_lossy(&d.data).into_owned())
            .or_default() += 1;
    }
    assert!(counts.values().all(|&c| c == 1), "{counts:?}");
    handle.shutdown().await;
    task.await.unwrap().unwrap();
}
