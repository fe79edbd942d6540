//! When a pass of the engine may leave its shards alone.
//!
//! Closing due aggregates, the dispatch checks and the next wake each visit every shard, and
//! at thousands of shards their states do not fit the CPU's caches: at 4,000 shards
//! `Engine::pump`, which holds most of them, was a quarter of the producer's CPU, and
//! `next_wake` and the close checks alone 9% (`perf`, docs/FIGURES.md). Most passes follow
//! a wake by the inbox, and its records usually only join open aggregates, which makes
//! nothing due before the earliest deadline the last full pass found, or the new
//! aggregate's own. Such a pass skips the shards. Every other wake (an answer, a command, a
//! shard map, a timer) and every record that changes more than an open aggregate (one that
//! closes an aggregate, goes alone, or is the first for its shard) makes the next pass a
//! full one, as does flushing.

use tokio::time::Instant;

use super::Engine;

/// What the last full pass over the shards left to wait for.
#[derive(Debug)]
pub(super) struct Quiet {
    /// No shard has anything due before this, as of the last full pass and the aggregates
    /// opened since.
    until: Instant,
    /// Something happened that only a full pass can judge.
    changed: bool,
}

impl Quiet {
    /// The first pass is a full one.
    pub(super) fn new(now: Instant) -> Self {
        Quiet {
            until: now,
            changed: true,
        }
    }

    /// Makes the next pass a full one.
    pub(super) fn changed(&mut self) {
        self.changed = true;
    }

    /// An aggregate opened since the last full pass is due at `due`.
    pub(super) fn due_at(&mut self, due: Instant) {
        self.until = self.until.min(due);
    }

    /// A record was added to a shard: a full pass follows if its ready queue grew, else
    /// the shard's open aggregate, due at `deadline`, is waited for.
    pub(super) fn routed(&mut self, ready_grew: bool, deadline: Option<Instant>) {
        if ready_grew {
            self.changed();
        } else if let Some(due) = deadline {
            self.due_at(due);
        }
    }

    /// Whether a pass at `now` must visit every shard.
    pub(super) fn full_pass(&self, now: Instant) -> bool {
        self.changed || now >= self.until
    }

    /// A full pass found nothing due before `until`.
    pub(super) fn passed(&mut self, until: Instant) {
        self.until = until;
        self.changed = false;
    }

    /// No shard has anything due before this.
    pub(super) fn until(&self) -> Instant {
        self.until
    }
}

impl Engine {
    /// Whether this pass visits every shard (the same answer for `pump` and `next_wake` of
    /// one pass).
    pub(super) fn full_pass(&self, now: Instant) -> bool {
        self.flushing() || self.quiet.full_pass(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_pass_is_full_when_something_changed_or_is_due() {
        let start = Instant::now();
        let mut quiet = Quiet::new(start);
        assert!(quiet.full_pass(start), "the first pass");
        quiet.passed(start + Duration::from_millis(100));
        assert!(!quiet.full_pass(start + Duration::from_millis(99)));
        assert!(quiet.full_pass(start + Duration::from_millis(100)), "due");
        // An aggregate opened since, due earlier, brings the next full pass forward.
        quiet.due_at(start + Duration::from_millis(50));
        assert_eq!(quiet.until(), start + Duration::from_millis(50));
        assert!(quiet.full_pass(start + Duration::from_millis(50)));
        // A later deadline does not put it off.
        quiet.due_at(start + Duration::from_millis(80));
        assert_eq!(quiet.until(), start + Duration::from_millis(50));
        quiet.changed();
        assert!(quiet.full_pass(start), "changed");
        quiet.passed(start + Duration::from_secs(1));
        assert!(!quiet.full_pass(start + Duration::from_millis(999)));
    }
}
