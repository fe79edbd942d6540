//! One application's tables serve one stream: a worker pointed at another stream with the
//! same application name (KCL #1368), or another application given the same table, stops
//! with a typed error and touches no lease.

use crate::support;

use std::time::Duration;

use kinesis_consumer::ConsumerError;
use kinesis_testkit::LocalAws;
use support::{Log, builder, leases, produce, spawn_worker};

/// Runs a worker that should stop at once.
async fn run(builder: kinesis_consumer::WorkerBuilder) -> Result<(), ConsumerError> {
    let worker = builder
        .build(|_: &str| kinesis_consumer::NeverProcessor)
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), worker.run())
        .await
        .expect("refused at once")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_for_another_stream_or_application_is_refused_and_changes_nothing() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("claim-a", 2).await.unwrap();
    aws.create_stream("claim-b", 1).await.unwrap();
    let log = Log::default();
    let (handle, task) = spawn_worker(
        builder(&aws, "claim-app", "claim-a", "w1").await,
        "w1",
        &log,
    )
    .await;
    produce(&aws, "claim-a", 50, "a").await;
    log.wait_for(50, Duration::from_secs(30)).await;
    let before = leases(&aws, "claim-app").await;
    assert_eq!(before.len(), 2);

    // The same application name on another stream.
    match run(builder(&aws, "claim-app", "claim-b", "w2").await).await {
        Err(ConsumerError::TableOfAnotherStream {
            table,
            stream,
            recorded,
        }) => {
            assert_eq!(table, "claim-app-Coordinator");
            assert!(stream.ends_with("/claim-b"), "{stream}");
            assert!(recorded.ends_with("/claim-a"), "{recorded}");
        }
        other => panic!("expected TableOfAnotherStream, got {other:?}"),
    }
    // Another application given the same tables.
    let other = builder(&aws, "claim-other-app", "claim-a", "w4").await;
    match run(other.lease_table_name("claim-app".to_owned())).await {
        Err(ConsumerError::TableOfAnotherApplication {
            table,
            application,
            recorded,
        }) => {
            assert_eq!(table, "claim-app-Coordinator");
            assert_eq!(application, "claim-other-app");
            assert_eq!(recorded, "claim-app");
        }
        other => panic!("expected TableOfAnotherApplication, got {other:?}"),
    }
    let after = leases(&aws, "claim-app").await;
    assert_eq!(
        after.keys().collect::<std::collections::BTreeSet<_>>(),
        before.keys().collect::<std::collections::BTreeSet<_>>()
    );
    assert!(
        after
            .values()
            .all(|l| l["leaseOwner"].as_s().unwrap() == "w1")
    );

    // A second worker of the same stream joins as usual.
    let (handle2, task2) = spawn_worker(
        builder(&aws, "claim-app", "claim-a", "w3").await,
        "w3",
        &log,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!task2.is_finished(), "the same stream's worker runs");
    handle2.request_shutdown();
    task2.await.unwrap().unwrap();
    handle.request_shutdown();
    task.await.unwrap().unwrap();
}
