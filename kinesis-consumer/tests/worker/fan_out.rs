//! Enhanced fan-out retrieval (SubscribeToShard) against the embedded ferrokinesis: the same
//! processor contract as polling, through registered stream consumers.

use crate::support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kinesis_consumer::{
    Checkpointer, ConsumerError, ProcessRecordsInput, ProcessorError, RecordProcessor, Worker,
};
use kinesis_testkit::{KinesisEmulator, LocalAws};
use support::{Log, builder, consumer_status, leases, produce, spawn_worker};

/// Waits until `table` holds, for each shard, a checkpoint at the last record delivered to
/// `worker`: the recorder logs a batch before it checkpoints it, so a crash right after the
/// log would cut off a checkpoint in flight (and that batch would rightly come again).
async fn wait_for_checkpoints(aws: &LocalAws, table: &str, log: &Log, worker: &str) {
    let last: HashMap<String, (String, u64)> = log
        .deliveries
        .lock()
        .unwrap()
        .iter()
        .filter(|d| d.worker == worker)
        .map(|d| {
            let at = (d.sequence_number.clone(), d.sub_sequence_number);
            (d.shard_id.clone(), at)
        })
        .collect();
    let start = Instant::now();
    loop {
        let items = leases(aws, table).await;
        let written = last.iter().all(|(shard, (seq, sub))| {
            items.get(shard).is_some_and(|item| {
                item.get("checkpoint").and_then(|c| c.as_s().ok()) == Some(seq)
                    && item
                        .get("checkpointSubSequenceNumber")
                        .and_then(|c| c.as_n().ok())
                        == Some(&sub.to_string())
            })
        });
        if written {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{worker}'s checkpoints not written: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Each payload's delivery count.
fn counts(log: &Log) -> HashMap<Vec<u8>, usize> {
    let mut counts = HashMap::new();
    for d in log.deliveries.lock().unwrap().iter() {
        *counts.entry(d.data.clone()).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_the_consumer_and_delivers_old_and_live_records() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("efo", 2).await.unwrap();
    produce(&aws, "efo", 300, "old").await;
    let log = Log::default();
    let b = builder(&aws, "efo-app", "efo", "w1")
        .await
        .fan_out("efo-consumer");
    let (handle, task) = spawn_worker(b, "w1", &log).await;
    log.wait_for(300, Duration::from_secs(20)).await;
    produce(&aws, "efo", 300, "live").await;
    log.wait_for(600, Duration::from_secs(20)).await;
    assert_eq!(
        consumer_status(&aws, "efo", "efo-consumer")
            .await
            .as_deref(),
        Some("ACTIVE")
    );
    handle.shutdown().await;
    task.await.unwrap().unwrap();
    assert!(
        counts(&log).values().all(|&c| c == 1),
        "a record came twice"
    );
    // Not deregistered by default: other workers of the application share the consumer.
    assert_eq!(
        consumer_status(&aws, "efo", "efo-consumer")
            .await
            .as_deref(),
        Some("ACTIVE")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubscribes_from_the_continuation_when_a_session_ends() {
    // Sessions of 1 s instead of AWS's 5 minutes.
    let aws = LocalAws::builder()
        .subscribe_session(Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    aws.create_stream("sessions", 1).await.unwrap();
    let log = Log::default();
    let b = builder(&aws, "sessions-app", "sessions", "w1")
        .await
        .fan_out("c");
    let (handle, task) = spawn_worker(b, "w1", &log).await;
    // Records keep coming over four sessions.
    for round in 0..8 {
        produce(&aws, "sessions", 50, &format!("r{round}")).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    log.wait_for(400, Duration::from_secs(20)).await;
    handle.shutdown().await;
    task.await.unwrap().unwrap();
    let counts = counts(&log);
    assert_eq!(counts.len(), 400);
    assert!(
        counts.values().all(|&c| c == 1),
        "a resubscription re-delivered records"
    );
    // In shard order: sequence numbers only grow.
    let deliveries = log.deliveries.lock().unwrap();
    assert!(deliveries.windows(2).all(|w| (
        w[0].sequence_number.len(),
        &w[0].sequence_number,
        w[0].sub_sequence_number
    ) < (
        w[1].sequence_number.len(),
        &w[1].sequence_number,
        w[1].sub_sequence_number
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_a_reshard_during_a_subscription() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("efo-reshard", 1).await.unwrap();
    let log = Log::default();
    let b = builder(&aws, "efo-reshard-app", "efo-reshard", "w1")
        .await
        .fan_out("c")
        .shard_sync_interval(Duration::from_secs(1));
    let (handle, task) = spawn_worker(b, "w1", &log).await;
    produce(&aws, "efo-reshard", 200, "before").await;
    log.wait_for(200, Duration::from_secs(20)).await;
    let parent = kinesis_testkit::streams::open_shards(&aws.kinesis_client().await, "efo-reshard")
        .await
        .unwrap()[0]
        .shard_id
        .clone();
    aws.split_shard("efo-reshard", &parent).await.unwrap();
    produce(&aws, "efo-reshard", 200, "after").await;
    log.wait_for(400, Duration::from_secs(30)).await;
    handle.shutdown().await;
    task.await.unwrap().unwrap();
    // The parent ended (SHARD_END checkpointed) before its children started.
    let events = log.events.lock().unwrap().clone();
    let end = events
        .iter()
        .find(|e| e.1 == parent && e.2 == "end")
        .expect("the parent reached its end");
    let children: Vec<_> = events
        .iter()
        .filter(|e| e.1 != parent && e.2 == "init")
        .collect();
    assert_eq!(children.len(), 2);
    assert!(children.iter().all(|c| c.3 >= end.3));
    assert!(counts(&log).values().all(|&c| c == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_worker_resumes_from_its_checkpoint() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("efo-crash", 2).await.unwrap();
    produce(&aws, "efo-crash", 300, "first").await;
    let log = Log::default();
    let b = builder(&aws, "efo-crash-app", "efo-crash", "w1")
        .await
        .fan_out("c");
    let (_handle, task) = spawn_worker(b, "w1", &log).await;
    log.wait_for(300, Duration::from_secs(20)).await;
    wait_for_checkpoints(&aws, "efo-crash-app", &log, "w1").await;
    task.abort(); // a crash: nothing released
    let _ = task.await;
    produce(&aws, "efo-crash", 300, "second").await;
    let b = builder(&aws, "efo-crash-app", "efo-crash", "w2")
        .await
        .fan_out("c")
        .failover_time(Duration::from_secs(2))
        .renewal_interval(Duration::from_millis(500));
    let (handle, task) = spawn_worker(b, "w2", &log).await;
    log.wait_for(600, Duration::from_secs(30)).await;
    handle.shutdown().await;
    task.await.unwrap().unwrap();
    // The records w1 checkpointed are not delivered again.
    let deliveries = log.deliveries.lock().unwrap();
    let again = deliveries
        .iter()
        .filter(|d| d.worker == "w2" && d.data.starts_with(b"first"))
        .count();
    assert_eq!(again, 0, "w2 re-read records w1 had checkpointed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_applications_read_the_stream_through_their_own_consumers() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("shared-efo", 2).await.unwrap();
    produce(&aws, "shared-efo", 200, "rec").await;
    let (log_a, log_b) = (Log::default(), Log::default());
    let a = builder(&aws, "app-a", "shared-efo", "a")
        .await
        .fan_out("consumer-a");
    let b = builder(&aws, "app-b", "shared-efo", "b")
        .await
        .fan_out("consumer-b")
        .deregister_consumer_on_shutdown(true);
    let (handle_a, task_a) = spawn_worker(a, "a", &log_a).await;
    let (handle_b, task_b) = spawn_worker(b, "b", &log_b).await;
    log_a.wait_for(200, Duration::from_secs(20)).await;
    log_b.wait_for(200, Duration::from_secs(20)).await;
    handle_a.shutdown().await;
    handle_b.shutdown().await;
    task_a.await.unwrap().unwrap();
    task_b.await.unwrap().unwrap();
    assert_eq!(counts(&log_a), counts(&log_b));
    // Deregistered on shutdown when asked; the other is left for its application.
    let b_status = consumer_status(&aws, "shared-efo", "consumer-b").await;
    assert!(
        matches!(b_status.as_deref(), None | Some("DELETING")),
        "{b_status:?}"
    );
    assert_eq!(
        consumer_status(&aws, "shared-efo", "consumer-a")
            .await
            .as_deref(),
        Some("ACTIVE")
    );
}

/// Takes a long pause on its first batch, then records everything.
struct SlowStart {
    paused: bool,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl RecordProcessor for SlowStart {
    async fn process_records(
        &mut self,
        input: ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        if !std::mem::replace(&mut self.paused, true) {
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        self.seen
            .lock()
            .unwrap()
            .extend(input.records.iter().map(|r| r.data.to_vec()));
        checkpointer.checkpoint().await?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_processor_holds_the_subscription_back_and_loses_nothing() {
    let aws = LocalAws::builder()
        .subscribe_session(Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    aws.create_stream("slow-efo", 1).await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let factory = {
        let seen = seen.clone();
        move |_: &str| SlowStart {
            paused: false,
            seen: seen.clone(),
        }
    };
    let worker = Worker::builder("slow-efo-app", "slow-efo")
        .kinesis_client(aws.kinesis_client().await)
        .dynamodb_client(aws.dynamodb_client().await)
        .fan_out("c")
        .max_prefetch_batches(1)
        .build(factory)
        .unwrap();
    let handle = worker.handle();
    let task = tokio::spawn(worker.run());
    // The processor sits on its first batch for 3 s (three subscription lifetimes) while
    // records keep arriving; the subscription is renewed afterwards from where it stopped.
    for round in 0..6 {
        produce(&aws, "slow-efo", 100, &format!("s{round}")).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let start = Instant::now();
    while seen.lock().unwrap().len() < 600 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{} of 600",
            seen.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    handle.shutdown().await;
    let result: Result<(), ConsumerError> = task.await.unwrap();
    result.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 600, "records delivered twice");
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_named_at_the_end_of_a_subscription_start_without_list_shards() {
    use aws_sdk_kinesis::primitives::Blob;
    use aws_sdk_kinesis::types::PutRecordsRequestEntry;
    use kinesis_testkit::FaultRule;

    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("named-children", 1).await.unwrap();
    let kinesis = aws.kinesis_client().await;
    let log = Log::default();
    let b = builder(&aws, "named-children-app", "named-children", "w1")
        .await
        .fan_out("c");
    let (handle, task) = spawn_worker(b, "w1", &log).await;
    let start = Instant::now();
    while log.events.lock().unwrap().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the worker never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // From here on ListShards fails: children can only come from the subscription's last
    // event. The test itself puts and splits without it. kinesis-mock names no children (it
    // keeps a closed shard's subscription open), so there the worker must find them with
    // ListShards, which then keeps working.
    let names_children = aws.kinesis_emulator() == KinesisEmulator::Ferrokinesis;
    if names_children {
        aws.kinesis_faults()
            .add(FaultRule::internal_error().on("ListShards"));
    }
    let put = |tag: &'static str| {
        let kinesis = kinesis.clone();
        async move {
            let entries: Vec<_> = (0..50)
                .map(|i| {
                    PutRecordsRequestEntry::builder()
                        .partition_key(format!("k{i}"))
                        .data(Blob::new(format!("{tag}-{i}")))
                        .build()
                        .unwrap()
                })
                .collect();
            kinesis
                .put_records()
                .stream_name("named-children")
                .set_records(Some(entries))
                .send()
                .await
                .unwrap();
        }
    };
    put("before").await;
    log.wait_for(50, Duration::from_secs(20)).await;
    let parent = log.events.lock().unwrap()[0].1.clone();
    kinesis
        .split_shard()
        .stream_name("named-children")
        .shard_to_split(&parent)
        .new_starting_hash_key((1u128 << 127).to_string())
        .send()
        .await
        .unwrap();
    kinesis_testkit::streams::wait_for_active(&kinesis, "named-children")
        .await
        .unwrap();
    put("after").await;
    log.wait_for(100, Duration::from_secs(20)).await;
    handle.shutdown().await;
    task.await.unwrap().unwrap();
    let children: Vec<_> = log
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.1 != parent && e.2 == "init")
        .map(|e| e.1.clone())
        .collect();
    assert!(!children.is_empty(), "no child shard started");
    // Not even tried: the children came from the event, not from a ListShards fallback.
    if names_children {
        assert_eq!(
            aws.kinesis_faults().stats().errors,
            0,
            "ListShards was called"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_subscriptions_are_waited_out() {
    use kinesis_testkit::FaultRule;

    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("refused", 1).await.unwrap();
    produce(&aws, "refused", 100, "rec").await;
    // A subscription still open elsewhere, then more than one call a second: both refused
    // a few times before the worker gets through.
    aws.kinesis_faults()
        .add(
            FaultRule::error(400, "ResourceInUseException")
                .on("SubscribeToShard")
                .times(3),
        )
        .add(
            FaultRule::error(400, "LimitExceededException")
                .on("SubscribeToShard")
                .times(3),
        );
    let log = Log::default();
    let b = builder(&aws, "refused-app", "refused", "w1")
        .await
        .fan_out("c");
    let (handle, task) = spawn_worker(b, "w1", &log).await;
    log.wait_for(100, Duration::from_secs(30)).await;
    handle.shutdown().await;
    task.await.unwrap().unwrap();
    assert_eq!(aws.kinesis_faults().stats().errors, 6);
    assert!(counts(&log).values().all(|&c| c == 1));
}
