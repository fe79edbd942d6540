//! Errors shared by producer and consumer, and the one place that decides what is retryable.
//!
//! Every failure of a Kinesis or DynamoDB call falls into one [`ErrorKind`]:
//!
//! | kind | examples | what to do |
//! | --- | --- | --- |
//! | [`ErrorKind::Throttling`] | `ProvisionedThroughputExceededException`, `LimitExceededException`, `KMSThrottlingException` | back off and slow down; not a failure |
//! | [`ErrorKind::Transient`] | `InternalFailure`, HTTP 5xx, timeouts, dropped connections | retry with backoff |
//! | [`ErrorKind::Fatal`] | `ResourceNotFoundException`, `AccessDeniedException`, `ValidationException` | give up at once, report |
//!
//! [`classify_sdk_error`] applies that table to any `aws-sdk-kinesis` or `aws-sdk-dynamodb`
//! error, and [`classify_code`] to the per-entry `ErrorCode` of a PutRecords response.

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// What a failure means for the caller: back off, retry, or give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The service asked us to slow down. Retry after a backoff and lower the send rate.
    Throttling,
    /// A passing fault: a 5xx, a timeout, a dropped connection. Retry after a backoff.
    Transient,
    /// Retrying cannot help: bad request, missing resource, denied credentials.
    Fatal,
}

impl ErrorKind {
    /// Whether a retry may succeed.
    pub fn is_retryable(self) -> bool {
        !matches!(self, ErrorKind::Fatal)
    }
}

/// Error codes that mean "slow down". Kinesis and DynamoDB use several spellings.
const THROTTLING_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "LimitExceededException",
    "KMSThrottlingException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "SlowDown",
];

/// Error codes for faults on the service side that a retry may clear.
const TRANSIENT_CODES: &[&str] = &[
    "InternalFailure",
    "InternalFailureException",
    "InternalServerError",
    "InternalServerErrorException",
    "InternalError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "KMSInternalException",
    "TransactionInProgressException",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// Classifies a service error code, with the HTTP status when it is known.
///
/// Codes may arrive with a namespace prefix (`com.amazonaws.dynamodb.v20120810#…`); only the
/// part after `#` counts. An unknown code is transient on a 5xx status and fatal otherwise.
pub fn classify_code(code: &str, http_status: Option<u16>) -> ErrorKind {
    let code = code.rsplit('#').next().unwrap_or(code);
    if THROTTLING_CODES.contains(&code) {
        ErrorKind::Throttling
    } else if TRANSIENT_CODES.contains(&code) {
        ErrorKind::Transient
    } else if http_status.is_some_and(|s| s == 429) {
        ErrorKind::Throttling
    } else if http_status.is_some_and(|s| s >= 500) {
        ErrorKind::Transient
    } else {
        ErrorKind::Fatal
    }
}

/// What [`classify_sdk_error`] found out about an SDK error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    /// Throttling, transient or fatal.
    pub kind: ErrorKind,
    /// The service's error code, when the service answered with one.
    pub code: Option<String>,
    /// The HTTP status, when a response arrived.
    pub http_status: Option<u16>,
}

/// Classifies any `aws-sdk-kinesis` or `aws-sdk-dynamodb` error.
///
/// Timeouts, I/O failures and malformed or cut-off responses are transient; a request the SDK
/// could not even build, or a dispatch failure caused by the caller's configuration, is fatal.
pub fn classify_sdk_error<E>(err: &SdkError<E, HttpResponse>) -> Classification
where
    E: ProvideErrorMetadata,
{
    let http_status = err.raw_response().map(|r| r.status().as_u16());
    let (kind, code) = match err {
        SdkError::ConstructionFailure(_) => (ErrorKind::Fatal, None),
        SdkError::TimeoutError(_) => (ErrorKind::Transient, None),
        SdkError::DispatchFailure(failure) => {
            let kind = if failure.is_user() {
                ErrorKind::Fatal
            } else {
                ErrorKind::Transient
            };
            (kind, None)
        }
        SdkError::ResponseError(_) => (ErrorKind::Transient, None),
        SdkError::ServiceError(service) => {
            let code = service.err().code().map(str::to_owned);
            let kind = match &code {
                Some(code) => classify_code(code, http_status),
                None => classify_code("", http_status),
            };
            (kind, code)
        }
        _ => (ErrorKind::Transient, None),
    };
    Classification {
        kind,
        code,
        http_status,
    }
}

/// Any error a boxed source can hold.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A Kinesis or DynamoDB call that failed, classified.
#[derive(Debug, thiserror::Error)]
#[error("{operation} failed ({kind:?}{code_part}): {message}", code_part = self.code.as_deref().map(|c| format!(", {c}")).unwrap_or_default())]
pub struct ServiceError {
    /// The API operation, e.g. `PutRecords`.
    pub operation: &'static str,
    /// Throttling, transient or fatal.
    pub kind: ErrorKind,
    /// The service's error code, when it answered with one.
    pub code: Option<String>,
    /// The HTTP status, when a response arrived.
    pub http_status: Option<u16>,
    /// What went wrong, in words.
    pub message: String,
    /// The SDK error.
    #[source]
    pub source: Option<BoxError>,
}

