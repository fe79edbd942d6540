//! Options of a producer, and starting it.

use std::sync::Arc;
use std::time::Duration;

use kinesis_common::backoff::Backoff;
use kinesis_common::stream::StreamRef;

use crate::config::{Config, ConfigError};
use crate::pipeline::Shared;
use crate::producer::Producer;

/// Builds a [`Producer`]. Every option has a default; see the crate docs for the table.
#[derive(Debug)]
pub struct ProducerBuilder {
    stream: StreamRef,
    client: Option<aws_sdk_kinesis::Client>,
    config: Config,
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

impl ProducerBuilder {
    pub(crate) fn new(stream: StreamRef) -> Self {
        ProducerBuilder {
            stream,
            client: None,
            config: Config::default(),
        }
    }

    /// Uses this Kinesis client (from `aws_config`, `ClientOptions`, or the testkit).
    pub fn client(mut self, client: aws_sdk_kinesis::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Builds the Kinesis client from a loaded SDK configuration.
    pub fn sdk_config(mut self, config: &aws_config::SdkConfig) -> Self {
        let config = kinesis_common::client::with_http_client(config);
        self.client = Some(aws_sdk_kinesis::Client::new(&config));
        self
    }

    setter!(
        /// Aggregate user records bound for the same shard in the KPL format (default true).
        aggregation: bool
    );
    setter!(
        /// Largest aggregate, data + partition key (default 51,200 bytes; at most 1 MiB).
        max_aggregate_bytes: usize
    );
    setter!(
        /// Most entries per PutRecords request (default and maximum 500).
        max_entries_per_request: usize
    );
    setter!(
        /// Most bytes per PutRecords request (default 5 MiB).
        max_bytes_per_request: usize
    );
    setter!(
        /// Longest a record waits to be aggregated and collected before it is sent (default 100 ms).
        max_buffered_time: Duration
    );
    setter!(
        /// Time from `send` after which an unacknowledged record fails as expired (default 30 s).
        record_ttl: Duration
    );
    setter!(
        /// Per-shard send rate as a percentage of the shard limit, 1 MiB/s and 1000 records/s (default 100).
        rate_limit_percent: u32
    );
    setter!(
        /// Most bytes (data + partition key) sent but not yet resolved; `send` waits above it (default 64 MiB).
        max_outstanding_bytes: usize
    );
    setter!(
        /// Most records sent but not yet resolved; `send` waits above it (default 100,000).
        max_outstanding_records: usize
    );
    setter!(
        /// Time limit of one PutRecords call (default 10 s).
        request_timeout: Duration
    );
    setter!(
        /// Most PutRecords calls at once, per stream (default 24).
        max_concurrent_requests: usize
    );
    setter!(
        /// How often the shard map is reloaded even without a sign of resharding (default 60 s).
        shard_map_refresh_interval: Duration
    );
    setter!(
        /// Fail throttled records at once instead of retrying them (default false).
        fail_fast_on_throttling: bool
    );
    setter!(
        /// Largest user record, data + partition key (default 1 MiB; up to 10 MiB for streams
        /// raised with UpdateMaxRecordSize).
        max_record_bytes: usize
    );
    setter!(
        /// Backoff between retries of a record (default 100 ms doubling to 5 s, full jitter).
        backoff: Backoff
    );
    setter!(
        /// Span of the hot-key report, `Producer::hot_keys` (default 60 s; at least 2 s).
        hot_key_window: Duration
    );
    setter!(
        /// Keep each partition key's (or explicit hash key's) records in send order on the
        /// stream, through retries, throttling, timeouts and reshards (default false). Each
        /// shard then has one PutRecords entry unsettled at a time, so a shard's rate is
        /// bounded by one aggregate per round trip; see the README for the measured cost.
        ordered: bool
    );
    setter!(
        /// Labels on the producer's metrics: `Global`, `Stream` (default) or `Shard` (a series
        /// per shard for the per-shard counters; see the crate's metrics table).
        metrics_granularity: crate::MetricsGranularity
    );

    /// Validates the options and starts the producer's pipeline for its stream on the
    /// current Tokio runtime (other streams start on first use, see [`Producer::for_stream`]).
    pub fn build(self) -> Result<Producer, ConfigError> {
        self.config.validate()?;
        let client = self.client.ok_or(ConfigError::MissingClient)?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ConfigError::NoRuntime)?;
        let shared = Shared::new(self.config, client, runtime);
        Ok(Producer::new(Arc::new(shared), &self.stream))
    }
}
