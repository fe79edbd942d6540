//! What the producer reports through the `metrics` facade, at the granularity asked for.
//!
//! The metrics and their labels are listed in the crate README (its *Metrics and statistics*
//! section); [`MetricsGranularity`] decides the labels.

/// How finely metrics are broken down, as KPL's `metricsGranularity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum MetricsGranularity {
    /// One series per metric for the whole producer.
    Global,
    /// A `stream` label (the default).
    #[default]
    Stream,
    /// A `stream` label, and a `shard` label on the per-shard counters.
    Shard,
}

type Labels = Vec<(&'static str, String)>;

/// The counters kept per shard at `Shard` granularity (shared otherwise).
#[derive(Clone)]
pub(crate) struct ShardMetrics {
    pub user_records_put: metrics::Counter,
    pub kinesis_records_put: metrics::Counter,
    pub bytes_put: metrics::Counter,
    pub throttles: metrics::Counter,
    pub hottest_key_share: metrics::Gauge,
}

impl std::fmt::Debug for ShardMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardMetrics").finish_non_exhaustive()
    }
}

impl ShardMetrics {
    fn new(labels: &Labels) -> Self {
        ShardMetrics {
            user_records_put: metrics::counter!("kinesis_producer_user_records_put", labels),
            kinesis_records_put: metrics::counter!("kinesis_producer_kinesis_records_put", labels),
            bytes_put: metrics::counter!("kinesis_producer_bytes_put", labels),
            throttles: metrics::counter!("kinesis_producer_throttles", labels),
            hottest_key_share: metrics::gauge!("kinesis_producer_hottest_key_share", labels),
        }
    }
}

/// Metric handles, registered once so the hot path does no label work. Install a `metrics`
/// recorder before building the producer to receive them.
pub(crate) struct Metrics {
    granularity: MetricsGranularity,
    labels: Labels,
    /// The per-shard counters below `Shard` granularity, and for shards not in the map.
    pub shared: ShardMetrics,
    pub user_records_failed: metrics::Counter,
    pub requests: metrics::Counter,
    pub retries: metrics::Counter,
    pub outstanding_records: metrics::Gauge,
    pub oldest_record_age_seconds: metrics::Gauge,
    pub gated_shards: metrics::Gauge,
    pub buffering_seconds: metrics::Histogram,
    pub user_records_per_kinesis_record: metrics::Histogram,
    pub kinesis_records_per_request: metrics::Histogram,
}

impl Metrics {
    pub(crate) fn new(stream: &str, granularity: MetricsGranularity) -> Self {
        let labels: Labels = match granularity {
            MetricsGranularity::Global => Vec::new(),
            _ => vec![("stream", stream.to_owned())],
        };
        let l = &labels;
        Metrics {
            granularity,
            shared: ShardMetrics::new(l),
            user_records_failed: metrics::counter!("kinesis_producer_user_records_failed", l),
            requests: metrics::counter!("kinesis_producer_requests", l),
            retries: metrics::counter!("kinesis_producer_retries", l),
            outstanding_records: metrics::gauge!("kinesis_producer_outstanding_records", l),
            oldest_record_age_seconds: metrics::gauge!(
                "kinesis_producer_oldest_record_age_seconds",
                l
            ),
            gated_shards: metrics::gauge!("kinesis_producer_gated_shards", l),
            buffering_seconds: metrics::histogram!("kinesis_producer_buffering_seconds", l),
            user_records_per_kinesis_record: metrics::histogram!(
                "kinesis_producer_user_records_per_kinesis_record",
                l
            ),
            kinesis_records_per_request: metrics::histogram!(
                "kinesis_producer_kinesis_records_per_request",
                l
            ),
            labels,
        }
    }

    /// The counters of one shard: its own at `Shard` granularity, the shared ones otherwise.
    pub(crate) fn shard(&self, shard_id: &str) -> ShardMetrics {
        if self.granularity != MetricsGranularity::Shard {
            return self.shared.clone();
        }
        let mut labels = self.labels.clone();
        labels.push(("shard", shard_id.to_owned()));
        ShardMetrics::new(&labels)
    }

    /// Whether each shard has its own series.
    pub(crate) fn per_shard(&self) -> bool {
        self.granularity == MetricsGranularity::Shard
    }

    /// A failed entry or request with error `code`.
    pub(crate) fn error(&self, code: &str) {
        let mut labels = self.labels.clone();
        labels.push(("code", code.to_owned()));
        metrics::counter!("kinesis_producer_errors", &labels).increment(1);
    }
}
