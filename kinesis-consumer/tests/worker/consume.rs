//! One worker: delivery, order, checkpoints, resume.

use crate::support;

use std::collections::HashMap;
use std::time::Duration;

use kinesis_testkit::LocalAws;
use support::{Log, builder, leases, produce, spawn_worker};

fn cmp_seq(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_delivers_every_record_in_order_and_checkpoints_the_end() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("orders", 4).await.unwrap();
    produce(&aws, "orders", 50_000, "r").await;

    let log = Log::default();
    let (handle, task) = spawn_worker(
        builder(&aws, "orders-app", "orders", "w1").await,
        "w1",
        &log,
    )
    .await;
    log.wait_for(50_000, Duration::from_secs(60)).await;
    handle.shutdown().await;
    task.await.unwrap().unwrap();

    let deliveries = log.deliveries.lock().unwrap().clone();
    // In order within each shard, and the last one per shard is its checkpoint.
    let mut last: HashMap<String, (String, u64)> = HashMap::new();
    for d in &deliveries {
        if let Some((seq, sub)) = last.get(&d.shard_id) {
            let order = cmp_seq(&d.sequence_number, seq).then(d.sub_sequence_number.cmp(sub));
            assert!(order.is_gt(), "out of order on {}", d.shard_id);
        }
        last.insert(
            d.shard_id.clone(),
            (d.sequence_number.clone(), d.sub_sequence_number),
        );
    }
    assert_eq!(last.len(), 4);
    let table = leases(&aws, "orders-app").await;
    for (shard, (seq, sub)) in &last {
        let item = &table[shard];
        assert_eq!(
            item["checkpoint"].as_s().unwrap(),
            seq,
            "checkpoint of {shard}"
        );
        assert_eq!(
            item["checkpointSubSequenceNumber"].as_n().unwrap(),
            &sub.to_string()
        );
        // Released at shutdown.
        assert!(
            !item.contains_key("leaseOwner"),
            "{shard} still owned: {item:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_worker_resumes_after_its_checkpoints() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("resume", 2).await.unwrap();
    produce(&aws, "resume", 2_000, "first").await;
    let log = Log::default();
    let (handle, task) = spawn_worker(
        builder(&aws, "resume-app", "resume", "w1").await,
        "w1",
        &log,
    )
    .await;
    log.wait_for(2_000, Duration::from_secs(30)).await;
    handle.shutdown().await;
    task.await.unwrap().unwrap();

    produce(&aws, "resume", 1_000, "second").await;
    let log2 = Log::default();
    let (handle, task) = spawn_worker(
        builder(&aws, "resume-app", "resume", "w2").await,
        "w2",
        &log2,
    )
    .await;
    log2.wait_for(1_000, Duration::from_secs(30)).await;
    // Give it a moment to (wrongly) deliver old records again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    handle.shutdown().await;
    task.await.unwrap().unwrap();
    let again = log2.deliveries.lock().unwrap();
    assert!(
        again.iter().all(|d| d.data.starts_with(b"second")),
        "records before the checkpoint came again"
    );
    assert_eq!(again.len(), 1_000);
}
