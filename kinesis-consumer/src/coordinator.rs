//! The coordinator: the worker's loop that takes the leases the leader assigns it, starts
//! and stops one shard consumer per held lease, and hands its leases on when it leaves.
//!
//! ```text
//!             ┌── Heartbeat task ──▶ coordinator table ──▶ plan, standby, fenced (watch)
//!  Coordinator┼── Leader task (elects itself, or stands by, or follows)
//!             ├── takes what the plan says ──▶ lease table
//!             ├── Hold / Drop ──▶ Renewer task (its own, fixed rate) ──▶ lease table
//!             │◀── Lost ─────────┘
//!             └── spawns / signals ──▶ ShardConsumer per held lease (stops by itself at its
//!                                      deadline: the earlier of its lease's and the worker's)
//! ```
//!
//! Everything it spawns is owned by the future of [`crate::Worker::run`]: dropping that
//! future (a crash, as far as other workers can tell) stops all of it without releasing
//! leases; the leader fences the worker once its heartbeat has stood still for the failover
//! time and hands the leases on. A graceful shutdown lets each processor checkpoint, then
//! releases every lease at once and assigns them to live workers itself, so they move
//! without waiting for the leader.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kinesis_common::stream::StreamRef;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::checkpoint::ShardContext;
use crate::config::Config;
use crate::fleet::heartbeat::{Heartbeat, Membership};
use crate::fleet::leader::Leader;
use crate::fleet::state_table::StateTable;
use crate::lease::key::KeySpace;
use crate::lease::renewer::{
    Command, Deadline, LossReason, Lost, Renewer, RenewerSettings, RenewerStats,
};
use crate::lease::throughput::ThroughputMeter;
use crate::lease::{Lease, LeaseTable};
use crate::processor::ProcessorFactory;
use crate::retrieval::{FanOutFetcher, Fetcher, PollingFetcher, StreamConsumers};
use crate::shard_consumer::{Exit, ShardConsumer, Signal};
use crate::streams::Source;
use crate::telemetry::Telemetry;

mod children;
mod handover;
mod plan;
mod receive;
mod settings;
mod shutdown;

use handover::GiveKind;
use settings::{heartbeat_settings, leader_settings};

/// Calls made at once when taking or releasing many leases.
const CALL_CONCURRENCY: usize = 16;

/// A lease this worker holds.
struct Held {
    /// Which consumer task runs it (a shard may be lost and taken again).
    generation: u64,
    signal: watch::Sender<Signal>,
    /// Cuts its consumer task off (a graceful handoff past its timeout).
    abort: tokio::task::AbortHandle,
    /// Its stream's lease keys.
    space: KeySpace,
}

/// Aborts a task when dropped: the helpers end with the coordinator, however it ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What the coordinator works with, fixed for a worker's life.
pub(crate) struct Parts<F: ProcessorFactory> {
    pub config: Arc<Config>,
    /// The stream, or a multi-stream worker's tracker.
    pub source: Source,
    pub kinesis: aws_sdk_kinesis::Client,
    pub table: LeaseTable,
    pub state: StateTable,
    pub factory: Arc<F>,
    /// The application's stream consumers, in fan-out mode.
    pub consumers: Option<Arc<StreamConsumers>>,
    /// The lock version while this worker leads.
    pub leading: watch::Sender<Option<String>>,
    /// The renewer's figures, shared with the worker's handle.
    pub renewer_stats: Arc<RenewerStats>,
    /// The worker's metric handles.
    pub telemetry: Arc<Telemetry>,
}

pub(crate) struct Coordinator<F: ProcessorFactory> {
    parts: Parts<F>,
    held: HashMap<String, Held>,
    /// Consumers told their lease is lost that have not ended yet, with their signal.
    stopping: HashMap<String, (u64, watch::Sender<Signal>)>,
    tasks: JoinSet<(String, u64, Exit)>,
    next_generation: u64,
    renewer: mpsc::UnboundedSender<Command>,
    lost: mpsc::UnboundedReceiver<Lost>,
    renewer_settings: RenewerSettings,
    membership: watch::Receiver<Membership>,
    worker_deadline: watch::Receiver<Instant>,
    /// Times fenced, as last acted on.
    fenced: u64,
    /// Plan entries acted on: shard → counter of the entry.
    done: HashMap<String, u64>,
    /// Leases being given away: shard → receiver and deadline.
    giving: HashMap<String, handover::Giving>,
    /// Leases handed to this worker by graceful handoff, not handed over yet.
    awaiting: HashMap<String, receive::Awaited>,
    last_handoff_check: Instant,
    _renewer_task: AbortOnDrop,
    heartbeat_task: Option<AbortOnDrop>,
    leader_task: Option<AbortOnDrop>,
}

