//! The coordinator: the worker's loop that decides which leases to hold, starts and stops
//! one shard consumer per held lease, and keeps shard discovery going.
//!
//! ```text
//!             ┌── scan + take every taking interval ──▶ lease table
//!  Coordinator┼── shard sync (start, interval, when a shard ends without named children)
//!             ├── Hold / Drop ──▶ Renewer task (its own, fixed rate) ──▶ lease table
//!             │◀── Lost ─────────┘
//!             └── spawns / signals ──▶ ShardConsumer per held lease (stops by itself at its deadline)
//! ```
//!
//! Everything it spawns is owned by the future of [`crate::Worker::run`]: dropping that
//! future (a crash, as far as other workers can tell) stops all of it without releasing
//! leases, and they expire after the failover time. A graceful shutdown lets each processor
//! checkpoint, then releases every lease at once (concurrently, each call with a timeout).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use kinesis_common::stream::StreamRef;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

use crate::checkpoint::ShardContext;
use crate::config::Config;
use crate::lease::cleanup::Vanished;
use crate::lease::renewer::{Command, Deadline, Lost, Renewer, RenewerSettings, RenewerStats};
use crate::lease::taker::{self, Observed, TakerSettings};
use crate::lease::{Lease, LeaseTable};
use crate::processor::ProcessorFactory;
use crate::retrieval::{FanOutFetcher, Fetcher, PollingFetcher};
use crate::shard_consumer::{Exit, ShardConsumer, Signal};
use crate::shard_sync;

/// Calls made at once when taking or releasing many leases.
const CALL_CONCURRENCY: usize = 16;

/// A lease this worker holds.
struct Held {
    /// Which consumer task runs it (a shard may be lost and taken again).
    generation: u64,
    signal: watch::Sender<Signal>,
}

/// Aborts a task when dropped: the renewer ends with the coordinator, however it ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What the coordinator works with, fixed for a worker's life.
pub(crate) struct Parts<F: ProcessorFactory> {
    pub config: Arc<Config>,
    pub stream: StreamRef,
    pub kinesis: aws_sdk_kinesis::Client,
    pub table: LeaseTable,
    pub factory: Arc<F>,
    /// The registered stream consumer, in fan-out mode.
    pub consumer_arn: Option<String>,
    /// Leases of shards the first shard sync did not find, with their counters.
    pub vanished: Vec<(String, u64)>,
}

pub(crate) struct Coordinator<F: ProcessorFactory> {
    parts: Parts<F>,
    held: HashMap<String, Held>,
    /// Consumers told their lease is lost that have not ended yet, with their signal.
    stopping: HashMap<String, (u64, watch::Sender<Signal>)>,
    observed: Observed,
    tasks: JoinSet<(String, u64, Exit)>,
    next_generation: u64,
    sync_wanted: bool,
    renewer: mpsc::UnboundedSender<Command>,
    lost: mpsc::UnboundedReceiver<Lost>,
    renewer_settings: RenewerSettings,
    renewer_stats: Arc<RenewerStats>,
    _renewer_task: AbortOnDrop,
    /// Leases of shards the stream no longer lists.
    vanished: Vanished,
}

impl<F: ProcessorFactory> Coordinator<F> {
    /// Starts the renewer; nothing is held yet.
    pub(crate) fn new(parts: Parts<F>) -> Self {
        let cfg = &parts.config;
        let renewer_settings = RenewerSettings {
            interval: cfg.renewal_interval,
            failover: cfg.failover_time,
            margin: cfg.lease_deadline_margin,
            concurrency: cfg.max_renewal_concurrency,
            call_timeout: cfg.dynamodb_call_timeout,
        };
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (lost_tx, lost) = mpsc::unbounded_channel();
        let renewer_stats = Arc::new(RenewerStats::default());
        let renewer = Renewer {
            table: parts.table.clone(),
            owner: cfg.worker_id.clone(),
            settings: renewer_settings,
            commands: commands_rx,
            lost: lost_tx,
            stats: renewer_stats.clone(),
        };
        let task = AbortOnDrop(tokio::spawn(renewer.run()));
        let mut vanished = Vanished::default();
        vanished.observe(
            parts.vanished.clone(),
            Instant::now(),
            parts.config.lease_cleanup_grace,
        );
        Coordinator {
            parts,
            held: HashMap::new(),
            stopping: HashMap::new(),
            observed: Observed::default(),
            tasks: JoinSet::new(),
            next_generation: 0,
            sync_wanted: false,
            renewer: commands,
            lost,
            renewer_settings,
            renewer_stats,
            _renewer_task: task,
            vanished,
        }
    }

