//! Collecting ready entries into PutRecords requests, sending them, and reading the answers.

use aws_config::retry::RetryConfig;
use aws_sdk_kinesis::operation::put_records::PutRecordsOutput;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use kinesis_common::{ErrorKind, ServiceError};
use tokio::task::JoinError;
use tokio::time::Instant;

use super::order::Turn;
use super::outcome::{self, Fatal, Verdict};
use super::{Engine, Landed};
use crate::error::ProduceError;
use crate::result::PutResult;
use crate::stats;
use crate::telemetry::ShardMetrics;
use crate::ticket::{Entry, Ticket};

/// A request's entries, kept by the engine while the request task runs.
#[derive(Debug)]
pub(super) struct InFlight {
    entries: Vec<Entry>,
    started: Instant,
}

/// What a request task returns.
pub(super) type RequestOutcome = Result<PutRecordsOutput, ServiceError>;

impl Engine {
    /// Sends requests while there is room, something due, and rate to spend.
    pub(super) fn dispatch(&mut self, now: Instant) {
        let max_entries = self.cfg.max_entries_per_request;
        let max_bytes = self.cfg.max_bytes_per_request;
        let max_buffered = self.cfg.max_buffered_time;
        let flushing = self.flushing();
        while self.in_flight.len() < self.cfg.max_concurrent_requests {
            let (mut ready_entries, mut ready_bytes) = (0usize, 0usize);
            for shard in self.shards.values() {
                ready_entries += shard.ready_len();
                ready_bytes += shard.ready_bytes();
            }
            if ready_entries == 0 {
                return;
            }
            let fills_request = ready_entries >= max_entries || ready_bytes >= max_bytes;
            let order = &self.order;
            let triggered = self.shards.values_mut().any(|shard| {
                let turn = order
                    .as_ref()
                    .map_or(Turn::Now, |o| o.turn(&shard.range, now));
                shard
                    .sendable_at(now, max_buffered, flushing, fills_request)
                    .and_then(|at| turn.not_before(at))
                    .is_some_and(|at| at <= now)
            });
            if !triggered {
                return;
            }
            let batch = self.collect(now, max_entries, max_bytes);
            if batch.is_empty() {
                return; // every shard with work is rate limited: wake when one frees up
            }
            self.send(batch, now);
        }
    }

    /// Takes entries round-robin across shards, as each shard's rate limit allows.
    fn collect(&mut self, now: Instant, max_entries: usize, max_bytes: usize) -> Vec<Entry> {
        let mut batch: Vec<Entry> = Vec::new();
        let mut bytes = 0usize;
        let mut stale: Vec<Entry> = Vec::new();
        let mut expired: Vec<Ticket> = Vec::new();
        let shard_count = self.shard_order.len();
        let mut progress = true;
        while progress && batch.len() < max_entries {
            progress = false;
            for step in 0..shard_count {
                let index = (self.cursor + step) % shard_count;
                let Some(shard) = self.shards.get_mut(&self.shard_order[index]) else {
                    continue;
                };
                if let Some(order) = &self.order
                    && order.turn(&shard.range, now) != Turn::Now
                {
                    continue;
                }
                let Some(front) = shard.front() else {
                    continue;
                };
                if front.deadline() <= now {
                    if let Some(entry) = shard.pop_front() {
                        if self.order.is_some() {
                            // In order: the live records stay at the front, packed again.
                            let (dead, live): (Vec<_>, Vec<_>) =
                                entry.tickets.into_iter().partition(|t| t.deadline <= now);
                            expired.extend(dead);
                            shard.requeue_front(live);
                        } else {
                            stale.push(entry);
                        }
                    }
                    progress = true;
                    continue;
                }
                let size = front.size();
                // One entry larger than the request limit still goes, alone.
                if !batch.is_empty() && bytes + size > max_bytes {
                    continue;
                }
                let Some(claim) = shard.limiter.try_acquire(size, now) else {
                    continue;
                };
                bytes += size;
                if let Some(mut entry) = shard.pop_front() {
                    entry.claim = Some(claim);
                    if let Some(order) = self.order.as_mut() {
                        order.sent(&entry.shard_id);
                    }
                    batch.push(entry);
                }
                progress = true;
                if batch.len() >= max_entries {
                    break;
                }
            }
            if shard_count > 0 {
                self.cursor = (self.cursor + 1) % shard_count;
            }
        }
        for ticket in expired {
            self.expire(ticket);
        }
        // Entries holding an expired record: expired records fail, the rest are routed again.
        for entry in stale {
            for ticket in entry.tickets {
                self.route(ticket, now);
            }
        }
        batch
    }

