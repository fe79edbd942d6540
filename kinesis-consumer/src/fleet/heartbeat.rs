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

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
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
    /// This worker's throughput cap, registered for the leader.
    pub max_throughput_kbps: Option<f64>,
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
    pub telemetry: Arc<crate::telemetry::Telemetry>,
}

/// A heartbeat call in flight: (incarnation, send time, answer).
type Beat = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = (
                    String,
                    Instant,
                    Result<
                        Result<Option<WorkerState>, kinesis_common::ServiceError>,
                        tokio::time::error::Elapsed,
                    >,
                ),
            > + Send,
    >,
>;

impl Heartbeat {
    /// Runs until the coordinator drops its receivers.
    ///
    /// A heartbeat is sent at every tick even while earlier ones are still out (each has the
    /// call timeout), so one slow or throttled call, retried inside the SDK, never delays the
    /// next: the deadline follows the latest success, by send time.
    pub(crate) async fn run(self) {
        let mut ticker = tokio::time::interval(self.settings.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut incarnation: Option<String> = None;
        let mut in_flight: FuturesUnordered<Beat> = FuturesUnordered::new();
        let most_in_flight = (self.settings.call_timeout.as_millis()
            / self.settings.interval.as_millis().max(1)) as usize
            + 1;
        // The latest success: (heartbeat counter, send time).
        let mut latest: Option<(u64, Instant)> = None;
        loop {
            let beat_now = tokio::select! {
                _ = ticker.tick() => true,
                _ = self.poke.notified() => true,
                Some((of, sent, answer)) = in_flight.next(), if !in_flight.is_empty() => {
                    if incarnation.as_deref() == Some(of.as_str()) {
                        self.answered(sent, answer, &mut latest, &mut incarnation, &mut ticker);
                    }
                    false
                }
            };
            if self.membership.is_closed() {
                return;
            }
            if !beat_now {
                continue;
            }
            let sent = Instant::now();
            let capacity = (self.capacity)();
            let Some(current) = incarnation.clone() else {
                let fresh = token();
                let call = self
                    .table
                    .register(&self.worker_id, &fresh, capacity, &self.settings);
                match tokio::time::timeout(self.settings.call_timeout, call).await {
                    Ok(Ok(())) => {
                        tracing::debug!(worker = %self.worker_id, "registered");
                        let _ = self.deadline.send(self.settings.deadline_after(sent));
                        self.membership.send_modify(|m| {
                            m.incarnation = fresh.clone();
                            m.state = None;
                        });
                        latest = None;
                        incarnation = Some(fresh);
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "registering the worker failed"),
                    Err(_) => tracing::warn!("registering the worker timed out"),
                }
                continue;
            };
            if in_flight.len() >= most_in_flight {
                continue;
            }
            let (table, worker, timeout) = (
                self.table.clone(),
                self.worker_id.clone(),
                self.settings.call_timeout,
            );
            in_flight.push(Box::pin(async move {
                let call = table.heartbeat(&worker, &current, capacity);
                let answer = tokio::time::timeout(timeout, call).await;
                (current, sent, answer)
            }));
        }
    }

    /// Acts on one heartbeat's answer.
    fn answered(
        &self,
        sent: Instant,
        answer: Result<
            Result<Option<WorkerState>, kinesis_common::ServiceError>,
            tokio::time::error::Elapsed,
        >,
        latest: &mut Option<(u64, Instant)>,
        incarnation: &mut Option<String>,
        ticker: &mut tokio::time::Interval,
    ) {
        match answer {
            Ok(Ok(Some(state))) => {
                // Answers may come back out of order: only a newer heartbeat counts.
                if latest.is_some_and(|(counter, _)| counter >= state.heartbeat) {
                    return;
                }
                *latest = Some((state.heartbeat, sent));
                let _ = self.deadline.send(self.settings.deadline_after(sent));
                self.membership.send_if_modified(|m| {
                    let changed = m.state.as_ref() != Some(&state);
                    m.state = Some(state);
                    changed
                });
            }
            Ok(Ok(None)) => {
                tracing::warn!(worker = %self.worker_id, "fenced by the leader; dropping every lease");
                self.telemetry.worker_fenced.increment(1);
                let _ = self.deadline.send(Instant::now());
                self.membership.send_modify(|m| {
                    m.fenced += 1;
                    m.state = None;
                });
                *incarnation = None;
                ticker.reset_immediately();
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "heartbeat failed"),
            Err(_) => tracing::warn!("heartbeat timed out"),
        }
    }
}
