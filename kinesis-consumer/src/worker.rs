//! The worker's public face: its builder, its handle, and [`Worker::run`], which checks the
//! table and the stream and then hands over to the [`crate::coordinator`].
//!
//! ```text
//!  WorkerBuilder ──build──▶ Worker ──run──▶ Coordinator (assigned leases, consumers)
//!                                              ├── Renewer task (lease renewals, deadlines)
//!                                              ├── Heartbeat task (liveness, assignments)
//!                                              └── Leader task (election, assignment, shard sync)
//! ```
//!
//! The clients a worker is given are used with a timeout on every call
//! (`dynamodb_call_timeout`, `kinesis_call_timeout`), so no call can hang the worker.

mod builder;

use std::sync::Arc;

use kinesis_common::stream::StreamRef;
use tokio::sync::watch;

pub use builder::WorkerBuilder;

use crate::config::{Config, RetrievalMode};
use crate::coordinator::{Coordinator, Parts};
use crate::error::ConsumerError;
use crate::fleet::state_table::StateTable;
use crate::lease::renewer::RenewerStats;
use crate::lease::{LeaseTable, LeaseTableCapacity};
use crate::processor::ProcessorFactory;
use crate::retrieval::StreamConsumers;
use crate::streams::{SharedTracker, Source, StreamTracker};
use crate::telemetry::Telemetry;

/// Checks that the stream exists; returns its ARN.
async fn describe_stream(
    kinesis: &aws_sdk_kinesis::Client,
    stream: &StreamRef,
) -> Result<String, kinesis_common::ServiceError> {
    let request = kinesis.describe_stream_summary();
    let request = match stream {
        StreamRef::Name(name) => request.stream_name(name),
        StreamRef::Arn(arn) => request.stream_arn(arn),
    };
    request
        .send()
        .await
        .map(|out| {
            out.stream_description_summary
                .map(|d| d.stream_arn)
                .unwrap_or_default()
        })
        .map_err(|e| kinesis_common::ServiceError::from_sdk("DescribeStreamSummary", e))
}

/// Asks a running worker to shut down gracefully, and reads its figures. Cheap to clone.
#[derive(Debug, Clone)]
pub struct WorkerHandle {
    shutdown: Arc<watch::Sender<bool>>,
    done: watch::Receiver<bool>,
    table: LeaseTable,
    state: StateTable,
    leading: watch::Receiver<Option<String>>,
    renewer_stats: Arc<RenewerStats>,
}

impl WorkerHandle {
    /// Tells every processor to shut down (they may checkpoint), releases every lease, and
    /// resolves when the worker's `run` has returned.
    pub async fn shutdown(&self) {
        let _ = self.shutdown.send(true);
        let mut done = self.done.clone();
        let _ = done.wait_for(|d| *d).await;
    }

    /// Asks for shutdown without waiting.
    pub fn request_shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// The DynamoDB capacity units this worker's lease-table calls consumed so far, as
    /// DynamoDB reported them (the same figures go to the `metrics` facade).
    pub fn lease_table_capacity(&self) -> LeaseTableCapacity {
        self.table.meter().total()
    }

    /// The same for its calls on the coordinator table (`<lease table>-Coordinator`:
    /// heartbeats, assignments, the leader's lock and scans).
    pub fn coordinator_table_capacity(&self) -> LeaseTableCapacity {
        self.state.meter().total()
    }

    /// Whether this worker currently leads the fleet (assigns leases, lists shards).
    pub fn is_leader(&self) -> bool {
        self.leading.borrow().is_some()
    }

    /// Leases this worker gave up because no renewal succeeded before their deadline while
    /// it ran: 0 in a healthy fleet; more means DynamoDB was slower or further away than
    /// the failover time allows.
    pub fn leases_expired(&self) -> u64 {
        self.renewer_stats.expired()
    }
}

