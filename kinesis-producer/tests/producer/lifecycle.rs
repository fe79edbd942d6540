//! Bad input, backpressure, TTL, flush, shutdown and drop: every record is accounted for.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kinesis_common::InputError;
use kinesis_producer::{ProduceError, Producer, UserRecord};
use kinesis_testkit::{FaultRule, LocalAws};

const BOUND: Duration = Duration::from_secs(20);

async fn stream(name: &str, shards: u32) -> (LocalAws, aws_sdk_kinesis::Client) {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream(name, shards).await.unwrap();
    let client = aws.kinesis_client().await;
    (aws, client)
}

#[tokio::test]
async fn bad_input_is_rejected_at_send_with_the_record_back() {
    let (_aws, client) = stream("bad-input", 1).await;
    let producer = Producer::builder("bad-input")
        .client(client)
        .build()
        .unwrap();
    let good = producer
        .send(UserRecord::new("ok", "before"))
        .await
        .unwrap();

    type Expect = fn(&InputError) -> bool;
    let cases: Vec<(UserRecord, Expect)> = vec![
        (UserRecord::new("", "x"), |e| {
            matches!(e, InputError::EmptyPartitionKey)
        }),
        (UserRecord::new("k".repeat(257), "x"), |e| {
            matches!(e, InputError::PartitionKeyTooLong { chars: 257, .. })
        }),
        (UserRecord::new("k", vec![0u8; 1024 * 1024]), |e| {
            matches!(e, InputError::RecordTooLarge { .. })
        }),
        (
            UserRecord::new("k", "x").with_explicit_hash_key("not-a-number"),
            |e| matches!(e, InputError::InvalidExplicitHashKey { .. }),
        ),
        (
            UserRecord::new("k", "x")
                .with_explicit_hash_key("340282366920938463463374607431768211456"),
            |e| matches!(e, InputError::InvalidExplicitHashKey { .. }),
        ),
    ];
    for (record, expected) in cases {
        let sent = record.clone();
        let err = producer.send(record).await.unwrap_err();
        match err.reason() {
            ProduceError::InvalidRecord { source } => assert!(expected(source), "{source:?}"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(!err.is_retryable());
        assert_eq!(err.into_record(), sent);
    }
    // try_send validates the same way.
    assert!(producer.try_send(UserRecord::new("", "x")).is_err());
    // Nothing else was disturbed.
    let after = producer.send(UserRecord::new("ok", "after")).await.unwrap();
    good.await.unwrap();
    after.await.unwrap();
    producer.shutdown().await;
    assert_eq!(producer.stats().user_records_put, 2);
}

#[tokio::test]
async fn invalid_configuration_is_a_typed_error() {
    let (_aws, client) = stream("config", 1).await;
    let err = Producer::builder("config")
        .client(client.clone())
        .max_entries_per_request(501)
        .build()
        .unwrap_err();
    assert!(
        matches!(
            err,
            kinesis_producer::ConfigError::Invalid {
                option: "max_entries_per_request",
                ..
            }
        ),
        "{err}"
    );
    let err = Producer::builder("config").build().unwrap_err();
    assert_eq!(err, kinesis_producer::ConfigError::MissingClient);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_sender_stays_within_the_outstanding_bytes_bound() {
    let aws = LocalAws::builder()
        .enforce_limits(true)
        .start()
        .await
        .unwrap();
    aws.create_stream("backpressure", 1).await.unwrap();
    let client = aws.kinesis_client().await;
    const BOUND_BYTES: usize = 256 * 1024;
    let producer = Producer::builder("backpressure")
        .client(client)
        .max_outstanding_bytes(BOUND_BYTES)
        .max_record_bytes(64 * 1024)
        .build()
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicUsize::new(0));
    let watcher = {
        let (producer, done, peak) = (producer.clone(), done.clone(), peak.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(producer.outstanding_bytes(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    // 1.5 MiB into a 1 MiB/s shard: the sender must wait for room.
    let mut puts = Vec::new();
    for i in 0..1500 {
        puts.push(
            producer
                .send(UserRecord::new(format!("k{i}"), vec![b'x'; 1024]))
                .await
                .unwrap(),
        );
        assert!(producer.outstanding_bytes() <= BOUND_BYTES);
    }
    for put in puts {
        put.await.unwrap();
    }
    done.store(true, Ordering::Relaxed);
    watcher.await.unwrap();
    producer.shutdown().await;
    let peak = peak.load(Ordering::Relaxed);
    assert!(peak <= BOUND_BYTES, "peak {peak} over the bound");
    assert!(
        peak > BOUND_BYTES / 2,
        "the bound was never approached (peak {peak})"
    );
}

#[tokio::test]
async fn try_send_fails_fast_when_full() {
    let (aws, client) = stream("full", 1).await;
    aws.kinesis_faults()
        .add(FaultRule::latency(Duration::from_millis(300)).on("PutRecords"));
    let producer = Producer::builder("full")
        .client(client)
        .max_outstanding_records(10)
        .build()
        .unwrap();
    let mut puts = Vec::new();
    for i in 0..10 {
        puts.push(
            producer
                .try_send(UserRecord::new("k", format!("{i}")))
                .unwrap(),
        );
    }
    let err = producer
        .try_send(UserRecord::new("k", "eleventh"))
        .unwrap_err();
    assert!(
        matches!(
            err.reason(),
            ProduceError::Full {
                outstanding_records: 10,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.into_record().data, "eleventh");
    for put in puts {
        put.await.unwrap();
    }
    // Room again.
    producer
        .try_send(UserRecord::new("k", "later"))
        .unwrap()
        .await
        .unwrap();
    producer.shutdown().await;
}

#[tokio::test]
async fn records_expire_after_their_ttl_with_the_record_back() {
    let (aws, client) = stream("ttl", 1).await;
    aws.kinesis_faults()
        .add(FaultRule::throttle().on("PutRecords"));
    let producer = Producer::builder("ttl")
        .client(client)
        .record_ttl(Duration::from_millis(500))
        .build()
        .unwrap();
    let start = Instant::now();
    let put = producer.send(UserRecord::new("k", "doomed")).await.unwrap();
    let err = tokio::time::timeout(BOUND, put).await.unwrap().unwrap_err();
    match err.reason() {
        ProduceError::Expired {
            attempts,
            last_error,
            ..
        } => {
            assert!(*attempts >= 1);
            assert!(
                last_error
                    .as_deref()
                    .unwrap_or("")
                    .contains("ProvisionedThroughputExceeded"),
                "{last_error:?}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(start.elapsed() >= Duration::from_millis(100));
    assert_eq!(err.into_record().data, "doomed");
    assert_eq!(producer.stats().user_records_expired, 1);
    assert!(producer.stats().throttled_requests >= 1);
}

#[tokio::test]
async fn stats_show_the_age_of_the_oldest_unresolved_record() {
    let (aws, client) = stream("oldest-age", 1).await;
    let producer = Producer::builder("oldest-age")
        .client(client)
        .build()
        .unwrap();
    assert_eq!(producer.stats().oldest_record_age, None);
    aws.kinesis_faults()
        .add(FaultRule::throttle().on("PutRecords"));
    let put = producer.send(UserRecord::new("k", "stuck")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let age = producer
        .stats()
        .oldest_record_age
        .expect("one record outstanding");
    assert!(age >= Duration::from_millis(500), "{age:?}");
    aws.kinesis_faults().clear();
    tokio::time::timeout(BOUND, put).await.unwrap().unwrap();
    producer.flush().await;
    assert_eq!(producer.stats().oldest_record_age, None);
    producer.shutdown().await;
}

#[tokio::test]
async fn fail_fast_on_throttling_returns_throttled_records_at_once() {
    let (aws, client) = stream("fail-fast", 1).await;
    aws.kinesis_faults()
        .add(FaultRule::throttle().on("PutRecords"));
    let producer = Producer::builder("fail-fast")
        .client(client)
        .fail_fast_on_throttling(true)
        .build()
        .unwrap();
    let err = producer
        .send(UserRecord::new("k", "x"))
        .await
        .unwrap()
        .await
        .unwrap_err();
    assert!(
        matches!(err.reason(), ProduceError::Throttled { .. }),
        "{err}"
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn denied_credentials_fail_records_as_fatal() {
    let (aws, client) = stream("denied", 1).await;
    aws.kinesis_faults()
        .add(FaultRule::error(400, "AccessDeniedException").on("PutRecords"));
    let producer = Producer::builder("denied").client(client).build().unwrap();
    let err = producer
        .send(UserRecord::new("k", "secret"))
        .await
        .unwrap()
        .await
        .unwrap_err();
    assert!(
        matches!(err.reason(), ProduceError::Service { source } if source.has_code("AccessDeniedException")),
        "{err}"
    );
    assert!(!err.is_retryable());
    assert_eq!(err.record().data, "secret");
}

#[tokio::test]
async fn flush_sends_buffered_records_at_once_and_waits_for_them() {
    let (_aws, client) = stream("flush", 2).await;
    let producer = Producer::builder("flush")
        .client(client)
        .max_buffered_time(Duration::from_secs(60))
        .build()
        .unwrap();
    let puts = support::send_tiny(&producer, 500).await;
    let start = Instant::now();
    tokio::time::timeout(BOUND, producer.flush()).await.unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "flush waited for the buffering time"
    );
    assert_eq!(producer.outstanding_records(), 0);
    for put in puts {
        // Already resolved: no waiting.
        tokio::time::timeout(Duration::from_millis(50), put)
            .await
            .unwrap()
            .unwrap();
    }
    // A flush with nothing outstanding returns at once.
    tokio::time::timeout(Duration::from_secs(1), producer.flush())
        .await
        .unwrap();
    producer.shutdown().await;
}

#[tokio::test]
async fn shutdown_puts_pending_records_then_refuses_new_ones() {
    let (_aws, client) = stream("shutdown", 2).await;
    let producer = Producer::builder("shutdown")
        .client(client)
        .max_buffered_time(Duration::from_secs(60))
        .build()
        .unwrap();
    let puts = support::send_tiny(&producer, 300).await;
    tokio::time::timeout(BOUND, producer.shutdown())
        .await
        .unwrap();
    for put in puts {
        tokio::time::timeout(Duration::from_millis(50), put)
            .await
            .unwrap()
            .unwrap();
    }
    let err = producer
        .send(UserRecord::new("k", "too late"))
        .await
        .unwrap_err();
    assert!(matches!(err.reason(), ProduceError::ShutDown));
    assert_eq!(err.into_record().data, "too late");
    assert!(producer.try_send(UserRecord::new("k", "x")).is_err());
}

#[tokio::test]
async fn dropping_the_producer_resolves_pending_records_with_their_records() {
    let (_aws, client) = stream("dropped", 1).await;
    let producer = Producer::builder("dropped")
        .client(client)
        .max_buffered_time(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut puts = Vec::new();
    for i in 0..50 {
        puts.push(
            producer
                .send(UserRecord::new("k", format!("{i}")))
                .await
                .unwrap(),
        );
    }
    drop(producer);
    for (i, put) in puts.into_iter().enumerate() {
        // Buffered records come back; any already in flight finish and are put.
        if let Err(err) = tokio::time::timeout(BOUND, put).await.unwrap() {
            assert!(matches!(err.reason(), ProduceError::ShutDown));
            assert_eq!(err.into_record().data, format!("{i}"));
        }
    }
}
