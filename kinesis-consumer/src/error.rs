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
    /// The application's tables serve another stream: two applications (or one pointed at
    /// another stream) must not share a lease table. Use another application name or
    /// `lease_table_name`.
    #[error("table {table} belongs to stream {recorded}, not {stream}")]
    TableOfAnotherStream {
        /// The coordinator-state table holding the record.
        table: String,
        /// The stream this worker was given (its ARN).
        stream: String,
        /// The stream the tables were made for (its ARN).
        recorded: String,
    },
    /// The application's tables belong to another application (given the same
    /// `lease_table_name`): two applications must not share a lease table.
    #[error("table {table} belongs to application {recorded}, not {application}")]
    TableOfAnotherApplication {
        /// The coordinator-state table holding the record.
        table: String,
        /// This worker's application.
        application: String,
        /// The application the tables were made for.
        recorded: String,
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
