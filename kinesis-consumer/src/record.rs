//! What a processor receives.

use std::time::SystemTime;

use bytes::Bytes;

/// A user record, deaggregated, with its position in the shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The user record's partition key.
    pub partition_key: String,
    /// The user record's explicit hash key, when it was aggregated with one.
    pub explicit_hash_key: Option<String>,
    /// The payload.
    pub data: Bytes,
    /// Sequence number of the Kinesis record that carried it.
    pub sequence_number: String,
    /// Position inside its aggregate (0 for a plain record).
    pub sub_sequence_number: u64,
    /// Whether it came out of a KPL aggregate.
    pub aggregated: bool,
    /// When Kinesis accepted the carrying record.
    pub approximate_arrival_timestamp: Option<SystemTime>,
}

/// A batch for [`crate::RecordProcessor::process_records`].
#[derive(Debug, Clone)]
pub struct ProcessRecordsInput {
    /// The shard the records come from.
    pub shard_id: String,
    /// With a worker of many streams, the shard's stream (`account:stream:creationEpoch`,
    /// KCL's stream identifier); `None` for a single-stream worker.
    pub stream: Option<String>,
    /// The records, in shard order.
    pub records: Vec<Record>,
    /// How far behind the tip of the shard this batch is, as Kinesis reports it.
    pub millis_behind_latest: Option<i64>,
}