    /// Runs until `shutdown` turns true, then shuts down gracefully.
    pub(crate) async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let cfg = self.parts.config.clone();
        self.take_leases().await;
        let mut take = tokio::time::interval(cfg.taking_interval);
        let mut sync = tokio::time::interval(cfg.shard_sync_interval);
        for timer in [&mut take, &mut sync] {
            timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
            timer.reset();
        }
        loop {
            // A lease of another worker that stops moving is failed over the moment it
            // expires, not up to a taking interval later.
            let expiry =
                self.observed
                    .next_expiry(&cfg.worker_id, Instant::now(), cfg.failover_time);
            tokio::select! {
                _ = async { let _ = shutdown.wait_for(|s| *s).await; } => break,
                _ = async { if let Some(at) = expiry { tokio::time::sleep_until(at).await } }, if expiry.is_some() => {
                    self.take_leases().await;
                }
                Some(lost) = self.lost.recv() => {
                    if self.held.get(&lost.shard_id).is_some_and(|h| h.generation == lost.generation) {
                        tracing::info!(shard = %lost.shard_id, reason = ?lost.reason, "lease lost");
                        self.lose(&lost.shard_id);
                    }
                }
                _ = take.tick() => {
                    self.take_leases().await;
                    if std::mem::take(&mut self.sync_wanted) {
                        self.sync().await;
                    }
                }
                _ = sync.tick() => self.sync().await,
                Some(joined) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    match joined {
                        Ok((shard, generation, exit)) => self.on_exit(shard, generation, exit).await,
                        Err(e) => tracing::error!(error = %e, "shard consumer task failed"),
                    }
                }
            }
        }
        self.graceful_shutdown().await;
    }

    async fn sync(&mut self) {
        let p = &self.parts;
        match shard_sync::sync(&p.kinesis, &p.stream, &p.table, p.config.initial_position).await {
            Ok(outcome) => {
                if !outcome.created.is_empty() {
                    tracing::debug!(created = ?outcome.created, "new shards have leases");
                }
                self.clean_up_vanished(outcome.vanished).await;
            }
            Err(e) => tracing::warn!(error = %e, "shard sync failed; will retry"),
        }
    }

    /// Deletes the leases of shards that have not been listed for the grace period.
    async fn clean_up_vanished(&mut self, unlisted: Vec<(String, u64)>) {
        let grace = self.parts.config.lease_cleanup_grace;
        for (shard, counter) in self.vanished.observe(unlisted, Instant::now(), grace) {
            match self.parts.table.delete_vanished(&shard, counter).await {
                Ok(deleted) => {
                    if deleted {
                        tracing::info!(shard = %shard, "lease of a shard that no longer exists deleted");
                    }
                    self.vanished.forget(&shard);
                }
                Err(e) => {
                    tracing::warn!(shard = %shard, error = %e, "lease cleanup failed; will retry")
                }
            }
        }
    }

    /// Stops processing a lease this worker no longer holds.
    fn lose(&mut self, shard: &str) {
        if let Some(held) = self.held.remove(shard) {
            metrics::counter!("kinesis_consumer_leases_lost").increment(1);
            let _ = held.signal.send(Signal::LeaseLost);
            let _ = self.renewer.send(Command::Drop {
                shard_id: shard.to_owned(),
            });
            // Until its consumer has ended, the shard is not taken again by this worker.
            self.stopping
                .insert(shard.to_owned(), (held.generation, held.signal));
        }
        metrics::gauge!("kinesis_consumer_leases_held").set(self.held.len() as f64);
    }

    /// Forgets a lease whose consumer ended; `release` also gives it up in the table.
    async fn drop_lease(&mut self, shard: &str, release: bool) {
        if self.held.remove(shard).is_none() {
            return;
        }
        let _ = self.renewer.send(Command::Drop {
            shard_id: shard.to_owned(),
        });
        metrics::gauge!("kinesis_consumer_leases_held").set(self.held.len() as f64);
        if release {
            let me = &self.parts.config.worker_id;
            if let Err(e) = self.parts.table.release(shard, me).await {
                tracing::warn!(shard, error = %e, "releasing a lease failed; it will expire");
            }
        }
    }

    /// Scans the table, notices leases taken from us, and takes what balancing says.
    async fn take_leases(&mut self) {
        let cfg = self.parts.config.clone();
        let leases = match self.parts.table.list().await {
            Ok(leases) => leases,
            Err(e) => {
                tracing::warn!(error = %e, "lease scan failed");
                return;
            }
        };
        // Leases of shards the stream no longer lists are not taken (reading them fails);
        // they wait for cleanup, and children no longer wait for them.
        let mut leases = leases;
        leases.retain(|l| !self.vanished.contains(&l.shard_id));
        let now = Instant::now();
        self.observed.update(&leases, now);
        let me = cfg.worker_id.as_str();
        // Leases we think we hold but the table says someone else does.
        let stolen: Vec<String> = leases
            .iter()
            .filter(|l| self.held.contains_key(&l.shard_id) && l.owner.as_deref() != Some(me))
            .map(|l| l.shard_id.clone())
            .collect();
        for shard in stolen {
            tracing::info!(shard = %shard, "lease taken by another worker");
            self.lose(&shard);
        }
        // Never more than the renewer can keep alive.
        let renewable = self.renewer_stats.capacity(&self.renewer_settings);
        let settings = TakerSettings {
            failover: cfg.failover_time,
            max_leases: cfg.max_leases_per_worker.min(renewable),
            max_steal: cfg.max_leases_to_steal,
        };
        let by_shard: HashMap<&str, &Lease> =
            leases.iter().map(|l| (l.shard_id.as_str(), l)).collect();
        // Leases the table says we hold but we do not run (after a restart with the same id).
        let mut to_take: Vec<Lease> = leases
            .iter()
            .filter(|l| {
                l.owner.as_deref() == Some(me)
                    && !self.held.contains_key(&l.shard_id)
                    && !self.stopping.contains_key(&l.shard_id)
                    && taker::is_available(l, &by_shard)
            })
            .cloned()
            .collect();
        to_take.extend(
            taker::choose(&leases, &self.observed, me, now, settings)
                .into_iter()
                .filter(|l| !self.stopping.contains_key(&l.shard_id)),
        );
        if to_take.is_empty() {
            return;
        }
        let table = self.parts.table.clone();
        let owner = cfg.worker_id.clone();
        let mut takes = futures_util::stream::iter(to_take.into_iter().map(|seen| {
            let (table, owner) = (table.clone(), owner.clone());
            async move {
                let sent = Instant::now();
                let result = table.take(&seen, &owner).await;
                (seen, sent, result)
            }
        }))
        .buffer_unordered(CALL_CONCURRENCY);
        while let Some((seen, sent, result)) = takes.next().await {
            // Stolen from a live worker: it stops at its next renewal, or at the latest at
            // its deadline, which passes within the failover time of our take; until then
            // the shard waits, so it is never processed by two workers at once.
            let stolen = seen.owner.as_deref().is_some_and(|o| o != me)
                && !self.observed.is_expired(&seen, now, cfg.failover_time);
            let delay = if stolen {
                cfg.failover_time
            } else {
                Duration::ZERO
            };
            match result {
                Ok(Some(lease)) => {
                    tracing::info!(shard = %lease.shard_id, from = ?seen.owner, stolen, "lease taken");
                    metrics::counter!("kinesis_consumer_leases_taken").increment(1);
                    self.start(lease, sent, delay);
                }
                Ok(None) => {
                    tracing::debug!(shard = %seen.shard_id, "lease taken by another worker first")
                }
                Err(e) => {
                    tracing::warn!(shard = %seen.shard_id, error = %e, "taking a lease failed")
                }
            }
        }
    }

    /// Starts a consumer for a lease just taken (the take was sent at `taken_at`).
    fn start(&mut self, lease: Lease, taken_at: Instant, start_delay: Duration) {
        let (signal_tx, signal_rx) = watch::channel(Signal::Run);
        let (deadline_tx, deadline_rx) =
            watch::channel(self.renewer_settings.deadline_after(taken_at));
        let p = &self.parts;
        let shard_id = lease.shard_id.clone();
        let generation = self.next_generation;
        self.next_generation += 1;
        let _ = self.renewer.send(Command::Hold {
            shard_id: shard_id.clone(),
            generation,
            counter: lease.counter,
            taken_at,
            deadline: deadline_tx,
        });
        let consumer = ShardConsumer {
            config: p.config.clone(),
            factory: p.factory.clone(),
            fetcher: self.fetcher(&shard_id),
            ctx: Arc::new(ShardContext::new(
                shard_id.clone(),
                p.config.worker_id.clone(),
                p.table.clone(),
            )),
            lease,
            signal: signal_rx,
            deadline: Deadline::new(deadline_rx),
            start_delay,
        };
        let id = shard_id.clone();
        self.tasks
            .spawn(async move { (id, generation, consumer.run().await) });
        self.held.insert(
            shard_id,
            Held {
                generation,
                signal: signal_tx,
            },
        );
        metrics::gauge!("kinesis_consumer_leases_held").set(self.held.len() as f64);
    }

    fn fetcher(&self, shard_id: &str) -> Fetcher {
        let p = &self.parts;
        match &p.consumer_arn {
            Some(arn) => Fetcher::FanOut(FanOutFetcher {
                kinesis: p.kinesis.clone(),
                consumer_arn: arn.clone(),
                stream: p.stream.clone(),
                shard_id: shard_id.to_owned(),
                send_empty: p.config.deliver_empty_batches,
            }),
            None => Fetcher::Polling(PollingFetcher {
                kinesis: p.kinesis.clone(),
                stream: p.stream.clone(),
                shard_id: shard_id.to_owned(),
                max_records: p.config.max_records,
                idle_time: p.config.idle_time_between_reads,
                send_empty: p.config.deliver_empty_batches,
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
                self.drop_lease(&shard, true).await;
                // Its children can start now: create their leases without waiting, from the
                // children the endpoint named, else from ListShards.
                let created = !children.is_empty()
                    && match shard_sync::create_children(&self.parts.table, &shard, &children).await
                    {
                        Ok(created) => {
                            tracing::debug!(?created, "leases of the children created");
                            true
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "creating the children's leases failed");
                            false
                        }
                    };
                if !created {
                    self.sync_wanted = true;
                }
            }
            Exit::GaveUp(reason) => {
                tracing::error!(shard = %shard, %reason, "giving the lease up");
                self.drop_lease(&shard, true).await;
            }
            Exit::LeaseLost => {
                tracing::info!(shard = %shard, "lease lost");
                metrics::counter!("kinesis_consumer_leases_lost").increment(1);
                self.drop_lease(&shard, false).await;
            }
            // Still held: graceful shutdown releases it once every consumer has ended.
            Exit::Shutdown => {}
        }
    }

    /// Tells every consumer to shut down, waits for them, then releases every lease at once.
    async fn graceful_shutdown(&mut self) {
        tracing::info!(leases = self.held.len(), "worker shutting down");
        for held in self.held.values() {
            let _ = held.signal.send(Signal::Shutdown);
        }
        while let Some(joined) = self.tasks.join_next().await {
            if let Ok((shard, generation, exit)) = joined {
                self.on_exit(shard, generation, exit).await;
            }
        }
        for shard in self.held.keys() {
            let _ = self.renewer.send(Command::Drop {
                shard_id: shard.clone(),
            });
        }
        let me = self.parts.config.worker_id.clone();
        let table = self.parts.table.clone();
        let shards: Vec<String> = self.held.drain().map(|(s, _)| s).collect();
        // Each call has the DynamoDB timeout, so this ends even when DynamoDB is gone.
        let mut releases = futures_util::stream::iter(shards.into_iter().map(|shard| {
            let (table, me) = (table.clone(), me.clone());
            async move {
                let result = table.release(&shard, &me).await;
                (shard, result)
            }
        }))
        .buffer_unordered(CALL_CONCURRENCY);
        while let Some((shard, result)) = releases.next().await {
            match result {
                Ok(true) => tracing::debug!(shard = %shard, "lease released"),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(shard = %shard, error = %e, "releasing a lease failed; it will expire")
                }
            }
        }
        metrics::gauge!("kinesis_consumer_leases_held").set(0.0);
    }
}
