//! Splitting Kinesis records back into user records, as KCL does.

use bytes::Bytes;
use md5::{Digest, Md5};
use prost::Message;

use super::proto::AggregatedRecord;
use super::{CHECKSUM_LEN, FRAMING_LEN, MAGIC};

/// A user record recovered from a Kinesis record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeaggregatedRecord {
    /// The user record's partition key.
    pub partition_key: String,
    /// The user record's explicit hash key, if it was sent with one.
    pub explicit_hash_key: Option<String>,
    /// The payload.
    pub data: Bytes,
    /// Position inside its aggregate (0 for a plain record).
    pub sub_sequence_number: u64,
}

/// Why a Kinesis record could not be read as an aggregate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeaggregationError {
    /// The record does not start with the KPL magic bytes: it is a plain record.
    #[error("record is not aggregated (no KPL magic)")]
    NotAggregated,
    /// The record has the magic but is too short to hold a checksum.
    #[error("aggregated record is {len} bytes, shorter than its {min}-byte framing")]
    TooShort {
        /// Bytes in the record.
        len: usize,
        /// Smallest possible aggregate.
        min: usize,
    },
    /// The MD5 at the end does not match the protobuf body.
    #[error("aggregated record checksum does not match its body")]
    ChecksumMismatch,
    /// The body is not a valid `AggregatedRecord` protobuf.
    #[error("aggregated record body is not a valid protobuf: {reason}")]
    Malformed {
        /// What the protobuf decoder reported.
        reason: String,
    },
    /// A valid aggregate that holds no user record. Passed through rather than dropped, so
    /// that no record ever vanishes silently.
    #[error("aggregated record holds no user records")]
    Empty,
    /// A user record points past the end of a key table.
    #[error("user record {record} has {table} index {index}, but the table has {len} entries")]
    IndexOutOfRange {
        /// Position of the offending user record.
        record: usize,
        /// Which table: `partition_key` or `explicit_hash_key`.
        table: &'static str,
        /// The index found.
        index: u64,
        /// Entries in the table.
        len: usize,
    },
}

/// The outcome of [`deaggregate`]: the user records, and whether the input was an aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deaggregation {
    /// The user records in order. A plain or corrupt input yields exactly one.
    pub records: Vec<DeaggregatedRecord>,
    /// Whether the input was a valid aggregate.
    pub aggregated: bool,
    /// Why an input carrying the magic bytes was passed through whole, if it was.
    pub corrupt: Option<DeaggregationError>,
}

/// Decodes an aggregated record strictly, failing on anything that is not a valid aggregate.
pub fn decode_aggregate(data: &Bytes) -> Result<Vec<DeaggregatedRecord>, DeaggregationError> {
    if data.len() < MAGIC.len() || data[..MAGIC.len()] != MAGIC {
        return Err(DeaggregationError::NotAggregated);
    }
    if data.len() < FRAMING_LEN {
        return Err(DeaggregationError::TooShort {
            len: data.len(),
            min: FRAMING_LEN,
        });
    }
    let body = data.slice(MAGIC.len()..data.len() - CHECKSUM_LEN);
    let checksum = &data[data.len() - CHECKSUM_LEN..];
    if Md5::digest(&body)[..] != *checksum {
        return Err(DeaggregationError::ChecksumMismatch);
    }
    let aggregate = AggregatedRecord::decode(body).map_err(|e| DeaggregationError::Malformed {
        reason: e.to_string(),
    })?;

    if aggregate.records.is_empty() {
        return Err(DeaggregationError::Empty);
    }
    let AggregatedRecord {
        partition_key_table,
        explicit_hash_key_table,
        records,
    } = aggregate;
    records
        .into_iter()
        .enumerate()
        .map(|(i, record)| {
            let partition_key = lookup(
                &partition_key_table,
                record.partition_key_index,
                i,
                "partition_key",
            )?;
            let explicit_hash_key = record
                .explicit_hash_key_index
                .map(|idx| lookup(&explicit_hash_key_table, idx, i, "explicit_hash_key"))
                .transpose()?;
            Ok(DeaggregatedRecord {
                partition_key,
                explicit_hash_key,
                data: record.data,
                sub_sequence_number: i as u64,
            })
        })
        .collect()
}

fn lookup(
    table: &[String],
    index: u64,
    record: usize,
    name: &'static str,
) -> Result<String, DeaggregationError> {
    usize::try_from(index)
        .ok()
        .and_then(|i| table.get(i))
        .cloned()
        .ok_or(DeaggregationError::IndexOutOfRange {
            record,
            table: name,
            index,
            len: table.len(),
        })
}

