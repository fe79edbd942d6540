//! Several workers: balancing by count and by throughput, late joiners, crash failover,
//! graceful handoff, and never two workers on one shard at a time.

use crate::support;

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

/// The one owner of every lease of the table, once there is exactly one.
async fn wait_for_one_owner(aws: &LocalAws, table: &str, leases: usize, bound: Duration) -> String {
    let start = Instant::now();
    loop {
        let got = owners(aws, table).await;
        if got.len() == 1 && got.values().sum::<usize>() == leases {
            return got.into_keys().next().expect("one owner");
        }
        assert!(start.elapsed() < bound, "owners {got:?} after {bound:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packing_puts_a_quiet_stream_on_one_worker_and_the_next_takes_over() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("pack", 8).await.unwrap();
    produce(&aws, "pack", 1_000, "a").await;
    let packed = |b: kinesis_consumer::WorkerBuilder| {
        b.balance(kinesis_consumer::Balance::Pack)
            .max_throughput_per_worker(1024.0)
            .taking_interval(Duration::from_millis(500))
    };
    let log = Log::default();
    let mut workers = HashMap::new();
    for w in ["w1", "w2", "w3"] {
        let b = packed(builder(&aws, "pack-app", "pack", w).await);
        workers.insert(w.to_owned(), spawn_worker(b, w, &log).await);
    }
    let first = wait_for_one_owner(&aws, "pack-app", 8, Duration::from_secs(60)).await;
    log.wait_for(1_000, Duration::from_secs(30)).await;

    // Its owner leaves: the whole stream goes to one of the two others, not to both.
    let (handle, task) = workers.remove(&first).expect("the owner is ours");
    handle.shutdown().await;
    task.await.unwrap().unwrap();
    let second = wait_for_one_owner(&aws, "pack-app", 8, Duration::from_secs(60)).await;
    assert_ne!(second, first);
    produce(&aws, "pack", 500, "b").await;
    log.wait_for(1_500, Duration::from_secs(30)).await;

    for (handle, task) in workers.into_values() {
        handle.shutdown().await;
        task.await.unwrap().unwrap();
    }
    assert_exclusive(&log);
}

#[test]
fn packing_needs_a_throughput_cap() {
    let built = kinesis_consumer::Worker::builder("app", "stream")
        .balance(kinesis_consumer::Balance::Pack)
        .build(());
    assert!(matches!(
        built.err(),
        Some(kinesis_consumer::ConfigError::Invalid {
            option: "balance",
            ..
        })
    ));
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
    // This once took failover + 3.2 s in CI (and 3 of 21 runs on DynamoDB Local with both
    // cores busy): the successor, leader before it had seen the crashed leader's heartbeat
    // stand still, planned a handoff from it, then waited out a failover time of its own
    // for the handoff. The leader now plans such a lease again as a take once the giver is
    // fenced (`assigner::pending`); 20 runs since took failover + 0.5–1.5 s there.
    println!("failover took {took:?} (failover time {failover:?})");
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
    // Generous: against kinesis-mock and DynamoDB Local this is the run's first test, and
    // their JVMs answer the first calls slowly (20 s was not enough on 2026-12-06).
    log.wait_for(10, Duration::from_secs(60)).await;

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

/// Writes to `hot` shards at 40 KiB/s each and to the others at 3.3 KiB/s each (8 shards:
/// the two hot ones carry 80% of the bytes) until aborted. Returns each shard's rate.
async fn skewed_load(
    aws: &LocalAws,
    stream: &str,
    hot: usize,
) -> (HashMap<String, f64>, tokio::task::JoinHandle<()>) {
    let kinesis = aws.kinesis_client().await;
    let shards = kinesis
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .unwrap();
    let mut rates = HashMap::new();
    let mut targets = Vec::new();
    for (i, shard) in shards.shards().iter().enumerate() {
        let start = shard
            .hash_key_range()
            .unwrap()
            .starting_hash_key()
            .to_owned();
        // Per 200 ms: 8 records of 1 KiB to a hot shard, one of 680 bytes to a cold one.
        let (count, size) = if i < hot { (8, 1024) } else { (1, 680) };
        rates.insert(
            shard.shard_id().to_owned(),
            (count * size) as f64 * 5.0 / 1024.0,
        );
        targets.push((start, count, size));
    }
    let stream = stream.to_owned();
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tick.tick().await;
            let mut request = kinesis.put_records().stream_name(&stream);
            for (hash, count, size) in &targets {
                for _ in 0..*count {
                    request = request.records(
                        aws_sdk_kinesis::types::PutRecordsRequestEntry::builder()
                            .partition_key("k")
                            .explicit_hash_key(hash)
                            .data(aws_sdk_kinesis::primitives::Blob::new(vec![b'x'; *size]))
                            .build()
                            .unwrap(),
                    );
                }
            }
            let _ = request.send().await;
        }
    });
    (rates, task)
}

