//! A KPL-class producer for Amazon Kinesis Data Streams.
//!
//! **Status: skeleton.** The pipeline lands in the next milestone:
//!
//! ```text
//! send(UserRecord) ─▶ validate ─▶ shard_map (predict shard) ─▶ Aggregator per shard
//!                       ─▶ collect into PutRecords (≤ 500 entries, ≤ 5 MiB)
//!                       ─▶ per-shard rate limit ─▶ PutRecords ─▶ retry with backoff
//!                       ─▶ resolve one future per user record
//! ```
//!
//! The building blocks it uses already live in [`kinesis_common`]: the aggregation format,
//! hash keys, the shard map, error classification and backoff.

pub use kinesis_common::{KinesisRecord, UserRecord};