/// A KCL-compatible worker for one application and stream.
pub struct Worker<F: ProcessorFactory> {
    config: Arc<Config>,
    stream: StreamRef,
    /// A multi-stream worker's streams (then `stream` only names it in logs).
    tracker: Option<SharedTracker>,
    kinesis: aws_sdk_kinesis::Client,
    table: LeaseTable,
    state: StateTable,
    leading: watch::Sender<Option<String>>,
    renewer_stats: Arc<RenewerStats>,
    factory: Arc<F>,
    shutdown_rx: watch::Receiver<bool>,
    handle: WorkerHandle,
    done_tx: watch::Sender<bool>,
}

impl<F: ProcessorFactory> std::fmt::Debug for Worker<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("application", &self.config.application_name)
            .field("worker_id", &self.config.worker_id)
            .field("stream", &self.stream)
            .field("lease_table", &self.table.name())
            .finish_non_exhaustive()
    }
}

impl Worker<()> {
    /// Options for a worker of `application_name` reading `stream` (a name or an ARN).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use kinesis_consumer::{Checkpointer, InitialPosition, ProcessRecordsInput, ProcessorError,
    ///     RecordProcessor, Worker};
    ///
    /// struct Print;
    /// impl RecordProcessor for Print {
    ///     async fn process_records(&mut self, input: ProcessRecordsInput, c: &mut Checkpointer)
    ///         -> Result<(), ProcessorError> {
    ///         println!("{}: {} records", input.shard_id, input.records.len());
    ///         c.checkpoint().await?;
    ///         Ok(())
    ///     }
    /// }
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let aws = kinesis_testkit::LocalAws::start().await?;
    /// # aws.create_stream("clicks", 2).await?;
    /// # let (kinesis, dynamodb) = (aws.kinesis_client().await, aws.dynamodb_client().await);
    /// let worker = Worker::builder("clicks-app", "clicks") // lease table "clicks-app"
    ///     .kinesis_client(kinesis)
    ///     .dynamodb_client(dynamodb)
    ///     .initial_position(InitialPosition::Latest)
    ///     .failover_time(Duration::from_secs(10))
    ///     .build(|_shard: &str| Print)?;
    /// let handle = worker.handle();
    /// let running = tokio::spawn(worker.run());
    /// // … later, on SIGTERM: processors are told, leases are released to the fleet.
    /// handle.shutdown().await;
    /// running.await??;
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder(
        application_name: impl Into<String>,
        stream: impl Into<StreamRef>,
    ) -> WorkerBuilder {
        WorkerBuilder {
            config: Config::new(application_name.into()),
            stream: stream.into(),
            tracker: None,
            kinesis: None,
            dynamodb: None,
        }
    }

    /// Options for a worker of `application_name` reading every stream `tracker` supplies,
    /// with one lease table and KCL's multi-stream lease keys
    /// (`account:stream:creationEpoch:shardId`); see [`StreamTracker`]. With enhanced
    /// fan-out, each stream's consumer is found or registered the first time it is read.
    pub fn builder_for_streams(
        application_name: impl Into<String>,
        tracker: impl StreamTracker,
    ) -> WorkerBuilder {
        WorkerBuilder {
            config: Config::new(application_name.into()),
            stream: StreamRef::Name(MANY_STREAMS.into()),
            tracker: Some(SharedTracker(Arc::new(tracker))),
            kinesis: None,
            dynamodb: None,
        }
    }
}

/// What a multi-stream table records as its stream in the coordinator table, so a
/// single-stream worker given it is refused (and the other way round).
const MANY_STREAMS: &str = "(many streams)";

// `Worker::builder` lives on `Worker<()>` so callers need not name a factory type; this makes
// the unit type a factory in name only. It is never used to make processors.
impl ProcessorFactory for () {
    type Processor = NeverProcessor;

    fn create(&self, _shard_id: &str) -> NeverProcessor {
        NeverProcessor
    }
}

/// Placeholder processor type of `Worker<()>`; never instantiated by a running worker.
#[derive(Debug)]
pub struct NeverProcessor;

