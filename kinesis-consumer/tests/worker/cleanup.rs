//! Leases of shards the stream no longer lists (aged out of retention) are never taken and
//! are deleted after the grace period.

use crate::support;

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use kinesis_testkit::LocalAws;
use support::{Log, builder, leases, produce, spawn_worker};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_of_a_vanished_shard_is_left_alone_then_deleted_after_the_grace_period() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("cleanup", 2).await.unwrap();
    let dynamodb = aws.dynamodb_client().await;
    kinesis_testkit::tables::create_lease_table(&dynamodb, "cleanup-app")
        .await
        .unwrap();
    // A lease as KCL leaves it for a shard that has since aged out of the stream.
    dynamodb
        .put_item()
        .table_name("cleanup-app")
        .item("leaseKey", AttributeValue::S("shardId-000000009999".into()))
        .item("leaseCounter", AttributeValue::N("7".into()))
        .item(
            "checkpoint",
            AttributeValue::S("49590338271490256608559692538361571095921575989136588898".into()),
        )
        .item("checkpointSubSequenceNumber", AttributeValue::N("0".into()))
        .item(
            "ownerSwitchesSinceCheckpoint",
            AttributeValue::N("0".into()),
        )
        .send()
        .await
        .unwrap();

    let grace = Duration::from_secs(3);
    let log = Log::default();
    let (handle, task) = spawn_worker(
        builder(&aws, "cleanup-app", "cleanup", "w1")
            .await
            .lease_cleanup_grace(grace)
            .shard_sync_interval(Duration::from_millis(500)),
        "w1",
        &log,
    )
    .await;
    let start = Instant::now();
    produce(&aws, "cleanup", 200, "a").await;
    log.wait_for(200, Duration::from_secs(30)).await;
    loop {
        let table = leases(&aws, "cleanup-app").await;
        let Some(gone) = table.get("shardId-000000009999") else {
            break;
        };
        // Never taken while it waits.
        assert!(!gone.contains_key("leaseOwner"), "{gone:?}");
        assert_eq!(gone["leaseCounter"].as_n().unwrap(), "7");
        assert!(
            start.elapsed() < grace + Duration::from_secs(10),
            "not cleaned up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = start.elapsed();
    assert!(
        took >= grace,
        "deleted after {took:?}, before the grace period"
    );
    assert_eq!(leases(&aws, "cleanup-app").await.len(), 2);
    handle.shutdown().await;
    task.await.unwrap().unwrap();
}
