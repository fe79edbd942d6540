//! Many streams, one application: a tracker's streams share one lease table with KCL's
//! multi-stream keys, streams come and go at run time, and processors know each record's
//! stream.

use crate::support;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kinesis_consumer::{
    Checkpointer, ConsumerError, InitialPosition, InitializeInput, ProcessRecordsInput,
    ProcessorError, RecordProcessor, StreamConfig, Worker,
};
use kinesis_testkit::LocalAws;
use support::{consumer_status, leases, produce};

/// (stream identifier, payload) of every record delivered.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

struct ByStream {
    stream: Option<String>,
    seen: Seen,
}

/// Processors that record each record's stream into `seen`.
fn by_stream(seen: &Seen) -> impl Fn(&str) -> ByStream + Send + Sync + 'static {
    let seen = seen.clone();
    move |_: &str| ByStream {
        stream: None,
        seen: seen.clone(),
    }
}

impl RecordProcessor for ByStream {
    async fn initialize(&mut self, input: InitializeInput) {
        self.stream = input.stream;
    }

    async fn process_records(
        &mut self,
        input: ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        assert_eq!(input.stream, self.stream);
        let stream = input
            .stream
            .clone()
            .expect("a multi-stream worker names the stream");
        self.seen
            .lock()
            .unwrap()
            .extend(input.records.iter().map(|r| {
                (
                    stream.clone(),
                    String::from_utf8_lossy(&r.data).into_owned(),
                )
            }));
        checkpointer.checkpoint().await?;
        Ok(())
    }
}

/// Distinct payloads seen from streams named `name`.
fn seen_from(seen: &Seen, name: &str) -> usize {
    seen.lock()
        .unwrap()
        .iter()
        .filter(|(s, _)| s.split(':').nth(1) == Some(name))
        .map(|(_, d)| d.clone())
        .collect::<HashSet<_>>()
        .len()
}

