//! Many shards: a 1,000-shard stream written from one producer, and the shard count doubled
//! while producing, with nothing lost.

use crate::support;

use std::collections::HashSet;
use std::time::Duration;

use kinesis_producer::{Producer, UserRecord};
use kinesis_testkit::LocalAws;
use support::{assert_on_owning_shards, counts, read_stream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_shard_stream_takes_records_on_nearly_every_shard() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("many-1000", 1000).await.unwrap();
    let client = aws.kinesis_client().await;
    let producer = Producer::builder("many-1000")
        .client(client.clone())
        .build()
        .unwrap();
    let n = 5_000;
    let mut puts = Vec::with_capacity(n);
    for i in 0..n {
        let record = UserRecord::new(format!("pk-{i}"), format!("{i:06}"));
        puts.push(producer.send(record).await.unwrap());
    }
    let mut shards_written = HashSet::new();
    for put in puts {
        shards_written.insert(put.await.unwrap().shard_id().to_owned());
    }
    producer.shutdown().await;
    let stats = producer.stats();
    eprintln!("{} shards written; {stats:?}", shards_written.len());
    // One shard map load, however many ListShards pages it took.
    assert_eq!(stats.shard_map_refreshes, 1);
    assert_eq!(stats.wrong_shard_resends, 0, "every shard predicted right");
    // 5,000 random keys over 1,000 shards leave about 7 shards empty (1,000 × e^-5).
    assert!(shards_written.len() >= 950, "{}", shards_written.len());

    let (records, ranges) = read_stream(&client, "many-1000").await;
    assert_eq!(ranges.len(), 1000);
    let counts = counts(&records);
    assert_eq!(counts.len(), n);
    assert!(counts.values().all(|c| *c == 1), "a record twice");
    assert_on_owning_shards(&records, &ranges);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doubling_the_shard_count_while_producing_loses_nothing() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("many-doubled", 8).await.unwrap();
    let client = aws.kinesis_client().await;
    let producer = Producer::builder("many-doubled")
        .client(client.clone())
        .max_buffered_time(Duration::from_millis(20))
        .build()
        .unwrap();
    let n = 20_000;
    let sender = {
        let producer = producer.clone();
        tokio::spawn(async move {
            let mut puts = Vec::with_capacity(n);
            for i in 0..n {
                let record = UserRecord::new(format!("pk-{i}"), format!("{i:08}"));
                puts.push(producer.send(record).await.unwrap());
                if i % 500 == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            let mut failed = Vec::new();
            for put in puts {
                if let Err(e) = put.await {
                    failed.push(e.to_string());
                }
            }
            failed
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    aws.update_shard_count("many-doubled", 16).await.unwrap();
    let failed = sender.await.unwrap();
    producer.shutdown().await;
    let stats = producer.stats();
    eprintln!("{stats:?}");
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..1]
    );
    assert!(stats.shard_map_refreshes >= 2, "the new map was loaded");

    let open = kinesis_testkit::streams::open_shards(&client, "many-doubled")
        .await
        .unwrap();
    assert_eq!(open.len(), 16);
    let (records, ranges) = read_stream(&client, "many-doubled").await;
    assert_eq!(counts(&records).len(), n, "every record is readable");
    // What a KCL consumer keeps (records inside their shard's range) covers every record.
    let kept: HashSet<_> = records
        .iter()
        .filter(|r| ranges[&r.shard_id].contains(r.hash_key()))
        .map(|r| r.data.clone())
        .collect();
    assert_eq!(kept.len(), n, "a KCL consumer sees every record");
}
