//! The lease renewer: a task of its own that keeps every held lease alive at a fixed rate,
//! and the local deadline that stops a shard's processing when renewals stop succeeding.
//!
//! ```text
//!  coordinator ──Hold / Drop──▶ Renewer task ──UpdateItem (≤ N at once, each with a timeout)──▶ lease table
//!       ▲                          │ success: deadline = time the call was sent + failover − margin
//!       └────── Lost (taken / expired) ┘ failure: retry soon with backoff, deadline unchanged
//!                                  │
//!                                  └──▶ Deadline (watch) ──▶ shard consumer: no batch after it
//! ```
//!
//! Invariant: another worker can take a lease only after it has seen the lease's counter
//! stand still for the failover time, and the counter last moved when one of our renewals
//! (sent before that) landed. A deadline of *send time + failover − margin* therefore passes
//! before anyone else may start, whether or not DynamoDB ever answers: a worker cut off from
//! DynamoDB stops delivering on its own. The margin covers clock-rate differences and the
//! time the consumer needs to notice.
//!
//! Renewals never wait behind scans, shard syncs or processors: nothing else runs on this
//! task, and the calls are bounded in number and in time.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use kinesis_common::ServiceError;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::throughput::{Estimate, ThroughputMeter};
use super::{LeaseTable, Renewed};

/// A held lease's local deadline: the earlier of the lease's own (its renewals) and the
/// worker's (its heartbeats, which the leader watches). Once it has passed the lease may
/// belong to another worker.
#[derive(Debug, Clone)]
pub(crate) struct Deadline {
    lease: watch::Receiver<Instant>,
    worker: Option<watch::Receiver<Instant>>,
}

impl Deadline {
    /// Follows the deadline the renewer publishes through the sender of `lease`, and the
    /// worker's through that of `worker`.
    pub(crate) fn new(
        lease: watch::Receiver<Instant>,
        worker: Option<watch::Receiver<Instant>>,
    ) -> Self {
        Deadline { lease, worker }
    }

    fn at(&self) -> Instant {
        let lease = *self.lease.borrow();
        match &self.worker {
            Some(worker) => lease.min(*worker.borrow()),
            None => lease,
        }
    }

    fn closed(&self) -> bool {
        self.lease.has_changed().is_err()
            || self
                .worker
                .as_ref()
                .is_some_and(|w| w.has_changed().is_err())
    }

    /// Whether it has passed (or the renewer gave the lease up).
    pub(crate) fn passed(&self) -> bool {
        self.closed() || Instant::now() >= self.at()
    }

    /// Resolves once the deadline has passed, following every extension.
    pub(crate) async fn expired(&mut self) {
        loop {
            self.lease.borrow_and_update();
            if let Some(worker) = &mut self.worker {
                worker.borrow_and_update();
            }
            let at = self.at();
            if self.closed() || Instant::now() >= at {
                return;
            }
            let Deadline { lease, worker } = self;
            let worker_changed = async {
                match worker {
                    Some(worker) => worker.changed().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::time::sleep_until(at) => {}
                changed = lease.changed() => if changed.is_err() { return },
                changed = worker_changed => if changed.is_err() { return },
            }
        }
    }
}

/// The one call the renewer makes; the lease table in production, a fake in unit tests.
pub(crate) trait RenewCall: Clone + Send + Sync + 'static {
    /// Bumps the counter of a lease held at `counter`, writing its measured throughput
    /// when there is one; `None` if it is no longer ours.
    fn renew(
        &self,
        shard_id: &str,
        owner: &str,
        counter: u64,
        throughput_kbps: Option<f64>,
    ) -> impl Future<Output = Result<Option<Renewed>, ServiceError>> + Send;
}

impl RenewCall for LeaseTable {
    fn renew(
        &self,
        shard_id: &str,
        owner: &str,
        counter: u64,
        throughput_kbps: Option<f64>,
    ) -> impl Future<Output = Result<Option<Renewed>, ServiceError>> + Send {
        LeaseTable::renew(self, shard_id, owner, counter, throughput_kbps)
    }
}

/// Renewal timings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RenewerSettings {
    pub interval: Duration,
    pub failover: Duration,
    pub margin: Duration,
    pub concurrency: usize,
    pub call_timeout: Duration,
}

impl RenewerSettings {
    /// The deadline a renewal (or take) sent at `sent` earns once it succeeds.
    pub(crate) fn deadline_after(&self, sent: Instant) -> Instant {
        sent + self.failover.saturating_sub(self.margin)
    }

    /// Wait before retrying a failed renewal: 100 ms doubling, at most a quarter interval,
    /// and at most a quarter of the time `left` before the lease's deadline. Retries grow
    /// denser as the deadline nears, so the first one after an outage ends comes within a
    /// quarter of the time that was left: a lease outlives any outage shorter than
    /// failover − margin − interval, whenever in the renewal cycle it begins.
    fn retry_after(&self, failures: u32, left: Duration) -> Duration {
        let delay = Duration::from_millis(100).saturating_mul(1 << failures.min(10));
        delay
            .min(self.interval / 4)
            .min(left / 4)
            .max(Duration::from_millis(10))
    }
}

