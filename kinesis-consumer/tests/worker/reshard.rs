//! Split and merge during consumption: parents finish before children start, nothing lost,
//! per-key order kept.

use crate::support;

use std::collections::HashMap;
use std::time::Duration;

use kinesis_testkit::LocalAws;
use support::{Log, builder, produce, spawn_worker};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_and_merge_during_consumption_keep_order_and_lose_nothing() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("reshard", 2).await.unwrap();
    let client = aws.kinesis_client().await;
    let log = Log::default();
    let (handle, task) = spawn_worker(
        builder(&aws, "reshard-app", "reshard", "w1")
            .await
            .shard_sync_interval(Duration::from_secs(2)),
        "w1",
        &log,
    )
    .await;
    produce(&aws, "reshard", 2_000, "a").await;
    log.wait_for(2_000, Duration::from_secs(30)).await;

    let shards = kinesis_testkit::streams::open_shards(&client, "reshard")
        .await
        .unwrap();
    let parent = shards[0].shard_id.clone();
    aws.split_shard("reshard", &parent).await.unwrap();
    produce(&aws, "reshard", 2_000, "b").await;
    let open = kinesis_testkit::streams::open_shards(&client, "reshard")
        .await
        .unwrap();
    aws.merge_shards("reshard", &open[0].shard_id, &open[1].shard_id)
        .await
        .unwrap();
    produce(&aws, "reshard", 2_000, "c").await;
    log.wait_for(6_000, Duration::from_secs(60)).await;
    handle.shutdown().await;
    task.await.unwrap().unwrap();

    // Children start only after their parents ended.
    let all = kinesis_common::shard_map::list_shards(&client, &"reshard".into(), false)
        .await
        .unwrap();
    let events = log.events.lock().unwrap().clone();
    let ended: HashMap<String, std::time::Instant> = events
        .iter()
        .filter(|e| e.2 == "end")
        .map(|e| (e.1.clone(), e.3))
        .collect();
    let deliveries = log.deliveries.lock().unwrap().clone();
    for shard in &all {
        for p in shard
            .parent_shard_id()
            .into_iter()
            .chain(shard.adjacent_parent_shard_id())
        {
            let Some(first) = deliveries.iter().find(|d| d.shard_id == shard.shard_id()) else {
                continue;
            };
            let parent_end = ended
                .get(p)
                .unwrap_or_else(|| panic!("parent {p} never ended"));
            assert!(
                first.at >= *parent_end,
                "{} started before its parent {p} ended",
                shard.shard_id()
            );
        }
    }
    // Per key, records arrive in the order they were put (first delivery of each).
    let mut seen = std::collections::HashSet::new();
    let mut last_index: HashMap<String, (char, usize)> = HashMap::new();
    for d in &deliveries {
        if !seen.insert(d.data.clone()) {
            continue;
        }
        let text = String::from_utf8(d.data.clone()).unwrap();
        let (tag, index) = text.split_once('-').unwrap();
        let index: usize = index.parse().unwrap();
        let key = format!("{tag}{}", index % 997);
        let phase = tag.chars().next().unwrap();
        if let Some((last_phase, last)) = last_index.get(&key) {
            assert!(
                (phase, index) > (*last_phase, *last),
                "key {key} out of order"
            );
        }
        last_index.insert(key, (phase, index));
    }
    assert_eq!(seen.len(), 6_000);
}
