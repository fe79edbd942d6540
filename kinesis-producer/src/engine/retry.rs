//! Sending failed records again: after a jittered backoff, until their TTL; under per-key
//! order as whole entries at the front of their shard's queue.

use tokio::time::Instant;

use super::Engine;
use crate::error::ProduceError;
use crate::ticket::{Entry, Ticket};

impl Engine {
    /// A failed entry goes again: in order, back to its shard's front; otherwise record by
    /// record through the retry queue.
    pub(super) fn retry_entry(&mut self, entry: Entry, detail: &str, now: Instant) {
        if self.order.is_some() {
            self.retry_in_order(entry, detail, now);
        } else {
            self.retry(entry.tickets, detail, now);
        }
    }

    /// Puts failed tickets back after a jittered backoff, or expires those whose TTL the
    /// backoff would outlast.
    pub(super) fn retry(&mut self, tickets: Vec<Ticket>, error: &str, now: Instant) {
        let mut retried = 0u64;
        let error: std::sync::Arc<str> = error.into();
        for ticket in tickets {
            self.last_errors.insert(ticket.id, error.clone());
            if !self.rx_open {
                self.fail(ticket, ProduceError::ShutDown);
                continue;
            }
            let delay = self
                .cfg
                .backoff
                .delay(ticket.attempts.saturating_sub(1), &mut self.rng);
            let at = now + delay;
            if ticket.expired(at, self.cfg.record_ttl) {
                self.expire(ticket);
                continue;
            }
            retried += 1;
            self.retries.insert((at, ticket.id), ticket);
        }
        crate::stats::add(&self.stats.retries, retried);
        self.metrics.retries.increment(retried);
    }

    /// Under per-key order: a failed entry goes back to the front of its shard's queue,
    /// which sends nothing else until a jittered backoff has passed. Records whose TTL the
    /// backoff would outlast fail; the others are packed again if any did, or if the entry
    /// belonged to a shard that has since closed (its records go to the children's fronts).
    fn retry_in_order(&mut self, mut entry: Entry, error: &str, now: Instant) {
        entry.claim = None;
        let error: std::sync::Arc<str> = error.into();
        for ticket in &entry.tickets {
            self.last_errors.insert(ticket.id, error.clone());
        }
        if !self.rx_open {
            for ticket in entry.tickets {
                self.fail(ticket, ProduceError::ShutDown);
            }
            return;
        }
        let attempts = entry.tickets.iter().map(|t| t.attempts).max().unwrap_or(1);
        let at = now
            + self
                .cfg
                .backoff
                .delay(attempts.saturating_sub(1), &mut self.rng);
        let ttl = self.cfg.record_ttl;
        let live = entry.tickets.iter().filter(|t| !t.expired(at, ttl)).count();
        let expiring = live < entry.tickets.len();
        let retried = live as u64;
        if !expiring && let Some(shard) = self.shards.of_entry_mut(entry.slot, &entry.shard_id) {
            shard.push_front(entry);
            if let Some(order) = self.order.as_mut() {
                order.hold(&shard.range.shard_id, at);
            }
        } else {
            let (dead, live): (Vec<_>, Vec<_>) =
                entry.tickets.into_iter().partition(|t| t.expired(at, ttl));
            for ticket in dead {
                self.expire(ticket);
            }
            self.route_returned(live, Some(at), now);
        }
        crate::stats::add(&self.stats.retries, retried);
        self.metrics.retries.increment(retried);
    }

    /// A record is resolved: its last error is no longer needed.
    pub(super) fn forget_error(&mut self, id: u64) {
        if !self.last_errors.is_empty() {
            self.last_errors.remove(&id);
        }
    }
}
