//! A lease table shared with workers of the real KCL 3.x, written item by item as KCL writes
//! it. KCL 3.5: its leader lock, migration state and a worker's `WORKER_METRIC_STATS` entry
//! live beside the leases; KCL 3.0–3.4: the worker reports in `<table>-WorkerMetricStats`.
//! Our worker reads none of KCL's entries as a lease, counts the fresh KCL worker as a member
//! and gives it its share (after the processor's `shutdown_requested`), leaves the split
//! alone while the KCL worker renews, and takes the leases back once it stops. The KCL
//! worker is played by the test: it renews its leases and reports, as KCL does.
//! (`interop/kcl/check.sh` runs a mixed fleet with the real KCL.)

use crate::support;

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use kinesis_testkit::LocalAws;
use support::{Log, builder, spawn_worker};

const KCL: &str = "kcl-worker";

/// Where the KCL worker reports.
#[derive(Clone, Copy, PartialEq)]
enum Kcl {
    /// KCL 3.5: in the lease table.
    SingleTable,
    /// KCL 3.0–3.4: in `<table>-WorkerMetricStats`, hash key `wid`.
    MetricsTable,
}

impl Kcl {
    fn table(self) -> &'static str {
        match self {
            Kcl::SingleTable => "kcl-shared-app",
            Kcl::MetricsTable => "kcl-legacy-app",
        }
    }

    fn stream(self) -> &'static str {
        match self {
            Kcl::SingleTable => "kcl-shared",
            Kcl::MetricsTable => "kcl-legacy",
        }
    }

    /// Where its report is, and the report's key.
    fn report(self) -> (String, &'static str) {
        match self {
            Kcl::SingleTable => (self.table().to_owned(), "leaseKey"),
            Kcl::MetricsTable => (format!("{}-WorkerMetricStats", self.table()), "wid"),
        }
    }
}

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
async fn owners(aws: &LocalAws, kcl: Kcl) -> HashMap<String, Option<String>> {
    support::leases(aws, kcl.table())
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
async fn kcl_heartbeat(ddb: &aws_sdk_dynamodb::Client, kcl: Kcl) {
    let (report_table, report_key) = kcl.report();
    let _ = ddb
        .update_item()
        .table_name(report_table)
        .key(report_key, s(KCL))
        .update_expression("SET lut = :now")
        .expression_attribute_values(":now", n(now_s()))
        .send()
        .await;
    let items = ddb
        .scan()
        .table_name(kcl.table())
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
                .table_name(kcl.table())
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

async fn create_table(ddb: &aws_sdk_dynamodb::Client, name: &str, key: &str) {
    ddb.create_table()
        .table_name(name)
        .key_schema(
            aws_sdk_dynamodb::types::KeySchemaElement::builder()
                .attribute_name(key)
                .key_type(aws_sdk_dynamodb::types::KeyType::Hash)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            aws_sdk_dynamodb::types::AttributeDefinition::builder()
                .attribute_name(key)
                .attribute_type(aws_sdk_dynamodb::types::ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcl_35_workers_in_the_table_get_their_share_and_lose_it_when_they_stop() {
    shared_with(Kcl::SingleTable).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcl_30_workers_reporting_in_their_own_table_get_their_share_too() {
    shared_with(Kcl::MetricsTable).await;
}

async fn shared_with(kcl: Kcl) {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream(kcl.stream(), 4).await.unwrap();
    let ddb = aws.dynamodb_client().await;
    create_table(&ddb, kcl.table(), "leaseKey").await;
    let (report_table, report_key) = kcl.report();
    if kcl == Kcl::MetricsTable {
        create_table(&ddb, &report_table, report_key).await;
    }
    // KCL's own entries, as it writes them (KCL 3.0–3.4 keeps its lock and migration state
    // in a coordinator-state table of its own, which we never read).
    let mut entries: Vec<Vec<(&str, AttributeValue)>> = vec![vec![
        (report_key, s(KCL)),
        ("lut", n(now_s())),
        ("opr", AttributeValue::M(HashMap::new())),
        ("sts", AttributeValue::M(HashMap::new())),
    ]];
    if kcl == Kcl::SingleTable {
        entries[0].push(("entityType", s("WORKER_METRIC_STATS")));
        entries[0].push(("slu", n(now_s())));
        entries[0].push(("sup", n(1)));
        entries.push(vec![
            ("leaseKey", s("Leader")),
            ("entityType", s("LEADER")),
            ("ownerName", s(KCL)),
            (
                "recordVersionNumber",
                s("4a907b75-922e-440d-a49a-c6b28f0905b4"),
            ),
            ("leaseDuration", s("120000")),
        ]);
        entries.push(vec![
            ("leaseKey", s("Migration3.0")),
            ("entityType", s("CLIENT_VERSION_MIGRATION")),
            ("cv", s("CLIENT_VERSION_3X")),
            ("mb", s(KCL)),
            ("mts", n(now_s() * 1000)),
        ]);
    }
    for (i, entry) in entries.into_iter().enumerate() {
        let table = if i == 0 { &report_table } else { kcl.table() };
        let mut put = ddb.put_item().table_name(table);
        for (name, value) in entry {
            put = put.item(name, value);
        }
        put.send().await.unwrap();
    }

    let log = Log::default();
    let (handle, task) = spawn_worker(
        builder(&aws, kcl.table(), kcl.stream(), "rust-worker")
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
        kcl_heartbeat(&ddb, kcl).await;
        let owners = owners(&aws, kcl).await;
        if owners.len() == 4 && held_by(&owners, KCL) == 2 && held_by(&owners, "rust-worker") == 2 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no even split with the KCL worker: {owners:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let given: Vec<String> = owners(&aws, kcl)
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
        kcl_heartbeat(&ddb, kcl).await;
        let owners = owners(&aws, kcl).await;
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
    if kcl == Kcl::SingleTable {
        let leader = ddb
            .get_item()
            .table_name(kcl.table())
            .key("leaseKey", s("Leader"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            leader.item().unwrap()["ownerName"],
            s(KCL),
            "KCL's lock is untouched"
        );
    }

    // The KCL worker stops: its leases expire and come back to ours.
    let stopped = Instant::now();
    loop {
        let owners = owners(&aws, kcl).await;
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
