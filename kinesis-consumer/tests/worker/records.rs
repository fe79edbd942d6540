//! What processors receive: aggregates resumed mid-way, corrupt records, failures, faults.

use crate::support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_kinesis::primitives::Blob;
use kinesis_consumer::{Checkpointer, ProcessRecordsInput, ProcessorError, RecordProcessor};
use kinesis_producer::{Producer, UserRecord};
use kinesis_testkit::{FaultRule, LocalAws};
use support::{Log, builder, produce, spawn_worker};

/// Checkpoints inside the first batch at sub-sequence 4, then does nothing more.
struct StopsMidAggregate {
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl RecordProcessor for StopsMidAggregate {
    async fn process_records(
        &mut self,
        input: ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        let mut seen = self.seen.lock().unwrap().clone();
        if seen.is_empty() {
            let fifth = &input.records[4];
            assert!(fifth.aggregated);
            checkpointer
                .checkpoint_at(&fifth.sequence_number, fifth.sub_sequence_number)
                .await?;
        }
        seen.extend(input.records.iter().map(|r| r.data.to_vec()));
        *self.seen.lock().unwrap() = seen;
        Ok(())
    }

    async fn shutdown_requested(&mut self, _checkpointer: &mut Checkpointer) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_inside_an_aggregate_at_the_right_sub_sequence() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("agg", 1).await.unwrap();
    let producer = Producer::builder("agg")
        .client(aws.kinesis_client().await)
        .max_buffered_time(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut puts = Vec::new();
    for i in 0..10 {
        puts.push(
            producer
                .send(UserRecord::new("same-key", format!("{i}")))
                .await
                .unwrap(),
        );
    }
    producer.flush().await;
    for put in puts {
        assert!(
            put.await.unwrap().sub_sequence_number().is_some(),
            "one aggregate"
        );
    }

    let seen = Arc::new(Mutex::new(Vec::new()));
    let first = {
        let seen = seen.clone();
        builder(&aws, "agg-app", "agg", "w1")
            .await
            .build(move |_: &str| StopsMidAggregate { seen: seen.clone() })
            .unwrap()
    };
    let handle = first.handle();
    let task = tokio::spawn(first.run());
    let start = std::time::Instant::now();
    while seen.lock().unwrap().len() < 10 {
        assert!(start.elapsed() < Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    handle.shutdown().await;
    task.await.unwrap().unwrap();

    let log = Log::default();
    let (handle, task) =
        spawn_worker(builder(&aws, "agg-app", "agg", "w2").await, "w2", &log).await;
    log.wait_for(5, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    handle.shutdown().await;
    task.await.unwrap().unwrap();
    let got: Vec<String> = log
        .deliveries
        .lock()
        .unwrap()
        .iter()
        .map(|d| String::from_utf8(d.data.clone()).unwrap())
        .collect();
    assert_eq!(got, ["5", "6", "7", "8", "9"]);
    let subs: Vec<u64> = log
        .deliveries
        .lock()
        .unwrap()
        .iter()
        .map(|d| d.sub_sequence_number)
        .collect();
    assert_eq!(subs, [5, 6, 7, 8, 9]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_aggregates_and_plain_records_pass_through_whole() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("corrupt", 1).await.unwrap();
    let client = aws.kinesis_client().await;
    let mut corrupt = kinesis_common::aggregation::MAGIC.to_vec();
    corrupt.extend_from_slice(b"definitely not protobuf, and no valid checksum either");
    for data in [corrupt.clone(), b"plain".to_vec()] {
        client
            .put_record()
            .stream_name("corrupt")
            .partition_key("k")
            .data(Blob::new(data))
            .send()
            .await
            .unwrap();
    }
    let log = Log::default();
    let (handle, task) = spawn_worker(
        builder(&aws, "corrupt-app", "corrupt", "w1").await,
        "w1",
        &log,
    )
    .await;
    log.wait_for(2, Duration::from_secs(30)).await;
    handle.shutdown().await;
    task.await.unwrap().unwrap();
    let got: Vec<Vec<u8>> = log
        .deliveries
        .lock()
        .unwrap()
        .iter()
        .map(|d| d.data.clone())
        .collect();
    assert_eq!(got, [corrupt, b"plain".to_vec()]);
}

/// Fails every batch twice, panics once, then takes it.
struct Flaky {
    calls: Arc<AtomicUsize>,
    log: Log,
}

impl RecordProcessor for Flaky {
    async fn process_records(
        &mut self,
        input: ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        match call % 4 {
            0 | 1 => return Err("transient failure".into()),
            2 => panic!("processor bug"),
            _ => {}
        }
        self.log.record("w", &input);
        checkpointer.checkpoint().await?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_and_panicking_processors_lose_no_records() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("flaky", 1).await.unwrap();
    produce(&aws, "flaky", 500, "x").await;
    let log = Log::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let worker = {
        let (log, calls) = (log.clone(), calls.clone());
        builder(&aws, "flaky-app", "flaky", "w1")
            .await
            .processor_backoff(kinesis_common::Backoff::new(
                Duration::from_millis(10),
                Duration::from_millis(50),
            ))
            .build(move |_: &str| Flaky {
                calls: calls.clone(),
                log: log.clone(),
            })
            .unwrap()
    };
    let handle = worker.handle();
    let task = tokio::spawn(worker.run());
    log.wait_for(500, Duration::from_secs(30)).await;
    handle.shutdown().await;
    task.await.unwrap().unwrap();
    assert!(calls.load(Ordering::SeqCst) >= 4);
    assert_eq!(log.distinct(), 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_on_both_services_lose_no_records() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("faults", 2).await.unwrap();
    produce(&aws, "faults", 2_000, "f").await;
    aws.kinesis_faults()
        .add(FaultRule::throttle().on("GetRecords").probability(0.2))
        .add(
            FaultRule::internal_error()
                .on("GetRecords")
                .probability(0.1),
        )
        .add(FaultRule::drop_connection().on("GetShardIterator").times(2))
        // An iterator that expired mid-read: a fresh one continues after the last record.
        .add(
            FaultRule::error(400, "ExpiredIteratorException")
                .on("GetRecords")
                .times(3),
        );
    aws.dynamodb_faults()
        .add(FaultRule::throttle().on("Scan").probability(0.2))
        .add(
            FaultRule::internal_error()
                .on("UpdateItem")
                .probability(0.1),
        )
        .add(FaultRule::drop_connection().on("UpdateItem").times(3))
        // A renewal or checkpoint that loses a (phantom) race: the lease is dropped and,
        // since the table still names this worker, taken again.
        .add(
            FaultRule::error(400, "ConditionalCheckFailedException")
                .on("UpdateItem")
                .times(2),
        );
    let log = Log::default();
    let (handle, task) = spawn_worker(
        builder(&aws, "faults-app", "faults", "w1").await,
        "w1",
        &log,
    )
    .await;
    log.wait_for(2_000, Duration::from_secs(60)).await;
    handle.shutdown().await;
    task.await.unwrap().unwrap();
    let k = aws.kinesis_faults().stats();
    let d = aws.dynamodb_faults().stats();
    assert!(
        k.throttled + k.errors + k.dropped > 0 && d.throttled + d.errors + d.dropped > 0,
        "{k:?} {d:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kcl_written_lease_table_is_taken_over_with_its_checkpoints() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("legacy", 2).await.unwrap();
    let client = aws.kinesis_client().await;
    let shards = kinesis_testkit::streams::open_shards(&client, "legacy")
        .await
        .unwrap();
    // Ten plain records on the first shard; the old KCL application processed five.
    let mut seqs = Vec::new();
    for i in 0..10 {
        let out = client
            .put_record()
            .stream_name("legacy")
            .partition_key("pk")
            .explicit_hash_key(shards[0].starting_hash_key.to_string())
            .data(Blob::new(format!("old-{i}")))
            .send()
            .await
            .unwrap();
        seqs.push(out.sequence_number().to_owned());
    }
    let ddb = aws.dynamodb_client().await;
    kinesis_testkit::tables::create_lease_table(&ddb, "legacy-app")
        .await
        .unwrap();
    // Items as KCL 2.x writes them, attribute by attribute.
    let s = |v: &str| AttributeValue::S(v.into());
    let n = |v: u64| AttributeValue::N(v.to_string());
    for (shard, checkpoint) in [
        (&shards[0].shard_id, seqs[4].as_str()),
        (&shards[1].shard_id, "TRIM_HORIZON"),
    ] {
        ddb.put_item()
            .table_name("legacy-app")
            .item("leaseKey", s(shard))
            .item("leaseOwner", s("kcl-java-worker-1"))
            .item("leaseCounter", n(17))
            .item("checkpoint", s(checkpoint))
            .item("checkpointSubSequenceNumber", n(0))
            .item("ownerSwitchesSinceCheckpoint", n(0))
            .send()
            .await
            .unwrap();
    }
    let log = Log::default();
    let (handle, task) = spawn_worker(
        builder(&aws, "legacy-app", "legacy", "rust-worker")
            .await
            .failover_time(Duration::from_secs(2))
            .renewal_interval(Duration::from_millis(500)),
        "rust-worker",
        &log,
    )
    .await;
    log.wait_for(5, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    handle.shutdown().await;
    task.await.unwrap().unwrap();
    let got: Vec<String> = log
        .deliveries
        .lock()
        .unwrap()
        .iter()
        .map(|d| String::from_utf8(d.data.clone()).unwrap())
        .collect();
    assert_eq!(got, ["old-5", "old-6", "old-7", "old-8", "old-9"]);
    // Our writes used KCL's attribute names only.
    let items = support::leases(&aws, "legacy-app").await;
    let allowed = [
        "leaseKey",
        "leaseOwner",
        "leaseCounter",
        "checkpoint",
        "checkpointSubSequenceNumber",
        "pendingCheckpoint",
        "pendingCheckpointSubSequenceNumber",
        "ownerSwitchesSinceCheckpoint",
        "parentShardId",
        "childShardIds",
        "startingHashKey",
        "endingHashKey",
        // KCL 3.x's, which KCL 2.x leaves alone: the read rate written with each renewal,
        // and the previous owner during a graceful handoff.
        "throughputKBps",
        "checkpointOwner",
    ];
    for item in items.values() {
        for name in item.keys() {
            assert!(allowed.contains(&name.as_str()), "non-KCL attribute {name}");
        }
    }
}

#[tokio::test]
async fn a_missing_stream_stops_the_worker_with_a_typed_error() {
    let aws = LocalAws::start().await.unwrap();
    let worker = builder(&aws, "missing-app", "no-such-stream", "w1")
        .await
        .build(|_: &str| kinesis_consumer::NeverProcessor)
        .unwrap();
    let err = tokio::time::timeout(Duration::from_secs(30), worker.run())
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(err, kinesis_consumer::ConsumerError::Stream { .. }),
        "{err}"
    );
}

/// Fails every batch of one shard; records the others.
struct FailsOneShard {
    bad_shard: String,
    shard: String,
    failures: Arc<AtomicUsize>,
    log: Log,
}

impl RecordProcessor for FailsOneShard {
    async fn process_records(
        &mut self,
        input: ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        if self.shard == self.bad_shard {
            self.failures.fetch_add(1, Ordering::SeqCst);
            return Err("this shard's records cannot be processed".into());
        }
        self.log.record("w", &input);
        checkpointer.checkpoint().await?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_whose_processor_keeps_failing_is_released_and_the_others_keep_running() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("stuck", 2).await.unwrap();
    let client = aws.kinesis_client().await;
    let shards = kinesis_testkit::streams::open_shards(&client, "stuck")
        .await
        .unwrap();
    let (bad, good) = (shards[0].clone(), shards[1].clone());
    for (shard, tag) in [(&bad, "bad"), (&good, "good")] {
        for i in 0..20 {
            client
                .put_record()
                .stream_name("stuck")
                .partition_key("k")
                .explicit_hash_key(shard.starting_hash_key.to_string())
                .data(Blob::new(format!("{tag}-{i}")))
                .send()
                .await
                .unwrap();
        }
    }
    let log = Log::default();
    let failures = Arc::new(AtomicUsize::new(0));
    let worker = {
        let (log, failures, bad_shard) = (log.clone(), failures.clone(), bad.shard_id.clone());
        builder(&aws, "stuck-app", "stuck", "w1")
            .await
            .processor_max_attempts(2)
            .processor_backoff(kinesis_common::Backoff::new(
                Duration::from_millis(10),
                Duration::from_millis(20),
            ))
            .build(move |shard: &str| FailsOneShard {
                bad_shard: bad_shard.clone(),
                shard: shard.to_owned(),
                failures: failures.clone(),
                log: log.clone(),
            })
            .unwrap()
    };
    let handle = worker.handle();
    let task = tokio::spawn(worker.run());
    log.wait_for(20, Duration::from_secs(30)).await;
    // Released after two attempts, taken again and retried: the records are never skipped.
    let start = std::time::Instant::now();
    while failures.load(Ordering::SeqCst) < 4 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the failing shard was not retried after release"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    handle.shutdown().await;
    task.await.unwrap().unwrap();
    let items = support::leases(&aws, "stuck-app").await;
    assert_eq!(
        items[&bad.shard_id]["checkpoint"].as_s().unwrap(),
        "TRIM_HORIZON",
        "nothing of the failing shard was checkpointed"
    );
    assert!(
        log.deliveries
            .lock()
            .unwrap()
            .iter()
            .all(|d| d.shard_id == good.shard_id)
    );
}

/// Counts calls without records.
struct CountsEmpty(Arc<AtomicUsize>);

impl RecordProcessor for CountsEmpty {
    async fn process_records(
        &mut self,
        input: ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        if input.records.is_empty() {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        // Nothing was delivered yet, so this writes nothing and must not fail.
        checkpointer.checkpoint().await?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_batches_are_delivered_when_asked_for() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("quiet", 1).await.unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let worker = {
        let calls = calls.clone();
        builder(&aws, "quiet-app", "quiet", "w1")
            .await
            .deliver_empty_batches(true)
            .build(move |_: &str| CountsEmpty(calls.clone()))
            .unwrap()
    };
    let handle = worker.handle();
    let task = tokio::spawn(worker.run());
    let start = std::time::Instant::now();
    while calls.load(Ordering::SeqCst) < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no empty batches delivered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    handle.shutdown().await;
    task.await.unwrap().unwrap();
}
