//! The protobuf messages of the aggregated-record format (proto2), declared with `prost`.
//!
//! ```proto
//! message AggregatedRecord {
//!   repeated string partition_key_table     = 1;
//!   repeated string explicit_hash_key_table = 2;
//!   repeated Record records                 = 3;
//! }
//! message Record {
//!   required uint64 partition_key_index     = 1;
//!   optional uint64 explicit_hash_key_index = 2;
//!   required bytes  data                    = 3;
//!   repeated Tag    tags                    = 4;
//! }
//! message Tag { required string key = 1; optional string value = 2; }
//! ```

use bytes::Bytes;

/// The body of an aggregated record.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AggregatedRecord {
    /// Distinct partition keys, indexed from 0.
    #[prost(string, repeated, tag = "1")]
    pub partition_key_table: Vec<String>,
    /// Distinct explicit hash keys, indexed from 0.
    #[prost(string, repeated, tag = "2")]
    pub explicit_hash_key_table: Vec<String>,
    /// The user records, in order.
    #[prost(message, repeated, tag = "3")]
    pub records: Vec<Record>,
}

/// One user record inside an aggregate.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Record {
    /// Index into `partition_key_table`.
    #[prost(uint64, required, tag = "1")]
    pub partition_key_index: u64,
    /// Index into `explicit_hash_key_table`, when the record has an explicit hash key.
    #[prost(uint64, optional, tag = "2")]
    pub explicit_hash_key_index: Option<u64>,
    /// The payload.
    #[prost(bytes = "bytes", required, tag = "3")]
    pub data: Bytes,
    /// Tags; the format allows them, KPL never writes them, readers ignore them.
    #[prost(message, repeated, tag = "4")]
    pub tags: Vec<Tag>,
}

/// A key/value tag on a user record.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Tag {
    /// Tag key.
    #[prost(string, required, tag = "1")]
    pub key: String,
    /// Tag value.
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
}
