//! The engine: one task that owns all pipeline state.
//!
//! ```text
//!  send() ─(shard gate: admission)─inbox─▶ route ──▶ shard: Aggregator ─(full or due)─▶ ready ─┐
//!                    ▲                                                     limiter (limiter/)
//!                    │ retry queue (backoff, until TTL)          collect ≤ 500 entries, ≤ 5 MiB
//!                    │                                                       ▼
//!                    └── judged answers (outcome.rs) ◀── PutRecords tasks (≤ N at once)
//! ```
//!
//! Stages, a file each: `shard` (one shard's aggregate and ready queue), `shards` (the
//! shards by id, and which of them hold work or have a gate to set), `routing` (the
//! shard map's prediction, records coming back from a closed shard or a wrong landing),
//! `limiter` (each shard's rate), `gates` (each shard's admission gate, set from its
//! limiter every 100 ms), `order` (per-key order: which shards may send), `collect`
//! (ready entries into requests), `send` (a request in its own task, under a timeout),
//! `outcome` (the pure judgement of an answer: put, throttled, transient or fatal), `answer`
//! (acting on the judgement), `retry` (backoff until the TTL), `refresh` (the shard map,
//! loaded in an owned task bounded by a timeout), `quiet` (when a pass may leave the shards
//! alone).
//!
//! Invariants: every ticket is in exactly one place (unrouted, retry queue, an aggregator, a
//! ready entry, an in-flight request, or awaiting shard verification) until it is resolved
//! once; `outstanding` holds the ids of unresolved tickets, which is what `flush` waits on.
//! Senders never wait for the engine beyond the outstanding bounds and their shard's gate,
//! and a shard map refresh runs in its own task so routing never blocks on ListShards.

mod answer;
mod collect;
mod gates;
pub(crate) mod limiter;
mod order;
mod outcome;
mod outstanding;
mod quiet;
mod refresh;
mod retry;
mod routing;
mod send;
mod shard;
mod shards;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kinesis_common::ServiceError;
use kinesis_common::shard_map::{ShardMap, ShardRange};
use kinesis_common::stream::StreamRef;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::admission::{Admission, Gate};
use crate::config::Config;
use crate::error::ProduceError;
use crate::inbox::Inbox;
use crate::stats::{self, Stats};
use crate::telemetry::Metrics;
use crate::ticket::{Entry, Ticket};

use order::{OrderGuard, Turn};
use refresh::RefreshResult;
use send::{InFlight, RequestOutcome};

/// Keys per shard and measure in the hot-key report.
const HOT_KEYS_REPORTED: usize = 5;

/// What producer handles tell the engine besides their records (which come through the
/// stream's [`Inbox`]).
#[derive(Debug)]
pub(crate) enum Command {
    Flush(oneshot::Sender<()>),
    Shutdown(oneshot::Sender<()>),
}

/// An aggregate that landed on a shard other than the predicted one; its user records are
/// checked against that shard's range once a fresh shard map arrives.
#[derive(Debug)]
struct Landed {
    entry: Entry,
    shard_id: String,
    sequence_number: String,
    started: Instant,
}

pub(crate) struct Engine {
    cfg: Arc<Config>,
    client: aws_sdk_kinesis::Client,
    /// The same client with the SDK's retries off: the engine retries by itself, entry by
    /// entry, and must see throttling to adapt. Built once, not overridden per request.
    put_client: aws_sdk_kinesis::Client,
    stream: StreamRef,
    stats: Arc<Stats>,
    metrics: Metrics,
    inbox: Arc<Inbox>,
    /// Records taken from the inbox and not yet routed (kept to reuse its allocation).
    taken: Vec<Ticket>,
    rx: mpsc::UnboundedReceiver<Command>,
    rx_open: bool,

    map: Option<Arc<ShardMap>>,
    map_error: Option<ServiceError>,
    known_ranges: HashMap<String, ShardRange>,
    /// Looked up for every record; passes visit only those holding work (`shards.rs`).
    shards: shards::Shards,
    /// Shared with the handles: where `send` waits for a shard with too much queued.
    admission: Arc<Admission>,
    /// Each open shard's gate, whether or not it has a `ShardState` yet.
    gates: HashMap<String, Arc<Gate>>,
    /// Round-robin position (a slot of `shards`) when collecting.
    cursor: usize,
    unrouted: Vec<Ticket>,
    retries: BTreeMap<(Instant, u64), Ticket>,
    verify: Vec<Landed>,
    /// Per-key order's bookkeeping, when the `ordered` option is on.
    order: Option<OrderGuard>,

