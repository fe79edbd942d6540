//! A KCL-compatible consumer for Amazon Kinesis Data Streams.
//!
//! **Status: skeleton.** The worker lands in a later milestone:
//!
//! ```text
//! lease table (DynamoDB, KCL schema) ◀─▶ renewer / taker / balancer
//!                                          │ owns shard
//!                                          ▼
//! GetRecords ─▶ deaggregate ─▶ RecordProcessor::process_records ─▶ checkpoint (conditional write)
//! ```
//!
//! Deaggregation with KCL's semantics is already available as
//! [`kinesis_common::aggregation::deaggregate`].

pub use kinesis_common::aggregation::{DeaggregatedRecord, deaggregate};
