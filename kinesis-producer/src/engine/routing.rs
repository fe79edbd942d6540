//! Routing user records to shards, and each shard's aggregation and ready queue.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use kinesis_common::aggregation::Aggregator;
use kinesis_common::shard_map::ShardRange;
use tokio::time::Instant;

use super::limiter::ShardLimiter;
use super::{Engine, clone_service_error};
use crate::admission::Gate;
use crate::config::Config;
use crate::error::ProduceError;
use crate::hot_keys::HotKeys;
use crate::telemetry::ShardMetrics;
use crate::ticket::{Entry, Ticket};

/// One shard's part of the pipeline.
#[derive(Debug)]
pub(super) struct ShardState {
    pub range: ShardRange,
    aggregator: Option<Aggregator>,
    /// Tickets in the open aggregate, in order.
    pending: Vec<Ticket>,
    /// Earliest `send` among them: where the closed aggregate goes in the ready queue.
    pending_oldest: Option<Instant>,
    /// When the first of them joined the aggregate: when it must close. A retried record
    /// joins late though it was sent long ago, and must not cut the aggregate short.
    pending_since: Option<Instant>,
    /// Closed aggregates and plain records, oldest first.
    ready: VecDeque<Entry>,
    /// Their bytes.
    ready_bytes: usize,
    pub limiter: ShardLimiter,
    /// Where `send` waits while this shard has more queued than it can drain in time.
    pub gate: Arc<Gate>,
    pub metrics: ShardMetrics,
    /// The heaviest keys sent to it lately.
    pub hot: HotKeys,
}

impl ShardState {
    fn new(
        range: ShardRange,
        cfg: &Config,
        gate: Arc<Gate>,
        metrics: ShardMetrics,
        now: Instant,
    ) -> Self {
        let aggregator = cfg
            .aggregation
            .then(|| Aggregator::new(cfg.max_aggregate_bytes).expect("validated by Config"));
        ShardState {
            range,
            aggregator,
            pending: Vec::new(),
            pending_oldest: None,
            pending_since: None,
            ready: VecDeque::new(),
            ready_bytes: 0,
            limiter: ShardLimiter::new(cfg.shard_bytes_per_sec(), cfg.shard_records_per_sec(), now),
            gate,
            metrics,
            hot: HotKeys::new(cfg.hot_key_window, now),
        }
    }

    /// The oldest ready entry.
    pub fn front(&self) -> Option<&Entry> {
        self.ready.front()
    }

    /// Takes the oldest ready entry.
    pub fn pop_front(&mut self) -> Option<Entry> {
        let entry = self.ready.pop_front()?;
        self.ready_bytes -= entry.size();
        Some(entry)
    }

    /// Ready entries.
    pub fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// Bytes of the ready entries.
    pub fn ready_bytes(&self) -> usize {
        self.ready_bytes
    }

    /// Adds a ticket to the open aggregate, closing it first if the ticket does not fit.
    fn add(&mut self, ticket: Ticket, now: Instant) {
        let Some(aggregator) = self.aggregator.as_mut() else {
            self.push_plain(ticket);
            return;
        };
        if ticket.size() > aggregator.limit() {
            // Too big to share an aggregate: it goes alone, after what came before it.
            self.close_aggregate();
            self.push_plain(ticket);
            return;
        }
        if aggregator.try_add(&ticket.record, ticket.hash_key).is_err() {
            self.close_aggregate();
            let aggregator = self.aggregator.as_mut().expect("aggregation is on");
            aggregator
                .try_add(&ticket.record, ticket.hash_key)
                .expect("an empty aggregator takes any record");
        }
        self.pending_oldest = Some(
            self.pending_oldest
                .map_or(ticket.arrival, |o| o.min(ticket.arrival)),
        );
        self.pending_since.get_or_insert(now);
        self.pending.push(ticket);
    }

    fn push_plain(&mut self, ticket: Ticket) {
        self.enqueue(Entry {
            shard_id: self.range.shard_id.clone(),
            record: ticket.record.clone().into(),
            oldest: ticket.arrival,
            claim: None,
            tickets: vec![ticket],
        });
    }

    /// Adds an entry to the ready queue, which is kept oldest first: new records go to the
    /// back, and an entry holding a retried record (sent long ago) goes ahead of newer ones,
    /// instead of waiting behind the whole backlog and running out of time to live.
    fn enqueue(&mut self, entry: Entry) {
        let at = self.ready.partition_point(|e| e.oldest <= entry.oldest);
        self.ready_bytes += entry.size();
        self.ready.insert(at, entry);
    }

    /// Moves the open aggregate, if any, to the ready queue.
    pub fn close_aggregate(&mut self) {
        let Some(aggregator) = self.aggregator.as_mut() else {
            return;
        };
        if let Some(record) = aggregator.finish() {
            self.pending_since = None;
            let entry = Entry {
                shard_id: self.range.shard_id.clone(),
                record,
                oldest: self.pending_oldest.take().unwrap_or_else(Instant::now),
                tickets: std::mem::take(&mut self.pending),
                claim: None,
            };
            self.enqueue(entry);
        }
    }

    /// Whether the open aggregate must close now.
    pub fn pending_due(&self, now: Instant, max_buffered: Duration, flushing: bool) -> bool {
        self.pending_since
            .is_some_and(|since| flushing || since + max_buffered <= now)
    }

    /// When the ready queue should go out: once its oldest entry is due (at once when
    /// flushing or when the backlog fills a request) and the rate limiter has room for a
    /// batch. `None` when there is nothing ready, or only an answer in flight can make room.
    pub fn sendable_at(
        &mut self,
        now: Instant,
        max_buffered: Duration,
        flushing: bool,
        fills_request: bool,
    ) -> Option<Instant> {
        let front = self.ready.front()?;
        let due = if flushing || fills_request {
            now
        } else {
            front.oldest + max_buffered
        };
        let front_size = front.size();
        let ready =
            self.limiter
                .batch_ready_at(front_size, self.ready_bytes, self.ready.len(), now)?;
        Some(due.max(ready))
    }