    in_flight: JoinSet<RequestOutcome>,
    requests: HashMap<tokio::task::Id, InFlight>,

    /// The running ListShards task, if any: owned here, so it ends with the engine.
    refresh: JoinSet<RefreshResult>,
    next_refresh: Instant,
    refresh_failures: u32,

    next_id: u64,
    /// Unresolved tickets: id → arrival (ids grow with arrival, so the first is the oldest).
    outstanding: outstanding::Outstanding,
    flushes: Vec<(u64, oneshot::Sender<()>)>,
    shutdowns: Vec<oneshot::Sender<()>>,
    rng: StdRng,
    /// Why the last attempt of each retried, unresolved record failed, by ticket id (kept
    /// here rather than in every ticket: most records are never retried).
    last_errors: HashMap<u64, std::sync::Arc<str>>,
    next_hot_report: Instant,
    /// When the shards' admission gates are next set from their limiters (see `gates`).
    next_gate_update: Instant,
    /// When a pass may leave the shards alone (`quiet.rs`).
    quiet: quiet::Quiet,
    /// Shards whose gate was full at the last update: senders wait on them.
    gated_shards: u64,
}

impl Engine {
    pub(crate) fn new(
        cfg: Arc<Config>,
        client: aws_sdk_kinesis::Client,
        stream: StreamRef,
        stats: Arc<Stats>,
        admission: Arc<Admission>,
        (inbox, rx): (Arc<Inbox>, mpsc::UnboundedReceiver<Command>),
    ) -> Self {
        Engine {
            metrics: Metrics::new(stream.name(), cfg.metrics_granularity),
            order: cfg.ordered.then(OrderGuard::default),
            cfg,
            put_client: aws_sdk_kinesis::Client::from_conf(
                client
                    .config()
                    .to_builder()
                    .retry_config(aws_config::retry::RetryConfig::disabled())
                    .build(),
            ),
            client,
            stream,
            stats,
            inbox,
            taken: Vec::new(),
            rx,
            rx_open: true,
            map: None,
            map_error: None,
            known_ranges: HashMap::new(),
            shards: shards::Shards::default(),
            admission,
            gates: HashMap::new(),
            cursor: 0,
            unrouted: Vec::new(),
            retries: BTreeMap::new(),
            verify: Vec::new(),
            in_flight: JoinSet::new(),
            requests: HashMap::new(),
            refresh: JoinSet::new(),
            next_refresh: Instant::now(),
            refresh_failures: 0,
            next_id: 0,
            outstanding: outstanding::Outstanding::new(Instant::now()),
            flushes: Vec::new(),
            shutdowns: Vec::new(),
            rng: StdRng::from_os_rng(),
            last_errors: HashMap::new(),
            next_hot_report: Instant::now(),
            next_gate_update: Instant::now(),
            quiet: quiet::Quiet::new(Instant::now()),
            gated_shards: 0,
        }
    }

    /// Runs until shut down, or until every handle is dropped and nothing is in flight.
    pub(crate) async fn run(mut self) {
        loop {
            let now = Instant::now();
            self.pump(now);
            if self.finished() {
                break;
            }
            let wake = self.next_wake(now);
            tokio::select! {
                biased;
                Some(joined) = self.in_flight.join_next_with_id(), if !self.in_flight.is_empty() => {
                    self.quiet.changed();
                    self.on_request_done(joined, Instant::now());
                }
                Some(joined) = self.refresh.join_next(), if !self.refresh.is_empty() => {
                    self.quiet.changed();
                    self.on_refresh(refresh::joined(joined), Instant::now());
                }
                () = self.inbox.ready(), if self.rx_open => self.take_records(),
                command = self.rx.recv(), if self.rx_open => {
                    self.quiet.changed();
                    // Records sent before the command come first.
                    self.take_records();
                    match command {
                        Some(command) => self.on_command(command),
                        None => self.on_all_handles_dropped(),
                    }
                }
                _ = tokio::time::sleep_until(wake) => self.quiet.changed(),
            }
        }
        self.stop();
    }

