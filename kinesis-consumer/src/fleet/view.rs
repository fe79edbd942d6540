//! What the leader (and its standby) have seen of the fleet's heartbeats: who is alive,
//! whose heartbeat has stood still for the failover time, who left or came back as a new
//! incarnation. Pure bookkeeping over scans and the local clock, tested in milliseconds.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::time::Instant;

use super::state_table::WorkerState;

/// What the leader has seen of one worker's heartbeat.
#[derive(Debug)]
pub(super) struct Seen {
    heartbeat: u64,
    incarnation: String,
    since: Instant,
    fenced_since: Option<Instant>,
}

/// What the leader (or standby) has seen of the fleet's heartbeats.
#[derive(Debug, Default)]
pub(super) struct FleetView {
    pub(super) seen: HashMap<String, Seen>,
    /// When this view began.
    pub(super) started: Option<Instant>,
}

impl FleetView {
    /// Records a scan; returns (whether membership changed, owners whose leases are orphaned:
    /// departed workers and replaced incarnations).
    pub(super) fn observe(&mut self, workers: &[WorkerState], now: Instant) -> (bool, Vec<String>) {
        self.started.get_or_insert(now);
        let mut changed = false;
        let mut orphaned = Vec::new();
        let present: HashSet<&str> = workers.iter().map(|w| w.worker_id.as_str()).collect();
        self.seen.retain(|id, _| {
            let keep = present.contains(id.as_str());
            if !keep {
                changed = true;
                orphaned.push(id.clone());
            }
            keep
        });
        for w in workers {
            match self.seen.get_mut(&w.worker_id) {
                Some(seen) if seen.incarnation == w.incarnation => {
                    if seen.heartbeat != w.heartbeat {
                        seen.heartbeat = w.heartbeat;
                        seen.since = now;
                    }
                    if w.fenced && seen.fenced_since.is_none() {
                        seen.fenced_since = Some(now);
                        changed = true;
                    }
                }
                previous => {
                    if previous.is_some() {
                        orphaned.push(w.worker_id.clone());
                    }
                    changed = true;
                    self.seen.insert(
                        w.worker_id.clone(),
                        Seen {
                            heartbeat: w.heartbeat,
                            incarnation: w.incarnation.clone(),
                            since: now,
                            fenced_since: w.fenced.then_some(now),
                        },
                    );
                }
            }
        }
        (changed, orphaned)
    }

    pub(super) fn is_fenced(&self, worker: &str) -> bool {
        self.seen
            .get(worker)
            .is_none_or(|s| s.fenced_since.is_some())
    }

    /// Workers whose heartbeat stood still for the failover time (less `slack`, the poll
    /// grid's jitter: see `LeaderSettings::grid_slack`).
    pub(super) fn stale<'a>(
        &self,
        workers: &'a [WorkerState],
        now: Instant,
        failover: Duration,
        slack: Duration,
    ) -> Vec<&'a WorkerState> {
        workers
            .iter()
            .filter(|w| {
                self.seen.get(&w.worker_id).is_some_and(|s| {
                    s.fenced_since.is_none()
                        && s.heartbeat == w.heartbeat
                        && now.saturating_duration_since(s.since) + slack
                            >= failover.max(w.failover)
                })
            })
            .collect()
    }

    /// Fenced items old enough to delete (their worker has had the failover time to come back).
    pub(super) fn long_fenced<'a>(
        &self,
        workers: &'a [WorkerState],
        now: Instant,
        failover: Duration,
    ) -> Vec<&'a WorkerState> {
        workers
            .iter()
            .filter(|w| {
                w.fenced
                    && self
                        .seen
                        .get(&w.worker_id)
                        .and_then(|s| s.fenced_since)
                        .is_some_and(|at| now.saturating_duration_since(at) >= failover)
            })
            .collect()
    }

    pub(super) fn mark_fenced(&mut self, worker: &str, now: Instant) {
        if let Some(seen) = self.seen.get_mut(worker) {
            seen.fenced_since = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(id: &str, heartbeat: u64, incarnation: &str) -> WorkerState {
        WorkerState {
            worker_id: id.into(),
            heartbeat,
            incarnation: incarnation.into(),
            capacity: usize::MAX,
            failover: Duration::ZERO,
            max_throughput_kbps: None,
            fenced: false,
            standby: false,
            plan: Vec::new(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_heartbeat_that_stands_still_for_the_failover_time_is_stale() {
        let failover = Duration::from_secs(10);
        let mut view = FleetView::default();
        let (changed, _) =
            view.observe(&[worker("a", 1, "x"), worker("b", 1, "y")], Instant::now());
        assert!(changed, "new workers are a change");
        tokio::time::advance(Duration::from_secs(6)).await;
        let (changed, _) =
            view.observe(&[worker("a", 2, "x"), worker("b", 1, "y")], Instant::now());
        assert!(!changed, "heartbeats are not a change");
        tokio::time::advance(Duration::from_secs(4)).await;
        let now_seen = [worker("a", 2, "x"), worker("b", 1, "y")];
        let stale: Vec<&str> = view
            .stale(&now_seen, Instant::now(), failover, Duration::ZERO)
            .iter()
            .map(|w| w.worker_id.as_str())
            .collect();
        assert_eq!(stale, ["b"]);
        view.mark_fenced("b", Instant::now());
        assert!(
            view.stale(&now_seen, Instant::now(), failover, Duration::ZERO)
                .is_empty()
        );
        assert!(view.is_fenced("b") && !view.is_fenced("a"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_poll_that_wakes_a_little_early_on_its_grid_still_sees_the_heartbeat_stale() {
        let failover = Duration::from_secs(4);
        let slack = Duration::from_millis(50);
        let mut view = FleetView::default();
        // The scan that saw the last beat woke 1 ms late; the one eight polls later, on time.
        tokio::time::advance(Duration::from_millis(1)).await;
        view.observe(&[worker("a", 1, "x")], Instant::now());
        tokio::time::advance(failover - Duration::from_millis(1)).await;
        let seen = [worker("a", 1, "x")];
        assert!(
            view.stale(&seen, Instant::now(), failover, Duration::ZERO)
                .is_empty(),
            "without slack, 3.999 s is not 4 s: a whole poll more"
        );
        assert_eq!(view.stale(&seen, Instant::now(), failover, slack).len(), 1);
        tokio::time::advance(Duration::from_millis(100)).await;
        view.observe(&[worker("a", 2, "x")], Instant::now());
        tokio::time::advance(failover - slack * 2).await;
        assert!(
            view.stale(&[worker("a", 2, "x")], Instant::now(), failover, slack)
                .is_empty(),
            "the slack is all the failover time gives up"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn departed_workers_and_replaced_incarnations_orphan_their_leases() {
        let mut view = FleetView::default();
        view.observe(&[worker("a", 1, "x"), worker("b", 1, "y")], Instant::now());
        let (changed, mut orphaned) = view.observe(&[worker("a", 0, "x2")], Instant::now());
        orphaned.sort();
        assert!(changed);
        assert_eq!(orphaned, ["a", "b"]);
        assert!(!view.is_fenced("a"), "the new incarnation is live");
    }
}