/// What the coordinator tells the renewer.
#[derive(Debug)]
pub(crate) enum Command {
    /// Keep this lease alive. `taken_at`: when the call that took it was sent.
    Hold {
        shard_id: String,
        generation: u64,
        counter: u64,
        taken_at: Instant,
        deadline: watch::Sender<Instant>,
        /// What its consumer delivers, measured for `throughputKBps`.
        meter: Arc<ThroughputMeter>,
        /// The figure the lease item carried when it was taken.
        carried_kbps: Option<f64>,
    },
    /// Stop renewing it (released, finished, or lost).
    Drop { shard_id: String },
}

/// Why the renewer gave a lease up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LossReason {
    /// A renewal was refused: someone else holds it now.
    Taken,
    /// No renewal succeeded before its deadline.
    Expired,
    /// Not lost yet: a graceful handoff to another worker has begun (KCL 3.x's
    /// `checkpointOwner` is this worker); the lease is still renewed until handed over.
    HandoffRequested,
}

/// A lease the renewer gave up.
#[derive(Debug)]
pub(crate) struct Lost {
    pub shard_id: String,
    pub generation: u64,
    pub reason: LossReason,
    /// With `HandoffRequested`: the next owner.
    pub to: Option<String>,
}

/// Figures the coordinator reads to size what it takes.
#[derive(Debug, Default)]
pub(crate) struct RenewerStats {
    /// Mean renewal latency in microseconds (moving average), 0 before the first answer.
    latency_micros: AtomicU64,
    /// Leases given up because no renewal succeeded before their deadline.
    expired: AtomicU64,
}

impl RenewerStats {
    /// Leases given up so far because no renewal succeeded before their deadline.
    pub(crate) fn expired(&self) -> u64 {
        self.expired.load(Ordering::Relaxed)
    }

    /// How many leases the renewer can keep alive, spending at most half of each interval.
    pub(crate) fn capacity(&self, settings: &RenewerSettings) -> usize {
        // Before any renewal has been timed, assume 25 ms a call (a slow DynamoDB).
        let latency = match self.latency_micros.load(Ordering::Relaxed) {
            0 => 25_000,
            l => l.max(100),
        };
        let budget = settings.interval.as_micros() as u64 / 2 * settings.concurrency as u64;
        (budget / latency).max(1) as usize
    }

    fn observe(&self, latency: Duration) {
        let sample = latency.as_micros().max(1) as u64;
        let old = self.latency_micros.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample
        } else {
            (old * 7 + sample) / 8
        };
        self.latency_micros.store(new, Ordering::Relaxed);
    }
}

struct Entry {
    generation: u64,
    counter: u64,
    deadline: watch::Sender<Instant>,
    next_at: Instant,
    failures: u32,
    in_flight: bool,
    meter: Arc<ThroughputMeter>,
    estimate: Estimate,
    /// The coordinator was told of a handoff begun.
    handoff_told: bool,
}

/// The renewer's state; [`Renewer::run`] is its task.
pub(crate) struct Renewer<T: RenewCall> {
    pub table: T,
    pub owner: String,
    pub settings: RenewerSettings,
    pub commands: mpsc::UnboundedReceiver<Command>,
    pub lost: mpsc::UnboundedSender<Lost>,
    pub stats: Arc<RenewerStats>,
    pub telemetry: Arc<crate::telemetry::Telemetry>,
}

type Answer = (String, u64, Instant, Result<Option<Renewed>, ServiceError>);
type Call = std::pin::Pin<Box<dyn Future<Output = Answer> + Send>>;

impl<T: RenewCall> Renewer<T> {
    /// Runs until the coordinator drops its command sender.
    pub(crate) async fn run(mut self) {
        let mut leases: HashMap<String, Entry> = HashMap::new();
        let mut calls: FuturesUnordered<Call> = FuturesUnordered::new();
        loop {
            self.start_due(&mut leases, &mut calls);
            let room = calls.len() < self.settings.concurrency;
            let wake = leases
                .values()
                .map(|e| {
                    let deadline = *e.deadline.borrow();
                    if e.in_flight || !room {
                        deadline
                    } else {
                        e.next_at.min(deadline)
                    }
                })
                .min()
                .unwrap_or_else(|| Instant::now() + self.settings.interval);
            tokio::select! {
                command = self.commands.recv() => match command {
                    None => return,
                    Some(Command::Hold { shard_id, generation, counter, taken_at, deadline, meter, carried_kbps }) => {
                        deadline.send_replace(self.settings.deadline_after(taken_at));
                        leases.insert(shard_id, Entry {
                            generation,
                            counter,
                            deadline,
                            next_at: taken_at + self.settings.interval,
                            failures: 0,
                            in_flight: false,
                            meter,
                            estimate: Estimate::new(carried_kbps),
                            handoff_told: false,
                        });
                    }
                    Some(Command::Drop { shard_id }) => {
                        leases.remove(&shard_id);
                    }
                },
                Some(answer) = calls.next(), if !calls.is_empty() => self.on_answer(&mut leases, answer),
                _ = tokio::time::sleep_until(wake) => {}
            }
            self.expire(&mut leases);
        }
    }

