//! Enhanced fan-out retrieval: the stream consumer is registered once per application and
//! stream (`consumers.rs`), and each shard is read with SubscribeToShard, whose events
//! Kinesis pushes over one long-lived response (HTTP/2 on AWS) for up to five minutes; then
//! the shard is subscribed again from the last continuation sequence number.
//!
//! Events are taken from the response only as fast as the shard consumer takes batches from
//! the bounded channel, so a slow processor holds the stream back (the transport's flow
//! control) instead of filling memory.

use std::time::Duration;

use aws_sdk_kinesis::types::{ShardIteratorType, StartingPosition, SubscribeToShardEventStream};
use kinesis_common::backoff::Backoff;
use kinesis_common::stream::StreamRef;
use kinesis_common::{ErrorKind, ServiceError};
use tokio::sync::mpsc;

use super::{Batch, FetchEnd, StartAt};
use crate::lease::Checkpoint;

/// After this long with only empty events, ask ListShards whether the shard is closed: an
/// endpoint that does not end a closed shard's subscription (kinesis-mock) is caught up to
/// the shard's end when it sends nothing.
const CLOSED_CHECK_AFTER: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub(crate) struct FanOutFetcher {
    pub kinesis: aws_sdk_kinesis::Client,
    /// The application's stream consumers: this shard's stream's is looked up (or
    /// registered) before the first subscription.
    pub consumers: std::sync::Arc<super::StreamConsumers>,
    pub stream: StreamRef,
    pub shard_id: String,
    /// Pass empty events on too.
    pub send_empty: bool,
    /// Where failed calls are counted.
    pub telemetry: std::sync::Arc<crate::telemetry::Telemetry>,
}

/// Where the next subscription starts.
#[derive(Debug, Clone)]
enum Position {
    /// From where the lease says: the first subscription, and any later one while nothing
    /// has been read (except from LATEST, which must not jump ahead).
    Start,
    /// After this sequence number: the last record delivered, or, before any record, the
    /// last continuation sequence number.
    After(String),
}

impl FanOutFetcher {
    fn starting_position(
        &self,
        start: &StartAt,
        position: &Position,
    ) -> Result<StartingPosition, ServiceError> {
        let builder = StartingPosition::builder();
        let builder = match (position, &start.checkpoint) {
            (Position::After(seq), _) => builder
                .r#type(ShardIteratorType::AfterSequenceNumber)
                .sequence_number(seq),
            // AT, not AFTER: a checkpoint inside an aggregate resumes with the rest of it;
            // the consumer skips the sub-records already processed.
            (Position::Start, Checkpoint::Sequence(seq)) => builder
                .r#type(ShardIteratorType::AtSequenceNumber)
                .sequence_number(seq),
            (Position::Start, Checkpoint::Latest) => builder.r#type(ShardIteratorType::Latest),
            (Position::Start, Checkpoint::AtTimestamp) => builder
                .r#type(ShardIteratorType::AtTimestamp)
                .set_timestamp(
                    start
                        .timestamp
                        .map(aws_sdk_kinesis::primitives::DateTime::from),
                ),
            (Position::Start, Checkpoint::TrimHorizon | Checkpoint::ShardEnd) => {
                builder.r#type(ShardIteratorType::TrimHorizon)
            }
        };
        builder.build().map_err(|e| ServiceError {
            operation: "SubscribeToShard",
            kind: ErrorKind::Fatal,
            code: None,
            http_status: None,
            message: format!("bad starting position: {e}"),
            source: None,
        })
    }

    /// Whether ListShards shows this shard closed (errors count as open: checked again later).
    async fn is_closed(&self) -> bool {
        match kinesis_common::shard_map::list_shards(&self.kinesis, &self.stream, false).await {
            Ok(shards) => shards.iter().any(|s| {
                s.shard_id() == self.shard_id
                    && s.sequence_number_range()
                        .and_then(|r| r.ending_sequence_number())
                        .is_some()
            }),
            Err(e) => {
                tracing::debug!(shard = %self.shard_id, error = %e, "ListShards failed");
                false
            }
        }
    }

    fn fatal(&self, error: ServiceError) -> FetchEnd {
        self.telemetry.kinesis_failure(&error);
        tracing::error!(shard = %self.shard_id, error = %error, "shard cannot be subscribed to");
        FetchEnd::Fatal
    }

