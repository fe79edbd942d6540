//! Counters of what the producer did, as a snapshot.
//!
//! The metrics are described in [`crate::telemetry`].

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::time::Instant;

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
    /// Shards whose queue is too long to send within the TTL at their current allowance, so
    /// `send` waits for records bound for them (at the last pass of the engine).
    pub gated_shards: u64,
    /// Age of the oldest user record not yet resolved (KPL's `getOldestRecordTimeInMillis`),
    /// as of the engine's last pass; `None` when nothing is outstanding.
    pub oldest_record_age: Option<std::time::Duration>,
}

#[derive(Debug)]
pub(crate) struct Stats {
    /// What `oldest_unresolved` counts from.
    epoch: Instant,
    /// Nanoseconds from `epoch` to the oldest unresolved record's `send`, plus one; 0: none.
    oldest_unresolved: AtomicU64,
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
    pub gated_shards: AtomicU64,
    /// The last hot-key report, by shard.
    pub hot_keys: std::sync::Mutex<Vec<crate::hot_keys::ShardHotKeys>>,
}

impl Stats {
    pub(crate) fn new() -> Self {
        Stats {
            epoch: Instant::now(),
            oldest_unresolved: AtomicU64::new(0),
            throttles_by_shard: Default::default(),
            user_records_sent: AtomicU64::new(0),
            user_records_put: AtomicU64::new(0),
            user_records_failed: AtomicU64::new(0),
            user_records_expired: AtomicU64::new(0),
            kinesis_records_put: AtomicU64::new(0),
            bytes_put: AtomicU64::new(0),
            user_bytes_put: AtomicU64::new(0),
            put_payload_units: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            throttled_requests: AtomicU64::new(0),
            throttled_entries: AtomicU64::new(0),
            failed_requests: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            wrong_shard_resends: AtomicU64::new(0),
            shard_map_refreshes: AtomicU64::new(0),
            gated_shards: AtomicU64::new(0),
            hot_keys: Default::default(),
        }
    }

    /// Records when the oldest unresolved record was sent, if any is.
    pub(crate) fn set_oldest_unresolved(&self, at: Option<Instant>) {
        let value = at.map_or(0, |at| {
            let nanos = at.saturating_duration_since(self.epoch).as_nanos();
            u64::try_from(nanos).unwrap_or(u64::MAX - 1) + 1
        });
        self.oldest_unresolved.store(value, Ordering::Relaxed);
    }

    fn oldest_record_age(&self) -> Option<std::time::Duration> {
        match self.oldest_unresolved.load(Ordering::Relaxed) {
            0 => None,
            n => {
                let at = self.epoch + std::time::Duration::from_nanos(n - 1);
                Some(Instant::now().saturating_duration_since(at))
            }
        }
    }
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
            gated_shards: get(&self.gated_shards),
            oldest_record_age: self.oldest_record_age(),
        }
    }
}