/// Splits a Kinesis record into user records with KCL's semantics.
///
/// A record without the KPL magic passes through as one record with sub-sequence 0. So does a
/// record with the magic that is too short, fails its checksum or does not parse; then
/// [`Deaggregation::corrupt`] says why, so the caller can count and log it. A valid aggregate
/// yields its user records with sub-sequence numbers 0, 1, 2, … in order.
pub fn deaggregate(
    partition_key: &str,
    explicit_hash_key: Option<&str>,
    data: Bytes,
) -> Deaggregation {
    match decode_aggregate(&data) {
        Ok(records) => Deaggregation {
            records,
            aggregated: true,
            corrupt: None,
        },
        Err(error) => Deaggregation {
            records: vec![DeaggregatedRecord {
                partition_key: partition_key.to_owned(),
                explicit_hash_key: explicit_hash_key.map(str::to_owned),
                data,
                sub_sequence_number: 0,
            }],
            aggregated: false,
            corrupt: (error != DeaggregationError::NotAggregated).then_some(error),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregation::Aggregator;
    use crate::record::{DEFAULT_MAX_RECORD_BYTES, UserRecord};

    fn aggregate(records: &[UserRecord]) -> Bytes {
        let mut agg = Aggregator::default();
        for r in records {
            agg.try_add(r, r.validate(DEFAULT_MAX_RECORD_BYTES).unwrap())
                .unwrap();
        }
        agg.finish().unwrap().data
    }

    #[test]
    fn plain_records_pass_through() {
        let d = deaggregate("pk", Some("5"), Bytes::from_static(b"plain"));
        assert!(!d.aggregated);
        assert_eq!(d.corrupt, None);
        assert_eq!(d.records.len(), 1);
        assert_eq!(d.records[0].data, "plain");
        assert_eq!(d.records[0].explicit_hash_key.as_deref(), Some("5"));
    }

    #[test]
    fn aggregates_yield_sub_sequence_numbers() {
        let data = aggregate(&[
            UserRecord::new("a", "1"),
            UserRecord::new("b", "2").with_explicit_hash_key("7"),
            UserRecord::new("a", "3"),
        ]);
        let d = deaggregate("a", None, data);
        assert!(d.aggregated);
        let got: Vec<_> = d
            .records
            .iter()
            .map(|r| {
                (
                    r.partition_key.as_str(),
                    r.explicit_hash_key.as_deref(),
                    &r.data[..],
                    r.sub_sequence_number,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("a", None, &b"1"[..], 0),
                ("b", Some("7"), &b"2"[..], 1),
                ("a", None, &b"3"[..], 2)
            ]
        );
    }

    #[test]
    fn corrupt_aggregates_pass_through_whole_with_a_reason() {
        let good = aggregate(&[UserRecord::new("a", "1"), UserRecord::new("b", "2")]);

        let mut bad_sum = good.to_vec();
        let last = bad_sum.len() - 1;
        bad_sum[last] ^= 0xFF;
        let d = deaggregate("a", None, bad_sum.clone().into());
        assert_eq!(d.corrupt, Some(DeaggregationError::ChecksumMismatch));
        assert_eq!(d.records.len(), 1);
        assert_eq!(d.records[0].data, bad_sum);

        let short = Bytes::from(MAGIC[..].to_vec());
        assert!(matches!(
            deaggregate("a", None, short).corrupt,
            Some(DeaggregationError::TooShort { len: 4, .. })
        ));

        // A body that is not protobuf, with a correct checksum.
        let body = [0xFFu8, 0xFF, 0xFF];
        let mut junk = MAGIC.to_vec();
        junk.extend_from_slice(&body);
        junk.extend_from_slice(&Md5::digest(body));
        assert!(matches!(
            deaggregate("a", None, junk.into()).corrupt,
            Some(DeaggregationError::Malformed { .. })
        ));
    }

    #[test]
    fn empty_aggregate_passes_through() {
        let mut data = MAGIC.to_vec();
        data.extend_from_slice(&Md5::digest(b""));
        let d = deaggregate("a", None, data.into());
        assert_eq!(d.corrupt, Some(DeaggregationError::Empty));
        assert_eq!(d.records.len(), 1);
    }

    #[test]
    fn dangling_table_index_is_corrupt() {
        let body = AggregatedRecord {
            partition_key_table: vec!["a".into()],
            explicit_hash_key_table: vec![],
            records: vec![crate::aggregation::Record {
                partition_key_index: 3,
                explicit_hash_key_index: None,
                data: Bytes::from_static(b"x"),
                tags: vec![],
            }],
        }
        .encode_to_vec();
        let mut data = MAGIC.to_vec();
        data.extend_from_slice(&body);
        data.extend_from_slice(&Md5::digest(&body));
        assert_eq!(
            decode_aggregate(&data.into()),
            Err(DeaggregationError::IndexOutOfRange {
                record: 0,
                table: "partition_key",
                index: 3,
                len: 1
            })
        );
    }
}