    /// Spawns the PutRecords call for `batch`.
    fn send(&mut self, mut batch: Vec<Entry>, now: Instant) {
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
            .apply_put_records(self.client.put_records())
            .set_records(Some(request))
            .customize()
            // The engine retries by itself, entry by entry, and must see throttling to adapt.
            .config_override(
                aws_sdk_kinesis::config::Builder::default().retry_config(RetryConfig::disabled()),
            );
        let timeout = self.cfg.request_timeout;
        let entries = batch.len();
        let handle = self.in_flight.spawn(async move {
            tracing::trace!(entries, "PutRecords");
            match tokio::time::timeout(timeout, call.send()).await {
                Ok(result) => result.map_err(|e| ServiceError::from_sdk("PutRecords", e)),
                Err(_) => Err(ServiceError {
                    operation: "PutRecords",
                    kind: ErrorKind::Transient,
                    code: Some("RequestTimeout".into()),
                    http_status: None,
                    message: format!("no answer within {timeout:?}"),
                    source: None,
                }),
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
        // Answered or failed, each entry now leaves its shard's budget a window from now.
        for entry in &entries {
            if let (Some(claim), Some(shard)) = (entry.claim, self.shards.get_mut(&entry.shard_id))
            {
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
                    if let Some(shard) = self.shards.get_mut(&entry.shard_id) {
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
        if shard_id == entry.shard_id || !entry.aggregated() {
            self.settled(&entry.shard_id);
            if shard_id != entry.shard_id {
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

    /// A failed entry goes again: in order, back to its shard's front; otherwise record by
    /// record through the retry queue.
    fn retry_entry(&mut self, entry: Entry, detail: &str, now: Instant) {
        if self.order.is_some() {
            self.retry_in_order(entry, detail, now);
        } else {
            self.retry(entry.tickets, detail, now);
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
        let metrics = self.shard_metrics(shard_id);
        metrics.kinesis_records_put.increment(1);
        metrics.bytes_put.increment(entry.size() as u64);
        metrics.user_records_put.increment(count);
        self.metrics
            .user_records_per_kinesis_record
            .record(count as f64);
        for (index, ticket) in entry.tickets.into_iter().enumerate() {
            self.succeed_ticket(
                ticket,
                shard_id,
                sequence_number,
                aggregated.then_some(index as u64),
                started,
            );
        }
    }

    pub(super) fn succeed_ticket(
        &mut self,
        ticket: crate::ticket::Ticket,
        shard_id: &str,
        sequence_number: &str,
        sub_sequence_number: Option<u64>,
        started: Instant,
    ) {
        stats::add(&self.stats.user_records_put, 1);
        stats::add(&self.stats.user_bytes_put, ticket.record.data.len() as u64);
        let buffered = started.saturating_duration_since(ticket.arrival);
        self.metrics
            .buffering_seconds
            .record(buffered.as_secs_f64());
        let result = PutResult {
            shard_id: shard_id.to_owned(),
            sequence_number: sequence_number.to_owned(),
            sub_sequence_number,
            attempts: ticket.attempts,
            buffered,
        };
        self.succeed(ticket, result);
    }
}
