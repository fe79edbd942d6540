//! The sink's settings, their defaults (Firehose's where it has one) and their ranges.

use std::time::Duration;

use crate::compression::Compression;
use crate::error::SinkError;
use crate::format::Format;
use crate::prefix::PrefixTemplate;
use crate::time_zone::TimeZone;

const MIB: usize = 1024 * 1024;

/// The default error prefix: the kind of error, then the hour.
pub const DEFAULT_ERROR_PREFIX: &str = "!{firehose:error-output-type}/";

/// Settings of a [`Sink`](crate::Sink); set them through [`SinkBuilder`](crate::SinkBuilder).
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub name: String,
    pub buffer_size: usize,
    pub buffer_interval: Duration,
    pub prefix: PrefixTemplate,
    pub error_prefix: PrefixTemplate,
    pub format: Format,
    pub compression: Compression,
    pub time_zone: TimeZone,
    pub retry_duration: Duration,
    pub attempt_timeout: Duration,
    pub multipart_threshold: usize,
    pub part_size: usize,
    pub max_buffered_bytes: usize,
    pub max_concurrent_writes: usize,
    pub exactly_once: bool,
    pub manifest_retention: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            name: "kinesis-sink".into(),
            buffer_size: 5 * MIB,
            buffer_interval: Duration::from_secs(300),
            prefix: PrefixTemplate::parse("").expect("the default prefix parses"),
            error_prefix: PrefixTemplate::parse(DEFAULT_ERROR_PREFIX)
                .expect("the default error prefix parses"),
            format: Format::default(),
            compression: Compression::None,
            time_zone: TimeZone::utc(),
            retry_duration: Duration::from_secs(300),
            attempt_timeout: Duration::from_secs(60),
            multipart_threshold: 16 * MIB,
            part_size: 8 * MIB,
            max_buffered_bytes: 256 * MIB,
            max_concurrent_writes: 4,
            exactly_once: true,
            manifest_retention: Duration::from_secs(24 * 3600),
        }
    }
}

fn invalid(setting: &'static str, value: impl std::fmt::Debug, reason: &'static str) -> SinkError {
    SinkError::InvalidSetting {
        setting,
        value: format!("{value:?}"),
        reason,
    }
}

impl Config {
    pub(crate) fn validate(&self) -> Result<(), SinkError> {
        if !(MIB..=128 * MIB).contains(&self.buffer_size) {
            return Err(invalid(
                "buffer_size",
                self.buffer_size,
                "must be 1 to 128 MiB (Firehose's range)",
            ));
        }
        if self.buffer_interval > Duration::from_secs(900) {
            return Err(invalid(
                "buffer_interval",
                self.buffer_interval,
                "must be 0 to 900 s (Firehose's range)",
            ));
        }
        if self.retry_duration > Duration::from_secs(7200) {
            return Err(invalid(
                "retry_duration",
                self.retry_duration,
                "must be 0 to 7,200 s (Firehose's range)",
            ));
        }
        if self.attempt_timeout.is_zero() {
            return Err(invalid(
                "attempt_timeout",
                self.attempt_timeout,
                "must be more than 0",
            ));
        }
        if self.part_size < 5 * MIB {
            return Err(invalid(
                "part_size",
                self.part_size,
                "must be at least 5 MiB (S3's smallest part)",
            ));
        }
        if self.multipart_threshold < self.part_size {
            return Err(invalid(
                "multipart_threshold",
                self.multipart_threshold,
                "must be at least part_size",
            ));
        }
        if self.max_buffered_bytes < self.buffer_size {
            return Err(invalid(
                "max_buffered_bytes",
                self.max_buffered_bytes,
                "must be at least buffer_size",
            ));
        }
        if self.max_concurrent_writes == 0 {
            return Err(invalid(
                "max_concurrent_writes",
                self.max_concurrent_writes,
                "must be at least 1",
            ));
        }
        let bad_name = self.name.is_empty()
            || self
                .name
                .chars()
                .any(|c| c == '/' || c.is_control() || c.is_whitespace());
        if bad_name {
            return Err(invalid(
                "name",
                &self.name,
                "must be non-empty, without `/`, spaces or control characters",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_firehoses_and_valid() {
        let c = Config::default();
        c.validate().unwrap();
        assert_eq!(c.buffer_size, 5 * MIB);
        assert_eq!(c.buffer_interval, Duration::from_secs(300));
        assert_eq!(c.retry_duration, Duration::from_secs(300));
        assert_eq!(c.compression, Compression::None);
    }

    #[test]
    fn out_of_range_settings_are_named() {
        type Change = fn(&mut Config);
        let cases: [(&str, Change); 8] = [
            ("buffer_size", |c| c.buffer_size = MIB - 1),
            ("buffer_size", |c| c.buffer_size = 128 * MIB + 1),
            ("buffer_interval", |c| {
                c.buffer_interval = Duration::from_secs(901)
            }),
            ("retry_duration", |c| {
                c.retry_duration = Duration::from_secs(7201)
            }),
            ("part_size", |c| c.part_size = MIB),
            ("max_buffered_bytes", |c| c.max_buffered_bytes = MIB),
            ("max_concurrent_writes", |c| c.max_concurrent_writes = 0),
            ("name", |c| c.name = "a/b".into()),
        ];
        for (setting, change) in cases {
            let mut c = Config::default();
            change(&mut c);
            match c.validate() {
                Err(SinkError::InvalidSetting { setting: s, .. }) => assert_eq!(s, setting),
                other => panic!("{setting}: {other:?}"),
            }
        }
        let c = Config {
            buffer_interval: Duration::ZERO,
            ..Config::default()
        };
        c.validate().unwrap();
    }
}
