#![doc = include_str!("../README.md")]

mod admission;
mod arena;
mod bounds;
mod builder;
mod completion;
mod config;
mod engine;
mod error;
mod hot_keys;
mod inbox;
mod pipeline;
mod producer;
mod result;
mod stats;
mod telemetry;
mod ticket;

pub use builder::ProducerBuilder;
pub use config::{ConfigError, MAX_BYTES_PER_REQUEST, MAX_ENTRIES_PER_REQUEST};
pub use error::{ProduceError, PutError};
pub use hot_keys::{HotKey, ShardHotKeys};
pub use kinesis_common::backoff::Backoff;
pub use kinesis_common::{KinesisRecord, StreamRef, UserRecord};
pub use producer::Producer;
pub use result::{PutFuture, PutResult};
pub use stats::ProducerStats;
pub use telemetry::MetricsGranularity;
