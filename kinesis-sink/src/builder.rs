//! Building a [`Sink`]: every setting, its default and its range.

use std::sync::Arc;
use std::time::Duration;

use crate::compression::Compression;
use crate::config::Config;
use crate::destination::Destination;
use crate::error::SinkError;
use crate::format::Format;
use crate::prefix::PrefixTemplate;
use crate::sink::Sink;
use crate::time_zone::TimeZone;
use crate::transform::{Partitioner, Transform};

/// Settings of a [`Sink`]; start with [`Sink::builder`].
pub struct SinkBuilder {
    destination: Destination,
    cfg: Config,
    prefix: String,
    error_prefix: String,
    transform: Option<Arc<dyn Transform>>,
    partitioner: Option<Arc<dyn Partitioner>>,
}

impl std::fmt::Debug for SinkBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkBuilder")
            .field("destination", &self.destination)
            .field("prefix", &self.prefix)
            .field("error_prefix", &self.error_prefix)
            .finish_non_exhaustive()
    }
}

impl Sink {
    /// A sink writing to `destination`: a [`Destination::folder`], a
    /// [`Destination::parse`]d `s3://bucket/prefix`, or any `Arc<dyn ObjectStore>`.
    pub fn builder(destination: impl Into<Destination>) -> SinkBuilder {
        SinkBuilder {
            destination: destination.into(),
            cfg: Config::default(),
            prefix: String::new(),
            error_prefix: crate::config::DEFAULT_ERROR_PREFIX.to_owned(),
            transform: None,
            partitioner: None,
        }
    }
}

impl SinkBuilder {
    /// Names objects `{prefix}{name}-{time}-{digest}…` (Firehose uses the delivery stream's
    /// name). Default `kinesis-sink`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.cfg.name = name.into();
        self
    }

    /// A buffer is written once it holds this many bytes (before compression). 1–128 MiB,
    /// default 5 MiB (Firehose's).
    pub fn buffer_size(mut self, bytes: usize) -> Self {
        self.cfg.buffer_size = bytes;
        self
    }

    /// A buffer is written once its first record is this old, records or not. 0–900 s,
    /// default 300 s (Firehose's); 0 writes every batch at once.
    pub fn buffer_interval(mut self, interval: Duration) -> Self {
        self.cfg.buffer_interval = interval;
        self
    }

    /// The key prefix template (see [`PrefixTemplate`]). Default empty, which is
    /// `YYYY/MM/dd/HH/` of each record's arrival time.
    pub fn prefix(mut self, template: impl Into<String>) -> Self {
        self.prefix = template.into();
        self
    }

    /// The prefix of records that fail transformation, partitioning or format conversion.
    /// Default `!{firehose:error-output-type}/` (then `YYYY/MM/dd/HH/`); it may not use
    /// partition keys.
    pub fn error_prefix(mut self, template: impl Into<String>) -> Self {
        self.error_prefix = template.into();
        self
    }

    /// The output format. Default JSON lines with the data only.
    pub fn format(mut self, format: Format) -> Self {
        self.cfg.format = format;
        self
    }

    /// Whole-object compression. Default none (Firehose's).
    pub fn compression(mut self, compression: Compression) -> Self {
        self.cfg.compression = compression;
        self
    }

    /// The time zone of timestamps in prefixes and names: a `chrono::FixedOffset` or a
    /// named zone ([`TimeZone::named`]`("Europe/Berlin")?`). Default UTC.
    pub fn time_zone(mut self, zone: impl Into<TimeZone>) -> Self {
        self.cfg.time_zone = zone.into();
        self
    }

    /// How long a failing object write is retried before its shards give their leases up.
    /// 0–7,200 s, default 300 s (Firehose's).
    pub fn retry_duration(mut self, duration: Duration) -> Self {
        self.cfg.retry_duration = duration;
        self
    }

    /// The most one write attempt may take. Default 60 s.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.cfg.attempt_timeout = timeout;
        self
    }

    /// Objects larger than this (after compression) go as multipart uploads of
    /// [`part_size`](Self::part_size) parts. Default 16 MiB.
    pub fn multipart_threshold(mut self, bytes: usize) -> Self {
        self.cfg.multipart_threshold = bytes;
        self
    }

    /// The part size of multipart uploads. At least 5 MiB, default 8 MiB.
    pub fn part_size(mut self, bytes: usize) -> Self {
        self.cfg.part_size = bytes;
        self
    }

    /// The most bytes all open buffers may hold; beyond it the largest are written early.
    /// Default 256 MiB.
    pub fn max_buffered_bytes(mut self, bytes: usize) -> Self {
        self.cfg.max_buffered_bytes = bytes;
        self
    }

    /// Objects written at the same time. Default 4.
    pub fn max_concurrent_writes(mut self, writes: usize) -> Self {
        self.cfg.max_concurrent_writes = writes;
        self
    }

    /// Whether each object gets a manifest (written before it, deleted once its shards
    /// checkpoint past it) so a shard's next owner skips records already in objects: no
    /// record in two objects after a crash. Costs a PUT and a DELETE per object, and a LIST
    /// (every 2 s at most) and a GET per live manifest when shards start. Default on.
    pub fn exactly_once(mut self, on: bool) -> Self {
        self.cfg.exactly_once = on;
        self
    }

    /// Manifests older than this are deleted when listed, needed or not: a shard left
    /// without a checkpoint for longer may write such records twice. Default 24 h.
    pub fn manifest_retention(mut self, retention: Duration) -> Self {
        self.cfg.manifest_retention = retention;
        self
    }

    /// Transforms each record first (Firehose's Lambda transformation).
    pub fn transform(mut self, transform: impl Transform) -> Self {
        self.transform = Some(Arc::new(transform));
        self
    }

    /// Gives each output record the partition keys its prefix uses (Firehose's dynamic
    /// partitioning).
    pub fn partitioner(mut self, partitioner: impl Partitioner) -> Self {
        self.partitioner = Some(Arc::new(partitioner));
        self
    }

    /// Checks the settings and starts the sink's timer (on the current tokio runtime).
    pub fn build(mut self) -> Result<Sink, SinkError> {
        self.cfg.prefix = PrefixTemplate::parse(&self.prefix)?;
        self.cfg.error_prefix = PrefixTemplate::parse(&self.error_prefix)?;
        if self.cfg.error_prefix.keys().next().is_some() {
            return Err(SinkError::InvalidPrefix {
                template: self.error_prefix,
                reason: "an error prefix cannot use partition keys (its records may have none)"
                    .into(),
            });
        }
        if self.partitioner.is_none()
            && let Some(key) = self.cfg.prefix.keys().next()
        {
            return Err(SinkError::InvalidPrefix {
                template: self.prefix,
                reason: format!("uses partition key {key:?} but no partitioner is set"),
            });
        }
        if matches!(self.cfg.format, Format::Parquet(_))
            && self.cfg.compression != Compression::None
        {
            return Err(SinkError::InvalidSetting {
                setting: "compression",
                value: format!("{:?}", self.cfg.compression),
                reason: "Parquet compresses inside the file: set the Parquet format's compression",
            });
        }
        self.cfg.validate()?;
        Ok(Sink::start(
            self.cfg,
            self.destination,
            self.transform,
            self.partitioner,
        ))
    }
}
