//! Electing the leader: a follower reads the lock now and then; the standby, and a worker
//! that has not yet seen the lock move, read the whole coordinator table, so they know every
//! heartbeat when they take over. The lock is taken when it is absent or its version has
//! stood still for the longer of the failover time and its holder's; the standby first.
//! A lock found in this worker's own name (the answer to its take was lost) is taken up
//! at once.

use kinesis_common::ServiceError;
use tokio::time::{Instant, MissedTickBehavior};

use super::leader::{Duties, Leader};
use super::state_table::LeaderLock;

/// What a follower knows of the lock.
#[derive(Debug)]
struct Election {
    /// The lock's version as first seen, and when.
    seen: Option<(Option<String>, Instant)>,
    /// Whether the lock has been seen to move (its holder is alive): then look rarely.
    confirmed: bool,
    next_look: Instant,
    last_look: Instant,
}

impl Leader {
    /// Follows (or stands by) until this worker takes the lock; returns its version and when.
    pub(super) async fn follow(&self, duties: &mut Duties) -> (String, Instant) {
        let s = self.settings;
        let mut ticker = tokio::time::interval(s.poll);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut e = Election {
            seen: None,
            confirmed: false,
            next_look: Instant::now(),
            last_look: Instant::now(),
        };
        loop {
            ticker.tick().await;
            let now = Instant::now();
            let standby = self
                .membership
                .borrow()
                .state
                .as_ref()
                .is_some_and(|w| w.standby);
            // The standby looks at every poll, whenever it was made standby.
            if now < e.next_look && !(standby && now >= e.last_look + s.standby_poll) {
                continue;
            }
            e.last_look = now;
            // The standby, and a worker that has not yet seen the lock move, read the whole
            // table: they then know every heartbeat when they take over, and fail the old
            // leader's leases over at once. Others only read the lock, rarely.
            let watching = standby || !e.confirmed;
            let lock = if watching {
                let Some(snapshot) = self.scan().await else {
                    continue;
                };
                duties.view.observe(&snapshot.workers, now);
                snapshot.lock
            } else {
                match tokio::time::timeout(s.call_timeout, self.state.lock()).await {
                    Ok(Ok(lock)) => lock,
                    _ => continue,
                }
            };
            let version = lock.as_ref().map(|l| l.version.clone());
            let since = match &e.seen {
                Some((seen, since)) if *seen == version => *since,
                previous => {
                    e.confirmed |= previous.is_some() && version.is_some();
                    e.seen = Some((version.clone(), now));
                    now
                }
            };
            let threshold = lock
                .as_ref()
                .map_or(s.failover, |l| l.duration.max(s.failover));
            e.next_look = if e.confirmed {
                now + s.check
            } else {
                // Until the lock is seen to move, look again once it could be stale.
                (since + threshold).max(now + s.poll)
            };
            // The standby goes first: it has watched every heartbeat. Others wait a little
            // longer, in case it is gone too.
            let threshold = if standby {
                threshold
            } else {
                threshold + s.standby_poll * 2
            };
            let stale = now.saturating_duration_since(since) + s.grid_slack() >= threshold;
            // The lock in this worker's own name, though it does not lead: the answer to its
            // take was lost (the call timed out after it was written), or it is left from an
            // earlier run. Nobody else can renew it; waiting it out would cost a failover.
            let mine = lock.as_ref().is_some_and(|l| l.owner == self.me);
            if lock.is_some() && !stale && !mine {
                continue;
            }
            if !watching {
                // Before taking over, learn the heartbeats.
                e.confirmed = false;
                e.next_look = now;
                continue;
            }
            tracing::debug!(worker = %self.me, standby, mine, stood_still = ?now.saturating_duration_since(since), "taking the leader lock");
            let taken = match (&lock, mine) {
                (Some(lock), true) => self.adopt(&lock.version).await,
                _ => self.acquire(lock.as_ref()).await,
            };
            match taken {
                Some(version) => return (version, now),
                // Someone else got it: look again soon.
                None => {
                    e.seen = None;
                    e.next_look = now;
                }
            }
        }
    }

    async fn acquire(&self, seen: Option<&LeaderLock>) -> Option<String> {
        let call = self.state.acquire(seen, &self.me, self.settings.failover);
        self.take(call).await
    }

    /// Takes up the lock found in this worker's name by renewing it at the version seen:
    /// conditional like every lock write, so it fails if anyone moved the lock meanwhile.
    async fn adopt(&self, version: &str) -> Option<String> {
        self.take(self.state.renew_lock(&self.me, version)).await
    }

    async fn take(
        &self,
        call: impl Future<Output = Result<Option<String>, ServiceError>>,
    ) -> Option<String> {
        match tokio::time::timeout(self.settings.call_timeout, call).await {
            Ok(Ok(version)) => version,
            Ok(Err(e)) => {
                tracing::warn!(worker = %self.me, error = %e, "taking the leader lock failed");
                None
            }
            Err(_) => {
                tracing::warn!(worker = %self.me, "taking the leader lock timed out");
                None
            }
        }
    }
}
