#![doc = include_str!("../README.md")]

pub mod backoff;
pub mod client;
pub mod error;
pub mod logging;
pub mod shard_map;
pub mod stream;

pub use kinesis_agg::{aggregation, hash_key, record};

pub use aggregation::{Aggregator, DeaggregatedRecord, Deaggregation, deaggregate};
pub use backoff::Backoff;
pub use error::{ErrorKind, InputError, ServiceError};
pub use hash_key::HashKey;
pub use record::{KinesisRecord, UserRecord};
pub use shard_map::ShardMap;
pub use stream::StreamRef;
