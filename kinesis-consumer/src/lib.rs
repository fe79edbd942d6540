#![doc = include_str!("../README.md")]

mod checkpoint;
mod config;
mod coordinator;
mod error;
mod fleet;
pub mod lease;
mod processor;
mod record;
mod retrieval;
mod shard_consumer;
mod shard_sync;
mod streams;
mod telemetry;
mod worker;

pub use checkpoint::{
    CheckpointError, Checkpointer, PreparedCheckpoint, ShardEndCheckpointer, ShardEnded,
};
pub use config::{Balance, ConfigError, InitialPosition, RetrievalMode};
pub use error::ConsumerError;
pub use kinesis_common::aggregation::{DeaggregatedRecord, deaggregate};
pub use lease::{Billing, Checkpoint, Lease, LeaseTableCapacity, TableOptions};
pub use processor::{InitializeInput, ProcessorError, ProcessorFactory, RecordProcessor};
pub use record::{ProcessRecordsInput, Record};
pub use streams::{StreamConfig, StreamTracker};
pub use telemetry::MetricsGranularity;
pub use worker::{NeverProcessor, Worker, WorkerBuilder, WorkerHandle};
