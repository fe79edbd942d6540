//! Worker configuration, every option with its default.

use std::time::{Duration, SystemTime};

use kinesis_common::backoff::Backoff;

use crate::lease::TableOptions;
use crate::telemetry::MetricsGranularity;

/// Where shards without a checkpoint start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialPosition {
    /// The oldest record still retained (the default: a new application loses nothing).
    TrimHorizon,
    /// Records put after the worker starts (KCL's default).
    Latest,
    /// Records put at or after this time.
    AtTimestamp(SystemTime),
}

/// How shard consumers get their records.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RetrievalMode {
    /// GetRecords, at most 5 calls and 2 MiB per second per shard, shared by every polling
    /// application of the stream (the default, as KCL).
    #[default]
    Polling,
    /// Enhanced fan-out: SubscribeToShard through the registered stream consumer of this name
    /// (registered at start if missing), with 2 MiB/s per shard of its own and records pushed
    /// as they arrive.
    FanOut {
        /// The stream consumer's name; every worker of the application uses the same one.
        consumer_name: String,
    },
}

/// What the leader balances leases by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Balance {
    /// Lease count only: every worker within one lease of the others (KCL 2.x).
    LeaseCount,
    /// Throughput (the default): each lease weighs the KiB/s read from it (its
    /// `throughputKBps`, which owners write with each renewal, as KCL 3.x) plus a tenth of
    /// the average lease's, so idle leases are spread by count; a lease not measured yet
    /// weighs as the average one. When the heaviest worker is more than
    /// `balance_threshold` above the mean, leases move from it to the lightest until it is
    /// at the mean, each move narrowing their gap.
    #[default]
    Throughput,
    /// Packing, for cost: leases fill the workers in a fixed order (most leases first, then
    /// by worker id), each up to its `max_throughput_per_worker` less `balance_threshold` of
    /// it and up to the leases it can renew, so a quiet stream sits on one worker and the
    /// others wait as spares. A worker above its cap sheds leases to the first that fits.
    /// Fewer busy workers means fewer GetRecords pollers sharing nothing, and, with a sink,
    /// fewer objects per buffer interval. Needs `max_throughput_per_worker`; leases held by
    /// KCL's workers sharing the table are left where they are.
    Pack,
}

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A required client was not given.
    #[error("no {client} client: call .{method}(..)")]
    MissingClient {
        /// Which client.
        client: &'static str,
        /// The builder method that sets it.
        method: &'static str,
    },
    /// An option is outside its valid range.
    #[error("{option} is invalid: {reason}")]
    Invalid {
        /// The option, as its builder method.
        option: &'static str,
        /// What is allowed.
        reason: &'static str,
    },
}

/// Validated worker settings; see [`crate::WorkerBuilder`].
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub application_name: String,
    pub worker_id: String,
    pub lease_table_name: String,
    pub lease_table_options: TableOptions,
    pub initial_position: InitialPosition,
    pub failover_time: Duration,
    pub renewal_interval: Duration,
    pub taking_interval: Duration,
    pub max_leases_per_worker: usize,
    pub max_leases_to_steal: usize,
    pub balance: Balance,
    pub balance_threshold: f64,
    pub max_throughput_per_worker: Option<f64>,
    pub graceful_handoff_timeout: Duration,
    pub shard_sync_interval: Duration,
    pub max_records: i32,
    pub idle_time_between_reads: Duration,
    pub max_prefetch_batches: usize,
    pub deliver_empty_batches: bool,
    pub processor_backoff: Backoff,
    pub processor_max_attempts: u32,
    pub retrieval_mode: RetrievalMode,
    pub deregister_consumer_on_shutdown: bool,
    pub max_renewal_concurrency: usize,
    pub lease_deadline_margin: Duration,
    pub dynamodb_call_timeout: Duration,
    pub kinesis_call_timeout: Duration,
    pub lease_cleanup_grace: Duration,
    pub metrics_granularity: MetricsGranularity,
}

