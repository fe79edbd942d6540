//! Producer configuration: every option with its default, validated by `build()`.

use std::time::Duration;

use kinesis_common::aggregation::{Aggregator, DEFAULT_MAX_AGGREGATE_BYTES};
use kinesis_common::backoff::Backoff;
use kinesis_common::record::{DEFAULT_MAX_RECORD_BYTES, MAX_RECORD_BYTES_LIMIT};

use crate::telemetry::MetricsGranularity;

/// Most entries in one PutRecords request (AWS limit).
pub const MAX_ENTRIES_PER_REQUEST: usize = 500;
/// Most bytes in one PutRecords request (AWS limit, 5 MiB).
pub const MAX_BYTES_PER_REQUEST: usize = 5 * 1024 * 1024;
/// Shard write limit in bytes per second (data + partition key).
pub const SHARD_BYTES_PER_SEC: f64 = 1024.0 * 1024.0;
/// Shard write limit in Kinesis records per second.
pub const SHARD_RECORDS_PER_SEC: f64 = 1000.0;

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No Kinesis client or SDK configuration was given.
    #[error("no Kinesis client: call .client(..) or .sdk_config(..)")]
    MissingClient,
    /// An option is outside its valid range.
    #[error("{option} = {value} is invalid: {reason}")]
    Invalid {
        /// The option's name, as its builder method.
        option: &'static str,
        /// The rejected value.
        value: String,
        /// What is allowed.
        reason: &'static str,
    },
    /// `build()` was called outside a Tokio runtime.
    #[error("the producer must be built inside a Tokio runtime")]
    NoRuntime,
}

/// Validated producer settings. See [`crate::ProducerBuilder`] for each option.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub aggregation: bool,
    pub max_aggregate_bytes: usize,
    pub max_entries_per_request: usize,
    pub max_bytes_per_request: usize,
    pub max_buffered_time: Duration,
    pub record_ttl: Duration,
    pub rate_limit_percent: u32,
    pub max_outstanding_bytes: usize,
    pub max_outstanding_records: usize,
    pub request_timeout: Duration,
    pub max_concurrent_requests: usize,
    pub shard_map_refresh_interval: Duration,
    pub fail_fast_on_throttling: bool,
    pub max_record_bytes: usize,
    pub backoff: Backoff,
    pub metrics_granularity: MetricsGranularity,
    pub hot_key_window: Duration,
    pub ordered: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            aggregation: true,
            max_aggregate_bytes: DEFAULT_MAX_AGGREGATE_BYTES,
            max_entries_per_request: MAX_ENTRIES_PER_REQUEST,
            max_bytes_per_request: MAX_BYTES_PER_REQUEST,
            max_buffered_time: Duration::from_millis(100),
            record_ttl: Duration::from_secs(30),
            rate_limit_percent: 100,
            max_outstanding_bytes: 64 * 1024 * 1024,
            max_outstanding_records: 100_000,
            request_timeout: Duration::from_secs(10),
            max_concurrent_requests: 24,
            shard_map_refresh_interval: Duration::from_secs(60),
            fail_fast_on_throttling: false,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(5)),
            metrics_granularity: MetricsGranularity::Stream,
            hot_key_window: Duration::from_secs(60),
            ordered: false,
        }
    }
}

fn invalid(option: &'static str, value: impl ToString, reason: &'static str) -> ConfigError {
    ConfigError::Invalid {
        option,
        value: value.to_string(),
        reason,
    }
}

impl Config {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if !(Aggregator::MIN_LIMIT..=Aggregator::MAX_LIMIT).contains(&self.max_aggregate_bytes) {
            return Err(invalid(
                "max_aggregate_bytes",
                self.max_aggregate_bytes,
                "must be 36 bytes to 1 MiB",
            ));
        }
        if !(1..=MAX_ENTRIES_PER_REQUEST).contains(&self.max_entries_per_request) {
            return Err(invalid(
                "max_entries_per_request",
                self.max_entries_per_request,
                "must be 1 to 500",
            ));
        }
        if !(1..=MAX_RECORD_BYTES_LIMIT).contains(&self.max_bytes_per_request) {
            return Err(invalid(
                "max_bytes_per_request",
                self.max_bytes_per_request,
                "must be 1 byte to 10 MiB",
            ));
        }
        if !(1..=MAX_RECORD_BYTES_LIMIT).contains(&self.max_record_bytes) {
            return Err(invalid(
                "max_record_bytes",
                self.max_record_bytes,
                "must be 1 byte to 10 MiB",
            ));
        }
        if !(1..=1000).contains(&self.rate_limit_percent) {
            return Err(invalid(
                "rate_limit_percent",
                self.rate_limit_percent,
                "must be 1 to 1000",
            ));
        }
        if self.max_outstanding_bytes < self.max_record_bytes {
            return Err(invalid(
                "max_outstanding_bytes",
                self.max_outstanding_bytes,
                "must hold at least one record of max_record_bytes",
            ));
        }
        if self.max_outstanding_records == 0 {
            return Err(invalid("max_outstanding_records", 0, "must be at least 1"));
        }
        if self.max_concurrent_requests == 0 {
            return Err(invalid("max_concurrent_requests", 0, "must be at least 1"));
        }
        if self.record_ttl.is_zero() {
            return Err(invalid("record_ttl", "0s", "must be positive"));
        }
        if self.request_timeout.is_zero() {
            return Err(invalid("request_timeout", "0s", "must be positive"));
        }
        if self.hot_key_window < Duration::from_secs(2) {
            return Err(invalid(
                "hot_key_window",
                format!("{:?}", self.hot_key_window),
                "must be at least 2 s",
            ));
        }
        if self.shard_map_refresh_interval.is_zero() {
            return Err(invalid(
                "shard_map_refresh_interval",
                "0s",
                "must be positive",
            ));
        }
        Ok(())
    }

    /// Bytes per second each shard may be sent at full rate.
    pub(crate) fn shard_bytes_per_sec(&self) -> f64 {
        SHARD_BYTES_PER_SEC * f64::from(self.rate_limit_percent) / 100.0
    }

    /// Kinesis records per second each shard may be sent at full rate.
    pub(crate) fn shard_records_per_sec(&self) -> f64 {
        SHARD_RECORDS_PER_SEC * f64::from(self.rate_limit_percent) / 100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_kpl() {
        let c = Config::default();
        c.validate().unwrap();
        assert_eq!(c.max_aggregate_bytes, 51_200);
        assert_eq!(c.max_entries_per_request, 500);
        assert_eq!(c.max_bytes_per_request, 5 * 1024 * 1024);
        assert_eq!(c.max_buffered_time, Duration::from_millis(100));
        assert_eq!(c.record_ttl, Duration::from_secs(30));
    }

    #[test]
    fn out_of_range_options_are_rejected() {
        let bad = [
            Config {
                max_entries_per_request: 501,
                ..Config::default()
            },
            Config {
                max_aggregate_bytes: 2 * 1024 * 1024,
                ..Config::default()
            },
            Config {
                rate_limit_percent: 0,
                ..Config::default()
            },
            Config {
                max_outstanding_bytes: 1000,
                ..Config::default()
            },
            Config {
                max_record_bytes: 11 * 1024 * 1024,
                ..Config::default()
            },
            Config {
                record_ttl: Duration::ZERO,
                ..Config::default()
            },
        ];
        for c in bad {
            assert!(
                matches!(c.validate(), Err(ConfigError::Invalid { .. })),
                "{c:?}"
            );
        }
    }
}
