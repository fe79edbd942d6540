//! [`WorkerBuilder`]: every option of a worker, validated by [`WorkerBuilder::build`], and
//! the clients it is given, each wrapped with a timeout on every call.

use std::sync::Arc;
use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use kinesis_common::stream::StreamRef;
use tokio::sync::watch;

use super::{Worker, WorkerHandle};
use crate::config::{Config, ConfigError, InitialPosition, RetrievalMode};
use crate::fleet::state_table::StateTable;
use crate::lease::LeaseTable;
use crate::lease::capacity::CapacityMeter;
use crate::lease::renewer::RenewerStats;
use crate::processor::ProcessorFactory;

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

/// Builds a [`Worker`]. See the crate docs for every option and its default.
#[derive(Debug)]
pub struct WorkerBuilder {
    pub(super) config: Config,
    pub(super) stream: StreamRef,
    pub(super) tracker: Option<crate::streams::SharedTracker>,
    pub(super) kinesis: Option<aws_sdk_kinesis::Client>,
    pub(super) dynamodb: Option<aws_sdk_dynamodb::Client>,
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
        let config = kinesis_common::client::with_http_client(config);
        self.kinesis_client(aws_sdk_kinesis::Client::new(&config))
            .dynamodb_client(aws_sdk_dynamodb::Client::new(&config))
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
        /// What the leader balances leases by (default [`crate::Balance::Throughput`]: count
        /// and bytes per second; [`crate::Balance::LeaseCount`] as KCL 2.x;
        /// [`crate::Balance::Pack`] onto as few workers as their throughput caps allow).
        balance: crate::Balance
    );
    setter!(
        /// How far above the fleet's mean load a worker may be before leases move off it,
        /// and how much a move must narrow the gap between two workers to be made (default
        /// 0.1, KCL 3.x's variance threshold): a fleet within it moves nothing, so leases
        /// do not flap with noise.
        balance_threshold: f64
    );

    /// The most bytes per second this worker reads, in KiB/s, as KCL's
    /// `maxThroughputPerHostKBps` (default unlimited): the leader gives it no lease that
    /// would take it above this, and moves leases off it while it is above. A shard no
    /// worker has room for waits unassigned (add workers).
    pub fn max_throughput_per_worker(mut self, kib_per_second: f64) -> Self {
        self.config.max_throughput_per_worker = Some(kib_per_second);
        self
    }

    setter!(
        /// How long a lease moved for balance waits for its old owner's processor to finish
        /// `shutdown_requested` (where it may checkpoint) before the lease is handed over
        /// anyway (default 30 s, KCL 3.x's `gracefulLeaseHandoffTimeoutMillis`). Zero turns
        /// graceful handoffs off: moves are steals, and the old owner's processor gets
        /// `lease_lost`.
        graceful_handoff_timeout: Duration
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
            tracker: self.tracker,
            kinesis,
            factory: Arc::new(factory),
            shutdown_rx,
            done_tx,
        })
    }
}
