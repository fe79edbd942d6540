//! The producer reports through the `metrics` facade.

mod support;

use kinesis_producer::Producer;
use kinesis_testkit::LocalAws;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

#[tokio::test]
async fn counters_and_histograms_reach_the_installed_recorder() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("metered", 2).await.unwrap();
    let client = aws.kinesis_client().await;
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // Handles are registered when the producer is built.
    let producer = metrics::with_local_recorder(&recorder, || {
        Producer::builder("metered").client(client).build().unwrap()
    });
    let puts = support::send_tiny(&producer, 100).await;
    for put in puts {
        put.await.unwrap();
    }
    producer.shutdown().await;

    let snapshot = snapshotter.snapshot().into_vec();
    let counter = |name: &str| {
        snapshot
            .iter()
            .find(|(key, ..)| key.key().name() == name)
            .map(|(key, _, _, value)| {
                assert!(
                    key.key()
                        .labels()
                        .any(|l| l.key() == "stream" && l.value() == "metered")
                );
                match value {
                    DebugValue::Counter(n) => *n,
                    other => panic!("{name} is {other:?}"),
                }
            })
            .unwrap_or_else(|| panic!("no {name}"))
    };
    assert_eq!(counter("kinesis_producer_user_records_put"), 100);
    assert!(counter("kinesis_producer_kinesis_records_put") >= 1);
    assert!(counter("kinesis_producer_requests") >= 1);
    assert!(counter("kinesis_producer_bytes_put") > 100);
    let histogram = snapshot
        .iter()
        .find(|(key, ..)| key.key().name() == "kinesis_producer_buffering_seconds")
        .map(|(.., value)| match value {
            DebugValue::Histogram(values) => values.len(),
            other => panic!("{other:?}"),
        });
    assert_eq!(histogram, Some(100));
}