    /// When this shard next needs the engine's attention.
    pub fn next_due(
        &mut self,
        now: Instant,
        max_buffered: Duration,
        flushing: bool,
        room: bool,
    ) -> Option<Instant> {
        let mut due: Option<Instant> = self
            .pending_since
            .map(|since| if flushing { now } else { since + max_buffered });
        if room && let Some(at) = self.sendable_at(now, max_buffered, flushing, false) {
            due = Some(due.map_or(at, |d| d.min(at)));
        }
        due
    }

    /// Everything this shard holds that is not in flight.
    pub fn drain(&mut self) -> Vec<Ticket> {
        if let Some(aggregator) = self.aggregator.as_mut() {
            aggregator.clear();
        }
        self.pending_oldest = None;
        self.pending_since = None;
        let mut out = std::mem::take(&mut self.pending);
        self.ready_bytes = 0;
        for entry in self.ready.drain(..) {
            out.extend(entry.tickets);
        }
        out
    }
}

impl Engine {
    /// Sends a ticket to its shard's aggregator, or parks it until a shard map exists.
    pub(super) fn route(&mut self, mut ticket: Ticket, now: Instant) {
        if !self.rx_open {
            self.fail(ticket, ProduceError::ShutDown);
            return;
        }
        if ticket.deadline <= now {
            self.expire(ticket);
            return;
        }
        let Some(map) = self.map.clone() else {
            match &self.map_error {
                Some(e) => {
                    let source = clone_service_error(e);
                    self.fail(ticket, ProduceError::Service { source });
                }
                None => self.unrouted.push(ticket),
            }
            return;
        };
        let range = map.shard_for(ticket.hash_key);
        let shard = match self.shards.get_mut(&range.shard_id) {
            Some(shard) => shard,
            None => {
                self.shard_order.push(range.shard_id.clone());
                let gate = self.gate(&range.shard_id);
                let metrics = self.metrics.shard(&range.shard_id);
                self.shards
                    .entry(range.shard_id.clone())
                    .or_insert_with(|| {
                        ShardState::new(range.clone(), &self.cfg, gate, metrics, now)
                    })
            }
        };
        if !ticket.counted {
            ticket.counted = true;
            let key = &ticket.record.partition_key;
            shard.hot.add(ticket.hash_key.0, key, ticket.size(), now);
        }
        shard.add(ticket, now);
    }

    /// Fails parked tickets whose TTL ran out while no shard map could be loaded.
    pub(super) fn expire_unrouted(&mut self, now: Instant) {
        if self.unrouted.is_empty() {
            return;
        }
        let (expired, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.unrouted)
            .into_iter()
            .partition(|t| t.deadline <= now);
        self.unrouted = waiting;
        for ticket in expired {
            self.expire(ticket);
        }
    }

    /// Puts failed tickets back after a jittered backoff, or expires those whose TTL the
    /// backoff would outlast.
    pub(super) fn retry(&mut self, tickets: Vec<Ticket>, error: &str, now: Instant) {
        let mut retried = 0u64;
        for mut ticket in tickets {
            ticket.last_error = Some(error.to_owned());
            if !self.rx_open {
                self.fail(ticket, ProduceError::ShutDown);
                continue;
            }
            let delay = self
                .cfg
                .backoff
                .delay(ticket.attempts.saturating_sub(1), &mut self.rng);
            let at = now + delay;
            if at >= ticket.deadline {
                self.expire(ticket);
                continue;
            }
            retried += 1;
            self.retries.insert((at, ticket.id), ticket);
        }
        crate::stats::add(&self.stats.retries, retried);
        self.metrics.retries.increment(retried);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use kinesis_common::HashKey;
    use kinesis_common::UserRecord;
    use tokio::sync::{Semaphore, oneshot};

    use super::*;

    fn ticket(data: &str, arrival: Instant) -> Ticket {
        let permits = Arc::new(Semaphore::new(10));
        let (tx, _rx) = oneshot::channel();
        Ticket::new(
            UserRecord::new("k", data.to_owned()),
            HashKey(0),
            arrival,
            arrival + Duration::from_secs(30),
            tx,
            (
                permits.clone().try_acquire_owned().unwrap(),
                permits.try_acquire_owned().unwrap(),
            ),
            None,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_retried_record_goes_ahead_of_the_backlog_without_cutting_an_aggregate_short() {
        let cfg = Config::default();
        let start = Instant::now();
        let range = ShardRange {
            shard_id: "shardId-0".into(),
            starting_hash_key: HashKey(0),
            ending_hash_key: HashKey(u128::MAX),
        };
        let metrics = crate::telemetry::Metrics::new("s", Default::default()).shared;
        let gate = Arc::new(Gate::new(u64::MAX));
        let mut shard = ShardState::new(range, &cfg, gate, metrics, start);
        let later = start + Duration::from_secs(10);
        for i in 0..3 {
            shard.add(ticket(&format!("new-{i}"), later), later);
            shard.close_aggregate();
        }
        // Sent at the start, failed, and back after a backoff: it joins a fresh aggregate.
        shard.add(ticket("retried", start), later);
        assert!(!shard.pending_due(later, cfg.max_buffered_time, false));
        shard.close_aggregate();
        let order: Vec<_> = shard
            .ready
            .iter()
            .map(|e| e.tickets[0].record.data.clone())
            .collect();
        assert_eq!(order[0], "retried".as_bytes());
        assert_eq!(order.len(), 4);
    }
}