async fn wait_until(what: &str, bound: Duration, mut done: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < bound, "{what} not within {bound:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_streams_two_workers_one_added_and_one_removed_at_run_time() {
    let aws = LocalAws::start().await.unwrap();
    let shards = [("ms-a", 2), ("ms-b", 2), ("ms-c", 1), ("ms-d", 2)];
    for (name, n) in &shards[..3] {
        aws.create_stream(name, *n).await.unwrap();
    }
    let tracked: Arc<Mutex<Vec<StreamConfig>>> = Arc::new(Mutex::new(
        ["ms-a", "ms-b", "ms-c"]
            .into_iter()
            .map(StreamConfig::new)
            .collect(),
    ));
    let seen: Seen = Arc::default();
    let mut workers = Vec::new();
    for id in ["w1", "w2"] {
        let tracker = tracked.clone();
        let worker = Worker::builder_for_streams("ms-app", move || tracker.lock().unwrap().clone())
            .kinesis_client(aws.kinesis_client().await)
            .dynamodb_client(aws.dynamodb_client().await)
            .worker_id(id.to_owned())
            .idle_time_between_reads(Duration::from_millis(100))
            .failover_time(Duration::from_secs(3))
            .renewal_interval(Duration::from_secs(1))
            .shard_sync_interval(Duration::from_secs(1))
            .lease_cleanup_grace(Duration::from_secs(3))
            .build(by_stream(&seen))
            .unwrap();
        let handle = worker.handle();
        workers.push((handle, tokio::spawn(worker.run())));
    }
    for (name, _) in &shards[..3] {
        produce(&aws, name, 100, name).await;
    }
    wait_until(
        "every record of the three streams",
        Duration::from_secs(60),
        async || {
            ["ms-a", "ms-b", "ms-c"]
                .iter()
                .all(|s| seen_from(&seen, s) == 100)
        },
    )
    .await;

    // One table, KCL's multi-stream keys, item by item.
    let items = leases(&aws, "ms-app").await;
    let mut per_stream: HashMap<String, usize> = HashMap::new();
    for (key, item) in &items {
        let stream = item["streamName"].as_s().unwrap();
        let shard = item["shardId"].as_s().unwrap();
        assert_eq!(key, &format!("{stream}:{shard}"));
        let parts: Vec<&str> = stream.split(':').collect();
        assert_eq!(parts.len(), 3, "{stream}");
        assert!(
            parts[0].bytes().all(|b| b.is_ascii_digit()),
            "account: {stream}"
        );
        assert!(parts[2].parse::<u64>().is_ok(), "creation epoch: {stream}");
        assert!(shard.starts_with("shardId-"), "{shard}");
        *per_stream.entry(parts[1].to_owned()).or_default() += 1;
    }
    assert_eq!(
        per_stream,
        HashMap::from([("ms-a".into(), 2), ("ms-b".into(), 2), ("ms-c".into(), 1)])
    );
    // The work is shared.
    let owners: HashSet<String> = items
        .values()
        .filter_map(|i| i.get("leaseOwner")?.as_s().ok().cloned())
        .collect();
    assert_eq!(owners.len(), 2, "{owners:?}");

    // A single-stream worker is refused the table.
    let single = Worker::builder("ms-app", "ms-a")
        .kinesis_client(aws.kinesis_client().await)
        .dynamodb_client(aws.dynamodb_client().await)
        .build(|_: &str| ByStream {
            stream: None,
            seen: Arc::default(),
        })
        .unwrap();
    assert!(
        matches!(
            single.run().await,
            Err(ConsumerError::TableOfAnotherStream { .. })
        ),
        "a single-stream worker on a multi-stream table"
    );

    // A stream added at run time.
    aws.create_stream("ms-d", 2).await.unwrap();
    tracked.lock().unwrap().push(StreamConfig::new("ms-d"));
    produce(&aws, "ms-d", 50, "ms-d").await;
    wait_until(
        "the added stream's records",
        Duration::from_secs(30),
        async || seen_from(&seen, "ms-d") == 50,
    )
    .await;

    // A stream removed at run time: its leases go after the grace period.
    tracked
        .lock()
        .unwrap()
        .retain(|c| c.stream.to_string() != "ms-a");
    let removed = Instant::now();
    wait_until(
        "the removed stream's leases deleted",
        Duration::from_secs(30),
        async || {
            leases(&aws, "ms-app")
                .await
                .values()
                .all(|i| i["streamName"].as_s().unwrap().split(':').nth(1) != Some("ms-a"))
        },
    )
    .await;
    assert!(
        removed.elapsed() >= Duration::from_secs(3),
        "not before the grace period"
    );
    // The others go on.
    produce(&aws, "ms-b", 20, "ms-b-late").await;
    wait_until(
        "records after the removal",
        Duration::from_secs(30),
        async || seen_from(&seen, "ms-b") == 120,
    )
    .await;
    for (handle, task) in workers {
        handle.shutdown().await;
        task.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_and_a_merge_in_one_of_many_streams_lose_nothing() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("msr-a", 2).await.unwrap();
    aws.create_stream("msr-b", 1).await.unwrap();
    let seen: Seen = Arc::default();
    let worker = Worker::builder_for_streams(
        "msr-app",
        vec![StreamConfig::new("msr-a"), StreamConfig::new("msr-b")],
    )
    .kinesis_client(aws.kinesis_client().await)
    .dynamodb_client(aws.dynamodb_client().await)
    .worker_id("w1".to_owned())
    .idle_time_between_reads(Duration::from_millis(100))
    .shard_sync_interval(Duration::from_secs(2))
    .build(by_stream(&seen))
    .unwrap();
    let handle = worker.handle();
    let task = tokio::spawn(worker.run());
    produce(&aws, "msr-a", 500, "a").await;
    produce(&aws, "msr-b", 100, "b").await;
    let client = aws.kinesis_client().await;
    let open = kinesis_testkit::streams::open_shards(&client, "msr-a")
        .await
        .unwrap();
    aws.split_shard("msr-a", &open[0].shard_id).await.unwrap();
    produce(&aws, "msr-a", 500, "c").await;
    let open = kinesis_testkit::streams::open_shards(&client, "msr-a")
        .await
        .unwrap();
    aws.merge_shards("msr-a", &open[0].shard_id, &open[1].shard_id)
        .await
        .unwrap();
    produce(&aws, "msr-a", 500, "d").await;
    wait_until("every record", Duration::from_secs(60), async || {
        seen_from(&seen, "msr-a") == 1_500 && seen_from(&seen, "msr-b") == 100
    })
    .await;
    handle.shutdown().await;
    task.await.unwrap().unwrap();
    // The children's leases are keyed in their stream, their parents named by shard id.
    let items = leases(&aws, "msr-app").await;
    let children: Vec<_> = items
        .values()
        .filter(|i| i.contains_key("parentShardId"))
        .collect();
    assert!(!children.is_empty(), "{items:?}");
    for child in children {
        let stream = child["streamName"].as_s().unwrap();
        assert!(stream.contains(":msr-a:"), "{stream}");
        for parent in child["parentShardId"].as_ss().unwrap() {
            assert!(parent.starts_with("shardId-"), "{parent}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_over_many_streams_with_an_initial_position_per_stream() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("mfo-a", 2).await.unwrap();
    aws.create_stream("mfo-b", 1).await.unwrap();
    // Before the worker starts: mfo-a reads them (TRIM_HORIZON), mfo-b must not (LATEST).
    produce(&aws, "mfo-a", 100, "old").await;
    produce(&aws, "mfo-b", 30, "old").await;
    let seen: Seen = Arc::default();
    let worker = Worker::builder_for_streams(
        "mfo-app",
        vec![
            StreamConfig::new("mfo-a"),
            StreamConfig::new("mfo-b").initial_position(InitialPosition::Latest),
        ],
    )
    .kinesis_client(aws.kinesis_client().await)
    .dynamodb_client(aws.dynamodb_client().await)
    .worker_id("w1".to_owned())
    .shard_sync_interval(Duration::from_secs(1))
    .fan_out("mfo-efo")
    .deregister_consumer_on_shutdown(true)
    .build(by_stream(&seen))
    .unwrap();
    let handle = worker.handle();
    let task = tokio::spawn(worker.run());
    wait_until(
        "mfo-a's records from its start",
        Duration::from_secs(60),
        async || seen_from(&seen, "mfo-a") == 100,
    )
    .await;
    // One consumer per stream, each registered on the stream's first read.
    for stream in ["mfo-a", "mfo-b"] {
        wait_until(
            "the stream's consumer ACTIVE",
            Duration::from_secs(30),
            async || consumer_status(&aws, stream, "mfo-efo").await.as_deref() == Some("ACTIVE"),
        )
        .await;
    }
    // mfo-b reads from where it was when its shard was first read: rounds of new records
    // until they arrive (the first subscription may come after a round).
    let mut round = 0;
    wait_until("mfo-b's new records", Duration::from_secs(60), async || {
        round += 1;
        produce(&aws, "mfo-b", 10, &format!("new{round}")).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        seen_from(&seen, "mfo-b") > 0
    })
    .await;
    let from_b: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(s, _)| s.split(':').nth(1) == Some("mfo-b"))
        .map(|(_, d)| d.clone())
        .collect();
    assert!(
        from_b.iter().all(|d| d.starts_with("new")),
        "LATEST delivered records put before the worker started: {from_b:?}"
    );
    handle.shutdown().await;
    task.await.unwrap().unwrap();
    // Deregistered on shutdown, as asked: both of them.
    for stream in ["mfo-a", "mfo-b"] {
        wait_until(
            "the consumer deregistered",
            Duration::from_secs(30),
            async || consumer_status(&aws, stream, "mfo-efo").await.is_none(),
        )
        .await;
    }
}