impl Config {
    pub(crate) fn new(application_name: String) -> Self {
        Config {
            worker_id: default_worker_id(),
            lease_table_name: application_name.clone(),
            lease_table_options: TableOptions::default(),
            application_name,
            initial_position: InitialPosition::TrimHorizon,
            failover_time: Duration::from_secs(10),
            renewal_interval: Duration::from_millis(3333),
            taking_interval: Duration::from_secs(20),
            max_leases_per_worker: usize::MAX,
            max_leases_to_steal: usize::MAX,
            balance: Balance::Throughput,
            balance_threshold: 0.1,
            max_throughput_per_worker: None,
            graceful_handoff_timeout: Duration::from_secs(30),
            shard_sync_interval: Duration::from_secs(60),
            max_records: 10_000,
            idle_time_between_reads: Duration::from_millis(500),
            max_prefetch_batches: 2,
            deliver_empty_batches: false,
            processor_backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(10)),
            processor_max_attempts: 10,
            retrieval_mode: RetrievalMode::Polling,
            deregister_consumer_on_shutdown: false,
            max_renewal_concurrency: 20,
            lease_deadline_margin: Duration::from_secs(1),
            dynamodb_call_timeout: Duration::from_secs(3),
            kinesis_call_timeout: Duration::from_secs(10),
            lease_cleanup_grace: Duration::from_secs(30 * 60),
            metrics_granularity: MetricsGranularity::Stream,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |option, reason| Err(ConfigError::Invalid { option, reason });
        if self.application_name.is_empty() {
            return invalid("application_name", "must not be empty");
        }
        if self.worker_id.is_empty() {
            return invalid("worker_id", "must not be empty");
        }
        if self.lease_table_name.len() < 3 || self.lease_table_name.len() > 255 {
            return invalid(
                "lease_table_name",
                "DynamoDB table names have 3 to 255 characters",
            );
        }
        if let Some(reason) = self.lease_table_options.invalid() {
            return invalid("lease_table_options", reason);
        }
        if self.renewal_interval >= self.failover_time || self.renewal_interval.is_zero() {
            return invalid(
                "renewal_interval",
                "must be positive and shorter than failover_time",
            );
        }
        if self.lease_deadline_margin + self.renewal_interval >= self.failover_time {
            return invalid(
                "lease_deadline_margin",
                "must be shorter than failover_time minus renewal_interval",
            );
        }
        if self.dynamodb_call_timeout.is_zero() || self.kinesis_call_timeout.is_zero() {
            return invalid("dynamodb_call_timeout", "call timeouts must be positive");
        }
        if self.max_renewal_concurrency == 0 {
            return invalid("max_renewal_concurrency", "must be at least 1");
        }
        if self.taking_interval.is_zero() || self.shard_sync_interval.is_zero() {
            return invalid("taking_interval", "intervals must be positive");
        }
        if !(1..=10_000).contains(&self.max_records) {
            return invalid("max_records", "must be 1 to 10,000");
        }
        if self.max_leases_per_worker == 0
            || self.max_leases_to_steal == 0
            || self.max_prefetch_batches == 0
        {
            return invalid("max_leases_per_worker", "counts must be at least 1");
        }
        if !(self.balance_threshold > 0.0 && self.balance_threshold <= 1.0) {
            return invalid("balance_threshold", "must be above 0 and at most 1");
        }
        if self
            .max_throughput_per_worker
            .is_some_and(|m| !(m.is_finite() && m > 0.0))
        {
            return invalid(
                "max_throughput_per_worker",
                "must be a positive number of KiB/s",
            );
        }
        if self.balance == Balance::Pack && self.max_throughput_per_worker.is_none() {
            return invalid(
                "balance",
                "Balance::Pack fills workers up to max_throughput_per_worker: set it",
            );
        }
        if let RetrievalMode::FanOut { consumer_name } = &self.retrieval_mode
            && (consumer_name.is_empty() || consumer_name.len() > 128)
        {
            return invalid("fan_out", "consumer names have 1 to 128 characters");
        }
        if self.processor_max_attempts == 0 {
            return invalid("processor_max_attempts", "must be at least 1");
        }
        Ok(())
    }
}

fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".into());
    format!("{host}-{:08x}", rand::random::<u32>())
}
