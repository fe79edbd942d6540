//! One shard's part of the pipeline: its open aggregate, its ready queue (oldest first, or
//! in send order under per-key order), its rate limiter, gate, metrics and hot keys.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kinesis_common::KinesisRecord;
use kinesis_common::aggregation::Aggregator;
use kinesis_common::shard_map::ShardRange;
use tokio::time::Instant;

use super::limiter::ShardLimiter;
use crate::admission::Gate;
use crate::config::Config;
use crate::hot_keys::HotKeys;
use crate::telemetry::ShardMetrics;
use crate::ticket::{Entry, Ticket};

/// One shard's part of the pipeline.
#[derive(Debug)]
pub(super) struct ShardState {
    pub range: ShardRange,
    /// Its id, shared with its entries.
    pub id: Arc<str>,
    aggregator: Option<Aggregator>,
    /// Tickets in the open aggregate, in order.
    pending: Vec<Ticket>,
    /// Earliest `send` among them: where the closed aggregate goes in the ready queue.
    pending_oldest: Option<Instant>,
    /// When the first of them joined the aggregate: when it must close. A retried record
    /// joins late though it was sent long ago, and must not cut the aggregate short.
    pending_since: Option<Instant>,
    /// How many records the last aggregate took.
    last_aggregate_len: usize,
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
    /// Per-key order: the ready queue is in send order, never reordered by age.
    ordered: bool,
}

