//! The worker: lease renewal, taking and balancing, shard sync, and one consumer task per
//! held shard.
//!
//! ```text
//!            ┌────────── renew every failover/3 ──────────┐
//!  Worker ───┼────────── scan + take every taking interval ┼──▶ lease table (DynamoDB)
//!            └────────── shard sync (start, interval, end) ┘
//!     │ spawns / signals
//!     ▼
//!  ShardConsumer per held lease ── fetch ── deaggregate ── RecordProcessor ── checkpoint
//! ```
//!
//! Everything the worker spawns lives in a `JoinSet` owned by [`Worker::run`]: dropping that
//! future (a crash, as far as other workers can tell) stops all of it without releasing
//! leases, and they expire after the failover time. A graceful shutdown lets each processor
//! checkpoint, then releases every lease at once so others take over within a taking interval.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kinesis_common::stream::StreamRef;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

use crate::checkpoint::ShardContext;
use crate::config::{Config, ConfigError, InitialPosition, RetrievalMode};
use crate::error::ConsumerError;
use crate::lease::taker::{self, Observed, TakerSettings};
use crate::lease::{Lease, LeaseTable};
use crate::processor::ProcessorFactory;
use crate::retrieval::{self, FanOutFetcher, Fetcher, PollingFetcher};
use crate::shard_consumer::{Exit, ShardConsumer, Signal};
use crate::shard_sync;

/// Builds a [`Worker`]. See the crate docs for every option and its default.
#[derive(Debug)]
pub struct WorkerBuilder {
    config: Config,
    stream: StreamRef,
    kinesis: Option<aws_sdk_kinesis::Client>,
    dynamodb: Option<aws_sdk_dynamodb::Client>,
}

macro_rules! setter {
    ($(#[$doc:meta])* $name:ident: $ty:ty) => {
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.config.$name = value;
            self
        }
    };
}

impl WorkerBuilder {
    /// The Kinesis client (required).
    pub fn kinesis_client(mut self, client: aws_sdk_kinesis::Client) -> Self {
        self.kinesis = Some(client);
        self
    }

    /// The DynamoDB client for the lease table (required).
    pub fn dynamodb_client(mut self, client: aws_sdk_dynamodb::Client) -> Self {
        self.dynamodb = Some(client);
        self
    }

    /// Both clients from one SDK configuration.
    pub fn sdk_config(self, config: &aws_config::SdkConfig) -> Self {
        self.kinesis_client(aws_sdk_kinesis::Client::new(config))
            .dynamodb_client(aws_sdk_dynamodb::Client::new(config))
    }

    setter!(
        /// This worker's id in `leaseOwner` (default: host name and a random suffix).
        worker_id: String
    );
    setter!(
        /// The lease table (default: the application name, as KCL).
        lease_table_name: String
    );
    setter!(
        /// Where shards without a checkpoint start (default TRIM_HORIZON; KCL's is LATEST).
        initial_position: InitialPosition
    );
    setter!(
        /// A lease whose counter has not moved for this long is expired (default 10 s).
        failover_time: Duration
    );
    setter!(
        /// How often held leases are renewed (default 3.33 s, a third of the failover time).
        renewal_interval: Duration
    );
    setter!(
        /// How often the table is scanned for leases to take (default 1 s).
        taking_interval: Duration
    );
    setter!(
        /// Most leases this worker holds (default unlimited).
        max_leases_per_worker: usize
    );
    setter!(
        /// Most leases stolen from another worker per taking round (default 1).
        max_leases_to_steal: usize
    );
    setter!(
        /// How often shards are listed to create leases for new ones (default 60 s).
        shard_sync_interval: Duration
    );
    setter!(
        /// Records per GetRecords call (default and maximum 10,000).
        max_records: i32
    );
    setter!(
        /// Wait after a GetRecords call that returned nothing (default 500 ms).
        idle_time_between_reads: Duration
    );
    setter!(
        /// Batches read ahead of the processor per shard (default 2).
        max_prefetch_batches: usize
    );
    setter!(
        /// Call `process_records` also when a read returns nothing, every idle interval, so a
        /// processor can act on time (flush a buffer) without new records; like KCL's
        /// `callProcessRecordsEvenForEmptyRecordList` (default false).
        deliver_empty_batches: bool
    );
    setter!(
        /// Backoff between deliveries of a batch the processor failed (default 100 ms doubling to 10 s).
        processor_backoff: kinesis_common::backoff::Backoff
    );
    setter!(
        /// Deliveries of one batch before the lease is released (default 10).
        processor_max_attempts: u32
    );
    setter!(
        /// Polling (the default) or enhanced fan-out; see also [`WorkerBuilder::fan_out`].
        retrieval_mode: RetrievalMode
    );
    setter!(
        /// With fan-out: deregister the stream consumer when this worker shuts down
        /// gracefully (default false: other workers of the application share it).
        deregister_consumer_on_shutdown: bool
    );

