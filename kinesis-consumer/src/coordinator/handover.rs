//! Giving a held lease away, as the leader asks or as KCL 3.x's leader marks it: the
//! consumer is shut down first (its processor gets `shutdown_requested` and may
//! checkpoint), and only once it has ended is the lease handed over in the table, so the
//! shard never has two workers at once and the receiver starts from the checkpoint just
//! written.
//!
//! * To a worker of the real KCL (which takes no orders from our leader): shut down, then
//!   hand over (KCL's `assignLease`).
//! * A graceful handoff (KCL 3.x's protocol), to a worker of ours moved for balance, or
//!   begun by KCL 3.x's leader: `leaseOwner` becomes the receiver and `checkpointOwner`
//!   this worker, which keeps renewing and may checkpoint; the receiver waits until the
//!   lease is handed over. A processor that has not returned within
//!   `graceful_handoff_timeout` is cut off (its task aborted) and the lease handed over
//!   anyway.

use tokio::time::Instant;

use super::Coordinator;
use crate::processor::ProcessorFactory;
use crate::shard_consumer::Signal;

/// A lease being given away.
pub(super) struct Giving {
    to: String,
    /// For a graceful handoff: when the processor is cut off.
    deadline: Option<Instant>,
}

/// How a give starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum GiveKind {
    /// To a KCL worker: shut down, then hand over.
    ToKcl,
    /// A graceful handoff this worker begins (marks `checkpointOwner` first).
    Handoff,
    /// A graceful handoff already marked in the table (by KCL 3.x's leader).
    Marked,
}

impl<F: ProcessorFactory> Coordinator<F> {
    /// Starts giving a held lease to `to`; a lease not held (any more) is left alone.
    pub(super) async fn give(&mut self, shard: &str, to: &str, kind: GiveKind) {
        if !self.held.contains_key(shard) || self.giving.contains_key(shard) {
            return;
        }
        let timeout = self.parts.config.graceful_handoff_timeout;
        let deadline = match kind {
            GiveKind::ToKcl => None,
            GiveKind::Marked => Some(Instant::now() + timeout),
            GiveKind::Handoff => {
                let me = self.parts.config.worker_id.clone();
                match self.parts.table.begin_handoff(shard, &me, to).await {
                    Ok(true) => Some(Instant::now() + timeout),
                    Ok(false) => {
                        tracing::debug!(shard, "lease moved before its handoff began");
                        return;
                    }
                    // Not marked: given the plain way (the receiver falls back on its
                    // timeout if it never sees the hand-over).
                    Err(e) => {
                        tracing::warn!(shard, error = %e, "beginning a handoff failed");
                        None
                    }
                }
            }
        };
        tracing::info!(shard, to, ?kind, "giving a lease");
        self.giving.insert(
            shard.to_owned(),
            Giving {
                to: to.to_owned(),
                deadline,
            },
        );
        if let Some(held) = self.held.get(shard) {
            let _ = held.signal.send(Signal::Shutdown);
        }
    }

    /// Whether a consumer that shut down was being given away.
    pub(super) fn is_giving(&self, shard: &str) -> bool {
        self.giving.contains_key(shard)
    }

    /// The next moment a graceful handoff's processor is to be cut off.
    pub(super) fn next_give_deadline(&self) -> Option<Instant> {
        self.giving.values().filter_map(|g| g.deadline).min()
    }

    /// Cuts off the processors of handoffs past their timeout and hands their leases over.
    pub(super) async fn expire_gives(&mut self) {
        let now = Instant::now();
        let overdue: Vec<String> = self
            .giving
            .iter()
            .filter(|(_, g)| g.deadline.is_some_and(|d| d <= now))
            .map(|(s, _)| s.clone())
            .collect();
        for shard in overdue {
            tracing::warn!(shard = %shard, "the processor did not finish shutdown_requested in time; handing the lease over");
            if let Some(held) = self.held.get(&shard) {
                held.abort.abort();
            }
            self.finish_give(&shard).await;
        }
    }

    /// The consumer of a lease being given has ended (or was cut off): hands it over.
    pub(super) async fn finish_give(&mut self, shard: &str) {
        let Some(Giving { to, .. }) = self.giving.remove(shard) else {
            return;
        };
        self.drop_lease(shard, false).await;
        let me = self.parts.config.worker_id.clone();
        match self.parts.table.hand_over(shard, &me, &to).await {
            Ok(true) => {
                tracing::info!(shard, to = %to, "lease handed over");
                self.parts.telemetry.leases_given.increment(1);
            }
            Ok(false) => tracing::debug!(shard, "lease moved before it was handed over"),
            Err(e) => {
                tracing::warn!(shard, error = %e, "handing a lease over failed; it will expire")
            }
        }
    }
}
