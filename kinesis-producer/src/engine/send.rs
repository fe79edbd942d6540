//! Sending a PutRecords request in its own task, bounded by the request timeout.

use aws_sdk_kinesis::operation::put_records::PutRecordsOutput;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use kinesis_common::ServiceError;
use tokio::time::Instant;

use super::Engine;
use crate::stats;
use crate::ticket::Entry;

/// A request's entries, kept by the engine while the request task runs.
#[derive(Debug)]
pub(super) struct InFlight {
    pub entries: Vec<Entry>,
    pub started: Instant,
}

/// What a request task returns.
pub(super) type RequestOutcome = Result<PutRecordsOutput, ServiceError>;

impl Engine {
    /// Spawns the PutRecords call for `batch`.
    pub(super) fn send(&mut self, mut batch: Vec<Entry>, now: Instant) {
        let mut request = Vec::with_capacity(batch.len());
        for entry in &mut batch {
            for ticket in &mut entry.tickets {
                ticket.attempts += 1;
            }
            let record = &entry.record;
            let built = PutRecordsRequestEntry::builder()
                .partition_key(record.partition_key.clone())
                .set_explicit_hash_key(record.explicit_hash_key.clone())
                .data(Blob::new(record.data.to_vec()))
                .build();
            match built {
                Ok(e) => request.push(e),
                Err(e) => {
                    // Cannot happen: both required fields are set above.
                    tracing::error!(error = %e, "could not build a PutRecords entry");
                }
            }
        }
        stats::add(&self.stats.requests, 1);
        self.metrics.requests.increment(1);
        self.metrics
            .kinesis_records_per_request
            .record(batch.len() as f64);
        let call = self
            .stream
            .apply_put_records(self.put_client.put_records())
            .set_records(Some(request));
        let timeout = self.cfg.request_timeout;
        let entries = batch.len();
        let handle = self.in_flight.spawn(async move {
            tracing::trace!(entries, "PutRecords");
            match tokio::time::timeout(timeout, call.send()).await {
                Ok(result) => result.map_err(|e| ServiceError::from_sdk("PutRecords", e)),
                Err(_) => Err(ServiceError::timed_out("PutRecords", timeout)),
            }
        });
        self.requests.insert(
            handle.id(),
            InFlight {
                entries: batch,
                started: now,
            },
        );
    }
}
