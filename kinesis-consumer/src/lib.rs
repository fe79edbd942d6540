//! A KCL-compatible consumer for Amazon Kinesis Data Streams.
//!
//! Implement [`RecordProcessor`], build a [`Worker`] for an application name and a stream,
//! and run it on as many processes or machines as needed: every shard is processed by one
//! worker at a time, in order, resuming from its last checkpoint.
//!
//! ```no_run
//! use kinesis_consumer::{Checkpointer, ProcessRecordsInput, ProcessorError, RecordProcessor, Worker};
//!
//! struct Printer;
//!
//! impl RecordProcessor for Printer {
//!     async fn process_records(
//!         &mut self,
//!         input: ProcessRecordsInput,
//!         checkpointer: &mut Checkpointer,
//!     ) -> Result<(), ProcessorError> {
//!         for record in &input.records {
//!             println!("{} {:?}", record.partition_key, record.data);
//!         }
//!         checkpointer.checkpoint().await?;
//!         Ok(())
//!     }
//! }
//!
//! # async fn example(kinesis: aws_sdk_kinesis::Client, dynamodb: aws_sdk_dynamodb::Client)
//! # -> Result<(), Box<dyn std::error::Error>> {
//! let worker = Worker::builder("my-app", "clicks")
//!     .kinesis_client(kinesis)
//!     .dynamodb_client(dynamodb)
//!     .build(|_shard: &str| Printer)?;
//! let handle = worker.handle();
//! tokio::spawn(async move { tokio::signal::ctrl_c().await.ok(); handle.shutdown().await });
//! worker.run().await?;
//! # Ok(()) }
//! ```
//!
//! Leases live in a DynamoDB table with KCL's schema ([`lease`]), so a table written by the
//! Java KCL is taken over with its checkpoints. Workers also heartbeat into a small second
//! table, `<lease table>-Coordinator`, where one of them, elected with a lock, assigns the
//! leases: only that worker reads the lease table, so what a fleet pays for reads grows with
//! its leases, not with leases × workers.

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
