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

use crate::telemetry::Telemetry;
use std::sync::Arc;
use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use kinesis_common::stream::StreamRef;
use tokio::sync::watch;

use crate::config::{Config, ConfigError, InitialPosition, RetrievalMode};
use crate::coordinator::{Coordinator, Parts};
use crate::error::ConsumerError;
use crate::fleet::state_table::StateTable;
use crate::lease::capacity::CapacityMeter;
use crate::lease::renewer::RenewerStats;
use crate::lease::{LeaseTable, LeaseTableCapacity};
use crate::processor::ProcessorFactory;
use crate::retrieval;

/// The client's timeouts, with every call bounded by `timeout` (attempts and retries).
fn bounded(existing: Option<&TimeoutConfig>, timeout: Duration) -> TimeoutConfig {
    let bounded = TimeoutConfig::builder()
        .operation_timeout(timeout)
        .operation_attempt_timeout(timeout);
    match existing {
        Some(existing) => bounded.take_unset_from(existing.to_builder()).build(),
        None => bounded.build(),
    }
}

fn dynamodb_with_timeout(
    client: aws_sdk_dynamodb::Client,
    timeout: Duration,
) -> aws_sdk_dynamodb::Client {
    let config = client.config();
    let timeouts = bounded(config.timeout_config(), timeout);
    aws_sdk_dynamodb::Client::from_conf(config.to_builder().timeout_config(timeouts).build())
}

fn kinesis_with_timeout(
    client: aws_sdk_kinesis::Client,
    timeout: Duration,
) -> aws_sdk_kinesis::Client {
    let config = client.config();
    let timeouts = bounded(config.timeout_config(), timeout);
    aws_sdk_kinesis::Client::from_conf(config.to_builder().timeout_config(timeouts).build())
}

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

/// Builds a [`Worker`]. See the crate docs for every option and its default.
#[derive(Debug)]
pub struct WorkerBuilder {
    config: Config,
    stream: StreamRef,
    kinesis: Option<aws_sdk_kinesis::Client>,
    dynamodb: Option<aws_sdk_dynamodb::Client>,
}

macro_rules! setter {
    ($(#[$doc:meta])* $name:ident: $ty:ty) => {
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.config.$name = value;
            self
        }
    };
}

impl WorkerBuilder {
    /// The Kinesis client (required).
    pub fn kinesis_client(mut self, client: aws_sdk_kinesis::Client) -> Self {
        self.kinesis = Some(client);
        self
    }

    /// The DynamoDB client for the lease table (required).
    pub fn dynamodb_client(mut self, client: aws_sdk_dynamodb::Client) -> Self {
        self.dynamodb = Some(client);
        self
    }

    /// Both clients from one SDK configuration.
    pub fn sdk_config(self, config: &aws_config::SdkConfig) -> Self {
        self.kinesis_client(aws_sdk_kinesis::Client::new(config))
            .dynamodb_client(aws_sdk_dynamodb::Client::new(config))
    }

