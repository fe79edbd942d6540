//! Receiving a lease by graceful handoff: the leader moved it here for balance, and its
//! owner is shutting its processor down (which may checkpoint) before handing it over.
//!
//! The receiver reads the lease (a consistent GetItem, 1 read unit) every heartbeat
//! interval while it waits. Once the lease is ours with no `checkpointOwner` left, it takes
//! it at the counter read (a conditional write, as any take) and starts at once from the
//! checkpoint the old owner wrote: the old owner stopped before it handed over, so there is
//! no wait. A lease whose counter stands still for the failover time (the old owner died or
//! is cut off, and has stopped by then) is taken at that counter and started at once, as
//! any expired lease; sooner, when the leader fences the giver and turns the wait into a
//! take (`coordinator/plan.rs`). If the handoff has not finished after
//! `graceful_handoff_timeout` and a renewal interval (the old owner's own timeout comes
//! first), the lease is stolen as without a handoff and processed after the failover time.

use std::time::Duration;

use tokio::time::Instant;

use super::Coordinator;
use crate::fleet::state_table::{Assignment, PLAN_CHUNK};
use crate::processor::ProcessorFactory;

/// A handoff this worker waits for.
pub(super) struct Awaited {
    assignment: Assignment,
    since: Instant,
    /// The lease's counter as last read, and since when it has stood still.
    still: Option<(u64, Instant)>,
}

/// What a look at an awaited lease decided.
enum Next {
    Wait,
    /// Handed over (or free): take it at the counter read and start at once.
    Take(crate::lease::Lease),
    /// The handoff timed out: steal it and start after the failover time.
    Steal(crate::lease::Lease),
    /// Gone, or another worker's: nothing to do.
    Forget,
}

impl<F: ProcessorFactory> Coordinator<F> {
    /// Starts waiting for a lease the leader moved here by graceful handoff.
    pub(super) fn await_handoff(&mut self, assignment: Assignment) {
        if self.held.contains_key(&assignment.shard_id) {
            return;
        }
        self.awaiting
            .entry(assignment.shard_id.clone())
            .or_insert(Awaited {
                assignment,
                since: Instant::now(),
                still: None,
            });
    }

    /// Whether a plan entry is a handoff still awaited (it stays in the plan meanwhile, so
    /// that the leader counts the lease as this worker's).
    pub(super) fn is_awaiting(&self, shard: &str) -> bool {
        self.awaiting.contains_key(shard)
    }

    /// When to look at the awaited leases next.
    pub(super) fn next_handoff_check(&self) -> Option<Instant> {
        (!self.awaiting.is_empty()).then(|| self.last_handoff_check + self.handoff_poll())
    }

    fn handoff_poll(&self) -> Duration {
        self.parts
            .config
            .renewal_interval
            .min(Duration::from_millis(500))
    }

    /// Looks at every awaited lease and acts on what it finds.
    pub(super) async fn check_handoffs(&mut self) {
        self.last_handoff_check = Instant::now();
        let cfg = self.parts.config.clone();
        let me = cfg.worker_id.clone();
        let patience = cfg.graceful_handoff_timeout + cfg.renewal_interval;
        let shards: Vec<String> = self.awaiting.keys().cloned().collect();
        let mut resolved = Vec::new();
        for shard in shards {
            let Some(waited) = self.awaiting.get(&shard).map(|a| a.since.elapsed()) else {
                continue;
            };
            let giver = self.awaiting[&shard].assignment.owner.clone();
            let next = match self.parts.table.get(&shard).await {
                Ok(None) => Next::Forget,
                Ok(Some(lease)) => {
                    // A giver that stopped renewing (it died, or is cut off) has stopped
                    // processing by the time its counter has stood still this long.
                    let now = Instant::now();
                    let awaited = self.awaiting.get_mut(&shard).expect("awaited");
                    let since = match awaited.still {
                        Some((counter, since)) if counter == lease.counter => since,
                        _ => now,
                    };
                    awaited.still = Some((lease.counter, since));
                    let expired = now.saturating_duration_since(since) >= cfg.failover_time;
                    let owner = lease.owner.as_deref();
                    let handed_over =
                        owner == Some(me.as_str()) && lease.checkpoint_owner.is_none();
                    let still_giving = owner == giver.as_deref()
                        || (owner == Some(me.as_str()) && lease.checkpoint_owner == giver);
                    if handed_over || owner.is_none() || (still_giving && expired) {
                        Next::Take(lease)
                    } else if !still_giving {
                        Next::Forget
                    } else if waited >= patience {
                        Next::Steal(lease)
                    } else {
                        Next::Wait
                    }
                }
                Err(e) => {
                    tracing::debug!(shard = %shard, error = %e, "reading an awaited lease failed");
                    Next::Wait
                }
            };
            let (seen, steal) = match next {
                Next::Wait => continue,
                Next::Forget => {
                    tracing::debug!(shard = %shard, "awaited lease went elsewhere");
                    resolved.push(shard);
                    continue;
                }
                Next::Take(lease) => (lease, false),
                Next::Steal(lease) => {
                    tracing::warn!(shard = %shard, ?waited, "handoff not finished in time; stealing the lease");
                    (lease, true)
                }
            };
            resolved.push(shard.clone());
            let sent = Instant::now();
            match self.parts.table.take(&seen, &me, steal).await {
                Ok(Some(lease)) => {
                    let delay = if steal {
                        cfg.failover_time
                    } else {
                        Duration::ZERO
                    };
                    tracing::info!(shard = %shard, ?waited, stolen = steal, "lease received");
                    self.parts.telemetry.leases_taken.increment(1);
                    if steal {
                        self.parts.telemetry.leases_stolen.increment(1);
                    }
                    self.start(lease, sent, delay);
                }
                Ok(None) => {
                    tracing::debug!(shard = %shard, "awaited lease moved before it was taken")
                }
                Err(e) => {
                    tracing::warn!(shard = %shard, error = %e, "taking a handed-over lease failed")
                }
            }
        }
        for shard in &resolved {
            self.awaiting.remove(shard);
        }
        let incarnation = self.membership.borrow().incarnation.clone();
        for chunk in resolved.chunks(PLAN_CHUNK) {
            if let Err(e) = self.parts.state.done(&me, &incarnation, chunk).await {
                tracing::debug!(error = %e, "clearing done assignments failed; they are ignored");
            }
        }
    }
}