impl crate::RecordProcessor for NeverProcessor {
    async fn process_records(
        &mut self,
        _input: crate::ProcessRecordsInput,
        _checkpointer: &mut crate::Checkpointer,
    ) -> Result<(), crate::ProcessorError> {
        Ok(())
    }
}

impl<F: ProcessorFactory> Worker<F> {
    /// A handle to shut the worker down from elsewhere.
    pub fn handle(&self) -> WorkerHandle {
        self.handle.clone()
    }

    /// This worker's id.
    pub fn worker_id(&self) -> &str {
        &self.config.worker_id
    }

    /// Runs until [`WorkerHandle::shutdown`]. Creates the lease table if it is missing.
    ///
    /// # Cancellation
    /// Dropping the future stops every shard consumer at once without releasing leases, as
    /// a crash would; other workers take the leases over after the failover time.
    pub async fn run(self) -> Result<(), ConsumerError> {
        let done = self.done_tx.clone();
        let result = self.run_inner().await;
        let _ = done.send(true);
        result
    }

    async fn run_inner(self) -> Result<(), ConsumerError> {
        let options = &self.config.lease_table_options;
        self.table
            .ensure_exists(options)
            .await
            .map_err(|source| ConsumerError::LeaseTable {
                table: self.table.name().to_owned(),
                source,
            })?;
        self.state
            .ensure_exists(options)
            .await
            .map_err(|source| ConsumerError::LeaseTable {
                table: self.state.name().to_owned(),
                source,
            })?;
        tracing::info!(worker = %self.config.worker_id, table = %self.table.name(), stream = %self.stream, "worker starting");
        // The stream must exist. Only the leader lists shards, so a fleet starting together
        // makes one DescribeStreamSummary call per worker and one ListShards in all.
        let w = &self;
        let arn = match &w.tracker {
            Some(_) => MANY_STREAMS.to_owned(),
            None => describe_stream(&w.kinesis, &w.stream)
                .await
                .map_err(|source| ConsumerError::Stream {
                    stream: w.stream.to_string(),
                    source,
                })?,
        };
        // The tables serve one application and stream: refuse another's.
        w.state
            .ensure_ours(&w.config.application_name, &arn)
            .await?;
        let consumers = match &w.config.retrieval_mode {
            RetrievalMode::FanOut { consumer_name } => {
                let consumers = Arc::new(StreamConsumers::new(w.kinesis.clone(), consumer_name));
                // One stream: register now, so a bad name or a denied call stops the worker
                // at once. Many streams: each stream's consumer on its first read.
                if w.tracker.is_none() {
                    let arn = consumers.arn(&w.stream).await.map_err(|source| {
                        ConsumerError::StreamConsumer {
                            consumer: consumer_name.clone(),
                            source,
                        }
                    })?;
                    tracing::info!(consumer = %consumer_name, %arn, "reading with enhanced fan-out");
                }
                Some(consumers)
            }
            RetrievalMode::Polling => None,
        };
        let deregister = self.config.deregister_consumer_on_shutdown;
        let (application, stream_label, granularity) = (
            self.config.application_name.clone(),
            self.stream.to_string(),
            self.config.metrics_granularity,
        );
        let source = match self.tracker {
            Some(SharedTracker(tracker)) => Source::Multi {
                tracker,
                resolved: Arc::default(),
            },
            None => Source::Single {
                stream: self.stream,
                initial: self.config.initial_position,
            },
        };
        let coordinator = Coordinator::new(Parts {
            config: self.config,
            source,
            kinesis: self.kinesis,
            table: self.table,
            state: self.state,
            factory: self.factory,
            consumers: consumers.clone(),
            leading: self.leading,
            renewer_stats: self.renewer_stats,
            telemetry: Arc::new(Telemetry::new(&application, &stream_label, granularity)),
        });
        coordinator.run(self.shutdown_rx).await;
        if let Some(consumers) = consumers
            && deregister
        {
            consumers.deregister_all().await;
        }
        Ok(())
    }
}