    /// Reads with enhanced fan-out through the stream consumer `consumer_name`, registering
    /// it if it is missing: `retrieval_mode(RetrievalMode::FanOut { consumer_name })`.
    pub fn fan_out(self, consumer_name: impl Into<String>) -> Self {
        self.retrieval_mode(RetrievalMode::FanOut {
            consumer_name: consumer_name.into(),
        })
    }

    /// Validates the options.
    pub fn build<F: ProcessorFactory>(self, factory: F) -> Result<Worker<F>, ConfigError> {
        self.config.validate()?;
        let kinesis = self.kinesis.ok_or(ConfigError::MissingClient {
            client: "Kinesis",
            method: "kinesis_client",
        })?;
        let dynamodb = self.dynamodb.ok_or(ConfigError::MissingClient {
            client: "DynamoDB",
            method: "dynamodb_client",
        })?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (done_tx, done_rx) = watch::channel(false);
        Ok(Worker {
            table: LeaseTable::new(dynamodb, self.config.lease_table_name.clone()),
            config: Arc::new(self.config),
            stream: self.stream,
            kinesis,
            factory: Arc::new(factory),
            shutdown_rx,
            handle: WorkerHandle {
                shutdown: Arc::new(shutdown_tx),
                done: done_rx,
            },
            done_tx,
        })
    }
}

/// Asks a running worker to shut down gracefully. Cheap to clone.
#[derive(Debug, Clone)]
pub struct WorkerHandle {
    shutdown: Arc<watch::Sender<bool>>,
    done: watch::Receiver<bool>,
}

impl WorkerHandle {
    /// Tells every processor to shut down (they may checkpoint), releases every lease, and
    /// resolves when the worker's `run` has returned.
    pub async fn shutdown(&self) {
        let _ = self.shutdown.send(true);
        let mut done = self.done.clone();
        let _ = done.wait_for(|d| *d).await;
    }

    /// Asks for shutdown without waiting.
    pub fn request_shutdown(&self) {
        let _ = self.shutdown.send(true);
    }
}

/// A KCL-compatible worker for one application and stream.
pub struct Worker<F: ProcessorFactory> {
    config: Arc<Config>,
    stream: StreamRef,
    kinesis: aws_sdk_kinesis::Client,
    table: LeaseTable,
    factory: Arc<F>,
    shutdown_rx: watch::Receiver<bool>,
    handle: WorkerHandle,
    done_tx: watch::Sender<bool>,
}

impl<F: ProcessorFactory> std::fmt::Debug for Worker<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("application", &self.config.application_name)
            .field("worker_id", &self.config.worker_id)
            .field("stream", &self.stream)
            .field("lease_table", &self.table.name())
            .finish_non_exhaustive()
    }
}

/// A lease this worker holds.
struct Held {
    /// Which consumer task runs it (a shard may be lost and taken again).
    generation: u64,
    counter: u64,
    renewed: Instant,
    signal: watch::Sender<Signal>,
}

impl Worker<()> {
    /// Options for a worker of `application_name` reading `stream` (a name or an ARN).
    pub fn builder(
        application_name: impl Into<String>,
        stream: impl Into<StreamRef>,
    ) -> WorkerBuilder {
        WorkerBuilder {
            config: Config::new(application_name.into()),
            stream: stream.into(),
            kinesis: None,
            dynamodb: None,
        }
    }
}

// `Worker::builder` lives on `Worker<()>` so callers need not name a factory type; this makes
// the unit type a factory in name only. It is never used to make processors.
impl ProcessorFactory for () {
    type Processor = NeverProcessor;

    fn create(&self, _shard_id: &str) -> NeverProcessor {
        NeverProcessor
    }
}

/// Placeholder processor type of `Worker<()>`; never instantiated by a running worker.
#[derive(Debug)]
pub struct NeverProcessor;

impl crate::RecordProcessor for NeverProcessor {
    async fn process_records(
        &mut self,
        _input: crate::ProcessRecordsInput,
        _checkpointer: &mut crate::Checkpointer,
    ) -> Result<(), crate::ProcessorError> {
        Ok(())
    }
}

struct Running<F: ProcessorFactory> {
    worker: Worker<F>,
    held: HashMap<String, Held>,
    observed: Observed,
    tasks: JoinSet<(String, u64, Exit)>,
    /// Consumers told their lease is lost that have not ended yet, with their signal.
    stopping: HashMap<String, (u64, watch::Sender<Signal>)>,
    next_generation: u64,
    sync_wanted: bool,
    /// The registered stream consumer, in fan-out mode.
    consumer_arn: Option<String>,
}

