//! Collecting ready entries into PutRecords requests: round-robin across shards, as each
//! shard's rate limit (and, under per-key order, its turn) allows.

use tokio::time::Instant;

use super::Engine;
use super::limiter::{Claim, ShardLimiter};
use super::order::Turn;
use super::shard::ShardState;
use crate::ticket::{Entry, Ticket};

/// Entries a request takes by joining ([`ShardLimiter::try_join`]: half their cost in
/// hand, the rest as debt); later ones wait for their full cost. Joining saves requests when
/// few shards are busy (4 shards: about half of them); at 64 shards, where requests carry
/// five entries or more anyway, joining without a bound made the emulator throttle 0.4–0.7%
/// of requests instead of 0.02–0.2% (docs/FIGURES.md).
///
/// [`ShardLimiter::try_join`]: super::limiter::ShardLimiter::try_join
const JOINING_ENTRIES: usize = 4;

/// The share of the buffering time within which an open aggregate closes early to join a
/// request that is going out anyway.
const SOON: f64 = 0.1;

/// The claim on a shard's rate for an entry of `size` bytes that would be entry `position`
/// (from 0) of a request: joining for the first [`JOINING_ENTRIES`], its full cost after.
fn claim_for(
    limiter: &mut ShardLimiter,
    size: usize,
    position: usize,
    now: Instant,
) -> Option<Claim> {
    if position < JOINING_ENTRIES {
        limiter.try_join(size, now)
    } else {
        limiter.try_acquire(size, now)
    }
}

impl Engine {
    /// Sends requests while there is room, something due, and rate to spend.
    pub(super) fn dispatch(&mut self, now: Instant) {
        let max_entries = self.cfg.max_entries_per_request;
        let max_bytes = self.cfg.max_bytes_per_request;
        let max_buffered = self.cfg.max_buffered_time;
        let flushing = self.flushing();
        while self.in_flight.len() < self.cfg.max_concurrent_requests {
            let (mut ready_entries, mut ready_bytes) = (0usize, 0usize);
            for shard in self.shards.busy() {
                ready_entries += shard.ready_len();
                ready_bytes += shard.ready_bytes();
            }
            if ready_entries == 0 {
                return;
            }
            let fills_request = ready_entries >= max_entries || ready_bytes >= max_bytes;
            let order = &self.order;
            let triggered = self.shards.busy_mut().into_iter().any(|(_, shard)| {
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
            self.close_aggregates_due_soon(now, max_buffered, flushing);
            let batch = self.collect(now, max_entries, max_bytes);
            if batch.is_empty() {
                return; // every shard with work is rate limited: wake when one frees up
            }
            self.send(batch, now);
        }
    }

    /// A request is going out: aggregates due within [`SOON`] of the buffering time close
    /// now and may join it, rather than each sending a request of its own a few milliseconds
    /// later. Shards' deadlines are spread over time, so at 1,000 shards with 20 records a
    /// second each, requests carried about 25 entries and their fixed cost (signing, HTTP,
    /// parsing, a task) was a fifth of the producer's CPU (README).
    fn close_aggregates_due_soon(
        &mut self,
        now: Instant,
        max_buffered: std::time::Duration,
        flushing: bool,
    ) {
        let soon = now + max_buffered.mul_f64(SOON);
        for (_, shard) in self.shards.busy_mut() {
            if shard.pending_due(soon, max_buffered, flushing) {
                shard.close_aggregate();
            }
        }
    }

    /// Takes entries round-robin across shards, as each shard's rate limit allows.
    fn collect(&mut self, now: Instant, max_entries: usize, max_bytes: usize) -> Vec<Entry> {
        let ttl = self.cfg.record_ttl;
        let mut batch: Vec<Entry> = Vec::new();
        let mut bytes = 0usize;
        let mut stale: Vec<Entry> = Vec::new();
        let mut expired: Vec<Ticket> = Vec::new();
        // The shards holding work, in slot order: no lookup by id per shard and round (at
        // 1,000 shards those were a tenth of the producer's CPU). Each round starts one
        // shard further, from the slot the last one stopped at.
        let mut shards: Vec<(usize, &mut ShardState)> = self.shards.busy_mut();
        let shard_count = shards.len();
        let mut start = shards.partition_point(|(slot, _)| *slot < self.cursor);
        let mut progress = true;
        while progress && batch.len() < max_entries {
            progress = false;
            for step in 0..shard_count {
                let index = (start + step) % shard_count;
                let slot = shards[index].0;
                let shard = &mut *shards[index].1;
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
                let Some(claim) = claim_for(&mut shard.limiter, size, batch.len(), now) else {
                    continue;
                };
                bytes += size;
                if let Some(mut entry) = shard.pop_front() {
                    entry.claim = Some(claim);
                    entry.slot = slot;
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
                start = (start + 1) % shard_count;
                self.cursor = shards[start].0;
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const MIB: f64 = 1024.0 * 1024.0;

    #[tokio::test(start_paused = true)]
    async fn only_a_requests_first_entries_join() {
        let start = Instant::now();
        // Entries of 100 ms of a shard's rate, each shard's burst spent on one of them.
        let entry = (0.1 * MIB) as usize;
        let mut shards: Vec<ShardLimiter> = (0..JOINING_ENTRIES + 2)
            .map(|_| {
                let mut limiter = ShardLimiter::new(MIB, 1000.0, start);
                assert!(limiter.try_acquire(entry, start).is_some());
                limiter
            })
            .collect();
        // 60 ms later every bucket holds more than half an entry's cost, not all of it.
        tokio::time::advance(Duration::from_millis(60)).await;
        let now = Instant::now();
        let taken: Vec<bool> = shards
            .iter_mut()
            .enumerate()
            .map(|(position, limiter)| claim_for(limiter, entry, position, now).is_some())
            .collect();
        let expected: Vec<bool> = (0..shards.len()).map(|p| p < JOINING_ENTRIES).collect();
        assert_eq!(taken, expected);
        // Later in a request, an entry whose bucket holds its whole cost still goes.
        tokio::time::advance(Duration::from_millis(40)).await;
        let last = shards.last_mut().expect("shards");
        assert!(claim_for(last, entry, JOINING_ENTRIES, Instant::now()).is_some());
    }
}
