//! Leadership: one worker of the fleet, holding a lock in the coordinator table, watches the
//! heartbeats, fences the dead, lists shards and assigns leases. The others never read the
//! lease table.
//!
//! ```text
//!  follower ── lock check (GetItem, every `check`) ──┐   standby ── scan of the coordinator
//!                                                    ▼             table every `poll` ──┐
//!                     lock absent, or its version still for the failover time: acquire ◀┘
//!  leader ── renews the lock ── scans the coordinator table every `poll`:
//!            fences heartbeats still for the failover time, keeps a standby,
//!            scans the lease table on a change (else every `scan_interval`),
//!            plans (lease::assigner) and writes each worker's assignments into its item
//! ```
//!
//! The leader's own deadline is its last successful lock renewal + failover − margin: a
//! leader cut off from DynamoDB stops leading before anyone can take the lock. Its writes are
//! conditional anyway (a fence on the heartbeat it saw, a take on the lease as it was seen),
//! so a stale leader can delay, never break, exclusive ownership. The standby (chosen by the
//! leader) watches the lock closely and already knows every heartbeat, so when the leader
//! dies it takes over and fails the leader's leases over within the failover time plus a
//! poll; the others check the lock rarely, in case leader and standby die together.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{Notify, watch};
use tokio::time::{Instant, MissedTickBehavior};

use super::heartbeat::Membership;
use super::kcl_members::KclMembers;
use super::state_table::{Assignment, PLAN_CHUNK, Snapshot, StateTable, WorkerState};
use super::view::FleetView;
use crate::lease::assigner::{self, Candidate, Observed, PlanInput};
use crate::lease::cleanup::Vanished;
use crate::lease::{Lease, LeaseScan, LeaseTable};
use crate::streams::Source;

mod sync;

/// Writes made at once by the leader.
const CALL_CONCURRENCY: usize = 16;

/// Timing and limits of leadership.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LeaderSettings {
    /// How often the leader scans the coordinator table.
    pub poll: Duration,
    /// How often the standby scans it.
    pub standby_poll: Duration,
    /// How often any other worker checks the lock.
    pub check: Duration,
    pub lock_renewal: Duration,
    pub failover: Duration,
    pub margin: Duration,
    pub call_timeout: Duration,
    /// Lease-table scans when nothing changes.
    pub scan_interval: Duration,
    pub sync_interval: Duration,
    /// How long a new leader waits for heartbeats before its first assignment.
    pub settle: Duration,
    pub max_steal: usize,
    pub balance: crate::Balance,
    pub balance_threshold: f64,
    /// Moves between our workers are graceful handoffs.
    pub graceful_handoff: bool,
    pub cleanup_grace: Duration,
}

impl LeaderSettings {
    /// How much before the failover time a poll may find a lock or heartbeat stale. Polls
    /// fall on a grid of `poll`; when the poll that saw the last change woke a little later
    /// than the one failover time after it, 3.999 s is not 4 s and the failover would cost
    /// a whole poll more. Taken from the margin, which the holder's deadline keeps anyway.
    pub(super) fn grid_slack(&self) -> Duration {
        (self.poll / 10).min(self.margin / 2)
    }
}

/// The leader's parts.
pub(crate) struct Leader {
    pub state: StateTable,
    pub leases: LeaseTable,
    pub kinesis: aws_sdk_kinesis::Client,
    /// The stream, or a multi-stream worker's tracker.
    pub source: Source,
    pub me: String,
    pub settings: LeaderSettings,
    pub membership: watch::Receiver<Membership>,
    /// Beats this worker's heartbeat at once (its own assignments need no wait).
    pub poke: Arc<Notify>,
    /// The lock version while this worker leads.
    pub leading: watch::Sender<Option<String>>,
    pub telemetry: Arc<crate::telemetry::Telemetry>,
}