impl<F: ProcessorFactory> Worker<F> {
    /// A handle to shut the worker down from elsewhere.
    pub fn handle(&self) -> WorkerHandle {
        self.handle.clone()
    }

    /// This worker's id.
    pub fn worker_id(&self) -> &str {
        &self.config.worker_id
    }

    /// Runs until [`WorkerHandle::shutdown`]. Creates the lease table if it is missing.
    ///
    /// # Cancellation
    /// Dropping the future stops every shard consumer at once without releasing leases, as
    /// a crash would; other workers take the leases over after the failover time.
    pub async fn run(self) -> Result<(), ConsumerError> {
        let done = self.done_tx.clone();
        let result = self.run_inner().await;
        let _ = done.send(true);
        result
    }

    async fn run_inner(self) -> Result<(), ConsumerError> {
        self.table
            .ensure_exists()
            .await
            .map_err(|source| ConsumerError::LeaseTable {
                table: self.table.name().to_owned(),
                source,
            })?;
        tracing::info!(worker = %self.config.worker_id, table = %self.table.name(), stream = %self.stream, "worker starting");
        let mut state = Running {
            worker: self,
            held: HashMap::new(),
            observed: Observed::default(),
            tasks: JoinSet::new(),
            stopping: HashMap::new(),
            next_generation: 0,
            sync_wanted: false,
            consumer_arn: None,
        };
        // The first sync must succeed: it tells us the stream exists.
        let w = &state.worker;
        shard_sync::sync(&w.kinesis, &w.stream, &w.table, w.config.initial_position)
            .await
            .map_err(|source| ConsumerError::Stream {
                stream: w.stream.to_string(),
                source,
            })?;
        if let RetrievalMode::FanOut { consumer_name } = &w.config.retrieval_mode {
            let arn = retrieval::register_consumer(&w.kinesis, &w.stream, consumer_name)
                .await
                .map_err(|source| ConsumerError::StreamConsumer {
                    consumer: consumer_name.clone(),
                    source,
                })?;
            tracing::info!(consumer = %consumer_name, %arn, "reading with enhanced fan-out");
            state.consumer_arn = Some(arn);
        }
        state.take_leases().await;
        state.run_loop().await;
        Ok(())
    }
}

