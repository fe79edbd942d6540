//! Shared helpers of the consumer's integration tests: a recording processor and producers.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kinesis_consumer::{
    CheckpointError, Checkpointer, InitializeInput, ProcessRecordsInput, ProcessorError,
    RecordProcessor, ShardEndCheckpointer, ShardEnded, Worker, WorkerBuilder,
};
use kinesis_producer::{Producer, UserRecord};
use kinesis_testkit::LocalAws;

/// One delivery, as a processor saw it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub worker: String,
    pub shard_id: String,
    pub sequence_number: String,
    pub sub_sequence_number: u64,
    pub data: Vec<u8>,
    pub at: Instant,
}

/// A lifecycle event: worker, shard, what ("init", "end", "lost", "shutdown"), when.
pub type Event = (String, String, &'static str, Instant);

/// Everything every processor saw, shared by all workers of a test.
#[derive(Debug, Default, Clone)]
pub struct Log {
    pub deliveries: Arc<Mutex<Vec<Delivery>>>,
    /// (worker, shard, event) in order: "init", "end", "lost", "shutdown".
    pub events: Arc<Mutex<Vec<Event>>>,
}

impl Log {
    pub fn distinct(&self) -> usize {
        let d = self.deliveries.lock().unwrap();
        d.iter()
            .map(|r| r.data.clone())
            .collect::<std::collections::HashSet<_>>()
            .len()
    }

    /// Waits (bounded) until `n` distinct payloads were delivered.
    pub async fn wait_for(&self, n: usize, bound: Duration) {
        let start = Instant::now();
        while self.distinct() < n {
            assert!(
                start.elapsed() < bound,
                "only {} of {n} records after {bound:?}",
                self.distinct()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Logs a batch as delivered to `worker`.
    pub fn record(&self, worker: &str, input: &ProcessRecordsInput) {
        let now = Instant::now();
        let mut log = self.deliveries.lock().unwrap();
        log.extend(input.records.iter().map(|r| Delivery {
            worker: worker.to_owned(),
            shard_id: input.shard_id.clone(),
            sequence_number: r.sequence_number.clone(),
            sub_sequence_number: r.sub_sequence_number,
            data: r.data.to_vec(),
            at: now,
        }));
    }

    /// Ends, now, every shard `worker` was processing: its process crashed (call after its
    /// task has been aborted and awaited, so it delivers nothing more).
    pub fn crashed(&self, worker: &str) {
        let now = Instant::now();
        let mut events = self.events.lock().unwrap();
        let mut open: HashMap<String, bool> = HashMap::new();
        for (w, shard, what, _) in events.iter() {
            if w == worker {
                open.insert(shard.clone(), *what == "init");
            }
        }
        for (shard, is_open) in open {
            if is_open {
                events.push((worker.to_owned(), shard, "crashed", now));
            }
        }
    }

    pub fn events_for(&self, shard: &str) -> Vec<(String, &'static str)> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.1 == shard)
            .map(|e| (e.0.clone(), e.2))
            .collect()
    }
}

/// Records everything and checkpoints after every batch.
pub struct Recorder {
    pub worker: String,
    pub shard: String,
    pub log: Log,
}

impl RecordProcessor for Recorder {
    async fn initialize(&mut self, input: InitializeInput) {
        self.shard = input.shard_id;
        self.log.events.lock().unwrap().push((
            self.worker.clone(),
            self.shard.clone(),
            "init",
            Instant::now(),
        ));
    }

    async fn process_records(
        &mut self,
        input: ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        self.log.record(&self.worker, &input);
        checkpointer.checkpoint().await?;
        Ok(())
    }

    async fn shard_ended(
        &mut self,
        checkpointer: ShardEndCheckpointer,
    ) -> Result<ShardEnded, CheckpointError> {
        self.log.events.lock().unwrap().push((
            self.worker.clone(),
            self.shard.clone(),
            "end",
            Instant::now(),
        ));
        checkpointer.checkpoint().await
    }

    async fn lease_lost(&mut self) {
        self.log.events.lock().unwrap().push((
            self.worker.clone(),
            self.shard.clone(),
            "lost",
            Instant::now(),
        ));
    }

    async fn shutdown_requested(&mut self, checkpointer: &mut Checkpointer) {
        self.log.events.lock().unwrap().push((
            self.worker.clone(),
            self.shard.clone(),
            "shutdown",
            Instant::now(),
        ));
        let _ = checkpointer.checkpoint().await;
    }
}

/// How much later than the failover time a crashed or cut-off worker's leases may move in a
/// test. The takeover is a chain of DynamoDB calls (the leader lock, a scan, the assignment,
/// the conditional take), each on a poll: an idle machine measures failover + 0.5–0.8 s on
/// either emulator pair, but CI's 2 cores, running the JVM's DynamoDB Local with builds in the
/// background, once took failover + 3.9 s. Liveness is what this bounds; the figure itself is
/// measured by `consumer_e2e` and `lease_coordination`.
pub const TAKEOVER_SLACK: Duration = Duration::from_secs(6);

/// A worker builder for a test, with fast timings.
pub async fn builder(aws: &LocalAws, app: &str, stream: &str, worker: &str) -> WorkerBuilder {
    Worker::builder(app, stream)
        .kinesis_client(aws.kinesis_client().await)
        .dynamodb_client(aws.dynamodb_client().await)
        .worker_id(worker.to_owned())
        .idle_time_between_reads(Duration::from_millis(100))
}

/// Builds and spawns a recording worker; returns its handle and task.
pub async fn spawn_worker(
    builder: WorkerBuilder,
    worker: &str,
    log: &Log,
) -> (
    kinesis_consumer::WorkerHandle,
    tokio::task::JoinHandle<Result<(), kinesis_consumer::ConsumerError>>,
) {
    // RUST_LOG=kinesis_consumer=debug shows what the workers do.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let (name, log) = (worker.to_owned(), log.clone());
    let w = builder
        .build(move |shard: &str| Recorder {
            worker: name.clone(),
            shard: shard.to_owned(),
            log: log.clone(),
        })
        .unwrap();
    let handle = w.handle();
    (handle, tokio::spawn(w.run()))
}

/// Puts `n` records with unique payloads (aggregated by our producer).
pub async fn produce(aws: &LocalAws, stream: &str, n: usize, tag: &str) {
    let producer = Producer::builder(stream)
        .client(aws.kinesis_client().await)
        .build()
        .unwrap();
    let mut puts = Vec::with_capacity(n);
    for i in 0..n {
        puts.push(
            producer
                .send(UserRecord::new(
                    format!("key-{}", i % 997),
                    format!("{tag}-{i:07}"),
                ))
                .await
                .unwrap(),
        );
    }
    for put in puts {
        put.await.unwrap();
    }
    producer.shutdown().await;
}

/// Every lease in the table, by shard.
pub async fn leases(
    aws: &LocalAws,
    table: &str,
) -> HashMap<String, HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    let client = aws.dynamodb_client().await;
    // Before the first worker created the table there are no leases.
    let Ok(items) = client
        .scan()
        .table_name(table)
        .consistent_read(true)
        .send()
        .await
    else {
        return HashMap::new();
    };
    items
        .items()
        .iter()
        .map(|i| (i["leaseKey"].as_s().unwrap().clone(), i.clone()))
        .collect()
}

/// Asserts no shard was processed by two workers at once, from lifecycle events.
pub fn assert_exclusive(log: &Log) {
    let events = log.events.lock().unwrap().clone();
    let mut by_shard: HashMap<String, Vec<(String, &'static str, Instant)>> = HashMap::new();
    for (worker, shard, what, at) in events {
        by_shard.entry(shard).or_default().push((worker, what, at));
    }
    for (shard, events) in by_shard {
        let mut intervals: Vec<(String, Instant, Instant)> = Vec::new();
        let mut open: HashMap<String, Instant> = HashMap::new();
        for (worker, what, at) in &events {
            match *what {
                "init" => {
                    open.insert(worker.clone(), *at);
                }
                _ => {
                    if let Some(start) = open.remove(worker) {
                        intervals.push((worker.clone(), start, *at));
                    }
                }
            }
        }
        let far = Instant::now() + Duration::from_secs(3600);
        intervals.extend(open.into_iter().map(|(w, s)| (w, s, far)));
        for (i, a) in intervals.iter().enumerate() {
            for b in intervals.iter().skip(i + 1) {
                if a.0 != b.0 {
                    assert!(
                        a.2 <= b.1 || b.2 <= a.1,
                        "{shard} held by {} and {} at once",
                        a.0,
                        b.0
                    );
                }
            }
        }
    }
}

/// The status of `stream`'s consumer `name`, if it is registered.
pub async fn consumer_status(aws: &LocalAws, stream: &str, name: &str) -> Option<String> {
    let kinesis = aws.kinesis_client().await;
    let arn = kinesis
        .describe_stream_summary()
        .stream_name(stream)
        .send()
        .await
        .ok()?
        .stream_description_summary?
        .stream_arn;
    let described = kinesis
        .describe_stream_consumer()
        .stream_arn(arn)
        .consumer_name(name)
        .send()
        .await
        .ok()?;
    Some(
        described
            .consumer_description?
            .consumer_status
            .as_str()
            .to_owned(),
    )
}
