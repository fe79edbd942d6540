//! Building aggregates with exact size accounting.

use bytes::{BufMut, Bytes, BytesMut};
use md5::{Digest, Md5};
use prost::encoding::{encode_varint, encoded_len_varint};

use super::key_table::KeyTable;
use super::{FRAMING_LEN, MAGIC};
use crate::hash_key::HashKey;
use crate::record::{DEFAULT_MAX_RECORD_BYTES, KinesisRecord, UserRecord};

/// KPL's default aggregate size limit, 51,200 bytes.
pub const DEFAULT_MAX_AGGREGATE_BYTES: usize = 51_200;

/// Record bytes up to which an emptied aggregator keeps its buffers for the next aggregate;
/// larger ones are freed (see [`Aggregator::clear`]).
const KEPT_BYTES: usize = 4096;

// Field keys: (field number << 3) | wire type (0 = varint, 2 = length-delimited).
const KEY_PARTITION_KEY_TABLE: u8 = (1 << 3) | 2;
const KEY_EXPLICIT_HASH_KEY_TABLE: u8 = (2 << 3) | 2;
const KEY_RECORDS: u8 = (3 << 3) | 2;
const KEY_RECORD_PARTITION_KEY_INDEX: u8 = 1 << 3;
const KEY_RECORD_EXPLICIT_HASH_KEY_INDEX: u8 = 2 << 3;
const KEY_RECORD_DATA: u8 = (3 << 3) | 2;

/// Why the aggregator refused a record or a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AggregationError {
    /// Adding the record would push the aggregate past its limit; emit it and start a new one.
    #[error("adding the record would make the aggregate {size} bytes; the limit is {limit}")]
    AggregateFull {
        /// The size the aggregate would have had, in bytes counted against the shard limit.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The configured limit is outside what Kinesis accepts.
    #[error("aggregate limit {limit} is outside {min}..={max} bytes")]
    InvalidLimit {
        /// The rejected limit.
        limit: usize,
        /// Smallest accepted limit.
        min: usize,
        /// Largest accepted limit (1 MiB; the aggregate's partition key counts against it).
        max: usize,
    },
}

/// A key's place in its table.
#[derive(Debug, Clone, Copy)]
enum Slot {
    /// Already in the table at this index.
    Known(u64),
    /// Would be added at this index.
    New(u64),
}

impl Slot {
    fn index(self) -> u64 {
        match self {
            Slot::Known(i) | Slot::New(i) => i,
        }
    }
}

/// What adding a record takes: its keys' slots and the resulting sizes.
#[derive(Debug, Clone, Copy)]
struct Plan {
    partition_key: Slot,
    explicit_hash_key: Option<Slot>,
    body_len: usize,
    size: usize,
}

/// The first record, kept whole: alone, it goes out as the plain record it was.
#[derive(Debug, Clone)]
struct First {
    explicit_hash_key_index: Option<u64>,
    data: Bytes,
}

/// Collects user records bound for one shard into one KPL aggregated record.
///
/// The size it tracks is what the shard's write limit counts for the emitted Kinesis record:
/// magic + protobuf + checksum + the aggregate's partition key. A record that would push that
/// past the limit is refused with [`AggregationError::AggregateFull`]; the first record is always
/// taken, so a record larger than the limit goes out on its own as a plain record.
///
/// The caller must only add records bound for the same shard: the aggregate carries the first
/// record's hash key as its explicit hash key, and KCL drops user records whose hash key falls
/// outside the shard the aggregate was read from.
#[derive(Debug, Clone)]
pub struct Aggregator {
    limit: usize,
    partition_keys: KeyTable,
    explicit_hash_keys: KeyTable,
    /// The `records` field of every record added, encoded as it was added (the tables go
    /// before them, so they are joined at the end).
    records: BytesMut,
    /// Where each record's data starts in `records`, and its length.
    data_spans: Vec<(u32, u32)>,
    /// How many records.
    count: usize,
    first: Option<First>,
    /// Length of the protobuf body as it stands.
    body_len: usize,
    /// Hash key of the first record, sent as the aggregate's explicit hash key.
    first_hash_key: HashKey,
    /// Bytes of `records` and entries of `data_spans` the last aggregate took: the next one
    /// reserves as much on its first record.
    last: (usize, usize),
}

impl Default for Aggregator {
    fn default() -> Self {
        Aggregator::with_valid_limit(DEFAULT_MAX_AGGREGATE_BYTES)
    }
}