    /// Reads the shard into `tx` until it ends, `tx` closes, or a fatal error.
    pub(crate) async fn run(self, start: StartAt, tx: mpsc::Sender<Batch>) -> FetchEnd {
        // AWS allows one subscription per shard and consumer at a time, and one call per
        // second: ResourceInUse (the previous subscription is still open) and LimitExceeded
        // are waited out, as are transient failures.
        let backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        let mut retries = backoff.start();
        let consumer_arn = loop {
            match self.consumers.arn(&self.stream).await {
                Ok(arn) => break arn,
                Err(e) if e.kind == ErrorKind::Fatal => return self.fatal(e),
                Err(e) => {
                    self.telemetry.kinesis_failure(&e);
                    if tx.is_closed() {
                        return FetchEnd::Closed;
                    }
                    retries.wait().await;
                }
            }
        };
        retries.reset();
        let mut position = Position::Start;
        let mut idle_since: Option<tokio::time::Instant> = None;
        loop {
            if tx.is_closed() {
                return FetchEnd::Closed;
            }
            let starting = match self.starting_position(&start, &position) {
                Ok(s) => s,
                Err(e) => return self.fatal(e),
            };
            let subscribed = self
                .kinesis
                .subscribe_to_shard()
                .consumer_arn(&consumer_arn)
                .shard_id(&self.shard_id)
                .starting_position(starting)
                .send()
                .await;
            let mut events = match subscribed {
                Ok(out) => out.event_stream,
                Err(e) => {
                    let e = ServiceError::from_sdk("SubscribeToShard", e);
                    let busy = e.has_code("ResourceInUseException")
                        || e.has_code("LimitExceededException");
                    if e.kind == ErrorKind::Fatal && !busy {
                        return self.fatal(e);
                    }
                    self.telemetry.kinesis_failure(&e);
                    tracing::debug!(shard = %self.shard_id, error = %e, "SubscribeToShard refused; retrying");
                    retries.wait().await;
                    continue;
                }
            };
            tracing::debug!(shard = %self.shard_id, ?position, "subscribed");
            loop {
                let event = match events.recv().await {
                    Ok(Some(SubscribeToShardEventStream::SubscribeToShardEvent(event))) => event,
                    Ok(Some(_)) => continue,
                    // The subscription's time is up: subscribe again from where it ended.
                    Ok(None) => break,
                    Err(e) => {
                        self.telemetry.kinesis_failure(&ServiceError {
                            operation: "SubscribeToShard",
                            kind: ErrorKind::Transient,
                            code: Some("EventStreamError".into()),
                            http_status: None,
                            message: e.to_string(),
                            source: None,
                        });
                        tracing::debug!(shard = %self.shard_id, error = %e, "subscription failed; subscribing again");
                        retries.wait().await;
                        break;
                    }
                };
                retries.reset();
                // Required in the model, so the SDK reads a missing one as "".
                let continuation =
                    Some(event.continuation_sequence_number).filter(|c| !c.is_empty());
                let child_shards = event.child_shards.unwrap_or_default();
                let mut records = event.records;
                // Never hand on a record at or before the last one delivered: exact on AWS
                // already, but ferrokinesis re-sends the record named in AFTER_SEQUENCE_NUMBER.
                if let Position::After(last) = &position {
                    records.retain(|r| sequence_after(&r.sequence_number, last));
                }
                // AWS ends a closed shard with an event that has no continuation and names the
                // children; some emulators name the children on every event once the shard is
                // closed, and end with one that has no records.
                let mut shard_end =
                    continuation.is_none() || (!child_shards.is_empty() && records.is_empty());
                if records.is_empty() && !shard_end {
                    let now = tokio::time::Instant::now();
                    let since = *idle_since.get_or_insert(now);
                    if now.duration_since(since) >= CLOSED_CHECK_AFTER {
                        idle_since = Some(now);
                        shard_end = self.is_closed().await;
                    }
                } else {
                    idle_since = None;
                }
                // Resubscribe after the last record delivered. (KCL uses the continuation
                // number; ferrokinesis's continuation numbers sort before the last record.)
                // Before any record, the continuation matters only from LATEST, where
                // starting over would skip records.
                if let Some(last) = records.last() {
                    position = Position::After(last.sequence_number.clone());
                } else if let (Some(c), Position::Start, Checkpoint::Latest) =
                    (&continuation, &position, &start.checkpoint)
                {
                    position = Position::After(c.clone());
                }
                let empty = records.is_empty();
                if !empty || shard_end || self.send_empty {
                    let batch = Batch {
                        records,
                        millis_behind_latest: Some(event.millis_behind_latest),
                        shard_end,
                        child_shards: if shard_end { child_shards } else { Vec::new() },
                    };
                    // Waits while the channel is full: the event stream is read no faster
                    // than the processor takes batches.
                    if tx.send(batch).await.is_err() {
                        return FetchEnd::Closed;
                    }
                }
                if shard_end {
                    return FetchEnd::Closed;
                }
            }
        }
    }
}

/// Whether sequence number `a` comes after `b` (decimal strings of up to 128 bits and more).
fn sequence_after(a: &str, b: &str) -> bool {
    (a.len(), a) > (b.len(), b)
}