impl<F: ProcessorFactory> Running<F> {
    async fn run_loop(&mut self) {
        let cfg = self.worker.config.clone();
        let mut renew = tokio::time::interval(cfg.renewal_interval);
        let mut take = tokio::time::interval(cfg.taking_interval);
        let mut sync = tokio::time::interval(cfg.shard_sync_interval);
        for timer in [&mut renew, &mut take, &mut sync] {
            timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
            timer.reset();
        }
        let mut shutdown = self.worker.shutdown_rx.clone();
        loop {
            tokio::select! {
                _ = async { let _ = shutdown.wait_for(|s| *s).await; } => break,
                _ = renew.tick() => self.renew().await,
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
        let w = &self.worker;
        match shard_sync::sync(&w.kinesis, &w.stream, &w.table, w.config.initial_position).await {
            Ok(outcome) if !outcome.created.is_empty() => {
                tracing::debug!(created = ?outcome.created, "new shards have leases");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "shard sync failed; will retry"),
        }
    }

    /// Renews every held lease; a lease not renewed for the failover time is given up.
    async fn renew(&mut self) {
        let now = Instant::now();
        let me = self.worker.config.worker_id.clone();
        let failover = self.worker.config.failover_time;
        let mut lost = Vec::new();
        for (shard, held) in self.held.iter_mut() {
            match self.worker.table.renew(shard, &me, held.counter).await {
                Ok(Some(counter)) => {
                    held.counter = counter;
                    held.renewed = Instant::now();
                }
                Ok(None) => lost.push(shard.clone()),
                Err(e) => {
                    tracing::warn!(shard = %shard, error = %e, "lease renewal failed");
                    if now.saturating_duration_since(held.renewed) >= failover {
                        lost.push(shard.clone());
                    }
                }
            }
        }
        for shard in lost {
            self.lose(&shard);
        }
    }

    fn lose(&mut self, shard: &str) {
        if let Some(held) = self.held.remove(shard) {
            tracing::info!(shard, "lease lost");
            metrics::counter!("kinesis_consumer_leases_lost").increment(1);
            let _ = held.signal.send(Signal::LeaseLost);
            // Until its consumer has ended, the shard is not taken again by this worker.
            self.stopping
                .insert(shard.to_owned(), (held.generation, held.signal));
        }
    }

    /// Scans the table, notices leases taken from us, and takes what balancing says.
    async fn take_leases(&mut self) {
        let cfg = self.worker.config.clone();
        let leases = match self.worker.table.list().await {
            Ok(leases) => leases,
            Err(e) => {
                tracing::warn!(error = %e, "lease scan failed");
                return;
            }
        };
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
            self.lose(&shard);
        }
        // Leases the table says we hold but we do not run (after a restart with the same id).
        let settings = TakerSettings {
            failover: cfg.failover_time,
            max_leases: cfg.max_leases_per_worker,
            max_steal: cfg.max_leases_to_steal,
        };
        let by_shard: HashMap<&str, &Lease> =
            leases.iter().map(|l| (l.shard_id.as_str(), l)).collect();
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
        for seen in to_take {
            // Stolen from a live worker: give it time to notice and stop before we start, so
            // the shard is never processed by two workers at once.
            let stolen = seen.owner.as_deref().is_some_and(|o| o != me)
                && !self.observed.is_expired(&seen, now, cfg.failover_time);
            let delay = if stolen {
                cfg.taking_interval * 2
            } else {
                Duration::ZERO
            };
            match self.worker.table.take(&seen, me).await {
                Ok(Some(lease)) => {
                    tracing::info!(shard = %lease.shard_id, from = ?seen.owner, stolen, "lease taken");
                    metrics::counter!("kinesis_consumer_leases_taken").increment(1);
                    self.start(lease, delay);
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

    fn start(&mut self, lease: Lease, start_delay: Duration) {
        let (signal_tx, signal_rx) = watch::channel(Signal::Run);
        let w = &self.worker;
        let shard_id = lease.shard_id.clone();
        let consumer = ShardConsumer {
            config: w.config.clone(),
            factory: w.factory.clone(),
            fetcher: match &self.consumer_arn {
                Some(arn) => Fetcher::FanOut(FanOutFetcher {
                    kinesis: w.kinesis.clone(),
                    consumer_arn: arn.clone(),
                    stream: w.stream.clone(),
                    shard_id: shard_id.clone(),
                    send_empty: w.config.deliver_empty_batches,
                }),
                None => Fetcher::Polling(PollingFetcher {
                    kinesis: w.kinesis.clone(),
                    stream: w.stream.clone(),
                    shard_id: shard_id.clone(),
                    max_records: w.config.max_records,
                    idle_time: w.config.idle_time_between_reads,
                    send_empty: w.config.deliver_empty_batches,
                }),
            },
            ctx: Arc::new(ShardContext {
                shard_id: shard_id.clone(),
                owner: w.config.worker_id.clone(),
                table: w.table.clone(),
            }),
            lease: lease.clone(),
            signal: signal_rx,
            start_delay,
        };
        let id = shard_id.clone();
        let generation = self.next_generation;
        self.next_generation += 1;
        self.tasks
            .spawn(async move { (id, generation, consumer.run().await) });
        self.held.insert(
            shard_id,
            Held {
                generation,
                counter: lease.counter,
                renewed: Instant::now(),
                signal: signal_tx,
            },
        );
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
        let me = self.worker.config.worker_id.clone();
        match exit {
            Exit::ShardEnded(children) => {
                tracing::info!(shard = %shard, "shard finished");
                if self.held.remove(&shard).is_some() {
                    let _ = self.worker.table.release(&shard, &me).await;
                }
                // Its children can start now: create their leases without waiting, from the
                // children the endpoint named, else from ListShards.
                let created = !children.is_empty()
                    && match shard_sync::create_children(&self.worker.table, &children).await {
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
                if self.held.remove(&shard).is_some() {
                    let _ = self.worker.table.release(&shard, &me).await;
                }
            }
            Exit::LeaseLost => {
                self.held.remove(&shard);
            }
            // Still held: graceful shutdown releases it once every consumer has ended.
            Exit::Shutdown => {}
        }
    }

    /// Tells every consumer to shut down, waits for them, then releases every lease.
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
        let me = self.worker.config.worker_id.clone();
        for shard in self.held.keys() {
            match self.worker.table.release(shard, &me).await {
                Ok(true) => tracing::debug!(shard = %shard, "lease released"),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(shard = %shard, error = %e, "releasing a lease failed; it will expire")
                }
            }
        }
        self.held.clear();
        if let Some(arn) = &self.consumer_arn
            && self.worker.config.deregister_consumer_on_shutdown
        {
            match retrieval::deregister_consumer(&self.worker.kinesis, arn).await {
                Ok(()) => tracing::info!(%arn, "stream consumer deregistered"),
                Err(e) => {
                    tracing::warn!(%arn, error = %e, "deregistering the stream consumer failed")
                }
            }
        }
    }
}
