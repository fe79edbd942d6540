//! Firehose's delivery to S3 as a library: a Kinesis stream's records buffered by size and
//! interval, grouped by prefix, written as compressed objects, and checkpointed only once
//! their objects are durable.
//!
//! ```text
//!  Worker ─▶ SinkProcessor (one per shard) ─▶ transform ─▶ partition ─▶ prefix ─▶ buffer
//!                                                                   (one per prefix, all shards)
//!  timer / size ─▶ object (compressed, multipart when large, retried) ─▶ shards checkpoint
//! ```
//!
//! A quiet stream of many shards makes as many objects as one shard would: buffers are per
//! prefix, not per shard. A record whose transformation, partitioning or formatting fails
//! goes under the error prefix with the reason, never dropped.

mod buffer;
mod builder;
mod compression;
mod config;
mod destination;
mod error;
mod format;
mod manifest;
mod naming;
mod prefix;
mod processor;
mod recovery;
mod sink;
mod stats;
mod time_zone;
mod transform;
mod writer;

/// The Arrow schema crate, to describe Parquet columns.
pub use arrow_schema;
pub use builder::SinkBuilder;
pub use compression::Compression;
pub use destination::Destination;
pub use error::{RecordError, SinkError};
pub use format::{Format, JsonLines, Parquet, Schema};
pub use prefix::PrefixTemplate;
pub use processor::{SinkFactory, SinkProcessor};
pub use sink::Sink;
pub use stats::{SinkStats, WrittenObject};
pub use time_zone::TimeZone;
pub use transform::{Partitioner, Transform};