    /// Starts the renewals that are due, at most `concurrency` in flight.
    fn start_due(&self, leases: &mut HashMap<String, Entry>, calls: &mut FuturesUnordered<Call>) {
        let now = Instant::now();
        let room = self.settings.concurrency.saturating_sub(calls.len());
        if room == 0 {
            return;
        }
        // The most urgent first: the ones whose deadline is nearest.
        let mut due: Vec<(&String, &mut Entry)> = leases
            .iter_mut()
            .filter(|(_, e)| !e.in_flight && e.next_at <= now)
            .collect();
        due.sort_by_key(|(_, e)| *e.deadline.borrow());
        let started = !due.is_empty();
        for (shard_id, entry) in due.into_iter().take(room) {
            entry.in_flight = true;
            let (table, owner, shard_id) =
                (self.table.clone(), self.owner.clone(), shard_id.clone());
            let (generation, counter, timeout) =
                (entry.generation, entry.counter, self.settings.call_timeout);
            let kbps = entry.estimate.sample(&entry.meter, now);
            calls.push(Box::pin(async move {
                let sent = Instant::now();
                let renewal = table.renew(&shard_id, &owner, counter, kbps);
                let result = match tokio::time::timeout(timeout, renewal).await {
                    Ok(result) => result,
                    Err(_) => Err(ServiceError::timed_out("UpdateItem", timeout)),
                };
                (shard_id, generation, sent, result)
            }));
        }
        if started {
            let total: f64 = leases.values().filter_map(|e| e.estimate.kbps()).sum();
            self.telemetry.throughput_kbps.set(total);
        }
    }

    fn on_answer(
        &self,
        leases: &mut HashMap<String, Entry>,
        (shard_id, generation, sent, result): Answer,
    ) {
        let Some(entry) = leases.get_mut(&shard_id) else {
            return;
        };
        if entry.generation != generation {
            return;
        }
        entry.in_flight = false;
        match result {
            Ok(Some(Renewed {
                counter,
                handoff_to,
            })) => {
                if let Some(to) = handoff_to
                    && !entry.handoff_told
                {
                    entry.handoff_told = true;
                    tracing::info!(shard = %shard_id, to = %to, "a handoff of the lease has begun");
                    let _ = self.lost.send(Lost {
                        shard_id: shard_id.clone(),
                        generation,
                        reason: LossReason::HandoffRequested,
                        to: Some(to),
                    });
                }
                self.stats.observe(sent.elapsed());
                self.telemetry
                    .lease_renewal_seconds
                    .record(sent.elapsed().as_secs_f64());
                entry.counter = counter;
                entry.failures = 0;
                entry.next_at = sent + self.settings.interval;
                entry
                    .deadline
                    .send_replace(self.settings.deadline_after(sent));
                self.telemetry.lease_renewals.increment(1);
            }
            Ok(None) => {
                leases.remove(&shard_id);
                self.give_up(shard_id, generation, LossReason::Taken);
            }
            Err(e) => {
                tracing::warn!(shard = %shard_id, error = %e, "lease renewal failed; retrying");
                self.telemetry.lease_renewal_failures.increment(1);
                entry.failures += 1;
                let now = Instant::now();
                let left = entry.deadline.borrow().saturating_duration_since(now);
                entry.next_at = now + self.settings.retry_after(entry.failures, left);
            }
        }
    }

    /// Gives up every lease whose deadline passed without a successful renewal.
    fn expire(&self, leases: &mut HashMap<String, Entry>) {
        let now = Instant::now();
        let expired: Vec<(String, u64)> = leases
            .iter()
            .filter(|(_, e)| now >= *e.deadline.borrow())
            .map(|(s, e)| (s.clone(), e.generation))
            .collect();
        for (shard_id, generation) in expired {
            leases.remove(&shard_id);
            self.stats.expired.fetch_add(1, Ordering::Relaxed);
            self.telemetry.leases_expired.increment(1);
            self.give_up(shard_id, generation, LossReason::Expired);
        }
    }

    fn give_up(&self, shard_id: String, generation: u64, reason: LossReason) {
        tracing::info!(shard = %shard_id, ?reason, "lease given up by the renewer");
        let _ = self.lost.send(Lost {
            shard_id,
            generation,
            reason,
            to: None,
        });
    }
}

#[cfg(test)]
mod tests;