    setter!(
        /// This worker's id in `leaseOwner` (default: host name and a random suffix).
        worker_id: String
    );
    setter!(
        /// The lease table (default: the application name, as KCL).
        lease_table_name: String
    );
    setter!(
        /// How the lease table and the coordinator-state table are created when they do not
        /// exist: billing mode, point-in-time recovery, deletion protection, tags (default
        /// on-demand, no recovery, no protection, no tags, as KCL). Existing tables are used
        /// as they are.
        lease_table_options: crate::TableOptions
    );
    setter!(
        /// Where shards without a checkpoint start (default TRIM_HORIZON; KCL's is LATEST).
        initial_position: InitialPosition
    );
    setter!(
        /// A worker whose heartbeat, or a lease whose counter, has not moved for this long is
        /// expired (default 10 s). Heartbeats run every 500 ms (or every renewal interval if
        /// shorter) and carry the leader's assignments.
        failover_time: Duration
    );
    setter!(
        /// How often held leases are renewed (default 3.33 s, a third of the failover time).
        renewal_interval: Duration
    );
    setter!(
        /// How often the leader scans the lease table when nothing changes (default 20 s, as
        /// KCL 3.x's lease assignment interval). It also scans at once when a worker joins,
        /// leaves or is fenced, and when a lease of a worker outside the fleet expires; the
        /// other workers never scan it.
        taking_interval: Duration
    );
    setter!(
        /// Most leases this worker holds (default unlimited).
        max_leases_per_worker: usize
    );
    setter!(
        /// Most leases stolen from other workers per taking round (default: as many as
        /// balance needs; KCL's default is 1, which takes minutes at thousands of shards).
        /// Only a worker above the balance target is stolen from, and only down to it.
        max_leases_to_steal: usize
    );
    setter!(
        /// Lease renewals in flight at once (default 20, as KCL's `maxLeaseRenewalThreads`).
        /// A worker takes no more leases than it can renew in half a renewal interval at the
        /// renewal latency it measures.
        max_renewal_concurrency: usize
    );
    setter!(
        /// How long before another worker could take a lease this worker stops processing
        /// it when renewals do not succeed (default 1 s): a held lease's deadline is the
        /// time its last successful renewal was sent + failover time − this margin.
        lease_deadline_margin: Duration
    );
    setter!(
        /// How long the lease of a shard the stream no longer lists (it aged out of the
        /// retention period) stays before it is deleted, unless its counter moves meanwhile
        /// (default 30 minutes, as KCL's garbage-lease cleanup). Its children then no longer
        /// wait for it.
        lease_cleanup_grace: Duration
    );
    setter!(
        /// Timeout of every DynamoDB call, retries included (default 3 s).
        dynamodb_call_timeout: Duration
    );
    setter!(
        /// Timeout of every Kinesis call, retries included (default 10 s; a fan-out
        /// subscription's events are not bounded by it, only the call that opens it).
        kinesis_call_timeout: Duration
    );
    setter!(
        /// How often shards are listed to create leases for new ones (default 60 s).
        shard_sync_interval: Duration
    );
    setter!(
        /// Records per GetRecords call (default and maximum 10,000).
        max_records: i32
    );
    setter!(
        /// Wait after a GetRecords call that returned nothing (default 500 ms).
        idle_time_between_reads: Duration
    );
    setter!(
        /// Batches read ahead of the processor per shard (default 2).
        max_prefetch_batches: usize
    );
    setter!(
        /// Call `process_records` also when a read returns nothing, every idle interval, so a
        /// processor can act on time (flush a buffer) without new records; like KCL's
        /// `callProcessRecordsEvenForEmptyRecordList` (default false).
        deliver_empty_batches: bool
    );
    setter!(
        /// Backoff between deliveries of a batch the processor failed (default 100 ms doubling to 10 s).
        processor_backoff: kinesis_common::backoff::Backoff
    );
    setter!(
        /// Deliveries of one batch before the lease is released (default 10).
        processor_max_attempts: u32
    );
    setter!(
        /// Polling (the default) or enhanced fan-out; see also [`WorkerBuilder::fan_out`].
        retrieval_mode: RetrievalMode
    );
    setter!(
        /// How finely metrics are labelled: `Worker` (an `application` label), `Stream`
        /// (also `stream`; the default) or `Shard` (also `shard` on the per-shard metrics,
        /// a series per shard).
        metrics_granularity: crate::MetricsGranularity
    );
    setter!(
        /// With fan-out: deregister the stream consumer when this worker shuts down
        /// gracefully (default false: other workers of the application share it).
        deregister_consumer_on_shutdown: bool
    );

    /// Reads with enhanced fan-out through the stream consumer `consumer_name`, registering
    /// it if it is missing: `retrieval_mode(RetrievalMode::FanOut { consumer_name })`.
    pub fn fan_out(self, consumer_name: impl Into<String>) -> Self {
        self.retrieval_mode(RetrievalMode::FanOut {
            consumer_name: consumer_name.into(),
        })
    }

