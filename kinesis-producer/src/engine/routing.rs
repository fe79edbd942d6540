//! Routing user records to their shards: the shard map's prediction, records that come
//! back from a closed shard or a wrong landing, and records waiting for a shard map.

use std::collections::HashMap;

use kinesis_common::shard_map::ShardRange;
use tokio::time::Instant;

use super::shard::ShardState;
use super::{Engine, clone_service_error};
use crate::error::ProduceError;
use crate::ticket::Ticket;

/// Counts a record in its shard's hot-key report, once whatever its retries.
fn count_hot(shard: &mut ShardState, ticket: &mut Ticket, now: Instant) {
    if !ticket.counted {
        ticket.counted = true;
        let key = &ticket.record.partition_key;
        shard.hot.add(ticket.hash_key.0, key, ticket.size(), now);
    }
}

impl Engine {
    /// Sends a ticket to its shard's aggregator, or parks it until a shard map exists.
    pub(super) fn route(&mut self, mut ticket: Ticket, now: Instant) {
        if !self.rx_open {
            self.fail(ticket, ProduceError::ShutDown);
            return;
        }
        if ticket.expired(now, self.cfg.record_ttl) {
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
        let position = map.position_for(ticket.hash_key);
        let range = &map.shards()[position];
        let max_buffered = self.cfg.max_buffered_time;
        let shard = self.shard_state(range, Some(position), now);
        let ready_before = shard.ready_len();
        count_hot(shard, &mut ticket, now);
        shard.add(ticket, now);
        let (grew, deadline) = (
            shard.ready_len() != ready_before,
            shard.pending_deadline(max_buffered),
        );
        self.quiet.routed(grew, deadline);
    }

    /// The state of the shard `range` (at `position` in the current map, if known), made on
    /// first use.
    fn shard_state(
        &mut self,
        range: &ShardRange,
        position: Option<usize>,
        now: Instant,
    ) -> &mut ShardState {
        // A known shard by its map position, without a lookup by id (each record's case).
        let known = match position {
            Some(position) => self.shards.slot_at(position, &range.shard_id),
            None => self.shards.slot(&range.shard_id),
        };
        let slot = match known {
            Some(slot) => slot,
            None => {
                let gate = self.gate(&range.shard_id);
                let metrics = self.metrics.shard(&range.shard_id);
                let mut state = ShardState::new(range.clone(), &self.cfg, gate, metrics, now);
                state
                    .limiter
                    .pace_for(self.map.as_ref().map_or(1, |map| map.len()));
                self.quiet.changed();
                self.shards.insert(range.shard_id.clone(), state)
            }
        };
        self.shards.at_mut(slot)
    }

    /// Routes user records that went out before and come back (a closed shard's queue, a
    /// failed entry of a closed shard, an aggregate that landed elsewhere). Under per-key
    /// order they go to the front of their shards' queues in send order, held until
    /// `hold` if given; otherwise they are routed as new.
    pub(super) fn route_returned(
        &mut self,
        mut tickets: Vec<Ticket>,
        hold: Option<Instant>,
        now: Instant,
    ) {
        self.quiet.changed();
        let Some(map) = self
            .map
            .clone()
            .filter(|_| self.order.is_some() && self.rx_open)
        else {
            for ticket in tickets {
                self.route(ticket, now);
            }
            return;
        };
        tickets.sort_by_key(|t| t.id);
        let mut by_shard: HashMap<String, (ShardRange, Vec<Ticket>)> = HashMap::new();
        for ticket in tickets {
            if ticket.expired(now, self.cfg.record_ttl) {
                self.expire(ticket);
                continue;
            }
            let range = map.shard_for(ticket.hash_key);
            by_shard
                .entry(range.shard_id.clone())
                .or_insert_with(|| (range.clone(), Vec::new()))
                .1
                .push(ticket);
        }
        for (id, (range, mut tickets)) in by_shard {
            let shard = self.shard_state(&range, None, now);
            for ticket in &mut tickets {
                count_hot(shard, ticket, now);
            }
            shard.requeue_front(tickets);
            if let (Some(order), Some(until)) = (self.order.as_mut(), hold) {
                order.hold(&id, until);
            }
        }
    }

    /// Fails parked tickets whose TTL ran out while no shard map could be loaded.
    pub(super) fn expire_unrouted(&mut self, now: Instant) {
        if self.unrouted.is_empty() {
            return;
        }
        let ttl = self.cfg.record_ttl;
        let (expired, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.unrouted)
            .into_iter()
            .partition(|t| t.expired(now, ttl));
        self.unrouted = waiting;
        for ticket in expired {
            self.expire(ticket);
        }
    }
}
