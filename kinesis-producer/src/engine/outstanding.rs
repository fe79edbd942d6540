//! The engine's unresolved user records, by id: what `flush` waits on, how many there are,
//! and when the oldest arrived.
//!
//! Ids are given in the order records reach the engine, so the unresolved ones are a window
//! of ids: a ring with one slot per id from the oldest unresolved one on, holding its arrival
//! (8 bytes), which shrinks from the front as the oldest are resolved. Insert and resolve are
//! O(1) with no allocation once the ring has grown; a record resolved out of order leaves
//! its slot until everything before it is resolved too.

use std::collections::VecDeque;

use tokio::time::Instant;

/// A slot whose record is resolved.
const RESOLVED: u64 = u64::MAX;

/// Slots kept once everything is resolved (32 KiB): a burst's ring (800 KiB at the default
/// 100,000 outstanding records) is not held for as long as the stream is idle.
const KEPT_SLOTS: usize = 4096;

/// Unresolved records by id.
#[derive(Debug)]
pub(super) struct Outstanding {
    /// Arrivals are kept as microseconds since this instant.
    epoch: Instant,
    /// The id of `slots[0]`.
    base: u64,
    slots: VecDeque<u64>,
    count: usize,
}

impl Outstanding {
    pub(super) fn new(now: Instant) -> Self {
        Outstanding {
            epoch: now,
            base: 0,
            slots: VecDeque::new(),
            count: 0,
        }
    }

    /// Records `id`, the next id after the last one inserted, as unresolved.
    pub(super) fn insert(&mut self, id: u64, arrival: Instant) {
        if self.slots.is_empty() {
            self.base = id;
        }
        debug_assert_eq!(id, self.base + self.slots.len() as u64, "ids in order");
        let micros = arrival.saturating_duration_since(self.epoch).as_micros();
        self.slots
            .push_back(u64::try_from(micros).unwrap_or(RESOLVED - 1));
        self.count += 1;
    }

    /// Marks `id` resolved (nothing if it is not outstanding).
    pub(super) fn remove(&mut self, id: u64) {
        let Some(slot) = id
            .checked_sub(self.base)
            .and_then(|i| self.slots.get_mut(usize::try_from(i).ok()?))
        else {
            return;
        };
        if *slot == RESOLVED {
            return;
        }
        *slot = RESOLVED;
        self.count -= 1;
        while self.slots.front() == Some(&RESOLVED) {
            self.slots.pop_front();
            self.base += 1;
        }
        if self.slots.is_empty() {
            self.slots.shrink_to(KEPT_SLOTS);
        }
    }

    /// Unresolved records.
    pub(super) fn len(&self) -> usize {
        self.count
    }

    pub(super) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The smallest unresolved id.
    pub(super) fn first_id(&self) -> Option<u64> {
        (self.count > 0).then_some(self.base)
    }

    /// When the record with the smallest unresolved id arrived.
    pub(super) fn oldest_arrival(&self) -> Option<Instant> {
        let micros = *self.slots.front()?;
        Some(self.epoch + std::time::Duration::from_micros(micros))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_window_shrinks_from_its_oldest_end() {
        let start = Instant::now();
        let mut outstanding = Outstanding::new(start);
        assert_eq!(
            (outstanding.first_id(), outstanding.oldest_arrival()),
            (None, None)
        );
        for id in 0..5 {
            outstanding.insert(id, start + Duration::from_millis(id * 10));
        }
        outstanding.remove(1);
        outstanding.remove(3);
        outstanding.remove(3);
        outstanding.remove(99);
        assert_eq!(outstanding.len(), 3);
        assert_eq!(outstanding.first_id(), Some(0));
        outstanding.remove(0);
        assert_eq!(outstanding.first_id(), Some(2), "1 was resolved already");
        assert_eq!(
            outstanding.oldest_arrival(),
            Some(start + Duration::from_millis(20))
        );
        outstanding.remove(2);
        outstanding.remove(4);
        assert!(outstanding.is_empty());
        assert_eq!(outstanding.first_id(), None);
        outstanding.insert(5, start + Duration::from_secs(1));
        assert_eq!(outstanding.first_id(), Some(5));
        assert_eq!(outstanding.len(), 1);
    }

    #[test]
    fn a_bursts_ring_is_trimmed_once_everything_is_resolved() {
        let start = Instant::now();
        let mut outstanding = Outstanding::new(start);
        for id in 0..100_000 {
            outstanding.insert(id, start);
        }
        for id in 0..99_999 {
            outstanding.remove(id);
        }
        assert!(outstanding.slots.capacity() >= 100_000, "one still out");
        outstanding.remove(99_999);
        assert!(outstanding.is_empty());
        assert!(outstanding.slots.capacity() <= KEPT_SLOTS);
        outstanding.insert(100_000, start);
        assert_eq!(outstanding.first_id(), Some(100_000));
    }
}
