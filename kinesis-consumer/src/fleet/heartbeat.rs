//! The worker's heartbeat: one small conditional write at a fixed rate, on its own task.
//!
//! ```text
//!  Heartbeat task ── UpdateItem heartbeat+1 (returns the item) ──▶ coordinator table
//!        ├──▶ worker deadline (watch): last successful heartbeat sent + failover − margin
//!        └──▶ membership (watch): the item as written (plan, standby), and how often fenced
//! ```
//!
//! The leader declares a worker dead once its heartbeat has stood still for the failover
//! time (as the leader sees it) and fences it with a write conditional on that heartbeat.
//! The worker's deadline passes before that moment, so every lease it holds stops on its
//! own, even if DynamoDB never answers again. A fenced worker drops everything and comes
//! back as a new incarnation with no leases.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::{Instant, MissedTickBehavior};

use super::state_table::{StateTable, WorkerState, token};

/// Timing of the heartbeat.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeartbeatSettings {
    pub interval: Duration,
    pub failover: Duration,
    pub margin: Duration,
    pub call_timeout: Duration,
}

impl HeartbeatSettings {
    fn deadline_after(&self, sent: Instant) -> Instant {
        sent + self.failover.saturating_sub(self.margin)
    }
}

/// What the coordinator learns from the heartbeat.
#[derive(Debug, Clone, Default)]
pub(crate) struct Membership {
    /// The incarnation registered (plans of older ones are void).
    pub incarnation: String,
    /// How many times this worker was fenced: it then holds nothing.
    pub fenced: u64,
    /// The item as the last heartbeat wrote it.
    pub state: Option<WorkerState>,
}

/// The heartbeat task's parts.
pub(crate) struct Heartbeat {
    pub table: StateTable,
    pub worker_id: String,
    pub settings: HeartbeatSettings,
    /// How many leases this worker can renew (reported to the leader).
    pub capacity: Arc<dyn Fn() -> usize + Send + Sync>,
    pub deadline: watch::Sender<Instant>,
    pub membership: watch::Sender<Membership>,
    /// Beats at once when notified (the leader assigned this worker something).
    pub poke: Arc<Notify>,
}

impl Heartbeat {
    /// Runs until the coordinator drops its receivers.
    pub(crate) async fn run(self) {
        let mut ticker = tokio::time::interval(self.settings.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut incarnation: Option<String> = None;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = self.poke.notified() => {}
            }
            if self.membership.is_closed() {
                return;
            }
            let sent = Instant::now();
            let capacity = (self.capacity)();
            let Some(current) = incarnation.clone() else {
                let fresh = token();
                let call =
                    self.table
                        .register(&self.worker_id, &fresh, capacity, self.settings.failover);
                match tokio::time::timeout(self.settings.call_timeout, call).await {
                    Ok(Ok(())) => {
                        tracing::debug!(worker = %self.worker_id, "registered");
                        let _ = self.deadline.send(self.settings.deadline_after(sent));
                        self.membership.send_modify(|m| {
                            m.incarnation = fresh.clone();
                            m.state = None;
                        });
                        incarnation = Some(fresh);
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "registering the worker failed"),
                    Err(_) => tracing::warn!("registering the worker timed out"),
                }
                continue;
            };
            let call = self.table.heartbeat(&self.worker_id, &current, capacity);
            match tokio::time::timeout(self.settings.call_timeout, call).await {
                Ok(Ok(Some(state))) => {
                    let _ = self.deadline.send(self.settings.deadline_after(sent));
                    self.membership.send_if_modified(|m| {
                        let changed = m.state.as_ref() != Some(&state);
                        m.state = Some(state);
                        changed
                    });
                }
                Ok(Ok(None)) => {
                    tracing::warn!(worker = %self.worker_id, "fenced by the leader; dropping every lease");
                    metrics::counter!("kinesis_consumer_worker_fenced").increment(1);
                    let _ = self.deadline.send(Instant::now());
                    self.membership.send_modify(|m| {
                        m.fenced += 1;
                        m.state = None;
                    });
                    incarnation = None;
                    ticker.reset_immediately();
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "heartbeat failed"),
                Err(_) => tracing::warn!("heartbeat timed out"),
            }
        }
    }
}