impl ShardState {
    pub fn new(
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
            id: Arc::from(range.shard_id.as_str()),
            range,
            aggregator,
            pending: Vec::new(),
            pending_oldest: None,
            pending_since: None,
            last_aggregate_len: 0,
            ready: VecDeque::new(),
            ready_bytes: 0,
            limiter: ShardLimiter::new(cfg.shard_bytes_per_sec(), cfg.shard_records_per_sec(), now),
            gate,
            metrics,
            hot: HotKeys::new(cfg.hot_key_window, now),
            ordered: cfg.ordered,
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
    pub fn add(&mut self, ticket: Ticket, now: Instant) {
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
        if self.pending.capacity() == 0 {
            // The next aggregate likely takes as many records as the last: no regrowth and
            // little slack (allocated on first use, so idle shards hold nothing).
            self.pending.reserve_exact(self.last_aggregate_len.max(4));
        }
        self.pending.push(ticket);
    }

    fn push_plain(&mut self, mut ticket: Ticket) {
        ticket.leave_arena();
        self.enqueue(Entry {
            shard_id: self.id.clone(),
            record: ticket.record.clone().into(),
            oldest: ticket.arrival,
            claim: None,
            slot: usize::MAX,
            tickets: vec![ticket],
        });
    }

    /// Adds an entry to the ready queue, which is kept oldest first: new records go to the
    /// back, and an entry holding a retried record (sent long ago) goes ahead of newer ones,
    /// instead of waiting behind the whole backlog and running out of time to live.
    /// Under per-key order the queue stays in send order: a retried entry goes back to the
    /// front through [`ShardState::requeue_front`] instead.
    fn enqueue(&mut self, entry: Entry) {
        self.ready_bytes += entry.size();
        if self.ordered {
            self.ready.push_back(entry);
            return;
        }
        let at = self.ready.partition_point(|e| e.oldest <= entry.oldest);
        self.ready.insert(at, entry);
    }

    /// Puts an entry that went out and must go again back at the front of the queue.
    pub fn push_front(&mut self, entry: Entry) {
        self.ready_bytes += entry.size();
        self.ready.push_front(entry);
    }

    /// Puts user records that must go before everything this shard holds (sent earlier,
    /// and back from a failed entry or a closed parent) at the front, in send order,
    /// aggregated afresh.
    pub fn requeue_front(&mut self, mut tickets: Vec<Ticket>) {
        tickets.sort_by_key(|t| t.id);
        let limit = self.aggregator.as_ref().map(Aggregator::limit);
        let entries = pack(&self.id, tickets, limit);
        for entry in entries.into_iter().rev() {
            self.push_front(entry);
        }
    }

    /// Moves the open aggregate, if any, to the ready queue.
    pub fn close_aggregate(&mut self) {
        let Some(aggregator) = self.aggregator.as_mut() else {
            return;
        };
        if let Some(record) = finish(aggregator, &mut self.pending) {
            self.pending_since = None;
            self.last_aggregate_len = self.pending.len();
            // Tickets wait in their entry until it is put: hold no spare capacity for them.
            self.pending.shrink_to_fit();
            let entry = Entry {
                shard_id: self.id.clone(),
                record,
                oldest: self.pending_oldest.take().unwrap_or_else(Instant::now),
                tickets: std::mem::take(&mut self.pending),
                claim: None,
                slot: usize::MAX,
            };
            self.enqueue(entry);
        }
    }

    /// When the open aggregate is due, if one is open.
    pub fn pending_deadline(&self, max_buffered: Duration) -> Option<Instant> {
        self.pending_since.map(|since| since + max_buffered)
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
        turn: super::order::Turn,
    ) -> Option<Instant> {
        let mut due: Option<Instant> = self
            .pending_since
            .map(|since| if flushing { now } else { since + max_buffered });
        if room
            && let Some(at) = self.sendable_at(now, max_buffered, flushing, false)
            && let Some(at) = turn.not_before(at)
        {
            due = Some(due.map_or(at, |d| d.min(at)));
        }
        due
    }

    /// Whether it holds an open aggregate or ready entries.
    pub fn holds_work(&self) -> bool {
        self.pending_since.is_some() || !self.pending.is_empty() || !self.ready.is_empty()
    }

    /// Everything this shard holds that is not in flight.
    pub fn drain(&mut self) -> Vec<Ticket> {
        if let Some(aggregator) = self.aggregator.as_mut() {
            aggregator.clear();
        }
        self.pending_oldest = None;
        self.pending_since = None;
        self.ready_bytes = 0;
        let mut out = Vec::new();
        for entry in self.ready.drain(..) {
            out.extend(entry.tickets);
        }
        // The open aggregate holds the newest records: after the ready ones.
        out.append(&mut self.pending);
        out
    }
}

/// Closes `aggregator`, which holds `tickets` in order. Each record's data becomes a slice of
/// the aggregate, which holds the bytes once, and none is left in the arena: a record that
/// goes out alone gets a copy of its own.
fn finish(aggregator: &mut Aggregator, tickets: &mut [Ticket]) -> Option<KinesisRecord> {
    let alone_in_arena = matches!(tickets, [ticket] if ticket.in_arena);
    let mut each = tickets.iter_mut();
    let mut record = aggregator.finish_sharing(|data| {
        if let Some(ticket) = each.next() {
            ticket.record.data = data;
            ticket.in_arena = false;
        }
    })?;
    if alone_in_arena {
        record.data = Bytes::copy_from_slice(&record.data);
        tickets[0].record.data = record.data.clone();
    }
    Some(record)
}

/// Entries for `shard_id` carrying `tickets` in their order: aggregates of at most `limit`
/// bytes (a record too big for one goes alone), or one plain record each without a limit.
pub(super) fn pack(shard_id: &Arc<str>, tickets: Vec<Ticket>, limit: Option<usize>) -> Vec<Entry> {
    let plain = |mut ticket: Ticket| {
        ticket.leave_arena();
        Entry {
            shard_id: shard_id.clone(),
            record: ticket.record.clone().into(),
            oldest: ticket.arrival,
            claim: None,
            slot: usize::MAX,
            tickets: vec![ticket],
        }
    };
    let Some(mut aggregator) = limit.and_then(|l| Aggregator::new(l).ok()) else {
        return tickets.into_iter().map(plain).collect();
    };
    let mut entries = Vec::new();
    let mut group: Vec<Ticket> = Vec::new();
    let close = |aggregator: &mut Aggregator, group: &mut Vec<Ticket>, out: &mut Vec<Entry>| {
        if let Some(record) = finish(aggregator, group) {
            let tickets = std::mem::take(group);
            let oldest = tickets.iter().map(|t| t.arrival).min();
            out.push(Entry {
                shard_id: shard_id.clone(),
                record,
                oldest: oldest.unwrap_or_else(Instant::now),
                claim: None,
                slot: usize::MAX,
                tickets,
            });
        }
    };
    for ticket in tickets {
        if ticket.size() > aggregator.limit() {
            close(&mut aggregator, &mut group, &mut entries);
            entries.push(plain(ticket));
            continue;
        }
        if aggregator.try_add(&ticket.record, ticket.hash_key).is_err() {
            close(&mut aggregator, &mut group, &mut entries);
            if aggregator.try_add(&ticket.record, ticket.hash_key).is_err() {
                // Cannot happen: an empty aggregator takes any record within its limit.
                entries.push(plain(ticket));
                continue;
            }
        }
        group.push(ticket);
    }
    close(&mut aggregator, &mut group, &mut entries);
    entries
}

#[cfg(test)]
pub(super) mod tests {
    use std::sync::Arc;

