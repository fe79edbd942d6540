//! Many shards: a 1,000-shard stream written from one producer, the shard count doubled
//! while producing with nothing lost, requests that take every aggregate due soon, and a
//! record that reaches a quiet engine going out on time.

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

/// Shards' aggregates close on deadlines spread over time; one that is due within a tenth
/// of the buffering time of a request going out joins it instead of sending its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aggregate_due_soon_joins_the_request_going_out() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("due-soon", 3).await.unwrap();
    let client = aws.kinesis_client().await;
    let producer = Producer::builder("due-soon")
        .client(client.clone())
        .max_buffered_time(Duration::from_secs(2))
        .build()
        .unwrap();
    while producer.stats().shard_map_refreshes == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // One record for each of the three shards, by explicit hash key.
    let on = |ehk: u128| UserRecord::new("k", "x").with_explicit_hash_key(ehk.to_string());
    let first = producer.send(on(1)).await.unwrap();
    // 50 ms later: due 50 ms after the first, well within its request's 200 ms.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let soon = producer.send(on(u128::MAX)).await.unwrap();
    // 1.2 s later: due long after the first request left.
    tokio::time::sleep(Duration::from_millis(1150)).await;
    let late = producer.send(on(u128::MAX / 2)).await.unwrap();
    let mut shards = HashSet::new();
    for put in [first, soon, late] {
        shards.insert(put.await.unwrap().shard_id().to_owned());
    }
    assert_eq!(shards.len(), 3);
    // Two requests (three without the rule), and one more for each retried record, should
    // an emulator fail an entry.
    let stats = producer.stats();
    assert!(
        stats.requests >= 2 && stats.requests <= 2 + stats.retries,
        "{stats:?}"
    );
    producer.shutdown().await;
}

/// A record that reaches a quiet engine, one shard of many opening an aggregate while the
/// engine's passes skip the shards (`engine/quiet.rs`), still goes out within the buffering
/// time: the new aggregate's deadline is kept. (Were it not, the record would wait for the
/// engine's next timer, its hot-key report, up to a second away.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_reaching_a_quiet_engine_goes_out_within_the_buffering_time() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("quiet-engine", 64).await.unwrap();
    let client = aws.kinesis_client().await;
    let buffering = Duration::from_millis(100);
    let producer = Producer::builder("quiet-engine")
        .client(client.clone())
        .max_buffered_time(buffering)
        .build()
        .unwrap();
    while producer.stats().shard_map_refreshes == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let step = u128::MAX / 64;
    let on = |shard: u128| {
        UserRecord::new("k", "x").with_explicit_hash_key((shard * step + 1).to_string())
    };
    // The engine meets each shard first: a shard's first record always makes a full pass.
    for shard in 0..10u128 {
        producer.send(on(shard)).await.unwrap().await.unwrap();
    }
    // Then one record at a time, each sent once the one before has landed, when nothing
    // else is due.
    let mut waits = Vec::new();
    for shard in 0..10u128 {
        let put = producer.send(on(shard)).await.unwrap();
        waits.push(put.await.unwrap().buffered());
    }
    producer.shutdown().await;
    eprintln!("waits {waits:?}");
    // Generous for a loaded machine, well short of a second.
    let longest = waits.iter().max().copied().unwrap_or_default();
    assert!(
        longest < buffering + Duration::from_millis(400),
        "{waits:?}"
    );
}
