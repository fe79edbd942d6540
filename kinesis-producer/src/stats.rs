//! Counters of what the producer did, as a snapshot and through the `metrics` facade.
//!
//! Metric names (all with a `stream` label):
//!
//! | metric | kind | meaning |
//! | --- | --- | --- |
//! | `kinesis_producer_user_records_put` | counter | user records acknowledged |
//! | `kinesis_producer_kinesis_records_put` | counter | Kinesis records (aggregates or plain) acknowledged |
//! | `kinesis_producer_bytes_put` | counter | data + partition key bytes of acknowledged Kinesis records |
//! | `kinesis_producer_requests` | counter | PutRecords requests sent |
//! | `kinesis_producer_retries` | counter | user records sent again |
//! | `kinesis_producer_throttles` | counter, `shard` label | throttled entries or requests per shard |
//! | `kinesis_producer_errors` | counter, `code` label | failed entries or requests by error code |
//! | `kinesis_producer_user_records_failed` | counter | user records resolved with an error |
//! | `kinesis_producer_buffering_seconds` | histogram | time from `send` to the successful request |
//! | `kinesis_producer_user_records_per_kinesis_record` | histogram | aggregation ratio |
//! | `kinesis_producer_kinesis_records_per_request` | histogram | collection ratio |

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the producer's counters since it was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProducerStats {
    /// User records accepted by `send` / `try_send`.
    pub user_records_sent: u64,
    /// User records acknowledged by Kinesis.
    pub user_records_put: u64,
    /// User records resolved with an error (invalid ones rejected at `send` not included).
    pub user_records_failed: u64,
    /// User records that expired after their TTL (included in `user_records_failed`).
    pub user_records_expired: u64,
    /// Kinesis records (aggregates or plain records) acknowledged.
    pub kinesis_records_put: u64,
    /// Data + partition key bytes of acknowledged Kinesis records: what the shard limit counts.
    pub bytes_put: u64,
    /// Payload bytes of acknowledged user records.
    pub user_bytes_put: u64,
    /// PUT payload units billed: each acknowledged Kinesis record costs ceil(size / 25 KiB).
    pub put_payload_units: u64,
    /// PutRecords requests sent.
    pub requests: u64,
    /// Requests that were throttled whole or had at least one throttled entry.
    pub throttled_requests: u64,
    /// Entries throttled inside otherwise answered requests.
    pub throttled_entries: u64,
    /// Requests that failed whole (throttling, 5xx, timeouts, dropped connections).
    pub failed_requests: u64,
    /// User records sent again after a failure.
    pub retries: u64,
    /// User records sent again because their aggregate landed on a shard that does not own them.
    pub wrong_shard_resends: u64,
    /// Shard map loads.
    pub shard_map_refreshes: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Throttled entries or requests per shard.
    pub throttles_by_shard: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
    pub user_records_sent: AtomicU64,
    pub user_records_put: AtomicU64,
    pub user_records_failed: AtomicU64,
    pub user_records_expired: AtomicU64,
    pub kinesis_records_put: AtomicU64,
    pub bytes_put: AtomicU64,
    pub user_bytes_put: AtomicU64,
    pub put_payload_units: AtomicU64,
    pub requests: AtomicU64,
    pub throttled_requests: AtomicU64,
    pub throttled_entries: AtomicU64,
    pub failed_requests: AtomicU64,
    pub retries: AtomicU64,
    pub wrong_shard_resends: AtomicU64,
    pub shard_map_refreshes: AtomicU64,
}

pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// Size of one PUT payload unit, 25 KiB.
const PAYLOAD_UNIT: u64 = 25 * 1024;

impl Stats {
    /// Counts one acknowledged Kinesis record of `size` bytes.
    pub(crate) fn kinesis_record_put(&self, size: usize) {
        add(&self.kinesis_records_put, 1);
        add(&self.bytes_put, size as u64);
        add(
            &self.put_payload_units,
            (size as u64).div_ceil(PAYLOAD_UNIT).max(1),
        );
    }
}

impl Stats {
    pub(crate) fn snapshot(&self) -> ProducerStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ProducerStats {
            user_records_sent: get(&self.user_records_sent),
            user_records_put: get(&self.user_records_put),
            user_records_failed: get(&self.user_records_failed),
            user_records_expired: get(&self.user_records_expired),
            kinesis_records_put: get(&self.kinesis_records_put),
            bytes_put: get(&self.bytes_put),
            user_bytes_put: get(&self.user_bytes_put),
            put_payload_units: get(&self.put_payload_units),
            requests: get(&self.requests),
            throttled_requests: get(&self.throttled_requests),
            throttled_entries: get(&self.throttled_entries),
            failed_requests: get(&self.failed_requests),
            retries: get(&self.retries),
            wrong_shard_resends: get(&self.wrong_shard_resends),
            shard_map_refreshes: get(&self.shard_map_refreshes),
        }
    }
}

/// Metric handles, registered once per producer so the hot path does no label work.
/// Install a `metrics` recorder before building the producer to receive them.
pub(crate) struct Metrics {
    stream: String,
    pub user_records_put: metrics::Counter,
    pub user_records_failed: metrics::Counter,
    pub kinesis_records_put: metrics::Counter,
    pub bytes_put: metrics::Counter,
    pub requests: metrics::Counter,
    pub retries: metrics::Counter,
    pub buffering_seconds: metrics::Histogram,
    pub user_records_per_kinesis_record: metrics::Histogram,
    pub kinesis_records_per_request: metrics::Histogram,
}

impl Metrics {
    pub(crate) fn new(stream: &str) -> Self {
        let s = stream.to_owned();
        Metrics {
            user_records_put: metrics::counter!("kinesis_producer_user_records_put", "stream" => s.clone()),
            user_records_failed: metrics::counter!("kinesis_producer_user_records_failed", "stream" => s.clone()),
            kinesis_records_put: metrics::counter!("kinesis_producer_kinesis_records_put", "stream" => s.clone()),
            bytes_put: metrics::counter!("kinesis_producer_bytes_put", "stream" => s.clone()),
            requests: metrics::counter!("kinesis_producer_requests", "stream" => s.clone()),
            retries: metrics::counter!("kinesis_producer_retries", "stream" => s.clone()),
            buffering_seconds: metrics::histogram!("kinesis_producer_buffering_seconds", "stream" => s.clone()),
            user_records_per_kinesis_record: metrics::histogram!(
                "kinesis_producer_user_records_per_kinesis_record", "stream" => s.clone()
            ),
            kinesis_records_per_request: metrics::histogram!(
                "kinesis_producer_kinesis_records_per_request", "stream" => s.clone()
            ),
            stream: s,
        }
    }

    /// A throttled entry or request on `shard`.
    pub(crate) fn throttle(&self, shard: &str) {
        metrics::counter!("kinesis_producer_throttles", "stream" => self.stream.clone(), "shard" => shard.to_owned())
            .increment(1);
    }

    /// A failed entry or request with error `code`.
    pub(crate) fn error(&self, code: &str) {
        metrics::counter!("kinesis_producer_errors", "stream" => self.stream.clone(), "code" => code.to_owned())
            .increment(1);
    }
}
