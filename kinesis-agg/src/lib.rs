#![doc = include_str!("../README.md")]

pub mod aggregation;
pub mod error;
pub mod hash_key;
pub mod record;

pub use aggregation::{
    AggregationError, Aggregator, DeaggregatedRecord, Deaggregation, DeaggregationError,
    deaggregate, decode_aggregate,
};
pub use error::InputError;
pub use hash_key::HashKey;
pub use record::{KinesisRecord, UserRecord};
