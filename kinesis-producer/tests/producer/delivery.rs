//! Records arrive exactly once, on the shard their hash key maps to, readable by a consumer.

use crate::support;

use std::time::Duration;

use kinesis_producer::{ProduceError, Producer, UserRecord};
use kinesis_testkit::LocalAws;
use support::{assert_on_owning_shards, counts, read_stream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_records_over_four_shards_arrive_exactly_once() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("exactly-once", 4).await.unwrap();
    let client = aws.kinesis_client().await;
    let producer = Producer::builder("exactly-once")
        .client(client.clone())
        .build()
        .unwrap();

    const N: usize = 100_000;
    let mut futures = Vec::with_capacity(N);
    for i in 0..N {
        let record = UserRecord::new(format!("key-{}", i % 5000), format!("record-{i:06}"));
        futures.push(producer.send(record).await.unwrap());
    }
    let mut aggregated = 0;
    for put in futures {
        let result = put.await.unwrap();
        assert_eq!(result.attempts(), 1);
        aggregated += usize::from(result.sub_sequence_number().is_some());
    }
    producer.shutdown().await;
    let stats = producer.stats();
    assert_eq!(stats.user_records_put, N as u64);
    assert!(
        aggregated > N / 2,
        "only {aggregated} of {N} records were aggregated"
    );
    assert!(stats.kinesis_records_put < (N / 10) as u64, "{stats:?}");

    let (records, ranges) = read_stream(&client, "exactly-once").await;
    assert_eq!(records.len(), N);
    let counts = counts(&records);
    assert_eq!(counts.len(), N);
    assert!(counts.values().all(|&c| c == 1));
    assert_on_owning_shards(&records, &ranges);
    assert_eq!(
        records
            .iter()
            .map(|r| &r.shard_id)
            .collect::<std::collections::HashSet<_>>()
            .len(),
        4
    );
}

#[tokio::test]
async fn results_name_shard_sequence_and_sub_sequence() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("results", 2).await.unwrap();
    let client = aws.kinesis_client().await;
    let producer = Producer::builder("results")
        .client(client.clone())
        .build()
        .unwrap();
    let a = producer
        .send(UserRecord::new("same", "first"))
        .await
        .unwrap();
    let b = producer
        .send(UserRecord::new("same", "second"))
        .await
        .unwrap();
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    assert_eq!(a.shard_id(), b.shard_id());
    assert_eq!(
        a.sequence_number(),
        b.sequence_number(),
        "one aggregate carries both"
    );
    assert_eq!(
        (a.sub_sequence_number(), b.sub_sequence_number()),
        (Some(0), Some(1))
    );
    assert!(a.buffered() < Duration::from_secs(5));

    // Without aggregation every record is its own Kinesis record.
    let plain = Producer::builder("results")
        .client(client)
        .aggregation(false)
        .build()
        .unwrap();
    let c = plain
        .send(UserRecord::new("same", "third"))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(c.sub_sequence_number(), None);
    plain.shutdown().await;
    producer.shutdown().await;
}

#[tokio::test]
async fn explicit_hash_keys_route_records() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("explicit", 4).await.unwrap();
    let client = aws.kinesis_client().await;
    let producer = Producer::builder("explicit")
        .client(client.clone())
        .build()
        .unwrap();
    let mut puts = Vec::new();
    for i in 0..100u128 {
        let key = (u128::MAX / 100) * i;
        let record =
            UserRecord::new("constant-key", format!("{i}")).with_explicit_hash_key(key.to_string());
        puts.push(producer.send(record).await.unwrap());
    }
    for put in puts {
        put.await.unwrap();
    }
    producer.shutdown().await;
    let (records, ranges) = read_stream(&client, "explicit").await;
    assert_eq!(records.len(), 100);
    for r in &records {
        let i: u128 = String::from_utf8(r.data.clone()).unwrap().parse().unwrap();
        let key = kinesis_common::HashKey((u128::MAX / 100) * i);
        assert!(
            ranges[&r.shard_id].contains(key),
            "record {i} on {}",
            r.shard_id
        );
    }
    assert_eq!(
        records
            .iter()
            .map(|r| &r.shard_id)
            .collect::<std::collections::HashSet<_>>()
            .len(),
        4
    );
}

#[tokio::test]
async fn a_missing_stream_fails_every_record_with_the_record_back() {
    let aws = LocalAws::start().await.unwrap();
    let client = aws.kinesis_client().await;
    let producer = Producer::builder("does-not-exist")
        .client(client)
        .build()
        .unwrap();
    let put = producer
        .send(UserRecord::new("k", "payload"))
        .await
        .unwrap();
    let err = tokio::time::timeout(Duration::from_secs(20), put)
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(err.reason(), ProduceError::Service { source } if source.has_code("ResourceNotFoundException")),
        "{err}"
    );
    assert!(!err.is_retryable());
    assert_eq!(err.into_record().data, "payload");
    // Later records fail fast with the same error.
    let put = producer.send(UserRecord::new("k", "again")).await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_secs(5), put)
            .await
            .unwrap()
            .is_err()
    );
}