fn table_entry_len(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

fn record_body_len(pk_index: u64, ehk_index: Option<u64>, data_len: usize) -> usize {
    1 + encoded_len_varint(pk_index)
        + ehk_index.map_or(0, |i| 1 + encoded_len_varint(i))
        + 1
        + encoded_len_varint(data_len as u64)
        + data_len
}

impl Aggregator {
    /// Smallest accepted limit: the framing plus a little room.
    pub const MIN_LIMIT: usize = FRAMING_LEN + 16;
    /// Largest accepted limit: 1 MiB, the Kinesis record limit.
    pub const MAX_LIMIT: usize = DEFAULT_MAX_RECORD_BYTES;

    /// An aggregator whose emitted records stay within `limit` bytes (data + partition key).
    pub fn new(limit: usize) -> Result<Self, AggregationError> {
        if !(Self::MIN_LIMIT..=Self::MAX_LIMIT).contains(&limit) {
            return Err(AggregationError::InvalidLimit {
                limit,
                min: Self::MIN_LIMIT,
                max: Self::MAX_LIMIT,
            });
        }
        Ok(Self::with_valid_limit(limit))
    }

    fn with_valid_limit(limit: usize) -> Self {
        Aggregator {
            limit,
            partition_keys: KeyTable::default(),
            explicit_hash_keys: KeyTable::default(),
            records: BytesMut::new(),
            data_spans: Vec::new(),
            count: 0,
            first: None,
            body_len: 0,
            first_hash_key: HashKey::MIN,
            last: (0, 0),
        }
    }

    /// The configured limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// User records collected so far.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no record has been added since the last [`Aggregator::finish`].
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Size of the record [`Aggregator::finish`] would emit now (data + partition key), or 0.
    pub fn size(&self) -> usize {
        match self.count {
            0 => 0,
            1 => self.first.as_ref().map_or(0, |f| f.data.len()) + self.partition_keys.key(0).len(),
            _ => FRAMING_LEN + self.body_len + self.partition_keys.key(0).len(),
        }
    }

    /// Size the aggregate would have, as a multi-record aggregate, with `record` added.
    pub fn size_with(&self, record: &UserRecord) -> usize {
        self.plan(record).size
    }

    /// Where `record`'s keys go in the tables (known index or a new one) and the size the
    /// aggregate would have with it: one lookup per key, shared by the size check and the add.
    fn plan(&self, record: &UserRecord) -> Plan {
        let mut body = self.body_len;
        let partition_key = match self.partition_keys.get(&record.partition_key) {
            Some(i) => Slot::Known(i),
            None => {
                body += table_entry_len(record.partition_key.len());
                Slot::New(self.partition_keys.len() as u64)
            }
        };
        let explicit_hash_key =
            record
                .explicit_hash_key
                .as_ref()
                .map(|ehk| match self.explicit_hash_keys.get(ehk) {
                    Some(i) => Slot::Known(i),
                    None => {
                        body += table_entry_len(ehk.len());
                        Slot::New(self.explicit_hash_keys.len() as u64)
                    }
                });
        let record_len = record_body_len(
            partition_key.index(),
            explicit_hash_key.map(Slot::index),
            record.data.len(),
        );
        body += 1 + encoded_len_varint(record_len as u64) + record_len;
        let aggregate_partition_key = if self.partition_keys.is_empty() {
            record.partition_key.len()
        } else {
            self.partition_keys.key(0).len()
        };
        Plan {
            partition_key,
            explicit_hash_key,
            body_len: body,
            size: FRAMING_LEN + body + aggregate_partition_key,
        }
    }

    /// Adds a validated user record whose effective hash key is `hash_key`.
    ///
    /// Refuses it, leaving the aggregator unchanged, when the aggregate would exceed the limit
    /// and already holds a record.
    pub fn try_add(
        &mut self,
        record: &UserRecord,
        hash_key: HashKey,
    ) -> Result<(), AggregationError> {
        let plan = self.plan(record);
        if self.count == 0 {
            self.first_hash_key = hash_key;
        } else if plan.size > self.limit {
            return Err(AggregationError::AggregateFull {
                size: plan.size,
                limit: self.limit,
            });
        }
        if let Slot::New(_) = plan.partition_key {
            self.partition_keys.push(&record.partition_key);
        }
        if let (Some(Slot::New(_)), Some(ehk)) = (plan.explicit_hash_key, &record.explicit_hash_key)
        {
            self.explicit_hash_keys.push(ehk);
        }
        self.body_len = plan.body_len;
        let partition_key_index = plan.partition_key.index();
        let explicit_hash_key_index = plan.explicit_hash_key.map(Slot::index);
        if self.count == 0 {
            self.first = Some(First {
                explicit_hash_key_index,
                data: record.data.clone(),
            });
        }
        let len = record_body_len(
            partition_key_index,
            explicit_hash_key_index,
            record.data.len(),
        );
        if self.records.capacity() == 0 {
            // Freed when the last aggregate was emitted: take as much as it took at once.
            self.records = BytesMut::with_capacity(self.last.0);
            self.data_spans.reserve_exact(self.last.1.max(1));
        }
        let out = &mut self.records;
        out.reserve(len + 1 + encoded_len_varint(len as u64));
        out.put_u8(KEY_RECORDS);
        encode_varint(len as u64, out);
        out.put_u8(KEY_RECORD_PARTITION_KEY_INDEX);
        encode_varint(partition_key_index, out);
        if let Some(i) = explicit_hash_key_index {
            out.put_u8(KEY_RECORD_EXPLICIT_HASH_KEY_INDEX);
            encode_varint(i, out);
        }
        out.put_u8(KEY_RECORD_DATA);
        encode_varint(record.data.len() as u64, out);
        // Within 1 MiB (the limit), so both fit a u32.
        self.data_spans
            .push((out.len() as u32, record.data.len() as u32));
        out.put_slice(&record.data);
        self.count += 1;
        Ok(())
    }

    /// Emits what was collected and empties the aggregator; `None` when it is empty.
    ///
    /// One record comes out as the plain record it was; several come out as one aggregate
    /// keyed by the first record's partition key, with the first record's hash key as its
    /// explicit hash key so that it lands on the shard all of them map to.
    pub fn finish(&mut self) -> Option<KinesisRecord> {
        self.finish_sharing(|_| {})
    }

    /// Like [`Aggregator::finish`], and calls `each_data` with each user record's data, in
    /// the order they were added, as a slice of the emitted record's data: no copy. A caller
    /// that keeps the user records until the aggregate is put can swap their data for these
    /// slices, so the bytes are held once instead of twice.
    pub fn finish_sharing(&mut self, mut each_data: impl FnMut(Bytes)) -> Option<KinesisRecord> {
        let record = match (self.count, &self.first) {
            (0, _) | (_, None) => None,
            (1, Some(first)) => Some(KinesisRecord {
                partition_key: self.partition_keys.key(0).to_owned(),
                explicit_hash_key: first
                    .explicit_hash_key_index
                    .map(|i| self.explicit_hash_keys.key(i as usize).to_owned()),
                data: first.data.clone(),
            }),
            _ => {
                let (data, records_at) = self.encode();
                for &(at, len) in &self.data_spans {
                    let start = records_at + at as usize;
                    each_data(data.slice(start..start + len as usize));
                }
                Some(KinesisRecord {
                    partition_key: self.partition_keys.key(0).to_owned(),
                    explicit_hash_key: Some(self.first_hash_key.to_string()),
                    data,
                })
            }
        };
        if let (Some(record), 1) = (&record, self.count) {
            each_data(record.data.clone());
        }
        self.clear();
        record
    }

    /// Drops everything collected. Buffers that grew past 4 KiB of records are freed: an
    /// empty aggregator holds little memory (a producer keeps one per shard, and thousands
    /// of shards are common). The next record then reserves what the last aggregate took,
    /// so a busy aggregator allocates each buffer once per aggregate, at its size, and one
    /// that emits small aggregates keeps reusing its small buffers.
    pub fn clear(&mut self) {
        if self.records.capacity() > KEPT_BYTES {
            self.last = (self.records.len(), self.data_spans.len());
            self.records = BytesMut::new();
            self.data_spans = Vec::new();
            self.partition_keys.release();
            self.explicit_hash_keys.release();
        } else {
            self.records.clear();
            self.data_spans.clear();
            self.partition_keys.clear();
            self.explicit_hash_keys.clear();
        }
        self.count = 0;
        self.first = None;
        self.body_len = 0;
        self.first_hash_key = HashKey::MIN;
    }

    /// The aggregated bytes: magic, protobuf body, MD5 of the body; and where the records
    /// field starts in them.
    fn encode(&self) -> (Bytes, usize) {
        let mut out = BytesMut::with_capacity(FRAMING_LEN + self.body_len);
        out.put_slice(&MAGIC);
        for key in self.partition_keys.iter() {
            out.put_u8(KEY_PARTITION_KEY_TABLE);
            encode_varint(key.len() as u64, &mut out);
            out.put_slice(key.as_bytes());
        }
        for key in self.explicit_hash_keys.iter() {
            out.put_u8(KEY_EXPLICIT_HASH_KEY_TABLE);
            encode_varint(key.len() as u64, &mut out);
            out.put_slice(key.as_bytes());
        }
        let records_at = out.len();
        out.put_slice(&self.records);
        debug_assert_eq!(out.len(), MAGIC.len() + self.body_len);
        let checksum = Md5::digest(&out[MAGIC.len()..]);
        out.put_slice(&checksum);
        (out.freeze(), records_at)
    }
}

#[cfg(test)]
mod tests;
