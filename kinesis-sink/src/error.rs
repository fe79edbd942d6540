//! The sink's errors: bad settings, records that cannot be delivered as asked, failed writes.

/// A setting out of range, a prefix template that does not parse, or an object that could not
/// be written within the retry duration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// A setting outside its allowed range.
    #[error("{setting} = {value}: {reason}")]
    InvalidSetting {
        /// The setting's name, as the builder spells it.
        setting: &'static str,
        /// The value given.
        value: String,
        /// The allowed range.
        reason: &'static str,
    },
    /// A destination that cannot be used: `s3://` without a bucket, or an S3 client that
    /// could not be configured from the environment.
    #[error("destination {destination:?}: {reason}")]
    InvalidDestination {
        /// What was given.
        destination: String,
        /// Why it does not work.
        reason: String,
    },
    /// A prefix template with an unknown expression or time pattern.
    #[error("prefix {template:?}: {reason}")]
    InvalidPrefix {
        /// The template given.
        template: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Writing an object failed for the whole retry duration (or with an error that retrying
    /// cannot fix). Its records were not checkpointed: they are delivered again.
    #[error("writing {key} failed after {attempts} attempt(s): {source}")]
    Write {
        /// The object's key.
        key: String,
        /// Attempts made.
        attempts: u32,
        /// The store's last error.
        #[source]
        source: object_store::Error,
    },
    /// The sink was shut down, so a shard's records can no longer be delivered.
    #[error("the sink is shut down")]
    ShutDown,
}

/// Why one record went to the error prefix instead of its object. Written with the record
/// (base64), never dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The user's transformation refused the record.
    #[error("transformation failed: {reason}")]
    Transform {
        /// The transformation's reason.
        reason: String,
    },
    /// The user's partitioning function refused the record, or gave a key that the prefix
    /// needs but did not give, or a value that cannot be part of an object key.
    #[error("partitioning failed: {reason}")]
    Partition {
        /// What went wrong.
        reason: String,
    },
    /// The record cannot be written in the output format (for example a raw record that
    /// contains the delimiter, which would split it in two when read back).
    #[error("format conversion failed: {reason}")]
    Format {
        /// What went wrong.
        reason: String,
    },
}

impl RecordError {
    /// Firehose's name for the kind of failure, used in error prefixes as
    /// `!{firehose:error-output-type}`.
    pub fn output_type(&self) -> &'static str {
        match self {
            RecordError::Transform { .. } => "processing-failed",
            RecordError::Partition { .. } => "partitioning-failed",
            RecordError::Format { .. } => "format-conversion-failed",
        }
    }
}