    /// Validates the options.
    pub fn build<F: ProcessorFactory>(self, factory: F) -> Result<Worker<F>, ConfigError> {
        self.config.validate()?;
        let kinesis = self.kinesis.ok_or(ConfigError::MissingClient {
            client: "Kinesis",
            method: "kinesis_client",
        })?;
        let dynamodb = self.dynamodb.ok_or(ConfigError::MissingClient {
            client: "DynamoDB",
            method: "dynamodb_client",
        })?;
        let dynamodb = dynamodb_with_timeout(dynamodb, self.config.dynamodb_call_timeout);
        let kinesis = kinesis_with_timeout(kinesis, self.config.kinesis_call_timeout);
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (done_tx, done_rx) = watch::channel(false);
        let table = LeaseTable::new(dynamodb.clone(), self.config.lease_table_name.clone());
        let state = StateTable::new(
            dynamodb,
            format!("{}-Coordinator", self.config.lease_table_name),
            CapacityMeter::new("coordinator"),
        );
        let (leading, leading_rx) = watch::channel(None);
        let renewer_stats = Arc::new(RenewerStats::default());
        Ok(Worker {
            handle: WorkerHandle {
                shutdown: Arc::new(shutdown_tx),
                done: done_rx,
                table: table.clone(),
                state: state.clone(),
                leading: leading_rx,
                renewer_stats: renewer_stats.clone(),
            },
            renewer_stats,
            table,
            state,
            leading,
            config: Arc::new(self.config),
            stream: self.stream,
            kinesis,
            factory: Arc::new(factory),
            shutdown_rx,
            done_tx,
        })
    }
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
    pub fn builder(
        application_name: impl Into<String>,
        stream: impl Into<StreamRef>,
    ) -> WorkerBuilder {
        WorkerBuilder {
            config: Config::new(application_name.into()),
            stream: stream.into(),
            kinesis: None,
            dynamodb: None,
        }
    }
}

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
        let mut consumer_arn = None;
        // The stream must exist. Only the leader lists shards, so a fleet starting together
        // makes one DescribeStreamSummary call per worker and one ListShards in all.
        let w = &self;
        let arn = describe_stream(&w.kinesis, &w.stream)
            .await
            .map_err(|source| ConsumerError::Stream {
                stream: w.stream.to_string(),
                source,
            })?;
        // The tables serve one application and stream: refuse another's.
        w.state
            .ensure_ours(&w.config.application_name, &arn)
            .await?;
        if let RetrievalMode::FanOut { consumer_name } = &w.config.retrieval_mode {
            let arn = retrieval::register_consumer(&w.kinesis, &w.stream, consumer_name)
                .await
                .map_err(|source| ConsumerError::StreamConsumer {
                    consumer: consumer_name.clone(),
                    source,
                })?;
            tracing::info!(consumer = %consumer_name, %arn, "reading with enhanced fan-out");
            consumer_arn = Some(arn);
        }
        let kinesis = self.kinesis.clone();
        let deregister = self.config.deregister_consumer_on_shutdown;
        let (application, stream_label, granularity) = (
            self.config.application_name.clone(),
            self.stream.to_string(),
            self.config.metrics_granularity,
        );
        let coordinator = Coordinator::new(Parts {
            config: self.config,
            stream: self.stream,
            kinesis: self.kinesis,
            table: self.table,
            state: self.state,
            factory: self.factory,
            consumer_arn: consumer_arn.clone(),
            leading: self.leading,
            renewer_stats: self.renewer_stats,
            telemetry: Arc::new(Telemetry::new(&application, &stream_label, granularity)),
        });
        coordinator.run(self.shutdown_rx).await;
        if let Some(arn) = &consumer_arn
            && deregister
        {
            match retrieval::deregister_consumer(&kinesis, arn).await {
                Ok(()) => tracing::info!(%arn, "stream consumer deregistered"),
                Err(e) => {
                    tracing::warn!(%arn, error = %e, "deregistering the stream consumer failed")
                }
            }
        }
        Ok(())
    }
}