    /// Routes every record waiting in the inbox, in the order they were sent.
    fn take_records(&mut self) {
        let mut taken = std::mem::take(&mut self.taken);
        self.inbox.take(&mut taken);
        if taken.is_empty() {
            self.taken = taken;
            return;
        }
        stats::add(&self.stats.user_records_sent, taken.len() as u64);
        let now = Instant::now();
        for mut ticket in taken.drain(..) {
            ticket.id = self.next_id;
            self.next_id += 1;
            self.outstanding.insert(ticket.id, ticket.arrival);
            self.route(ticket, now);
        }
        self.taken = taken;
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Flush(done) => {
                if self.outstanding.is_empty() {
                    let _ = done.send(());
                } else {
                    self.flushes.push((self.next_id, done));
                }
            }
            Command::Shutdown(done) => {
                self.admission.shut();
                self.shutdowns.push(done);
            }
        }
    }

    /// Everything is sent at once, ignoring buffering time, while a flush or shutdown waits.
    fn flushing(&self) -> bool {
        !self.flushes.is_empty() || !self.shutdowns.is_empty() || !self.rx_open
    }

    fn closing(&self) -> bool {
        !self.shutdowns.is_empty() || !self.rx_open
    }

    fn finished(&self) -> bool {
        self.closing() && self.outstanding.is_empty() && self.in_flight.is_empty()
    }

    /// All handles are gone without a shutdown: records not yet sent fail with `ShutDown`;
    /// requests in flight are waited for and their records resolved as they come back.
    fn on_all_handles_dropped(&mut self) {
        self.rx_open = false;
        self.admission.shut();
        let mut abandoned: Vec<Ticket> = std::mem::take(&mut self.unrouted);
        abandoned.extend(std::mem::take(&mut self.retries).into_values());
        for shard in self.shards.values_mut() {
            abandoned.extend(shard.drain());
        }
        for ticket in abandoned {
            self.fail(ticket, ProduceError::ShutDown);
        }
        // Aggregates awaiting verification did land; report them as put.
        for landed in std::mem::take(&mut self.verify) {
            let Landed {
                entry,
                shard_id,
                sequence_number,
                started,
            } = landed;
            self.succeed_entry(entry, &shard_id, &sequence_number, started);
        }
    }

    /// Ends the engine: records still in the inbox fail, waiters are released.
    fn stop(&mut self) {
        for ticket in self.inbox.close() {
            ticket.fail(ProduceError::ShutDown);
        }
        self.rx.close();
        while let Ok(Command::Flush(done) | Command::Shutdown(done)) = self.rx.try_recv() {
            let _ = done.send(());
        }
        for (_, done) in self.flushes.drain(..) {
            let _ = done.send(());
        }
        for done in self.shutdowns.drain(..) {
            let _ = done.send(());
        }
        tracing::debug!("producer engine stopped");
    }

    /// Resolves a ticket successfully.
    fn succeed(&mut self, ticket: Ticket, result: crate::result::PutResult) {
        self.outstanding.remove(ticket.id);
        self.forget_error(ticket.id);
        ticket.succeed(result);
    }

    /// Resolves a ticket with an error, handing its record back.
    fn fail(&mut self, ticket: Ticket, reason: ProduceError) {
        self.outstanding.remove(ticket.id);
        self.forget_error(ticket.id);
        stats::add(&self.stats.user_records_failed, 1);
        self.metrics.user_records_failed.increment(1);
        if matches!(reason, ProduceError::Expired { .. }) {
            stats::add(&self.stats.user_records_expired, 1);
        }
        ticket.fail(reason);
    }

    fn expire(&mut self, ticket: Ticket) {
        let reason = ProduceError::Expired {
            ttl: self.cfg.record_ttl,
            attempts: ticket.attempts,
            last_error: self.last_errors.get(&ticket.id).map(|e| e.to_string()),
        };
        self.fail(ticket, reason);
    }

    /// Releases flush waiters whose records are all resolved.
    fn release_flushes(&mut self) {
        if self.flushes.is_empty() {
            return;
        }
        let first_outstanding = self.outstanding.first_id().unwrap_or(u64::MAX);
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.flushes)
            .into_iter()
            .partition(|(upto, _)| *upto <= first_outstanding);
        self.flushes = waiting;
        for (_, tx) in done {
            let _ = tx.send(());
        }
    }

    /// One pass of the pipeline: due retries re-enter, due aggregates close, requests go out.
    fn pump(&mut self, now: Instant) {
        self.maybe_refresh(now);
        self.expire_unrouted(now);
        while let Some(entry) = self.retries.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let ticket = entry.remove();
            self.route(ticket, now);
        }
        if self.full_pass(now) {
            let flushing = self.flushing();
            let max_buffered = self.cfg.max_buffered_time;
            self.shards.prune_idle();
            for (_, shard) in self.shards.busy_mut() {
                if shard.pending_due(now, max_buffered, flushing) {
                    shard.close_aggregate();
                }
            }
            self.dispatch(now);
        }
        self.update_gates_if_due(now);
        self.report(now);
        self.report_hot_keys(now);
        self.release_flushes();
    }

    /// Publishes what `stats()` and the gauges show of the engine's state.
    fn report(&self, now: Instant) {
        let oldest = self.outstanding.oldest_arrival();
        self.stats.set_oldest_unresolved(oldest);
        let age = oldest.map_or(0.0, |at| now.saturating_duration_since(at).as_secs_f64());
        self.metrics.oldest_record_age_seconds.set(age);
        self.metrics
            .outstanding_records
            .set(self.outstanding.len() as f64);
    }

    /// Publishes each shard's heaviest keys, once a second.
    fn report_hot_keys(&mut self, now: Instant) {
        if now < self.next_hot_report {
            return;
        }
        self.next_hot_report = now + std::time::Duration::from_secs(1);
        let mut reports: Vec<_> = self
            .shards
            .values_mut()
            .map(|shard| {
                shard
                    .hot
                    .report(&shard.range.shard_id, HOT_KEYS_REPORTED, now)
            })
            .collect();
        reports.sort_by(|a, b| a.shard_id.cmp(&b.shard_id));
        if self.metrics.per_shard() {
            for report in &reports {
                if let Some(shard) = self.shards.get(&report.shard_id) {
                    shard.metrics.hottest_key_share.set(report.hottest_share());
                }
            }
        } else {
            let hottest = reports
                .iter()
                .map(|r| r.hottest_share())
                .fold(0.0, f64::max);
            self.metrics.shared.hottest_key_share.set(hottest);
        }
        *self
            .stats
            .hot_keys
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = reports;
    }

    /// When the loop must look again even if nothing arrives.
    fn next_wake(&mut self, now: Instant) -> Instant {
        let mut wake = self
            .refresh_due_at()
            .unwrap_or(now + std::time::Duration::from_secs(3600));
        if let Some(((at, _), _)) = self.retries.first_key_value() {
            wake = wake.min(*at);
        }
        if !self.shards.is_empty() {
            // The hot-key report slides with time, traffic or not.
            wake = wake.min(self.next_hot_report);
        }
        if self.gated_shards > 0 {
            // Senders wait at a full gate, whose limit may rise with the shard's rate.
            wake = wake.min(self.next_gate_update);
        }
        if let Some(deadline) = self
            .unrouted
            .iter()
            .map(|t| t.deadline(self.cfg.record_ttl))
            .min()
        {
            wake = wake.min(deadline);
        }
        if self.full_pass(now) {
            let flushing = self.flushing();
            let max_buffered = self.cfg.max_buffered_time;
            let room = self.in_flight.len() < self.cfg.max_concurrent_requests;
            let mut shards_due = now + std::time::Duration::from_secs(3600);
            for (_, shard) in self.shards.busy_mut() {
                let turn = self
                    .order
                    .as_ref()
                    .map_or(Turn::Now, |o| o.turn(&shard.range, now));
                if let Some(due) = shard.next_due(now, max_buffered, flushing, room, turn) {
                    shards_due = shards_due.min(due);
                }
            }
            self.quiet.passed(shards_due);
        }
        wake = wake.min(self.quiet.until());
        // Never spin: at least a millisecond between idle passes.
        wake.max(now + std::time::Duration::from_millis(1))
    }
}

/// A copy of a service error for each record it fails (the SDK source stays with the first).
fn clone_service_error(e: &ServiceError) -> ServiceError {
    ServiceError {
        operation: e.operation,
        kind: e.kind,
        code: e.code.clone(),
        http_status: e.http_status,
        message: e.message.clone(),
        source: None,
    }
}
