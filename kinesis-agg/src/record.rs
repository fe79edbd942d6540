//! Record types shared by producer and consumer, and validation of user input.

use bytes::Bytes;

use crate::error::InputError;
use crate::hash_key::HashKey;

/// Most Unicode characters a partition key may have.
pub const MAX_PARTITION_KEY_CHARS: usize = 256;
/// Default largest record Kinesis accepts: data plus partition key, 1 MiB.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1024 * 1024;
/// Largest record size a stream can be raised to with UpdateMaxRecordSize, 10 MiB.
pub const MAX_RECORD_BYTES_LIMIT: usize = 10 * 1024 * 1024;

/// A record as the user hands it to the producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Decides the shard (through its MD5) unless an explicit hash key is given; 1–256 characters.
    pub partition_key: String,
    /// A decimal hash key in [0, 2^128 − 1] that overrides the partition key's hash.
    pub explicit_hash_key: Option<String>,
    /// The payload.
    pub data: Bytes,
}

impl UserRecord {
    /// A record routed by its partition key.
    pub fn new(partition_key: impl Into<String>, data: impl Into<Bytes>) -> Self {
        UserRecord {
            partition_key: partition_key.into(),
            explicit_hash_key: None,
            data: data.into(),
        }
    }

    /// Routes the record by an explicit hash key instead of its partition key's hash.
    pub fn with_explicit_hash_key(mut self, explicit_hash_key: impl Into<String>) -> Self {
        self.explicit_hash_key = Some(explicit_hash_key.into());
        self
    }

    /// Bytes the shard's write limit counts for this record sent alone: data plus partition key.
    pub fn size(&self) -> usize {
        self.data.len() + self.partition_key.len()
    }

    /// Checks the record against Kinesis's rules and returns its effective hash key.
    ///
    /// `max_record_bytes` bounds data plus partition key (1 MiB unless the stream was raised).
    pub fn validate(&self, max_record_bytes: usize) -> Result<HashKey, InputError> {
        validate_partition_key(&self.partition_key)?;
        let size = self.size();
        if size > max_record_bytes {
            return Err(InputError::RecordTooLarge {
                size,
                max: max_record_bytes,
            });
        }
        match &self.explicit_hash_key {
            Some(ehk) => HashKey::parse_explicit(ehk),
            None => Ok(HashKey::from_partition_key(&self.partition_key)),
        }
    }
}

/// Checks that a partition key has 1 to 256 Unicode characters.
pub fn validate_partition_key(partition_key: &str) -> Result<(), InputError> {
    if partition_key.is_empty() {
        return Err(InputError::EmptyPartitionKey);
    }
    // Byte length bounds the character count from above; count only when it might be too long.
    if partition_key.len() > MAX_PARTITION_KEY_CHARS {
        let chars = partition_key.chars().count();
        if chars > MAX_PARTITION_KEY_CHARS {
            return Err(InputError::PartitionKeyTooLong {
                chars,
                max: MAX_PARTITION_KEY_CHARS,
            });
        }
    }
    Ok(())
}

/// One entry of a PutRecords request: a plain user record or a KPL aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KinesisRecord {
    /// The entry's partition key.
    pub partition_key: String,
    /// The entry's explicit hash key; aggregates carry one inside their shard's range.
    pub explicit_hash_key: Option<String>,
    /// The entry's bytes (an aggregate starts with the KPL magic).
    pub data: Bytes,
}

impl KinesisRecord {
    /// Bytes the shard's write limit counts: data plus partition key.
    pub fn size(&self) -> usize {
        self.data.len() + self.partition_key.len()
    }
}

impl From<UserRecord> for KinesisRecord {
    fn from(record: UserRecord) -> Self {
        KinesisRecord {
            partition_key: record.partition_key,
            explicit_hash_key: record.explicit_hash_key,
            data: record.data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_records_give_their_hash_key() {
        let r = UserRecord::new("abc", "x");
        assert_eq!(
            r.validate(DEFAULT_MAX_RECORD_BYTES).unwrap(),
            HashKey::from_partition_key("abc")
        );
        let r = UserRecord::new("abc", "x").with_explicit_hash_key("7");
        assert_eq!(r.validate(DEFAULT_MAX_RECORD_BYTES).unwrap(), HashKey(7));
    }

    #[test]
    fn partition_key_limits_count_characters_not_bytes() {
        let ok = "é".repeat(256); // 512 bytes, 256 characters
        assert!(
            UserRecord::new(ok, "x")
                .validate(DEFAULT_MAX_RECORD_BYTES)
                .is_ok()
        );
        let long = "k".repeat(257);
        assert_eq!(
            UserRecord::new(long, "x").validate(DEFAULT_MAX_RECORD_BYTES),
            Err(InputError::PartitionKeyTooLong {
                chars: 257,
                max: 256
            })
        );
        assert_eq!(
            UserRecord::new("", "x").validate(DEFAULT_MAX_RECORD_BYTES),
            Err(InputError::EmptyPartitionKey)
        );
    }

    #[test]
    fn size_counts_data_and_partition_key() {
        let max = DEFAULT_MAX_RECORD_BYTES;
        let fits = UserRecord::new("pk", vec![0u8; max - 2]);
        assert!(fits.validate(max).is_ok());
        let over = UserRecord::new("pk", vec![0u8; max - 1]);
        assert_eq!(
            over.validate(max),
            Err(InputError::RecordTooLarge { size: max + 1, max })
        );
    }

    #[test]
    fn malformed_explicit_hash_key_is_rejected() {
        let r = UserRecord::new("pk", "x").with_explicit_hash_key("-5");
        assert!(matches!(
            r.validate(DEFAULT_MAX_RECORD_BYTES),
            Err(InputError::InvalidExplicitHashKey { .. })
        ));
    }
}