impl<F: ProcessorFactory> Coordinator<F> {
    /// Starts the renewer, the heartbeat and the leader tasks; nothing is held yet.
    pub(crate) fn new(parts: Parts<F>) -> Self {
        let cfg = parts.config.clone();
        let renewer_settings = RenewerSettings {
            interval: cfg.renewal_interval,
            failover: cfg.failover_time,
            margin: cfg.lease_deadline_margin,
            concurrency: cfg.max_renewal_concurrency,
            call_timeout: cfg.dynamodb_call_timeout,
        };
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (lost_tx, lost) = mpsc::unbounded_channel();
        let renewer_stats = parts.renewer_stats.clone();
        let renewer = Renewer {
            table: parts.table.clone(),
            owner: cfg.worker_id.clone(),
            settings: renewer_settings,
            commands: commands_rx,
            lost: lost_tx,
            stats: renewer_stats.clone(),
            telemetry: parts.telemetry.clone(),
        };
        let renewer_task = AbortOnDrop(tokio::spawn(renewer.run()));

        let heartbeat = heartbeat_settings(&cfg);
        let (deadline_tx, worker_deadline) = watch::channel(Instant::now());
        let (membership_tx, membership) = watch::channel(Membership::default());
        let poke = Arc::new(Notify::new());
        let max_leases = cfg.max_leases_per_worker;
        let stats = renewer_stats.clone();
        let heartbeat_task = AbortOnDrop(tokio::spawn(
            Heartbeat {
                table: parts.state.clone(),
                worker_id: cfg.worker_id.clone(),
                settings: heartbeat,
                capacity: Arc::new(move || stats.capacity(&renewer_settings).min(max_leases)),
                deadline: deadline_tx,
                membership: membership_tx,
                poke: poke.clone(),
                telemetry: parts.telemetry.clone(),
            }
            .run(),
        ));
        let leader_task = AbortOnDrop(tokio::spawn(
            Leader {
                state: parts.state.clone(),
                leases: parts.table.clone(),
                kinesis: parts.kinesis.clone(),
                source: parts.source.clone(),
                me: cfg.worker_id.clone(),
                settings: leader_settings(&cfg, heartbeat.interval),
                membership: membership.clone(),
                poke,
                leading: parts.leading.clone(),
                telemetry: parts.telemetry.clone(),
            }
            .run(),
        ));
        Coordinator {
            parts,
            held: HashMap::new(),
            stopping: HashMap::new(),
            tasks: JoinSet::new(),
            next_generation: 0,
            renewer: commands,
            lost,
            renewer_settings,
            membership,
            worker_deadline,
            fenced: 0,
            done: HashMap::new(),
            giving: HashMap::new(),
            awaiting: HashMap::new(),
            last_handoff_check: Instant::now(),
            _renewer_task: renewer_task,
            heartbeat_task: Some(heartbeat_task),
            leader_task: Some(leader_task),
        }
    }

