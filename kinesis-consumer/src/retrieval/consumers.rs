//! Enhanced fan-out's stream consumers: one per stream, named for the application's
//! consumer, found or registered the first time a shard of the stream is read, shared by
//! every shard of it, and deregistered on shutdown when asked.
//!
//! A fleet starting together would otherwise send hundreds of RegisterStreamConsumer calls
//! for one stream (AWS allows five a second per stream): each worker first asks
//! DescribeStreamConsumer, registers only when the consumer is missing, and waits out
//! throttling and transient failures until the consumer is ACTIVE.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_kinesis::types::ConsumerStatus;
use kinesis_common::backoff::Backoff;
use kinesis_common::stream::StreamRef;
use kinesis_common::{ErrorKind, ServiceError};
use tokio::sync::OnceCell;

/// How long registration waits for the consumer to become ACTIVE.
const REGISTRATION_TIMEOUT: Duration = Duration::from_secs(120);

/// The application's stream consumers, by stream.
#[derive(Debug)]
pub(crate) struct StreamConsumers {
    kinesis: aws_sdk_kinesis::Client,
    name: String,
    by_stream: Mutex<HashMap<String, Arc<OnceCell<String>>>>,
}

impl StreamConsumers {
    /// Consumers named `name`, none looked up yet.
    pub(crate) fn new(kinesis: aws_sdk_kinesis::Client, name: impl Into<String>) -> Self {
        Self {
            kinesis,
            name: name.into(),
            by_stream: Mutex::default(),
        }
    }

    /// The ARN of `stream`'s consumer, registering it on first use. Callers for the same
    /// stream wait for one lookup; a failed lookup is tried again by the next caller.
    pub(crate) async fn arn(&self, stream: &StreamRef) -> Result<String, ServiceError> {
        let cell = self
            .by_stream
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(stream.to_string())
            .or_default()
            .clone();
        cell.get_or_try_init(|| register(&self.kinesis, stream, &self.name))
            .await
            .cloned()
    }

    /// The ARNs found so far.
    pub(crate) fn registered(&self) -> Vec<String> {
        self.by_stream
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .values()
            .filter_map(|cell| cell.get().cloned())
            .collect()
    }

    /// Deregisters every consumer found (on shutdown, when asked: other instances of the
    /// application may still use them). Failures are logged.
    pub(crate) async fn deregister_all(&self) {
        for arn in self.registered() {
            match self
                .kinesis
                .deregister_stream_consumer()
                .consumer_arn(&arn)
                .send()
                .await
            {
                Ok(_) => tracing::info!(%arn, "stream consumer deregistered"),
                Err(e) => {
                    let e = ServiceError::from_sdk("DeregisterStreamConsumer", e);
                    tracing::warn!(%arn, error = %e, "deregistering the stream consumer failed");
                }
            }
        }
    }
}

/// The stream's ARN: given, or asked of DescribeStreamSummary.
async fn stream_arn(
    kinesis: &aws_sdk_kinesis::Client,
    stream: &StreamRef,
) -> Result<String, ServiceError> {
    match stream {
        StreamRef::Arn(arn) => Ok(arn.clone()),
        StreamRef::Name(name) => Ok(kinesis
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .map_err(|e| ServiceError::from_sdk("DescribeStreamSummary", e))?
            .stream_description_summary
            .map(|s| s.stream_arn)
            .unwrap_or_default()),
    }
}

/// Finds the stream consumer `name`, registers it if it is missing, waits until it is
/// ACTIVE, and returns its ARN. Throttling and transient failures are waited out for up to
/// [`REGISTRATION_TIMEOUT`]; anything else is returned.
async fn register(
    kinesis: &aws_sdk_kinesis::Client,
    stream: &StreamRef,
    name: &str,
) -> Result<String, ServiceError> {
    let started = tokio::time::Instant::now();
    let backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
    let mut retries = backoff.start();
    let mut arn = None;
    let mut last = None;
    while started.elapsed() <= REGISTRATION_TIMEOUT {
        let result = step(kinesis, stream, name, &mut arn).await;
        match result {
            Ok(Some(consumer_arn)) => return Ok(consumer_arn),
            Ok(None) => {}
            Err(e) if e.kind == ErrorKind::Fatal => return Err(e),
            Err(e) => {
                tracing::debug!(consumer = name, error = %e, "stream consumer lookup; retrying");
                last = Some(e.to_string());
            }
        }
        retries.wait().await;
    }
    Err(ServiceError {
        operation: "DescribeStreamConsumer",
        kind: ErrorKind::Transient,
        code: None,
        http_status: None,
        message: format!(
            "consumer {name} not ACTIVE after {REGISTRATION_TIMEOUT:?}{}",
            last.map(|e| format!(" (last error: {e})"))
                .unwrap_or_default()
        ),
        source: None,
    })
}

/// One look at the consumer: its ARN once ACTIVE, `None` while it is being created (or was
/// just registered here).
async fn step(
    kinesis: &aws_sdk_kinesis::Client,
    stream: &StreamRef,
    name: &str,
    stream_arn_found: &mut Option<String>,
) -> Result<Option<String>, ServiceError> {
    let arn = match stream_arn_found {
        Some(arn) => arn.clone(),
        None => stream_arn_found
            .insert(stream_arn(kinesis, stream).await?)
            .clone(),
    };
    let described = kinesis
        .describe_stream_consumer()
        .stream_arn(&arn)
        .consumer_name(name)
        .send()
        .await;
    match described {
        Ok(out) => Ok(out
            .consumer_description
            .filter(|d| d.consumer_status == ConsumerStatus::Active)
            .map(|d| d.consumer_arn)),
        Err(e) => {
            let e = ServiceError::from_sdk("DescribeStreamConsumer", e);
            if !e.has_code("ResourceNotFoundException") {
                return Err(e);
            }
            let registered = kinesis
                .register_stream_consumer()
                .stream_arn(&arn)
                .consumer_name(name)
                .send()
                .await;
            match registered {
                Ok(out) => {
                    if let Some(c) = out.consumer {
                        tracing::info!(consumer = name, arn = %c.consumer_arn, "stream consumer registered");
                    }
                    Ok(None)
                }
                // Another worker registered it in the meantime.
                Err(e) => {
                    let e = ServiceError::from_sdk("RegisterStreamConsumer", e);
                    if e.has_code("ResourceInUseException") {
                        Ok(None)
                    } else {
                        Err(e)
                    }
                }
            }
        }
    }
}
