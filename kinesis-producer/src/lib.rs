//! A KPL-class producer for Amazon Kinesis Data Streams.
//!
//! ```text
//! send(UserRecord) ─▶ validate + hash ─▶ shard map (predict shard) ─▶ Aggregator per shard
//!      (waits for room under the          ─▶ collect into PutRecords (≤ 500 entries, ≤ 5 MiB)
//!       outstanding bounds)               ─▶ per-shard rate limit (sliding window + AIMD)
//!                                         ─▶ PutRecords ─▶ retry with backoff until the TTL
//!                                         ─▶ one future per user record
//! ```
//!
//! ```no_run
//! use kinesis_producer::{Producer, UserRecord};
//!
//! # async fn example(client: aws_sdk_kinesis::Client) -> Result<(), Box<dyn std::error::Error>> {
//! let producer = Producer::builder("clicks").client(client).build()?;
//! let put = producer.send(UserRecord::new("user-42", "clicked")).await?;
//! match put.await {
//!     Ok(result) => println!("{} / {}", result.shard_id(), result.sequence_number()),
//!     Err(failed) => eprintln!("not put ({}); record handed back: {:?}", failed.reason(), failed.record()),
//! }
//! producer.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Every record either lands or its future resolves to a [`PutError`] that hands it back.

mod admission;
mod bounds;
mod builder;
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
