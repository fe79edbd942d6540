//! The one error of the codec: user input Kinesis would refuse.

/// A user record that cannot be sent as it is. Nothing was sent; fix the input and try again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The partition key is the empty string; Kinesis needs 1 to 256 characters.
    #[error("partition key is empty; Kinesis needs 1 to 256 characters")]
    EmptyPartitionKey,
    /// The partition key has more than 256 Unicode characters.
    #[error("partition key has {chars} characters; Kinesis allows at most {max}")]
    PartitionKeyTooLong {
        /// Characters in the key.
        chars: usize,
        /// The limit, 256.
        max: usize,
    },
    /// Data plus partition key exceed the record size limit.
    #[error("record is {size} bytes (data + partition key); the limit is {max}")]
    RecordTooLarge {
        /// Data bytes plus partition key bytes.
        size: usize,
        /// The configured record size limit.
        max: usize,
    },
    /// The explicit hash key is not a decimal integer in [0, 2^128 − 1].
    #[error("explicit hash key {value:?} is invalid: {reason}")]
    InvalidExplicitHashKey {
        /// The rejected value (cut to 64 characters).
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },
}
