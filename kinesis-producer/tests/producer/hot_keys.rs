//! The hot-key report finds the key that carries most of a shard's traffic.

use std::time::Duration;

use kinesis_producer::{Producer, UserRecord};
use kinesis_testkit::LocalAws;

#[tokio::test]
async fn one_key_carrying_most_of_a_shard_is_reported_as_its_hottest() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("hot-keys", 2).await.unwrap();
    let producer = Producer::builder("hot-keys")
        .client(aws.kinesis_client().await)
        .build()
        .unwrap();
    let mut puts = Vec::new();
    for i in 0..3_000 {
        // 60% of the records, with twice the payload, go under one key; 1,200 keys share the rest.
        let (key, size) = if i % 5 < 3 {
            ("user-42".to_owned(), 200)
        } else {
            (format!("user-{}", 1000 + i), 100)
        };
        let record = UserRecord::new(key, vec![b'x'; size]);
        puts.push(producer.send(record).await.unwrap());
    }
    for put in puts {
        put.await.unwrap();
    }
    // Reports are published once a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let report = producer.hot_keys();
    producer.shutdown().await;
    assert_eq!(report.len(), 2, "{report:#?}");
    let hot = report
        .iter()
        .find(|s| {
            s.by_bytes
                .first()
                .is_some_and(|k| k.partition_key == "user-42")
        })
        .unwrap_or_else(|| panic!("user-42 not found: {report:#?}"));
    let top = &hot.by_bytes[0];
    assert_eq!(top.records, 1_800);
    assert_eq!(top.bytes, 1_800 * (200 + 7));
    assert!(top.share > 0.75, "{top:?} of {hot:?}");
    assert_eq!(hot.by_records[0].partition_key, "user-42");
    assert!(hot.hottest_share() > 0.75);
    let cold = report.iter().find(|s| s.shard_id != hot.shard_id).unwrap();
    assert!(cold.hottest_share() < 0.2, "{cold:#?}");
    assert_eq!(
        report.iter().map(|s| s.records).sum::<u64>(),
        3_000,
        "every record counted once"
    );
}
