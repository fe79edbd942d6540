//! Graceful handoff (KCL 3.x's `checkpointOwner` protocol): a lease moved for balance
//! reaches its old owner as `shutdown_requested`, which may checkpoint, and the new owner
//! starts from that checkpoint; a processor that never returns is cut off after the
//! timeout; a handoff begun by KCL 3.x's leader is honoured.

use crate::support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use kinesis_consumer::{
    Checkpointer, InitializeInput, ProcessRecordsInput, ProcessorError, RecordProcessor,
    ShardEndCheckpointer, ShardEnded,
};
use kinesis_testkit::LocalAws;
use support::{Log, Recorder, assert_exclusive, builder, leases};

/// Puts distinct records ("<tag>-<n>") to random shards until stopped; returns how many
/// were accepted.
async fn keep_producing(
    aws: &LocalAws,
    stream: &str,
    tag: &str,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<usize> {
    let (kinesis, stream, tag) = (
        aws.kinesis_client().await,
        stream.to_owned(),
        tag.to_owned(),
    );
    tokio::spawn(async move {
        let mut sent = 0usize;
        while !stop.load(Ordering::Relaxed) {
            let mut request = kinesis.put_records().stream_name(&stream);
            for i in 0..10 {
                request = request.records(
                    aws_sdk_kinesis::types::PutRecordsRequestEntry::builder()
                        .partition_key(format!("k-{}", sent + i))
                        .data(aws_sdk_kinesis::primitives::Blob::new(format!(
                            "{tag}-{}",
                            sent + i
                        )))
                        .build()
                        .unwrap(),
                );
            }
            if let Ok(out) = request.send().await
                && out.failed_record_count() == Some(0)
            {
                sent += 10;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        sent
    })
}

/// Payloads delivered more than once.
fn duplicates(log: &Log) -> Vec<String> {
    let mut counts: HashMap<Vec<u8>, usize> = HashMap::new();
    for d in log.deliveries.lock().unwrap().iter() {
        *counts.entry(d.data.clone()).or_default() += 1;
    }
    counts
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(d, _)| String::from_utf8_lossy(&d).into_owned())
        .collect()
}

async fn owners(aws: &LocalAws, table: &str) -> HashMap<String, String> {
    leases(aws, table)
        .await
        .into_iter()
        .filter_map(|(shard, item)| Some((shard, item.get("leaseOwner")?.as_s().ok()?.clone())))
        .collect()
}

async fn wait_until(what: &str, bound: Duration, mut done: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < bound, "{what} not within {bound:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A `Recorder` whose `shutdown_requested` does not return while `stuck` is set.
struct Stuck {
    inner: Recorder,
    stuck: Arc<AtomicBool>,
}

impl RecordProcessor for Stuck {
    async fn initialize(&mut self, input: InitializeInput) {
        self.inner.initialize(input).await
    }
    async fn process_records(
        &mut self,
        input: ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        self.inner.process_records(input, checkpointer).await
    }
    async fn shard_ended(
        &mut self,
        checkpointer: ShardEndCheckpointer,
    ) -> Result<ShardEnded, kinesis_consumer::CheckpointError> {
        self.inner.shard_ended(checkpointer).await
    }
    async fn lease_lost(&mut self) {
        self.inner.lease_lost().await
    }
    async fn shutdown_requested(&mut self, _checkpointer: &mut Checkpointer) {
        self.inner.log.events.lock().unwrap().push((
            self.inner.worker.clone(),
            self.inner.shard.clone(),
            "shutdown",
            Instant::now(),
        ));
        while self.stuck.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn spawn_stuck(
    builder: kinesis_consumer::WorkerBuilder,
    worker: &str,
    log: &Log,
    stuck: &Arc<AtomicBool>,
) -> (
    kinesis_consumer::WorkerHandle,
    tokio::task::JoinHandle<Result<(), kinesis_consumer::ConsumerError>>,
) {
    let (name, log, stuck) = (worker.to_owned(), log.clone(), stuck.clone());
    let w = builder
        .build(move |shard: &str| Stuck {
            inner: Recorder {
                worker: name.clone(),
                shard: shard.to_owned(),
                log: log.clone(),
            },
            stuck: stuck.clone(),
        })
        .unwrap();
    let handle = w.handle();
    (handle, tokio::spawn(w.run()))
}

/// Two workers where one held all four shards; returns (log, records sent, time from the
/// join until the newcomer delivered from both moved shards).
async fn planned_move(app: &str, timeout: Duration, stuck: bool) -> (Log, usize, Duration) {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream(app, 4).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let producing = keep_producing(&aws, app, "r", stop.clone()).await;
    let log = Log::default();
    let hang = Arc::new(AtomicBool::new(stuck));
    let fleet = |w: &str| {
        let aws = &aws;
        let w = w.to_owned();
        async move {
            builder(aws, app, app, &w)
                .await
                .graceful_handoff_timeout(timeout)
        }
    };
    let (h1, t1) = spawn_stuck(fleet("w1").await, "w1", &log, &hang);
    wait_until("w1 holds all four", Duration::from_secs(30), async || {
        owners(&aws, app)
            .await
            .values()
            .filter(|o| *o == "w1")
            .count()
            == 4
    })
    .await;
    log.wait_for(100, Duration::from_secs(30)).await;
    let (h2, t2) = spawn_stuck(fleet("w2").await, "w2", &log, &hang);
    let joined = Instant::now();
    let delivered_by_w2 = |log: &Log| {
        let d = log.deliveries.lock().unwrap();
        d.iter()
            .filter(|d| d.worker == "w2")
            .map(|d| d.shard_id.clone())
            .collect::<std::collections::HashSet<_>>()
            .len()
    };
    wait_until("w2 reads two shards", Duration::from_secs(60), async || {
        delivered_by_w2(&log) == 2
    })
    .await;
    let moved_in = joined.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let sent = producing.await.unwrap();
    log.wait_for(sent, Duration::from_secs(60)).await;
    hang.store(false, Ordering::Relaxed);
    for (handle, task) in [(h1, t1), (h2, t2)] {
        handle.shutdown().await;
        task.await.unwrap().unwrap();
    }
    assert_exclusive(&log);
    (log, sent, moved_in)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_move_delivers_nothing_twice_when_the_processor_checkpoints() {
    let (log, sent, moved_in) = planned_move("handoff-clean", Duration::from_secs(30), false).await;
    println!(
        "planned move: {sent} records, w2 reading both moved shards {moved_in:?} after joining"
    );
    assert_eq!(duplicates(&log), Vec::<String>::new());
    assert_eq!(log.distinct(), sent);
    let events = log.events.lock().unwrap().clone();
    let w1: Vec<&str> = events.iter().filter(|e| e.0 == "w1").map(|e| e.2).collect();
    assert!(
        !w1.contains(&"lost"),
        "moved leases reach the old owner as shutdown_requested: {w1:?}"
    );
    assert!(
        moved_in < Duration::from_secs(8),
        "a handoff takes no failover time: {moved_in:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processor_stuck_in_shutdown_requested_is_cut_off_after_the_timeout() {
    let timeout = Duration::from_secs(3);
    let (log, sent, moved_in) = planned_move("handoff-stuck", timeout, true).await;
    println!(
        "stuck processor: {sent} records, w2 reading both moved shards {moved_in:?} after joining"
    );
    assert_eq!(log.distinct(), sent, "nothing lost");
    assert!(
        moved_in >= timeout,
        "w2 waited for the timeout: {moved_in:?}"
    );
    assert!(moved_in < timeout + Duration::from_secs(8), "{moved_in:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handoff_begun_by_kcl3s_leader_is_honoured() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("kcl3-move", 1).await.unwrap();
    support::produce(&aws, "kcl3-move", 20, "a").await;
    let log = Log::default();
    let (handle, task) = support::spawn_worker(
        builder(&aws, "kcl3-move", "kcl3-move", "ours")
            .await
            .failover_time(Duration::from_secs(3))
            .renewal_interval(Duration::from_millis(500)),
        "ours",
        &log,
    )
    .await;
    log.wait_for(20, Duration::from_secs(30)).await;
    let shard = leases(&aws, "kcl3-move").await.into_keys().next().unwrap();
    let last = log
        .deliveries
        .lock()
        .unwrap()
        .last()
        .unwrap()
        .sequence_number
        .clone();
    // What KCL 3.x's LeaseAssignmentManager writes to move a lease gracefully.
    let dynamodb = aws.dynamodb_client().await;
    dynamodb
        .update_item()
        .table_name("kcl3-move")
        .key("leaseKey", AttributeValue::S(shard.clone()))
        .update_expression("SET leaseOwner = :to, checkpointOwner = :from")
        .condition_expression("leaseOwner = :from AND attribute_not_exists(checkpointOwner)")
        .expression_attribute_values(":to", AttributeValue::S("kcl3-worker".into()))
        .expression_attribute_values(":from", AttributeValue::S("ours".into()))
        .send()
        .await
        .unwrap();
    wait_until(
        "the lease handed over",
        Duration::from_secs(10),
        async || {
            let item = leases(&aws, "kcl3-move").await.remove(&shard).unwrap();
            !item.contains_key("checkpointOwner")
        },
    )
    .await;
    let item = leases(&aws, "kcl3-move").await.remove(&shard).unwrap();
    assert_eq!(item["leaseOwner"].as_s().unwrap(), "kcl3-worker");
    assert_eq!(
        item["checkpoint"].as_s().unwrap(),
        &last,
        "checkpointed where it stopped"
    );
    assert_eq!(
        log.events_for(&shard).last().map(|e| e.1),
        Some("shutdown"),
        "shutdown_requested, not lease_lost"
    );
    handle.shutdown().await;
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_giver_that_dies_mid_handoff_is_failed_over_in_the_failover_time() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("handoff-crash", 4).await.unwrap();
    support::produce(&aws, "handoff-crash", 400, "a").await;
    let log = Log::default();
    let hang = Arc::new(AtomicBool::new(true));
    let failover = Duration::from_secs(3);
    let fleet = |w: &'static str| {
        let aws = &aws;
        async move {
            builder(aws, "handoff-crash", "handoff-crash", w)
                .await
                .failover_time(failover)
                .renewal_interval(Duration::from_secs(1))
        }
    };
    let (_h1, t1) = spawn_stuck(fleet("w1").await, "w1", &log, &hang);
    log.wait_for(400, Duration::from_secs(30)).await;
    let (h2, t2) = spawn_stuck(fleet("w2").await, "w2", &log, &hang);
    // w1's processors are stuck in shutdown_requested with two handoffs begun.
    wait_until("two handoffs begun", Duration::from_secs(30), async || {
        leases(&aws, "handoff-crash")
            .await
            .values()
            .filter(|i| {
                i.get("checkpointOwner").and_then(|o| o.as_s().ok()) == Some(&"w1".to_owned())
            })
            .count()
            == 2
    })
    .await;
    t1.abort();
    let _ = t1.await;
    log.crashed("w1");
    let crashed = Instant::now();
    wait_until("w2 owns all four", Duration::from_secs(20), async || {
        owners(&aws, "handoff-crash")
            .await
            .values()
            .filter(|o| *o == "w2")
            .count()
            == 4
    })
    .await;
    let took = crashed.elapsed();
    println!("giver crashed mid-handoff: w2 owned its leases {took:?} later");
    assert!(
        took < failover * 3,
        "not the 30 s handoff timeout: {took:?}"
    );
    support::produce(&aws, "handoff-crash", 100, "b").await;
    log.wait_for(500, Duration::from_secs(30)).await;
    hang.store(false, Ordering::Relaxed);
    h2.shutdown().await;
    t2.await.unwrap().unwrap();
    assert_exclusive(&log);
}
