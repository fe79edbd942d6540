#![doc = include_str!("../README.md")]

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
