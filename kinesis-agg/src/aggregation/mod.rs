//! The KPL aggregated-record format: many user records in one Kinesis record.
//!
//! ```text
//!  ┌──────────────┬──────────────────────────────────┬──────────────────────────┐
//!  │ F3 89 9A C2  │ protobuf AggregatedRecord        │ MD5(protobuf bytes), 16 B │
//!  └──────────────┴──────────────────────────────────┴──────────────────────────┘
//! ```
//!
//! The protobuf holds a partition-key table, an explicit-hash-key table and the user records,
//! which point into the tables by index. The bytes are those of the Java KPL, the KCL and
//! `aws-kinesis-agg`, so each side reads what the others write.
//!
//! * [`Aggregator`] collects user records bound for one shard, tracks the exact encoded size
//!   and refuses a record that would push the aggregate over its limit.
//! * [`deaggregate`] splits a Kinesis record back into user records the way KCL does: a record
//!   that is not an aggregate, or a corrupt one, passes through whole with sub-sequence 0.
//!
//! This module is pure: no I/O, no async, no logging of payloads.

mod aggregator;
mod deaggregator;
mod key_table;
mod proto;

pub use aggregator::{AggregationError, Aggregator, DEFAULT_MAX_AGGREGATE_BYTES};
pub use deaggregator::{
    DeaggregatedRecord, Deaggregation, DeaggregationError, deaggregate, decode_aggregate,
};
pub use proto::{AggregatedRecord, Record, Tag};

/// The four bytes that open every aggregated record.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
/// Length of the MD5 checksum that closes every aggregated record.
pub const CHECKSUM_LEN: usize = 16;
/// Bytes an aggregate adds around its protobuf body: magic plus checksum.
pub const FRAMING_LEN: usize = MAGIC.len() + CHECKSUM_LEN;
