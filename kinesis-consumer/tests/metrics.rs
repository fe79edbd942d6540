//! The worker's metrics, read with a debugging recorder: names, labels by granularity, and
//! values that move. Its own test binary: the recorder is installed for the whole process.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use kinesis_consumer::MetricsGranularity;
use kinesis_testkit::{FaultRule, LocalAws};
use metrics_util::CompositeKey;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

/// One snapshot of every series (taking one resets counters and histograms).
type Snapshot = Vec<(
    CompositeKey,
    Option<metrics::Unit>,
    Option<metrics::SharedString>,
    DebugValue,
)>;
use support::{Log, builder, produce, spawn_worker};

/// Every series of `name` whose labels include `application=app`: labels (sorted
/// `key=value`, the application left out) → value (counters and gauges as numbers,
/// histograms as their sample count).
fn series(snapshot: &Snapshot, name: &str, app: &str) -> BTreeMap<Vec<String>, f64> {
    let mut out = BTreeMap::new();
    for (key, _, _, value) in snapshot {
        if key.key().name() != name {
            continue;
        }
        let labels: Vec<(String, String)> = key
            .key()
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        if !labels.iter().any(|(k, v)| k == "application" && v == app) {
            continue;
        }
        let mut rest: Vec<String> = labels
            .into_iter()
            .filter(|(k, _)| k != "application")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        rest.sort();
        let value = match value {
            DebugValue::Counter(c) => *c as f64,
            DebugValue::Gauge(g) => g.into_inner(),
            DebugValue::Histogram(h) => h.len() as f64,
        };
        out.insert(rest, value);
    }
    out
}

fn total(snapshot: &Snapshot, name: &str, app: &str) -> f64 {
    series(snapshot, name, app).values().sum()
}

/// Runs one worker of `app` with `granularity` over a 2-shard stream until it has processed
/// 200 records, with three GetRecords answers throttled (its Kinesis client does not retry,
/// so each reaches the worker); returns once it has shut down.
async fn consume(aws: &LocalAws, app: &str, stream: &str, granularity: MetricsGranularity) {
    aws.create_stream(stream, 2).await.unwrap();
    aws.kinesis_faults().add(
        FaultRule::error(400, "ProvisionedThroughputExceededException")
            .on("GetRecords")
            .times(3),
    );
    let log = Log::default();
    let (handle, task) = spawn_worker(
        builder(aws, app, stream, "w1")
            .await
            .kinesis_client(aws.client_options().max_attempts(1).kinesis().await)
            .metrics_granularity(granularity)
            .failover_time(Duration::from_secs(3))
            .renewal_interval(Duration::from_millis(500)),
        "w1",
        &log,
    )
    .await;
    produce(aws, stream, 200, "m").await;
    log.wait_for(200, Duration::from_secs(60)).await;
    // A renewal or two.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    handle.request_shutdown();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_and_granularity_decides_their_labels() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();
    let aws = LocalAws::start().await.unwrap();

    // Per shard: a series per shard for the per-shard metrics, the stream on every one.
    consume(&aws, "m-shard", "m-shard-s", MetricsGranularity::Shard).await;
    let s = &snapshotter.snapshot().into_vec();
    let processed = series(s, "kinesis_consumer_records_processed", "m-shard");
    assert_eq!(processed.len(), 2, "{processed:?}");
    assert!(
        processed.keys().all(|l| l.len() == 2
            && l[0].starts_with("shard=shardId-")
            && l[1] == "stream=m-shard-s")
    );
    assert_eq!(processed.values().sum::<f64>(), 200.0);
    // Each record's data is "m-<n>" plus padding: at least 3 bytes each.
    let bytes = series(s, "kinesis_consumer_bytes_processed", "m-shard");
    assert!(bytes.values().sum::<f64>() >= 600.0, "{bytes:?}");
    assert!(total(s, "kinesis_consumer_processing_seconds", "m-shard") >= 2.0);
    assert_eq!(
        series(s, "kinesis_consumer_millis_behind_latest", "m-shard").len(),
        2
    );
    let ages = series(s, "kinesis_consumer_newest_record_age_seconds", "m-shard");
    assert_eq!(ages.len(), 2);
    assert!(ages.values().all(|a| (0.0..60.0).contains(a)), "{ages:?}");
    // Worker-level metrics carry the stream only.
    let stream_only = vec!["stream=m-shard-s".to_owned()];
    let taken = series(s, "kinesis_consumer_leases_taken", "m-shard");
    assert_eq!(taken.get(&stream_only), Some(&2.0), "{taken:?}");
    assert!(total(s, "kinesis_consumer_lease_renewals", "m-shard") >= 2.0);
    assert!(total(s, "kinesis_consumer_lease_renewal_seconds", "m-shard") >= 2.0);
    // Released on shutdown.
    assert_eq!(total(s, "kinesis_consumer_leases_held", "m-shard"), 0.0);
    // The read rate written on the leases for the balance.
    assert!(total(s, "kinesis_consumer_throughput_kbps", "m-shard") > 0.0);
    let throttles = series(s, "kinesis_consumer_kinesis_throttles", "m-shard");
    let get_records = vec![
        "operation=GetRecords".to_owned(),
        "stream=m-shard-s".to_owned(),
    ];
    assert_eq!(throttles.get(&get_records), Some(&3.0), "{throttles:?}");
    let errors = series(s, "kinesis_consumer_kinesis_errors", "m-shard");
    let code = vec![
        "code=ProvisionedThroughputExceededException".to_owned(),
        "operation=GetRecords".to_owned(),
        "stream=m-shard-s".to_owned(),
    ];
    assert_eq!(errors.get(&code), Some(&3.0), "{errors:?}");

    // Per worker: the application label alone, one series per metric.
    consume(&aws, "m-worker", "m-worker-s", MetricsGranularity::Worker).await;
    let s = &snapshotter.snapshot().into_vec();
    let processed = series(s, "kinesis_consumer_records_processed", "m-worker");
    assert_eq!(processed, BTreeMap::from([(Vec::new(), 200.0)]));
    assert_eq!(
        series(s, "kinesis_consumer_millis_behind_latest", "m-worker").len(),
        1
    );
    assert_eq!(
        series(s, "kinesis_consumer_leases_taken", "m-worker"),
        BTreeMap::from([(Vec::new(), 2.0)])
    );

    // The default, per stream: the stream label, no shard.
    consume(
        &aws,
        "m-stream",
        "m-stream-s",
        MetricsGranularity::default(),
    )
    .await;
    let s = &snapshotter.snapshot().into_vec();
    let processed = series(s, "kinesis_consumer_records_processed", "m-stream");
    assert_eq!(
        processed,
        BTreeMap::from([(vec!["stream=m-stream-s".to_owned()], 200.0)])
    );
}