    use crate::completion::Completions;
    use kinesis_common::HashKey;
    use kinesis_common::UserRecord;

    use crate::bounds::Bounds;

    use super::*;

    /// A ticket of key "k" and `data`, sent at `arrival`.
    pub(in crate::engine) fn ticket(data: &str, arrival: Instant) -> Ticket {
        let bounds = Arc::new(Bounds::new(10, 1_000));
        let (tx, _rx) = Completions::default().next();
        Ticket::new(
            UserRecord::new("k", data.to_owned()),
            HashKey(0),
            arrival,
            tx,
            bounds.try_take(1).unwrap(),
        )
    }

    fn shard(cfg: &Config, now: Instant) -> ShardState {
        shard_named("shardId-0", cfg, now)
    }

    /// A shard of the whole key space named `id`, with no limit on its gate.
    pub(in crate::engine) fn shard_named(id: &str, cfg: &Config, now: Instant) -> ShardState {
        let range = ShardRange {
            shard_id: id.into(),
            starting_hash_key: HashKey(0),
            ending_hash_key: HashKey(u128::MAX),
        };
        let metrics = crate::telemetry::Metrics::new("s", Default::default()).shared;
        ShardState::new(range, cfg, Arc::new(Gate::new(u64::MAX)), metrics, now)
    }

    /// A ticket whose data is a copy in `arena`, as `send` makes it.
    fn in_arena(arena: &crate::arena::Arena, data: &str, now: Instant) -> (Ticket, Bytes) {
        let mut ticket = ticket(data, now);
        let copy = arena.copy(data.as_bytes(), ticket.size()).expect("small");
        ticket.record.data = copy.clone();
        ticket.in_arena = true;
        (ticket, copy)
    }

    fn within(part: &Bytes, whole: &Bytes) -> bool {
        let (start, end) = (
            whole.as_ptr() as usize,
            whole.as_ptr() as usize + whole.len(),
        );
        (start..=end).contains(&(part.as_ptr() as usize))
            && part.as_ptr() as usize + part.len() <= end
    }

    #[tokio::test(start_paused = true)]
    async fn no_record_holds_the_arena_once_its_aggregate_closes() {
        let cfg = Config::default();
        let now = Instant::now();
        let arena = crate::arena::Arena::new(cfg.max_aggregate_bytes);
        let mut shard = shard(&cfg, now);
        // Aggregated: each record's data becomes a slice of its aggregate.
        for i in 0..3 {
            shard.add(in_arena(&arena, &format!("record-{i}"), now).0, now);
        }
        shard.close_aggregate();
        // Alone in its aggregate: a copy of its own, not the arena's.
        let (alone, copy) = in_arena(&arena, "alone", now);
        shard.add(alone, now);
        shard.close_aggregate();
        // Retried alone: the same, through the repacking of records sent again.
        let (retried, retried_copy) = in_arena(&arena, "retried", now);
        shard.requeue_front(vec![retried]);

        let entries: Vec<&Entry> = shard.ready.iter().collect();
        let [retried, aggregate, alone] = entries[..] else {
            panic!("three entries: {}", entries.len());
        };
        assert_eq!(aggregate.tickets.len(), 3);
        for ticket in &aggregate.tickets {
            assert!(!ticket.in_arena);
            assert!(within(&ticket.record.data, &aggregate.record.data));
        }
        for (entry, copy) in [(alone, &copy), (retried, &retried_copy)] {
            let data = &entry.tickets[0].record.data;
            assert_eq!(data, copy);
            assert!(!entry.tickets[0].in_arena);
            assert_ne!(data.as_ptr(), copy.as_ptr(), "still in the arena");
            assert_ne!(
                entry.record.data.as_ptr(),
                copy.as_ptr(),
                "sent from the arena"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_retried_record_goes_ahead_of_the_backlog_without_cutting_an_aggregate_short() {
        let cfg = Config::default();
        let start = Instant::now();
        let mut shard = shard(&cfg, start);
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
