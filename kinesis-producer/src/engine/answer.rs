//! Acting on a PutRecords answer, as `outcome` judged it: records put, retried or failed,
//! each shard's limiter told, aggregates that landed on an unexpected shard set aside.

use std::sync::Arc;

use kinesis_common::{ErrorKind, ServiceError};
use tokio::task::JoinError;
use tokio::time::Instant;

use super::outcome::{self, Fatal, Verdict};
use super::send::{InFlight, RequestOutcome};
use super::{Engine, Landed};
use crate::error::ProduceError;
use crate::result::{Landing, PutResult};
use crate::stats;
use crate::telemetry::ShardMetrics;
use crate::ticket::Entry;

impl Engine {
    /// Reads a finished request.
    pub(super) fn on_request_done(
        &mut self,
        joined: Result<(tokio::task::Id, RequestOutcome), JoinError>,
        now: Instant,
    ) {
        let (id, outcome) = match joined {
            Ok((id, outcome)) => (id, outcome),
            Err(e) => {
                let outcome = Err(ServiceError {
                    operation: "PutRecords",
                    kind: ErrorKind::Transient,
                    code: None,
                    http_status: None,
                    message: format!("request task failed: {e}"),
                    source: None,
                });
                (e.id(), outcome)
            }
        };
        let Some(InFlight { entries, started }) = self.requests.remove(&id) else {
            return;
        };
        // Answered or failed: each entry's shard learns its latency and when it leaves the budget.
        for entry in &entries {
            if let (Some(claim), Some(shard)) = (
                entry.claim,
                self.shards.of_entry_mut(entry.slot, &entry.shard_id),
            ) {
                shard.limiter.answered(claim, now);
            }
        }
        let judged = outcome::judge(outcome.map(|output| output.records), entries.len());
        if judged.request_failed {
            stats::add(&self.stats.failed_requests, 1);
            tracing::debug!(error = ?judged.error_codes, entries = entries.len(), "PutRecords failed");
        }
        for code in &judged.error_codes {
            self.metrics.error(code);
        }
        if judged.throttled {
            stats::add(&self.stats.throttled_requests, 1);
        }
        stats::add(&self.stats.throttled_entries, judged.throttled_entries());
        for (entry, verdict) in entries.into_iter().zip(judged.verdicts) {
            match verdict {
                Verdict::Put {
                    shard_id,
                    sequence_number,
                } => {
                    if let Some(shard) = self.shards.of_entry_mut(entry.slot, &entry.shard_id) {
                        shard.limiter.accepted(entry.size(), now);
                    }
                    self.on_entry_put(entry, shard_id, sequence_number, started, now)
                }
                Verdict::Throttled { code, detail } => {
                    self.settled(&entry.shard_id);
                    self.throttled(&entry.shard_id, now);
                    if self.cfg.fail_fast_on_throttling {
                        for ticket in entry.tickets {
                            let code = code.clone();
                            self.fail(ticket, ProduceError::Throttled { code });
                        }
                    } else {
                        self.retry_entry(entry, &detail, now);
                    }
                }
                Verdict::Transient { detail } => {
                    self.settled(&entry.shard_id);
                    self.retry_entry(entry, &detail, now);
                }
                Verdict::Fatal(fatal) => {
                    self.settled(&entry.shard_id);
                    if matches!(fatal, Fatal::Request(_)) {
                        // A missing stream may also mean a stale map; look again.
                        self.request_refresh(now);
                    }
                    for ticket in entry.tickets {
                        self.fail(ticket, fatal.to_error());
                    }
                }
            }
        }
    }

    /// An entry was stored: its records are put, unless it is an aggregate that landed on
    /// a shard other than the predicted one.
    fn on_entry_put(
        &mut self,
        entry: Entry,
        shard_id: String,
        sequence_number: String,
        started: Instant,
        now: Instant,
    ) {
        if *shard_id == *entry.shard_id || !entry.aggregated() {
            self.settled(&entry.shard_id);
            if *shard_id != *entry.shard_id {
                self.request_refresh(now);
            }
            self.succeed_entry(entry, &shard_id, &sequence_number, started);
        } else {
            // KCL drops user records outside the shard an aggregate is read from: check
            // each against the landing shard once the map is fresh.
            tracing::debug!(predicted = %entry.shard_id, landed = %shard_id, "aggregate landed on another shard");
            self.verify.push(Landed {
                entry,
                shard_id,
                sequence_number,
                started,
            });
            self.request_refresh(now);
        }
    }

    /// Under per-key order, an entry of `shard_id` is no longer out.
    pub(super) fn settled(&mut self, shard_id: &str) {
        if let Some(order) = self.order.as_mut() {
            order.settled(shard_id);
        }
    }

    fn throttled(&mut self, shard_id: &str, now: Instant) {
        self.shard_metrics(shard_id).throttles.increment(1);
        *self
            .stats
            .throttles_by_shard
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(shard_id.to_owned())
            .or_default() += 1;
        if let Some(shard) = self.shards.get_mut(shard_id) {
            shard.limiter.on_throttle(now);
            tracing::debug!(
                shard = shard_id,
                allowance = shard.limiter.factor(),
                "throttled"
            );
        }
    }

    /// The counters of `shard_id` (shared ones for a shard not in the map).
    pub(super) fn shard_metrics(&self, shard_id: &str) -> &ShardMetrics {
        self.shards
            .get(shard_id)
            .map_or(&self.metrics.shared, |shard| &shard.metrics)
    }

    /// Resolves every user record of an acknowledged entry.
    pub(super) fn succeed_entry(
        &mut self,
        entry: Entry,
        shard_id: &str,
        sequence_number: &str,
        started: Instant,
    ) {
        let aggregated = entry.aggregated();
        let count = entry.tickets.len() as u64;
        self.stats.kinesis_record_put(entry.size());
        let metrics = if *entry.shard_id == *shard_id {
            self.shards
                .of_entry(entry.slot, &entry.shard_id)
                .map_or(&self.metrics.shared, |shard| &shard.metrics)
        } else {
            self.shard_metrics(shard_id)
        };
        metrics.kinesis_records_put.increment(1);
        metrics.bytes_put.increment(entry.size() as u64);
        metrics.user_records_put.increment(count);
        self.metrics
            .user_records_per_kinesis_record
            .record(count as f64);
        let landing = Landing::new(shard_id, sequence_number);
        for (index, ticket) in entry.tickets.into_iter().enumerate() {
            let sub_sequence_number = aggregated.then_some(index as u64);
            self.succeed_ticket(ticket, &landing, sub_sequence_number, started);
        }
    }

    /// Resolves one user record that `landing` carries.
    pub(super) fn succeed_ticket(
        &mut self,
        ticket: crate::ticket::Ticket,
        landing: &Arc<Landing>,
        sub_sequence_number: Option<u64>,
        started: Instant,
    ) {
        stats::add(&self.stats.user_records_put, 1);
        stats::add(&self.stats.user_bytes_put, ticket.record.data.len() as u64);
        let buffered = started.saturating_duration_since(ticket.arrival);
        self.metrics
            .buffering_seconds
            .record(buffered.as_secs_f64());
        let result = PutResult::new(
            landing.clone(),
            sub_sequence_number,
            ticket.attempts,
            buffered,
        );
        self.succeed(ticket, result);
    }
}
