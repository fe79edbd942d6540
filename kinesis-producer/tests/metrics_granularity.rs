//! The metrics granularity decides the labels, and so how many series thousands of shards
//! make. Its own test binary: per-shard handles are registered as shards are first written,
//! inside the engine's task, so they reach a globally installed recorder only.

mod support;

use kinesis_producer::{MetricsGranularity, Producer};
use kinesis_testkit::LocalAws;
use metrics_util::debugging::{DebuggingRecorder, Snapshotter};

/// Sends 50 records to a 4-shard stream through a producer of `granularity`.
async fn produce(granularity: MetricsGranularity, stream: &str) {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream(stream, 4).await.unwrap();
    let producer = Producer::builder(stream)
        .client(aws.kinesis_client().await)
        .metrics_granularity(granularity)
        .build()
        .unwrap();
    let puts = support::send_tiny(&producer, 50).await;
    for put in puts {
        put.await.unwrap();
    }
    producer.shutdown().await;
}

/// The label sets of `name`'s series, each as sorted `key=value` strings.
fn series(snapshotter: &Snapshotter, name: &str) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = snapshotter
        .snapshot()
        .into_vec()
        .iter()
        .filter(|(key, ..)| key.key().name() == name)
        .map(|(key, ..)| {
            let mut labels: Vec<String> = key
                .key()
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            labels.sort();
            labels
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn granularity_decides_the_labels_and_so_the_number_of_series() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();

    produce(MetricsGranularity::Global, "granular-global").await;
    assert_eq!(
        series(&snapshotter, "kinesis_producer_bytes_put"),
        [Vec::<String>::new()]
    );
    assert_eq!(
        series(&snapshotter, "kinesis_producer_oldest_record_age_seconds").len(),
        1
    );

    produce(MetricsGranularity::Stream, "granular-stream").await;
    let bytes = series(&snapshotter, "kinesis_producer_bytes_put");
    assert!(
        bytes.contains(&vec!["stream=granular-stream".to_owned()]),
        "{bytes:?}"
    );
    assert_eq!(bytes.len(), 2);

    // A series per shard written to: 50 keys cover all 4.
    produce(MetricsGranularity::Shard, "granular-shard").await;
    let bytes = series(&snapshotter, "kinesis_producer_bytes_put");
    let per_shard: Vec<_> = bytes
        .iter()
        .filter(|l| l.contains(&"stream=granular-shard".to_owned()))
        .filter(|l| l[0].starts_with("shard=shardId-"))
        .collect();
    assert_eq!(per_shard.len(), 4, "{bytes:?}");
    // Request-level metrics stay one series per stream.
    let requests = series(&snapshotter, "kinesis_producer_requests");
    assert_eq!(requests.len(), 3, "{requests:?}");
}
