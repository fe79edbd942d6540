//! Shared building blocks of the Kinesis producer and consumer.
//!
//! ```text
//!   user record ──validate──▶ record ──hash_key──▶ shard_map ──▶ aggregation ──▶ PutRecords
//!                                                                     │
//!   GetRecords ──▶ aggregation::deaggregate ──▶ user records ◀────────┘ (same bytes, KPL format)
//! ```
//!
//! * [`aggregation`]: the KPL aggregated-record format, an aggregator that tracks the exact
//!   encoded size, and a deaggregator with KCL's semantics. Pure: no I/O, no tokio.
//! * [`hash_key`] and [`shard_map`]: partition key → 128-bit hash key → shard.
//! * [`record`]: user and Kinesis record types and input validation.
//! * [`error`]: one classification of SDK errors into throttling, transient and fatal.
//! * [`backoff`]: exponential backoff with full jitter, a cap and a deadline on tokio's clock.
//! * [`client`]: SDK client construction for AWS, a local emulator or any endpoint.

pub mod aggregation;
pub mod backoff;
pub mod client;
pub mod error;
pub mod hash_key;
pub mod logging;
pub mod record;
pub mod shard_map;
pub mod stream;

pub use aggregation::{Aggregator, DeaggregatedRecord, Deaggregation, deaggregate};
pub use backoff::Backoff;
pub use error::{ErrorKind, InputError, ServiceError};
pub use hash_key::HashKey;
pub use record::{KinesisRecord, UserRecord};
pub use shard_map::ShardMap;
pub use stream::StreamRef;
