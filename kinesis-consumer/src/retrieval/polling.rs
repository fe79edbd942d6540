//! Polling retrieval: GetShardIterator at the checkpoint, then a GetRecords loop that keeps
//! to the shard's read limits, renews expired iterators, and prefetches a bounded number of
//! batches.
//!
//! ```text
//!  fetcher task ──GetRecords (≤ 5/s, ≤ 2 MiB/s)──▶ bounded channel (N batches) ──▶ shard consumer
//! ```

use std::time::Duration;

use aws_sdk_kinesis::types::ShardIteratorType;
use kinesis_common::backoff::Backoff;
use kinesis_common::stream::StreamRef;
use kinesis_common::{ErrorKind, ServiceError};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Batch, FetchEnd, StartAt};
use crate::lease::Checkpoint;

/// GetRecords calls per second a shard allows.
const MIN_CALL_GAP: Duration = Duration::from_millis(200);
/// Bytes per second a shard serves to all polling consumers together.
const SHARD_READ_BYTES_PER_SEC: f64 = 2.0 * 1024.0 * 1024.0;

#[derive(Debug, Clone)]
pub(crate) struct PollingFetcher {
    pub kinesis: aws_sdk_kinesis::Client,
    pub stream: StreamRef,
    pub shard_id: String,
    pub max_records: i32,
    pub idle_time: Duration,
    /// Pass empty reads on too.
    pub send_empty: bool,
    /// Where failed calls are counted.
    pub telemetry: std::sync::Arc<crate::telemetry::Telemetry>,
}

impl PollingFetcher {
    async fn iterator(
        &self,
        start: &StartAt,
        after: Option<&str>,
    ) -> Result<Option<String>, ServiceError> {
        let mut request = self
            .stream
            .apply_get_shard_iterator(self.kinesis.get_shard_iterator())
            .shard_id(&self.shard_id);
        request = match (after, &start.checkpoint) {
            (Some(seq), _) => request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(seq),
            // AT, not AFTER: a checkpoint inside an aggregate resumes with the rest of it;
            // the consumer skips the sub-records already processed.
            (None, Checkpoint::Sequence(seq)) => request
                .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
                .starting_sequence_number(seq),
            (None, Checkpoint::Latest) => request.shard_iterator_type(ShardIteratorType::Latest),
            (None, Checkpoint::AtTimestamp) => request
                .shard_iterator_type(ShardIteratorType::AtTimestamp)
                .set_timestamp(
                    start
                        .timestamp
                        .map(aws_sdk_kinesis::primitives::DateTime::from),
                ),
            (None, Checkpoint::TrimHorizon | Checkpoint::ShardEnd) => {
                request.shard_iterator_type(ShardIteratorType::TrimHorizon)
            }
        };
        let out = request
            .send()
            .await
            .map_err(|e| ServiceError::from_sdk("GetShardIterator", e))?;
        Ok(out.shard_iterator)
    }

    fn fatal(&self, error: ServiceError) -> FetchEnd {
        self.telemetry.kinesis_failure(&error);
        tracing::error!(shard = %self.shard_id, error = %error, "shard cannot be read");
        FetchEnd::Fatal
    }

    /// Reads the shard into `tx` until it ends, `tx` closes, or a fatal error.
    pub(crate) async fn run(self, start: StartAt, tx: mpsc::Sender<Batch>) -> FetchEnd {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut retries = backoff.start();
        let mut last_sequence: Option<String> = None;
        let mut iterator: Option<String> = None;
        let mut next_call = Instant::now();
        loop {
            if tx.is_closed() {
                return FetchEnd::Closed;
            }
            if iterator.is_none() {
                match self.iterator(&start, last_sequence.as_deref()).await {
                    Ok(Some(it)) => iterator = Some(it),
                    Ok(None) => {
                        // No iterator: the shard is closed and read to its end.
                        let end = Batch {
                            records: Vec::new(),
                            millis_behind_latest: None,
                            shard_end: true,
                            child_shards: Vec::new(),
                        };
                        let _ = tx.send(end).await;
                        return FetchEnd::Closed;
                    }
                    Err(e) if e.kind == ErrorKind::Fatal => return self.fatal(e),
                    Err(e) => {
                        self.telemetry.kinesis_failure(&e);
                        tracing::debug!(shard = %self.shard_id, error = %e, "GetShardIterator failed; retrying");
                        retries.wait().await;
                        continue;
                    }
                }
            }
            tokio::time::sleep_until(next_call).await;
            let Some(current) = iterator.clone() else {
                continue;
            };
            let result = self
                .kinesis
                .get_records()
                .shard_iterator(current)
                .limit(self.max_records)
                .send()
                .await;
            let called = Instant::now();
            next_call = called + MIN_CALL_GAP;
            let out = match result {
                Ok(out) => out,
                Err(e) => {
                    let e = ServiceError::from_sdk("GetRecords", e);
                    if e.kind != ErrorKind::Fatal {
                        self.telemetry.kinesis_failure(&e);
                    }
                    if e.has_code("ExpiredIteratorException") {
                        // Get a fresh one from the last record read (or the start).
                        iterator = None;
                        continue;
                    }
                    match e.kind {
                        ErrorKind::Fatal => return self.fatal(e),
                        _ => {
                            tracing::debug!(shard = %self.shard_id, error = %e, "GetRecords failed; backing off");
                            if let Some(delay) = retries.next_delay() {
                                next_call = called + delay.max(MIN_CALL_GAP);
                            }
                            continue;
                        }
                    }
                }
            };
            retries.reset();
            let bytes: usize = out.records().iter().map(|r| r.data().as_ref().len()).sum();
            // Stay within the shard's 2 MiB/s read limit.
            let pace = Duration::from_secs_f64(bytes as f64 / SHARD_READ_BYTES_PER_SEC);
            next_call = next_call.max(called + pace);
            if let Some(last) = out.records().last() {
                last_sequence = Some(last.sequence_number().to_owned());
            }
            let shard_end = out.next_shard_iterator.is_none();
            let empty = out.records().is_empty();
            if empty && !shard_end {
                next_call = next_call.max(called + self.idle_time);
            }
            iterator = out.next_shard_iterator.clone();
            if !empty || shard_end || self.send_empty {
                let batch = Batch {
                    millis_behind_latest: out.millis_behind_latest,
                    records: out.records,
                    shard_end,
                    child_shards: out.child_shards.unwrap_or_default(),
                };
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
