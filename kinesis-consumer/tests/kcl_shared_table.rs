//! A lease table shared with workers of the real KCL 3.5, written item by item as KCL 3.5
//! writes it: its leader lock, migration state and a worker's `WORKER_METRIC_STATS` entry
//! live beside the leases. Our worker reads none of them as a lease, counts the fresh KCL
//! worker as a member and gives it its share (after the processor's `shutdown_requested`),
//! leaves the split alone while the KCL worker renews, and takes the leases back once it
//! stops. The KCL worker is played by the test: it renews its leases and reports, as KCL
//! does. (`interop/kcl/check.sh` runs the same against the real KCL.)

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use kinesis_testkit::LocalAws;
use support::{Log, builder, spawn_worker};

const TABLE: &str = "kcl-shared-app";
const KCL: &str = "kcl-worker";

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Lease owners, leases only.
async fn owners(aws: &LocalAws) -> HashMap<String, Option<String>> {
    support::leases(aws, TABLE)
        .await
        .into_iter()
        .filter(|(_, item)| {
            item.get("entityType")
                .is_none_or(|t| t.as_s().unwrap() == "LEASE")
        })
        .map(|(k, item)| (k, item.get("leaseOwner").map(|o| o.as_s().unwrap().clone())))
        .collect()
}

fn held_by(owners: &HashMap<String, Option<String>>, who: &str) -> usize {
    owners
        .values()
        .filter(|o| o.as_deref() == Some(who))
        .count()
}

/// What a KCL worker does to stay alive: reports, and renews the leases it holds.
async fn kcl_heartbeat(ddb: &aws_sdk_dynamodb::Client) {
    let _ = ddb
        .update_item()
        .table_name(TABLE)
        .key("leaseKey", s(KCL))
        .update_expression("SET lut = :now")
        .expression_attribute_values(":now", n(now_s()))
        .send()
        .await;
    let items = ddb
        .scan()
        .table_name(TABLE)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    for item in items {
        if item
            .get("leaseOwner")
            .and_then(|o| o.as_s().ok())
            .map(String::as_str)
            == Some(KCL)
        {
            let _ = ddb
                .update_item()
                .table_name(TABLE)
                .key("leaseKey", item["leaseKey"].clone())
                .update_expression("SET leaseCounter = leaseCounter + :one")
                .condition_expression("leaseOwner = :me")
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":me", s(KCL))
                .send()
                .await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcl_workers_in_the_table_get_their_share_and_lose_it_when_they_stop() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("kcl-shared", 4).await.unwrap();
    let ddb = aws.dynamodb_client().await;
    ddb.create_table()
        .table_name(TABLE)
        .key_schema(
            aws_sdk_dynamodb::types::KeySchemaElement::builder()
                .attribute_name("leaseKey")
                .key_type(aws_sdk_dynamodb::types::KeyType::Hash)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            aws_sdk_dynamodb::types::AttributeDefinition::builder()
                .attribute_name("leaseKey")
                .attribute_type(aws_sdk_dynamodb::types::ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    // KCL 3.5's own entries, as it writes them.
    let entries: [Vec<(&str, AttributeValue)>; 3] = [
        vec![
            ("leaseKey", s("Leader")),
            ("entityType", s("LEADER")),
            ("ownerName", s(KCL)),
            (
                "recordVersionNumber",
                s("4a907b75-922e-440d-a49a-c6b28f0905b4"),
            ),
            ("leaseDuration", s("120000")),
        ],
        vec![
            ("leaseKey", s("Migration3.0")),
            ("entityType", s("CLIENT_VERSION_MIGRATION")),
            ("cv", s("CLIENT_VERSION_3X")),
            ("mb", s(KCL)),
            ("mts", n(now_s() * 1000)),
        ],
        vec![
            ("leaseKey", s(KCL)),
            ("entityType", s("WORKER_METRIC_STATS")),
            ("lut", n(now_s())),
            ("slu", n(now_s())),
            ("sup", n(1)),
            ("opr", AttributeValue::M(HashMap::new())),
            ("sts", AttributeValue::M(HashMap::new())),
        ],
    ];
    for entry in entries {
        let mut put = ddb.put_item().table_name(TABLE);
        for (name, value) in entry {
            put = put.item(name, value);
        }
        put.send().await.unwrap();
    }

    let log = Log::default();
    let (handle, task) = spawn_worker(
        builder(&aws, TABLE, "kcl-shared", "rust-worker")
            .await
            .failover_time(Duration::from_secs(2))
            .renewal_interval(Duration::from_millis(500)),
        "rust-worker",
        &log,
    )
    .await;

    // The KCL worker keeps reporting and renewing; it gets two of the four leases.
    let started = Instant::now();
    loop {
        kcl_heartbeat(&ddb).await;
        let owners = owners(&aws).await;
        if owners.len() == 4 && held_by(&owners, KCL) == 2 && held_by(&owners, "rust-worker") == 2 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no even split with the KCL worker: {owners:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let given: Vec<String> = owners(&aws)
        .await
        .into_iter()
        .filter(|(_, o)| o.as_deref() == Some(KCL))
        .map(|(k, _)| k)
        .collect();
    for shard in &given {
        // Our processor of that shard was asked to shut down (and could checkpoint) before
        // the lease was handed over; it never lost it.
        let events: Vec<&str> = log.events_for(shard).into_iter().map(|e| e.1).collect();
        assert_eq!(events, ["init", "shutdown"], "{shard}");
    }
    // While the KCL worker renews, the split stays.
    let steady = Instant::now();
    while steady.elapsed() < Duration::from_secs(6) {
        kcl_heartbeat(&ddb).await;
        let owners = owners(&aws).await;
        assert_eq!(held_by(&owners, KCL), 2, "{owners:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Only shards were processed: none of KCL's entries was taken for a lease.
    let shards: std::collections::HashSet<String> = log
        .events
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.1.clone())
        .collect();
    assert!(
        shards.iter().all(|s| s.starts_with("shardId-")),
        "{shards:?}"
    );
    let leader = ddb
        .get_item()
        .table_name(TABLE)
        .key("leaseKey", s("Leader"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        leader.item().unwrap()["ownerName"],
        s(KCL),
        "KCL's lock is untouched"
    );

    // The KCL worker stops: its leases expire and come back to ours.
    let stopped = Instant::now();
    loop {
        let owners = owners(&aws).await;
        if held_by(&owners, "rust-worker") == 4 {
            break;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(20),
            "the stopped KCL worker's leases were not taken back: {owners:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    handle.shutdown().await;
    task.await.unwrap().unwrap();
}
