//! A lease table as KCL 3.x leaves it: the `LeaseOwnerToLeaseKeyIndex` GSI on `leaseOwner`,
//! and lease items with KCL 3.x's attributes (`throughputKBps`, `checkpointOwner` from a
//! handoff that was in progress, `isMarkedForLeaseSteal`). Our worker takes it over from its
//! checkpoints, keeps the attributes it does not use, clears the handoff it finished, and
//! the index still answers who owns what.

use crate::support;

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, ScalarAttributeType,
};
use aws_sdk_kinesis::primitives::Blob;
use kinesis_testkit::LocalAws;
use support::{Log, builder, spawn_worker};

fn key(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .unwrap()
}

fn string_attribute(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kcl3_written_lease_table_is_taken_over_and_keeps_its_attributes() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("kcl3", 2).await.unwrap();
    let client = aws.kinesis_client().await;
    let shards = kinesis_testkit::streams::open_shards(&client, "kcl3")
        .await
        .unwrap();
    let mut seqs = Vec::new();
    for i in 0..10 {
        let out = client
            .put_record()
            .stream_name("kcl3")
            .partition_key("pk")
            .explicit_hash_key(shards[0].starting_hash_key.to_string())
            .data(Blob::new(format!("old-{i}")))
            .send()
            .await
            .unwrap();
        seqs.push(out.sequence_number().to_owned());
    }
    let ddb = aws.dynamodb_client().await;
    // The table as KCL 3.x creates it.
    ddb.create_table()
        .table_name("kcl3-app")
        .key_schema(key("leaseKey", KeyType::Hash))
        .attribute_definitions(string_attribute("leaseKey"))
        .attribute_definitions(string_attribute("leaseOwner"))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name("LeaseOwnerToLeaseKeyIndex")
                .key_schema(key("leaseOwner", KeyType::Hash))
                .key_schema(key("leaseKey", KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::KeysOnly)
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    let s = |v: &str| AttributeValue::S(v.into());
    let n = |v: &str| AttributeValue::N(v.into());
    for (shard, checkpoint) in [
        (&shards[0].shard_id, seqs[4].as_str()),
        (&shards[1].shard_id, "TRIM_HORIZON"),
    ] {
        ddb.put_item()
            .table_name("kcl3-app")
            .item("leaseKey", s(shard))
            .item("leaseOwner", s("kcl3-worker-b"))
            .item("checkpointOwner", s("kcl3-worker-a"))
            .item("leaseCounter", n("41"))
            .item("checkpoint", s(checkpoint))
            .item("checkpointSubSequenceNumber", n("0"))
            .item("ownerSwitchesSinceCheckpoint", n("1"))
            .item("throughputKBps", n("12.5"))
            .item("isMarkedForLeaseSteal", AttributeValue::Bool(false))
            .item(
                "startingHashKey",
                s(&shards[0].starting_hash_key.to_string()),
            )
            .item("endingHashKey", s(&shards[0].ending_hash_key.to_string()))
            .send()
            .await
            .unwrap();
    }

    let log = Log::default();
    let (handle, task) = spawn_worker(
        builder(&aws, "kcl3-app", "kcl3", "rust-worker")
            .await
            .failover_time(Duration::from_secs(2))
            .renewal_interval(Duration::from_millis(500)),
        "rust-worker",
        &log,
    )
    .await;
    log.wait_for(5, Duration::from_secs(30)).await;
    let got: Vec<String> = log
        .deliveries
        .lock()
        .unwrap()
        .iter()
        .map(|d| String::from_utf8(d.data.clone()).unwrap())
        .collect();
    assert_eq!(got, ["old-5", "old-6", "old-7", "old-8", "old-9"]);

    // While it runs, the index KCL 3.x workers query names our worker for both leases (a
    // GSI is eventually consistent, so wait for it).
    let waiting = std::time::Instant::now();
    loop {
        let owned = ddb
            .query()
            .table_name("kcl3-app")
            .index_name("LeaseOwnerToLeaseKeyIndex")
            .key_condition_expression("leaseOwner = :me")
            .expression_attribute_values(":me", s("rust-worker"))
            .send()
            .await
            .unwrap();
        if owned.count() == 2 {
            break;
        }
        assert!(
            waiting.elapsed() < Duration::from_secs(15),
            "the index names our worker for {} leases",
            owned.count()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    handle.shutdown().await;
    task.await.unwrap().unwrap();

    // What we do not use is kept; the handoff KCL 3.x had in progress is over.
    for item in support::leases(&aws, "kcl3-app").await.values() {
        assert!(item.contains_key("throughputKBps"), "{item:?}");
        assert!(item.contains_key("isMarkedForLeaseSteal"), "{item:?}");
        assert!(!item.contains_key("checkpointOwner"), "{item:?}");
    }
}
