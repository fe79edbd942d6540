//! What can go wrong with a record, and how the record comes back.

use std::time::Duration;

use kinesis_common::{ErrorKind, InputError, ServiceError, UserRecord};

/// Why a record was not put.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProduceError {
    /// The record breaks a Kinesis rule; nothing was sent.
    #[error("invalid record: {source}")]
    InvalidRecord {
        /// What is wrong with it.
        #[source]
        source: InputError,
    },
    /// The record was not acknowledged within its time to live.
    #[error("record expired after {ttl:?} and {attempts} attempt(s){}", last_error.as_deref().map(|e| format!("; last error: {e}")).unwrap_or_default())]
    Expired {
        /// The configured record TTL.
        ttl: Duration,
        /// PutRecords attempts made for it.
        attempts: u32,
        /// The last error seen, if any.
        last_error: Option<String>,
    },
    /// Kinesis throttled the record and the producer was told to fail fast on throttling.
    #[error("throttled by Kinesis ({code}) and fail-fast on throttling is on")]
    Throttled {
        /// The error code, e.g. `ProvisionedThroughputExceededException`.
        code: String,
    },
    /// Kinesis answered with an error that retrying cannot fix (stream missing, access denied…).
    #[error("Kinesis rejected the record: {source}")]
    Service {
        /// The classified service error.
        #[source]
        source: ServiceError,
    },
    /// A PutRecords entry failed with an error that retrying cannot fix.
    #[error("Kinesis rejected the record: {code}: {message}")]
    Rejected {
        /// The entry's `ErrorCode`.
        code: String,
        /// The entry's `ErrorMessage`.
        message: String,
    },
    /// The producer was shut down or dropped before the record was put.
    #[error("the producer is shut down")]
    ShutDown,
    /// `try_send` found no room under the outstanding-records or -bytes bound, or the record's
    /// shard has more queued than it can send in time (where `send` would wait).
    #[error(
        "the producer is full: {outstanding_records} records / {outstanding_bytes} bytes outstanding"
    )]
    Full {
        /// Records sent but not yet resolved.
        outstanding_records: usize,
        /// Bytes sent but not yet resolved.
        outstanding_bytes: usize,
    },
}

impl ProduceError {
    /// Throttling, transient or fatal: whether sending the record again may work.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ProduceError::InvalidRecord { .. }
            | ProduceError::Rejected { .. }
            | ProduceError::ShutDown => ErrorKind::Fatal,
            ProduceError::Service { source } => source.kind(),
            ProduceError::Throttled { .. } | ProduceError::Full { .. } => ErrorKind::Throttling,
            ProduceError::Expired { .. } => ErrorKind::Transient,
        }
    }

    /// Whether sending the same record again may succeed.
    pub fn is_retryable(&self) -> bool {
        self.kind().is_retryable()
    }
}

/// A record that was not put, handed back with the reason.
#[derive(Debug)]
pub struct PutError {
    // Boxed: results travel through every future, and failures are the rare case.
    inner: Box<(UserRecord, ProduceError)>,
}

impl PutError {
    pub(crate) fn new(record: UserRecord, reason: ProduceError) -> Self {
        PutError {
            inner: Box::new((record, reason)),
        }
    }

    /// Why the record was not put.
    pub fn reason(&self) -> &ProduceError {
        &self.inner.1
    }

    /// The record, to send again or keep elsewhere.
    pub fn record(&self) -> &UserRecord {
        &self.inner.0
    }

    /// Takes the record back.
    pub fn into_record(self) -> UserRecord {
        self.inner.0
    }

    /// Splits into record and reason.
    pub fn into_parts(self) -> (UserRecord, ProduceError) {
        *self.inner
    }

    /// Whether sending the record again may succeed.
    pub fn is_retryable(&self) -> bool {
        self.reason().is_retryable()
    }
}

impl std::fmt::Display for PutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self.reason(), f)
    }
}

impl std::error::Error for PutError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.reason())
    }
}
