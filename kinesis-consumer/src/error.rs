//! Errors that stop a worker.

use kinesis_common::ServiceError;

/// Why a worker stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsumerError {
    /// The lease table could not be created or read.
    #[error("lease table {table}: {source}")]
    LeaseTable {
        /// The table.
        table: String,
        /// The classified DynamoDB error.
        #[source]
        source: ServiceError,
    },
    /// The enhanced fan-out consumer could not be registered or described.
    #[error("stream consumer {consumer}: {source}")]
    StreamConsumer {
        /// The consumer's name.
        consumer: String,
        /// The classified Kinesis error.
        #[source]
        source: ServiceError,
    },
    /// The stream could not be read (missing, or access denied).
    #[error("stream {stream}: {source}")]
    Stream {
        /// The stream.
        stream: String,
        /// The classified Kinesis error.
        #[source]
        source: ServiceError,
    },
}