/// Each lease's owner, and the figures the leader planned with: (owner, `throughputKBps`).
async fn lease_owners(aws: &LocalAws, table: &str) -> HashMap<String, (String, f64)> {
    leases(aws, table)
        .await
        .into_iter()
        .filter_map(|(shard, item)| {
            let owner = item.get("leaseOwner")?.as_s().ok()?.clone();
            let kbps = item
                .get("throughputKBps")
                .and_then(|k| k.as_n().ok())
                .and_then(|k| k.parse().ok())
                .unwrap_or(f64::NAN);
            Some((shard, (owner, kbps)))
        })
        .collect()
}

/// The figures of a snapshot, shard by shard, for a failure's message.
fn figures(owners: &HashMap<String, (String, f64)>) -> String {
    let mut shards: Vec<_> = owners.iter().collect();
    shards.sort_by(|a, b| a.0.cmp(b.0));
    shards
        .iter()
        .map(|(shard, (owner, kbps))| {
            format!(
                "{}:{owner}:{kbps:.1}",
                shard.trim_start_matches("shardId-0000000")
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One worker takes all eight skewed shards and measures them; `joiners` join. Returns the
/// time from the join to the last lease move, and each worker's share of the bytes at the
/// end; asserts that nothing moves for `steady` after `settle`.
async fn skewed_fleet(
    name: &str,
    joiners: &[&str],
    settle: Duration,
    steady: Duration,
) -> (Duration, HashMap<String, f64>) {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream(name, 8).await.unwrap();
    let (rates, load) = skewed_load(&aws, name, 2).await;
    let log = Log::default();
    let mut handles = vec![spawn_worker(builder(&aws, name, name, "w1").await, "w1", &log).await];
    // w1 holds all eight and has written a throughput on each.
    let start = Instant::now();
    loop {
        let items = leases(&aws, name).await;
        if items.len() == 8
            && items
                .values()
                .all(|i| i.contains_key("throughputKBps") && i.get("leaseOwner").is_some())
        {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{items:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for w in joiners {
        handles.push(spawn_worker(builder(&aws, name, name, w).await, w, &log).await);
    }
    let joined = Instant::now();
    let mut owners = lease_owners(&aws, name).await;
    let mut last_move = Duration::ZERO;
    let mut moves = Vec::new();
    let mut moves_after_settle = Vec::new();
    while joined.elapsed() < settle + steady {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = lease_owners(&aws, name).await;
        for (shard, (owner, _)) in &now {
            if owners.get(shard).map(|o| &o.0) != Some(owner) {
                last_move = joined.elapsed();
                // What the table said just before the move: the figures it was planned on.
                let at = format!(
                    "{last_move:.1?} {shard} to {owner}, before: {}",
                    figures(&owners)
                );
                if last_move > settle {
                    moves_after_settle.push(at.clone());
                }
                moves.push(at);
            }
        }
        owners = now;
    }
    load.abort();
    let total: f64 = rates.values().sum();
    let mut share: HashMap<String, f64> = HashMap::new();
    for (shard, (owner, _)) in &owners {
        *share.entry(owner.clone()).or_default() += rates[shard] / total;
    }
    println!(
        "{name}: {} workers, last move {last_move:?} after the join, shares {share:?}, \
         moves:\n  {}\nat the end: {}",
        joiners.len() + 1,
        moves.join("\n  "),
        figures(&owners)
    );
    for (handle, task) in handles {
        handle.shutdown().await;
        task.await.unwrap().unwrap();
    }
    assert_exclusive(&log);
    assert!(
        moves_after_settle.is_empty(),
        "moves after {settle:?}: {moves_after_settle:?}"
    );
    (last_move, share)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skewed_load_converges_within_a_minute_and_stays_put_with_two_and_three_workers() {
    let (settle, steady) = (Duration::from_secs(60), Duration::from_secs(120));
    let (two, three) = tokio::join!(
        skewed_fleet("skew-two", &["w2"], settle, steady),
        skewed_fleet("skew-three", &["w2", "w3"], settle, steady),
    );
    // Two workers: each within 20% of the mean (half the bytes).
    assert_eq!(two.1.len(), 2, "{:?}", two.1);
    for (worker, share) in &two.1 {
        assert!(
            (share - 0.5).abs() <= 0.1,
            "{worker} reads {share:.2} of the bytes"
        );
    }
    // Three: a hot shard alone is 40%, above the mean; the best is one hot shard each on
    // two workers, the cold ones on the third.
    assert_eq!(three.1.len(), 3, "{:?}", three.1);
    let mut shares: Vec<f64> = three.1.values().copied().collect();
    shares.sort_by(f64::total_cmp);
    assert!(shares[2] <= 0.45, "{shares:?}");
}