impl ServiceError {
    /// A call that got no answer within `timeout` (the caller's own bound on the call):
    /// transient, code `RequestTimeout`, no HTTP status.
    pub fn timed_out(operation: &'static str, timeout: std::time::Duration) -> Self {
        ServiceError {
            operation,
            kind: ErrorKind::Transient,
            code: Some("RequestTimeout".into()),
            http_status: None,
            message: format!("no answer within {timeout:?}"),
            source: None,
        }
    }

    /// Wraps and classifies an SDK error.
    pub fn from_sdk<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let Classification {
            kind,
            code,
            http_status,
        } = classify_sdk_error(&err);
        let message = match &err {
            SdkError::ServiceError(service) => service
                .err()
                .message()
                .map(str::to_owned)
                .unwrap_or_else(|| service.err().to_string()),
            other => aws_smithy_types::error::display::DisplayErrorContext(other).to_string(),
        };
        ServiceError {
            operation,
            kind,
            code,
            http_status,
            message,
            source: Some(Box::new(err)),
        }
    }

    /// A request that could not be built; always fatal.
    pub fn construction(operation: &'static str, err: impl Into<BoxError>) -> Self {
        let source = err.into();
        ServiceError {
            operation,
            kind: ErrorKind::Fatal,
            code: None,
            http_status: None,
            message: source.to_string(),
            source: Some(source),
        }
    }

    /// Throttling, transient or fatal.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether a retry may succeed.
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }

    /// Whether the service reported this error code.
    pub fn has_code(&self, code: &str) -> bool {
        self.code
            .as_deref()
            .is_some_and(|c| c.rsplit('#').next() == Some(code))
    }
}

pub use kinesis_agg::InputError;

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_kinesis::error::ErrorMetadata;
    use aws_sdk_kinesis::operation::put_records::PutRecordsError;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_types::body::SdkBody;

    #[test]
    fn a_call_without_an_answer_is_transient_and_retryable() {
        let e = ServiceError::timed_out("PutRecords", std::time::Duration::from_secs(3));
        assert_eq!(e.kind, ErrorKind::Transient);
        assert_eq!(e.code.as_deref(), Some("RequestTimeout"));
        assert_eq!(e.http_status, None);
        assert!(e.to_string().contains("3s"), "{e}");
    }

    fn service_error(code: &str, status: u16) -> SdkError<PutRecordsError, HttpResponse> {
        let meta = ErrorMetadata::builder().code(code).message("m").build();
        let err = PutRecordsError::generic(meta);
        let raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
        SdkError::service_error(err, raw)
    }

    #[test]
    fn codes_map_to_kinds() {
        assert_eq!(
            classify_code("ProvisionedThroughputExceededException", Some(400)),
            ErrorKind::Throttling
        );
        assert_eq!(
            classify_code(
                "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                Some(400)
            ),
            ErrorKind::Throttling
        );
        assert_eq!(
            classify_code("KMSThrottlingException", None),
            ErrorKind::Throttling
        );
        assert_eq!(
            classify_code("InternalFailure", Some(500)),
            ErrorKind::Transient
        );
        assert_eq!(classify_code("Whatever", Some(503)), ErrorKind::Transient);
        assert_eq!(classify_code("Whatever", Some(429)), ErrorKind::Throttling);
        assert_eq!(
            classify_code("ResourceNotFoundException", Some(400)),
            ErrorKind::Fatal
        );
        assert_eq!(
            classify_code("AccessDeniedException", Some(400)),
            ErrorKind::Fatal
        );
        assert_eq!(
            classify_code("ValidationException", Some(400)),
            ErrorKind::Fatal
        );
    }

    #[test]
    fn sdk_errors_are_classified() {
        let c = classify_sdk_error(&service_error(
            "ProvisionedThroughputExceededException",
            400,
        ));
        assert_eq!(c.kind, ErrorKind::Throttling);
        assert_eq!(
            c.code.as_deref(),
            Some("ProvisionedThroughputExceededException")
        );
        assert_eq!(c.http_status, Some(400));

        let c = classify_sdk_error(&service_error("ResourceNotFoundException", 400));
        assert_eq!(c.kind, ErrorKind::Fatal);
        assert!(!c.kind.is_retryable());

        let c = classify_sdk_error(&service_error("InternalFailure", 500));
        assert_eq!(c.kind, ErrorKind::Transient);

        let io: SdkError<PutRecordsError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::io("connection reset".into()));
        assert_eq!(classify_sdk_error(&io).kind, ErrorKind::Transient);

        let user: SdkError<PutRecordsError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::user("bad endpoint".into()));
        assert_eq!(classify_sdk_error(&user).kind, ErrorKind::Fatal);

        let timeout: SdkError<PutRecordsError, HttpResponse> = SdkError::timeout_error("too slow");
        assert_eq!(classify_sdk_error(&timeout).kind, ErrorKind::Transient);

        let wrapped = ServiceError::from_sdk(
            "PutRecords",
            service_error("ResourceNotFoundException", 400),
        );
        assert!(wrapped.has_code("ResourceNotFoundException"));
        assert!(!wrapped.is_retryable());
        assert_eq!(wrapped.message, "m");
        assert!(wrapped.to_string().contains("PutRecords failed"));
    }
}
