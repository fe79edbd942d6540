//! Per-key order (the `ordered` option): which shards may send their next entry.
//!
//! Kinesis keeps the order of what one shard stores, so records of one key (which map to
//! one shard) land in send order when each shard has at most one entry unsettled at a time
//! and a failed entry is sent again before anything newer of its shard. After a reshard,
//! records of a key move from the parent to a child: the child waits until every entry
//! the parent still had unsettled is answered (and, for an aggregate that landed on a
//! shard other than the predicted one, verified), and what comes back from the parent goes
//! to the front of the child's queue. Pure bookkeeping: no engine state, no I/O.

use std::collections::HashMap;

use kinesis_common::shard_map::ShardRange;
use tokio::time::Instant;

/// When a shard may send its next entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Turn {
    /// Now (as far as order goes; the rate limiter still decides).
    Now,
    /// From this time: its last entry failed and waits out a backoff.
    At(Instant),
    /// After an answer: its own entry, or a parent's, is unsettled.
    AfterAnswer,
}

impl Turn {
    /// The earliest time `at` allowed by this turn, if one is known.
    pub(super) fn not_before(self, at: Instant) -> Option<Instant> {
        match self {
            Turn::Now => Some(at),
            Turn::At(t) => Some(at.max(t)),
            Turn::AfterAnswer => None,
        }
    }
}

/// The order bookkeeping of one stream's shards.
#[derive(Debug, Default)]
pub(super) struct OrderGuard {
    /// Entries of each shard sent and not settled (in flight, or landed on another shard
    /// and awaiting verification).
    unsettled: HashMap<String, usize>,
    /// Closed shards that still have unsettled entries: shards overlapping them wait.
    closed: HashMap<String, ShardRange>,
    /// Shards whose failed entry waits out a backoff, until when.
    held: HashMap<String, Instant>,
}

impl OrderGuard {
    /// When `shard` may send.
    pub(super) fn turn(&self, shard: &ShardRange, now: Instant) -> Turn {
        if self.unsettled.contains_key(&shard.shard_id)
            || self
                .closed
                .values()
                .any(|parent| parent.shard_id != shard.shard_id && parent.overlaps(shard))
        {
            return Turn::AfterAnswer;
        }
        match self.held.get(&shard.shard_id) {
            Some(until) if *until > now => Turn::At(*until),
            _ => Turn::Now,
        }
    }

    /// An entry of `shard_id` went out.
    pub(super) fn sent(&mut self, shard_id: &str) {
        *self.unsettled.entry(shard_id.to_owned()).or_default() += 1;
        self.held.remove(shard_id);
    }

    /// An entry of `shard_id` is settled: put, failed for good, or back in a queue.
    pub(super) fn settled(&mut self, shard_id: &str) {
        if let Some(n) = self.unsettled.get_mut(shard_id) {
            *n -= 1;
            if *n == 0 {
                self.unsettled.remove(shard_id);
                self.closed.remove(shard_id);
            }
        }
    }

    /// `shard_id` sends nothing before `until`.
    pub(super) fn hold(&mut self, shard_id: &str, until: Instant) {
        let at = self.held.entry(shard_id.to_owned()).or_insert(until);
        *at = (*at).max(until);
    }

    /// `range`'s shard left the shard map: while it has entries unsettled, the shards
    /// that took over its hash keys wait.
    pub(super) fn shard_closed(&mut self, range: &ShardRange) {
        self.held.remove(&range.shard_id);
        if self.unsettled.contains_key(&range.shard_id) {
            self.closed.insert(range.shard_id.clone(), range.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use kinesis_common::HashKey;

    use super::*;

    fn range(id: &str, start: u128, end: u128) -> ShardRange {
        ShardRange::new(id, HashKey(start), HashKey(end))
    }

    #[test]
    fn one_entry_per_shard_until_it_is_settled() {
        let now = Instant::now();
        let (a, b) = (range("a", 0, 9), range("b", 10, 19));
        let mut guard = OrderGuard::default();
        assert_eq!(guard.turn(&a, now), Turn::Now);
        guard.sent("a");
        assert_eq!(guard.turn(&a, now), Turn::AfterAnswer);
        assert_eq!(guard.turn(&b, now), Turn::Now, "other shards go on");
        guard.settled("a");
        assert_eq!(guard.turn(&a, now), Turn::Now);
    }

    #[test]
    fn a_failed_entry_holds_its_shard_for_the_backoff() {
        let now = Instant::now();
        let a = range("a", 0, 9);
        let mut guard = OrderGuard::default();
        guard.sent("a");
        guard.settled("a");
        let until = now + Duration::from_millis(200);
        guard.hold("a", until);
        assert_eq!(guard.turn(&a, now), Turn::At(until));
        assert_eq!(Turn::At(until).not_before(now), Some(until));
        assert_eq!(guard.turn(&a, until), Turn::Now);
        assert_eq!(Turn::AfterAnswer.not_before(now), None);
    }

    #[test]
    fn children_wait_for_their_parents_unsettled_entries() {
        let now = Instant::now();
        let parent = range("p", 0, 99);
        let (left, right, other) = (range("l", 0, 49), range("r", 50, 99), range("o", 100, 199));
        let mut guard = OrderGuard::default();
        guard.sent("p");
        guard.sent("p");
        guard.shard_closed(&parent);
        for child in [&left, &right] {
            assert_eq!(guard.turn(child, now), Turn::AfterAnswer);
        }
        assert_eq!(guard.turn(&other, now), Turn::Now);
        guard.settled("p");
        assert_eq!(guard.turn(&left, now), Turn::AfterAnswer, "one still out");
        guard.settled("p");
        assert_eq!(guard.turn(&left, now), Turn::Now);
        assert_eq!(guard.turn(&right, now), Turn::Now);
    }

    #[test]
    fn a_closed_shard_with_nothing_unsettled_holds_nobody() {
        let now = Instant::now();
        let mut guard = OrderGuard::default();
        guard.shard_closed(&range("p", 0, 99));
        assert_eq!(guard.turn(&range("l", 0, 49), now), Turn::Now);
    }
}
