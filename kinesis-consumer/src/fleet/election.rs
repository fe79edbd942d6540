//! Electing the leader: a follower reads the lock now and then; the standby, and a worker
//! that has not yet seen the lock move, read the whole coordinator table, so they know every
//! heartbeat when they take over. The lock is taken when it is absent or its version has
//! stood still for the longer of the failover time and its holder's; the standby first.

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
            let stale = now.saturating_duration_since(since) >= threshold;
            if lock.is_some() && !stale {
                continue;
            }
            if !watching {
                // Before taking over, learn the heartbeats.
                e.confirmed = false;
                e.next_look = now;
                continue;
            }
            match self.acquire(lock.as_ref()).await {
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
        match tokio::time::timeout(self.settings.call_timeout, call).await {
            Ok(Ok(version)) => version,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "taking the leader lock failed");
                None
            }
            Err(_) => None,
        }
    }
}
