//! Per-key order: with `ordered`, every partition key's records are read back in send order
//! through throttles, 500s, dropped connections, timeouts and a split; without it, the same
//! fault pattern reorders some key (so the check can fail).

use crate::support;

use std::collections::HashMap;
use std::time::Duration;

use kinesis_producer::{Producer, ProducerStats, UserRecord};
use kinesis_testkit::{FaultRule, KinesisEmulator, LocalAws};
use support::read_stream;

const KEYS: usize = 20;
const PER_KEY: usize = 150;

/// What a run left on the stream.
struct Run {
    stats: ProducerStats,
    /// Keys whose records a consumer reads out of send order.
    reordered: Vec<String>,
    /// Distinct user records a consumer reads.
    distinct: usize,
    shards: usize,
}

/// Sends `KEYS × PER_KEY` records (data `KEY:N`, N counting the key's records) to a
/// 2-shard stream while PutRecords fails in every way and the first shard splits, then
/// reads the stream back as KCL would: parents before children, each shard in sequence
/// order, records outside the shard's range (which KCL drops) left out.
async fn run(stream: &str, ordered: bool) -> Run {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream(stream, 2).await.unwrap();
    let client = aws.kinesis_client().await;
    // The request timeout the faults outlast. The embedded emulator answers in milliseconds;
    // kinesis-mock (one Node event loop) took longer than 300 ms for two minutes in a CI run
    // while the fuzz targets were being built beside it, and every attempt timed out.
    let (request_timeout, late) = match aws.kinesis_emulator() {
        KinesisEmulator::Ferrokinesis => (Duration::from_millis(300), Duration::from_millis(400)),
        _ => (Duration::from_secs(2), Duration::from_millis(2500)),
    };
    let faults = aws.kinesis_faults();
    for rule in [
        FaultRule::throttle().probability(0.1),
        FaultRule::internal_error().probability(0.1),
        FaultRule::drop_connection().probability(0.05),
        FaultRule::fail_entries(0.3).probability(0.2),
        // Longer than the request timeout: an answer that comes too late.
        FaultRule::latency(late).probability(0.05),
    ] {
        faults.add(rule.on("PutRecords").for_stream(stream));
    }
    let producer = Producer::builder(stream)
        .client(client.clone())
        .ordered(ordered)
        .request_timeout(request_timeout)
        .max_buffered_time(Duration::from_millis(20))
        .record_ttl(Duration::from_secs(120))
        .build()
        .unwrap();

    let mut puts = Vec::new();
    for i in 0..KEYS * PER_KEY {
        let key = format!("key-{:02}", i % KEYS);
        let data = format!("{key}:{:05}", i / KEYS);
        puts.push(producer.send(UserRecord::new(key, data)).await.unwrap());
        if i % 100 == 99 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if i == KEYS * PER_KEY / 3 {
            let shards = kinesis_testkit::streams::open_shards(&client, stream)
                .await
                .unwrap();
            aws.split_shard(stream, &shards[0].shard_id).await.unwrap();
        }
    }
    let mut failed = Vec::new();
    for put in puts {
        if let Err(e) = put.await {
            failed.push(e.to_string());
        }
    }
    producer.shutdown().await;
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..1]
    );
    let stats = producer.stats();

    let (mut records, ranges) = read_stream(&client, stream).await;
    records.retain(|r| ranges[&r.shard_id].contains(r.hash_key()));
    // Shard ids grow with creation, so children sort after their parents; the sort is
    // stable, so each shard keeps its sequence order.
    records.sort_by(|a, b| a.shard_id.cmp(&b.shard_id));
    let mut by_key: HashMap<String, Vec<usize>> = HashMap::new();
    for r in &records {
        let text = String::from_utf8(r.data.clone()).unwrap();
        let (key, n) = text.split_once(':').unwrap();
        assert_eq!(key, r.partition_key);
        by_key
            .entry(key.to_owned())
            .or_default()
            .push(n.parse().unwrap());
    }
    let mut reordered: Vec<String> = by_key
        .iter()
        .filter(|(_, ns)| !in_send_order(ns))
        .map(|(k, _)| k.clone())
        .collect();
    reordered.sort();
    let distinct = by_key
        .values()
        .map(|ns| ns.iter().collect::<std::collections::HashSet<_>>().len())
        .sum();
    aws.shutdown().await;
    Run {
        stats,
        reordered,
        distinct,
        shards: ranges.len(),
    }
}

/// Whether a key's record numbers, as read, keep send order: each record's first copy
/// comes after every earlier record's first copy. A record sent again after an answer
/// that came too late may land twice; its second copy is a duplicate, not a reordering.
fn in_send_order(read: &[usize]) -> bool {
    let mut seen = std::collections::HashSet::new();
    let firsts: Vec<usize> = read.iter().copied().filter(|n| seen.insert(*n)).collect();
    firsts.windows(2).all(|w| w[0] < w[1])
}

#[test]
fn the_order_check_reads_duplicates_as_duplicates() {
    assert!(in_send_order(&[0, 1, 1, 2, 1, 3]));
    assert!(!in_send_order(&[0, 2, 1, 3]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_keeps_every_keys_send_order_through_faults_and_a_split() {
    let run = run("ordered-on", true).await;
    eprintln!("ordered: {:?}", run.stats);
    assert_eq!(run.distinct, KEYS * PER_KEY, "every record is read back");
    assert_eq!(run.shards, 4, "the split happened");
    assert!(run.stats.retries > 0, "faults were injected");
    assert!(
        run.reordered.is_empty(),
        "out of order: {:?}",
        run.reordered
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_ordered_the_same_faults_reorder_some_key() {
    let run = run("ordered-off", false).await;
    eprintln!("unordered: {:?}; reordered {:?}", run.stats, run.reordered);
    assert_eq!(run.distinct, KEYS * PER_KEY, "every record is read back");
    assert!(
        !run.reordered.is_empty(),
        "no key was reordered: the order check would pass anything"
    );
}
