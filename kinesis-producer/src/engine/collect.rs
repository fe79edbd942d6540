//! Collecting ready entries into PutRecords requests: round-robin across shards, as each
//! shard's rate limit (and, under per-key order, its turn) allows.

use tokio::time::Instant;

use super::Engine;
use super::order::Turn;
use crate::ticket::{Entry, Ticket};

/// Entries a request takes by joining ([`ShardLimiter::try_join`]: half their cost in
/// hand, the rest as debt); later ones wait for their full cost. Joining saves requests when
/// few shards are busy (4 shards: about half of them); at 64 shards, where requests carry
/// five entries or more anyway, joining without a bound made the emulator throttle 0.4–0.7%
/// of requests instead of 0.02–0.2% (docs/FIGURES.md).
///
/// [`ShardLimiter::try_join`]: super::limiter::ShardLimiter::try_join
const JOINING_ENTRIES: usize = 4;

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
        let ttl = self.cfg.record_ttl;
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
                if front.deadline(ttl) <= now {
                    if let Some(entry) = shard.pop_front() {
                        if self.order.is_some() {
                            // In order: the live records stay at the front, packed again.
                            let (dead, live): (Vec<_>, Vec<_>) =
                                entry.tickets.into_iter().partition(|t| t.expired(now, ttl));
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
                let claim = if batch.len() < JOINING_ENTRIES {
                    shard.limiter.try_join(size, now)
                } else {
                    shard.limiter.try_acquire(size, now)
                };
                let Some(claim) = claim else {
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
}
