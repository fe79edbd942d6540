//! Garbage leases: leases of shards the stream no longer lists (they aged out of the
//! retention period, or the table was written for another stream's shards).
//!
//! Such a lease is never taken (reading its shard fails) and is deleted once it has gone
//! unlisted, with its counter standing still, for the grace period; the delete is
//! conditional on that counter, so a lease someone still renews is left alone. Pure
//! bookkeeping over the outcomes of shard syncs and the local clock, tested in milliseconds.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

/// What this worker has seen of unlisted leases: since when, at which counter.
#[derive(Debug, Default)]
pub(crate) struct Vanished {
    seen: HashMap<String, (Instant, u64)>,
}

impl Vanished {
    /// Whether a lease is one of them (and so not to be taken).
    pub(crate) fn contains(&self, shard_id: &str) -> bool {
        self.seen.contains_key(shard_id)
    }

    /// Records a sync's unlisted leases (shard, counter); returns those due for deletion,
    /// with the counter the delete must find.
    pub(crate) fn observe(
        &mut self,
        unlisted: Vec<(String, u64)>,
        now: Instant,
        grace: Duration,
    ) -> Vec<(String, u64)> {
        let mut seen = HashMap::with_capacity(unlisted.len());
        for (shard, counter) in unlisted {
            let since = match self.seen.get(&shard) {
                Some((since, was)) if *was == counter => *since,
                _ => now,
            };
            seen.insert(shard, (since, counter));
        }
        self.seen = seen;
        self.seen
            .iter()
            .filter(|(_, (since, _))| now.saturating_duration_since(*since) >= grace)
            .map(|(shard, (_, counter))| (shard.clone(), *counter))
            .collect()
    }

    /// Forgets a lease (deleted, or found still in use).
    pub(crate) fn forget(&mut self, shard_id: &str) {
        self.seen.remove(shard_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(1800);

    #[tokio::test(start_paused = true)]
    async fn a_lease_is_due_after_the_grace_period_unless_it_moves_or_reappears() {
        let mut vanished = Vanished::default();
        let gone = || vec![("old".to_owned(), 7)];
        assert!(vanished.observe(gone(), Instant::now(), GRACE).is_empty());
        assert!(vanished.contains("old"));
        tokio::time::advance(Duration::from_secs(1000)).await;
        // Its counter moved: someone holds it; the grace period starts again.
        assert!(
            vanished
                .observe(vec![("old".into(), 8)], Instant::now(), GRACE)
                .is_empty()
        );
        tokio::time::advance(Duration::from_secs(1000)).await;
        assert!(
            vanished
                .observe(vec![("old".into(), 8)], Instant::now(), GRACE)
                .is_empty()
        );
        tokio::time::advance(Duration::from_secs(800)).await;
        assert_eq!(
            vanished.observe(vec![("old".into(), 8)], Instant::now(), GRACE),
            [("old".to_owned(), 8)]
        );
        // Listed again: forgotten.
        assert!(
            vanished
                .observe(Vec::new(), Instant::now(), GRACE)
                .is_empty()
        );
        assert!(!vanished.contains("old"));
    }
}