    /// Runs until `shutdown` turns true, then shuts down gracefully.
    pub(crate) async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        loop {
            let handoff_wake = [self.next_give_deadline(), self.next_handoff_check()]
                .into_iter()
                .flatten()
                .min();
            tokio::select! {
                _ = async { let _ = shutdown.wait_for(|s| *s).await; } => break,
                Some(lost) = self.lost.recv() => {
                    if self.held.get(&lost.shard_id).is_some_and(|h| h.generation == lost.generation) {
                        match (lost.reason, lost.to) {
                            (LossReason::HandoffRequested, Some(to)) => {
                                self.give(&lost.shard_id, &to, GiveKind::Marked).await;
                            }
                            (reason, _) => {
                                tracing::info!(shard = %lost.shard_id, ?reason, "lease lost");
                                self.lose(&lost.shard_id);
                            }
                        }
                    }
                }
                _ = tokio::time::sleep_until(handoff_wake.unwrap_or_else(Instant::now)), if handoff_wake.is_some() => {
                    self.expire_gives().await;
                    if self.next_handoff_check().is_some_and(|at| at <= Instant::now()) {
                        self.check_handoffs().await;
                    }
                }
                changed = self.membership.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    self.follow_plan().await;
                }
                Some(joined) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    match joined {
                        Ok((shard, generation, exit)) => self.on_exit(shard, generation, exit).await,
                        Err(e) if e.is_cancelled() => tracing::debug!("a shard consumer was cut off"),
                        Err(e) => tracing::error!(error = %e, "shard consumer task failed"),
                    }
                }
            }
        }
        self.graceful_shutdown().await;
    }

    /// Stops processing a lease this worker no longer holds.
    fn lose(&mut self, shard: &str) {
        self.giving.remove(shard);
        if let Some(held) = self.held.remove(shard) {
            self.parts.telemetry.leases_lost.increment(1);
            let _ = held.signal.send(Signal::LeaseLost);
            let _ = self.renewer.send(Command::Drop {
                shard_id: shard.to_owned(),
            });
            // Until its consumer has ended, the shard is not taken again by this worker.
            self.stopping
                .insert(shard.to_owned(), (held.generation, held.signal));
        }
        self.parts.telemetry.leases_held.set(self.held.len() as f64);
    }

    /// Forgets a lease whose consumer ended; `release` also gives it up in the table.
    async fn drop_lease(&mut self, shard: &str, release: bool) {
        if self.held.remove(shard).is_none() {
            return;
        }
        let _ = self.renewer.send(Command::Drop {
            shard_id: shard.to_owned(),
        });
        self.parts.telemetry.leases_held.set(self.held.len() as f64);
        if release {
            let me = &self.parts.config.worker_id;
            if let Err(e) = self.parts.table.release(shard, me).await {
                tracing::warn!(shard, error = %e, "releasing a lease failed; it will expire");
            }
        }
    }

    /// Starts a consumer for a lease just taken (the take was sent at `taken_at`).
    fn start(&mut self, lease: Lease, taken_at: Instant, start_delay: Duration) {
        let space = KeySpace::of_lease(&lease);
        let Some((stream, _)) = self.parts.source.stream_of(&space) else {
            // A single-stream lease in a multi-stream table (or the other way round): it
            // expires, and the leader's cleanup sees to it.
            tracing::warn!(lease = %lease.shard_id, "a lease of no stream this worker reads; not processed");
            return;
        };
        let (signal_tx, signal_rx) = watch::channel(Signal::Run);
        let (deadline_tx, deadline_rx) =
            watch::channel(self.renewer_settings.deadline_after(taken_at));
        let p = &self.parts;
        let shard_id = lease.shard_id.clone();
        let generation = self.next_generation;
        self.next_generation += 1;
        let meter = Arc::new(ThroughputMeter::default());
        let _ = self.renewer.send(Command::Hold {
            shard_id: shard_id.clone(),
            generation,
            counter: lease.counter,
            taken_at,
            deadline: deadline_tx,
            meter: meter.clone(),
            carried_kbps: lease.throughput_kbps,
        });
        // The lease is keyed by `shard_id`; Kinesis knows the shard by its own id (the
        // same string in a single-stream table).
        let kinesis_shard = lease.kinesis_shard_id().to_owned();
        let consumer = ShardConsumer {
            config: p.config.clone(),
            factory: p.factory.clone(),
            fetcher: self.fetcher(stream, &kinesis_shard),
            ctx: Arc::new(ShardContext::new(
                shard_id.clone(),
                kinesis_shard.clone(),
                p.config.worker_id.clone(),
                p.table.clone(),
            )),
            lease,
            signal: signal_rx,
            deadline: Deadline::new(deadline_rx, Some(self.worker_deadline.clone())),
            start_delay,
            metrics: p.telemetry.shard(
                space.stream().map(|s| s.stream_name.as_str()),
                &kinesis_shard,
                &shard_id,
            ),
            meter,
        };
        let id = shard_id.clone();
        let abort = self
            .tasks
            .spawn(async move { (id, generation, consumer.run().await) });
        self.held.insert(
            shard_id,
            Held {
                generation,
                signal: signal_tx,
                abort,
                space,
            },
        );
        self.parts.telemetry.leases_held.set(self.held.len() as f64);
    }

    fn fetcher(&self, stream: StreamRef, shard_id: &str) -> Fetcher {
        let p = &self.parts;
        match &p.consumers {
            Some(consumers) => Fetcher::FanOut(FanOutFetcher {
                kinesis: p.kinesis.clone(),
                consumers: consumers.clone(),
                stream: stream.clone(),
                shard_id: shard_id.to_owned(),
                send_empty: p.config.deliver_empty_batches,
                telemetry: p.telemetry.clone(),
            }),
            None => Fetcher::Polling(PollingFetcher {
                kinesis: p.kinesis.clone(),
                stream,
                shard_id: shard_id.to_owned(),
                max_records: p.config.max_records,
                idle_time: p.config.idle_time_between_reads,
                send_empty: p.config.deliver_empty_batches,
                telemetry: p.telemetry.clone(),
            }),
        }
    }

    async fn on_exit(&mut self, shard: String, generation: u64, exit: Exit) {
        if self
            .stopping
            .get(&shard)
            .is_some_and(|(g, _)| *g == generation)
        {
            self.stopping.remove(&shard);
            return;
        }
        if self
            .held
            .get(&shard)
            .is_none_or(|h| h.generation != generation)
        {
            return; // an older consumer of a shard held again since
        }
        match exit {
            Exit::ShardEnded(children) => {
                tracing::info!(shard = %shard, "shard finished");
                let space = self
                    .held
                    .get(&shard)
                    .map(|h| h.space.clone())
                    .unwrap_or_default();
                self.drop_lease(&shard, true).await;
                self.continue_with_children(&shard, space, &children).await;
            }
            Exit::GaveUp(reason) => {
                tracing::error!(shard = %shard, %reason, "giving the lease up");
                self.drop_lease(&shard, true).await;
            }
            Exit::LeaseLost => {
                self.giving.remove(&shard);
                tracing::info!(shard = %shard, "lease lost");
                self.parts.telemetry.leases_lost.increment(1);
                self.drop_lease(&shard, false).await;
            }
            Exit::Shutdown if self.is_giving(&shard) => self.finish_give(&shard).await,
            // Still held: graceful shutdown releases it once every consumer has ended.
            Exit::Shutdown => {}
        }
    }
}