/// The leader's memory, kept across rounds.
#[derive(Default)]
pub(super) struct Duties {
    pub(super) view: FleetView,
    observed: Observed,
    /// Workers whose leases are to be recorded as orphans at the next lease scan.
    orphan_owners: HashSet<String>,
    orphans: HashMap<String, (String, u64)>,
    next_scan: Option<Instant>,
    next_sync: Option<Instant>,
    vanished: Vanished,
    /// The real KCL's workers sharing the table.
    kcl: KclMembers,
    /// Streams no longer tracked (multi-stream): identifier → since when.
    former: HashMap<String, Instant>,
}

impl Leader {
    /// Runs until the worker stops (the task is aborted then).
    pub(crate) async fn run(self) {
        let mut duties = Duties::default();
        loop {
            let (version, since) = self.follow(&mut duties).await;
            // Assignments wait until the fleet's heartbeats have been watched for a while (a
            // standby has long done so), so workers starting together share a cold table.
            let settled_at = duties.view.started.unwrap_or(since) + self.settings.settle;
            tracing::info!(worker = %self.me, "became the leader");
            self.telemetry.leader.set(1.0);
            let _ = self.leading.send(Some(version.clone()));
            duties.next_scan = None;
            duties.next_sync = None;
            self.lead(version, since, settled_at, &mut duties).await;
            self.telemetry.leader.set(0.0);
            let _ = self.leading.send(None);
        }
    }

    /// Leads until the lock is lost or lapses. The lock is renewed on a schedule of its own,
    /// never delayed by the duties; when it cannot be renewed in time the duties stop.
    async fn lead(
        &self,
        version: String,
        since: Instant,
        settled_at: Instant,
        duties: &mut Duties,
    ) {
        let s = self.settings;
        let renewal = async {
            let mut version = version;
            let mut renewed = since;
            let mut next = since + s.lock_renewal;
            loop {
                tokio::time::sleep_until(next).await;
                let deadline = renewed + s.failover.saturating_sub(s.margin);
                let sent = Instant::now();
                let until = deadline.min(sent + s.call_timeout);
                match tokio::time::timeout_at(until, self.state.renew_lock(&self.me, &version))
                    .await
                {
                    Ok(Ok(Some(next_version))) => {
                        version = next_version;
                        renewed = sent;
                        next = sent + s.lock_renewal;
                        let _ = self.leading.send(Some(version.clone()));
                        continue;
                    }
                    Ok(Ok(None)) => {
                        tracing::warn!("leadership lost: another worker holds the lock");
                        return;
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "renewing the leader lock failed"),
                    Err(_) => tracing::warn!("renewing the leader lock timed out"),
                }
                if Instant::now() >= deadline {
                    tracing::warn!("leadership lapsed: the lock could not be renewed in time");
                    return;
                }
                next = Instant::now() + s.lock_renewal / 4;
            }
        };
        let work = async {
            let mut ticker = tokio::time::interval(s.poll);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let settled = Instant::now() >= settled_at;
                self.duties(duties, settled).await;
            }
        };
        tokio::select! {
            _ = renewal => {}
            _ = work => {}
        }
    }

    pub(super) async fn scan(&self) -> Option<Snapshot> {
        match tokio::time::timeout(self.settings.call_timeout, self.state.scan()).await {
            Ok(Ok(snapshot)) => Some(snapshot),
            Ok(Err(e)) => {
                tracing::warn!(worker = %self.me, error = %e, table = %self.state.name(), "scanning the coordinator table failed");
                None
            }
            Err(_) => {
                tracing::warn!(worker = %self.me, table = %self.state.name(), "scanning the coordinator table timed out");
                None
            }
        }
    }

    /// One round of the leader's duties.
    async fn duties(&self, d: &mut Duties, settled: bool) {
        let s = self.settings;
        let Some(snapshot) = self.scan().await else {
            return;
        };
        let now = Instant::now();
        let (mut changed, orphaned) = d.view.observe(&snapshot.workers, now);
        d.orphan_owners.extend(orphaned);
        for worker in d
            .view
            .stale(&snapshot.workers, now, s.failover, s.grid_slack())
        {
            let call = self.state.fence(worker);
            if let Ok(Ok(true)) = tokio::time::timeout(s.call_timeout, call).await {
                tracing::info!(worker = %worker.worker_id, "worker fenced: its heartbeat stood still for the failover time");
                self.telemetry.workers_fenced.increment(1);
                d.view.mark_fenced(&worker.worker_id, now);
                d.orphan_owners.insert(worker.worker_id.clone());
                changed = true;
            }
        }
        for worker in d.view.long_fenced(&snapshot.workers, now, s.failover) {
            let call = self
                .state
                .deregister(&worker.worker_id, &worker.incarnation);
            let _ = tokio::time::timeout(s.call_timeout, call).await;
        }
        let live: Vec<&WorkerState> = snapshot
            .workers
            .iter()
            .filter(|w| !w.fenced && !d.view.is_fenced(&w.worker_id))
            .collect();
        self.keep_standby(&live).await;
        let sync_due = d.next_sync.is_none_or(|at| now >= at);
        let live_ids: HashSet<&str> = live.iter().map(|w| w.worker_id.as_str()).collect();
        let expiry = d.observed.next_expiry(&live_ids, now, s.failover);
        let due = changed
            || sync_due
            || d.next_scan.is_none_or(|at| now >= at)
            || expiry.is_some_and(|at| now >= at);
        if !due || !settled {
            return;
        }
        d.next_scan = Some(now + s.scan_interval);
        // A shard sync reads consistently: it must not recreate a lease it misses.
        let Some(LeaseScan {
            mut leases,
            mut kcl_workers,
        }) = self.scan_leases(sync_due).await
        else {
            return;
        };
        let timeout = s.call_timeout * 4;
        kcl_workers.extend(d.kcl.legacy(&self.leases, now, timeout).await);
        if sync_due {
            d.next_sync = Some(now + s.sync_interval);
            // Lists shards and creates the leases they need before assigning.
            if self.sync(d, &leases).await > 0 {
                let Some(again) = self.scan_leases(false).await else {
                    return;
                };
                leases = again.leases;
            }
        }
        let mut leases: Vec<Lease> = leases;
        leases.retain(|l| !d.vanished.contains(&l.shard_id));
        d.observed.update(&leases, now);
        for lease in &leases {
            if let Some(owner) = &lease.owner
                && d.orphan_owners.contains(owner)
            {
                d.orphans
                    .insert(lease.shard_id.clone(), (owner.clone(), lease.counter));
            }
        }
        d.orphan_owners.clear();
        let by_shard: HashMap<&str, &Lease> =
            leases.iter().map(|l| (l.shard_id.as_str(), l)).collect();
        d.orphans.retain(|shard, (owner, counter)| {
            by_shard
                .get(shard.as_str())
                .is_some_and(|l| l.owner.as_deref() == Some(owner) && l.counter == *counter)
        });
        let candidates: Vec<Candidate> = live
            .iter()
            .map(|w| Candidate {
                worker_id: w.worker_id.clone(),
                capacity: w.capacity,
                failover: w.failover,
                max_kbps: w.max_throughput_kbps,
            })
            .collect();
        let pending = assigner::pending(
            live.iter()
                .map(|w| (w.worker_id.as_str(), w.plan.as_slice())),
            &d.orphans,
        );
        let foreign = d.kcl.members(
            kcl_workers,
            &leases,
            &d.observed,
            &live_ids,
            now,
            s.failover,
        );
        // Leases of owners outside our fleet (KCL's) expire only by their counters, which
        // only scans show: scan at twice the failover rate while there are any (or KCL
        // workers, which may get some at any time), so that one of theirs that dies is
        // failed over within about 1.5 × the failover time.
        if !foreign.is_empty()
            || leases
                .iter()
                .any(|l| l.owner.as_deref().is_some_and(|o| !live_ids.contains(o)))
        {
            let soon = now + s.failover / 2;
            d.next_scan = d.next_scan.map(|n| n.min(soon));
        }
        let plan = assigner::plan(&PlanInput {
            leases: &leases,
            observed: &d.observed,
            workers: &candidates,
            orphans: &d.orphans,
            pending: &pending,
            foreign: &foreign,
            now,
            failover: s.failover,
            max_steal: s.max_steal,
            balance: s.balance,
            threshold: s.balance_threshold,
            graceful: s.graceful_handoff,
        });
        let assigner::Plan {
            assignments: plan,
            unplaced,
        } = plan;
        if unplaced > 0 {
            // Every worker is at what it can renew; capacity grows as renewals are timed,
            // and workers join: look again soon rather than a scan interval later.
            tracing::debug!(unplaced, "leases left unassigned for now");
            let soon = now + s.failover / 4;
            d.next_scan = d.next_scan.map(|n| n.min(soon));
        }
        if !plan.is_empty() {
            tracing::debug!(
                assignments = plan.len(),
                workers = live.len(),
                "assigning leases"
            );
            self.write(plan, &live).await;
        }
        if let Some(at) = d.observed.next_expiry(&live_ids, now, s.failover) {
            d.next_scan = d.next_scan.map(|n| n.min(at));
        }
    }

    /// Keeps one live worker other than the leader as standby.
    async fn keep_standby(&self, live: &[&WorkerState]) {
        let others: Vec<&&WorkerState> = live.iter().filter(|w| w.worker_id != self.me).collect();
        if others.iter().any(|w| w.standby) {
            return;
        }
        if let Some(next) = others.first() {
            let call = self.state.set_standby(next, true);
            if let Ok(Ok(true)) = tokio::time::timeout(self.settings.call_timeout, call).await {
                tracing::debug!(worker = %next.worker_id, "standby chosen");
            }
        }
    }

    /// The lease table, by scan; eventually consistent will do for assignments (every write
    /// made from it is conditional, so a stale answer only delays a decision).
    async fn scan_leases(&self, consistent: bool) -> Option<LeaseScan> {
        let call = self.leases.scan(consistent);
        match tokio::time::timeout(self.settings.call_timeout * 4, call).await {
            Ok(Ok(leases)) => Some(leases),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "lease scan failed");
                None
            }
            Err(_) => {
                tracing::warn!("lease scan timed out");
                None
            }
        }
    }

    /// Writes the plan into the workers' items, a chunk per call, several at once.
    async fn write(&self, plan: Vec<(String, Assignment)>, live: &[&WorkerState]) {
        let incarnations: HashMap<&str, &str> = live
            .iter()
            .map(|w| (w.worker_id.as_str(), w.incarnation.as_str()))
            .collect();
        let mut by_worker: HashMap<String, Vec<Assignment>> = HashMap::new();
        for (worker, assignment) in plan {
            by_worker.entry(worker).or_default().push(assignment);
        }
        let mut calls = Vec::new();
        let mut mine = false;
        for (worker, assignments) in &by_worker {
            let Some(incarnation) = incarnations.get(worker.as_str()) else {
                continue;
            };
            mine |= *worker == self.me;
            for chunk in assignments.chunks(PLAN_CHUNK) {
                calls.push((worker.clone(), incarnation.to_string(), chunk.to_vec()));
            }
        }
        let timeout = self.settings.call_timeout;
        let mut writes =
            futures_util::stream::iter(calls.into_iter().map(|(worker, incarnation, chunk)| {
                let state = self.state.clone();
                async move {
                    let result =
                        tokio::time::timeout(timeout, state.assign(&worker, &incarnation, &chunk))
                            .await;
                    (worker, result)
                }
            }))
            .buffer_unordered(CALL_CONCURRENCY);
        while let Some((worker, result)) = writes.next().await {
            match result {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => {
                    tracing::debug!(worker = %worker, "worker changed before its assignment")
                }
                Ok(Err(e)) => {
                    tracing::warn!(worker = %worker, error = %e, "writing an assignment failed")
                }
                Err(_) => tracing::warn!(worker = %worker, "writing an assignment timed out"),
            }
        }
        if mine {
            self.poke.notify_one();
        }
    }
}
