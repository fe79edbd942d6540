//! The `Producer` handle and its builder.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kinesis_common::UserRecord;
use kinesis_common::backoff::Backoff;
use kinesis_common::stream::StreamRef;
use tokio::sync::{Semaphore, TryAcquireError, mpsc, oneshot};
use tokio::time::Instant;

use crate::admission::Admission;
use crate::config::{Config, ConfigError};
use crate::engine::{Command, Engine};
use crate::error::{ProduceError, PutError};
use crate::result::PutFuture;
use crate::stats::{ProducerStats, Stats};
use crate::ticket::Ticket;

/// Builds a [`Producer`]. Every option has a default; see the crate docs for the table.
#[derive(Debug)]
pub struct ProducerBuilder {
    stream: StreamRef,
    client: Option<aws_sdk_kinesis::Client>,
    config: Config,
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

impl ProducerBuilder {
    /// Uses this Kinesis client (from `aws_config`, `ClientOptions`, or the testkit).
    pub fn client(mut self, client: aws_sdk_kinesis::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Builds the Kinesis client from a loaded SDK configuration.
    pub fn sdk_config(mut self, config: &aws_config::SdkConfig) -> Self {
        self.client = Some(aws_sdk_kinesis::Client::new(config));
        self
    }

    setter!(
        /// Aggregate user records bound for the same shard in the KPL format (default true).
        aggregation: bool
    );
    setter!(
        /// Largest aggregate, data + partition key (default 51,200 bytes; at most 1 MiB).
        max_aggregate_bytes: usize
    );
    setter!(
        /// Most entries per PutRecords request (default and maximum 500).
        max_entries_per_request: usize
    );
    setter!(
        /// Most bytes per PutRecords request (default 5 MiB).
        max_bytes_per_request: usize
    );
    setter!(
        /// Longest a record waits to be aggregated and collected before it is sent (default 100 ms).
        max_buffered_time: Duration
    );
    setter!(
        /// Time from `send` after which an unacknowledged record fails as expired (default 30 s).
        record_ttl: Duration
    );
    setter!(
        /// Per-shard send rate as a percentage of the shard limit, 1 MiB/s and 1000 records/s (default 100).
        rate_limit_percent: u32
    );
    setter!(
        /// Most bytes (data + partition key) sent but not yet resolved; `send` waits above it (default 64 MiB).
        max_outstanding_bytes: usize
    );
    setter!(
        /// Most records sent but not yet resolved; `send` waits above it (default 100,000).
        max_outstanding_records: usize
    );
    setter!(
        /// Time limit of one PutRecords call (default 10 s).
        request_timeout: Duration
    );
    setter!(
        /// Most PutRecords calls at once (default 24).
        max_concurrent_requests: usize
    );
    setter!(
        /// How often the shard map is reloaded even without a sign of resharding (default 60 s).
        shard_map_refresh_interval: Duration
    );
    setter!(
        /// Fail throttled records at once instead of retrying them (default false).
        fail_fast_on_throttling: bool
    );
    setter!(
        /// Largest user record, data + partition key (default 1 MiB; up to 10 MiB for streams
        /// raised with UpdateMaxRecordSize).
        max_record_bytes: usize
    );
    setter!(
        /// Backoff between retries of a record (default 100 ms doubling to 5 s, full jitter).
        backoff: Backoff
    );
    setter!(
        /// Labels on the producer's metrics: `Global`, `Stream` (default) or `Shard` (a series
        /// per shard for the per-shard counters; see the crate's metrics table).
        metrics_granularity: crate::MetricsGranularity
    );

    /// Validates the options and starts the producer's engine on the current Tokio runtime.
    pub fn build(self) -> Result<Producer, ConfigError> {
        self.config.validate()?;
        let client = self.client.ok_or(ConfigError::MissingClient)?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ConfigError::NoRuntime)?;
        let config = Arc::new(self.config);
        let stats = Arc::new(Stats::new());
        let admission = Arc::new(Admission::default());
        let (tx, rx) = mpsc::unbounded_channel();
        let engine = Engine::new(
            config.clone(),
            client,
            self.stream.clone(),
            stats.clone(),
            admission.clone(),
            rx,
        );
        runtime.spawn(engine.run());
        Ok(Producer {
            inner: Arc::new(Inner {
                bytes: Arc::new(Semaphore::new(config.max_outstanding_bytes)),
                records: Arc::new(Semaphore::new(config.max_outstanding_records)),
                config,
                stream: self.stream,
                stats,
                admission,
                tx,
                closed: AtomicBool::new(false),
            }),
        })
    }
}

struct Inner {
    config: Arc<Config>,
    stream: StreamRef,
    stats: Arc<Stats>,
    admission: Arc<Admission>,
    tx: mpsc::UnboundedSender<Command>,
    bytes: Arc<Semaphore>,
    records: Arc<Semaphore>,
    closed: AtomicBool,
}

/// A KPL-class producer for one stream. Cheap to clone; all clones share one pipeline.
///
/// When the last clone is dropped without [`Producer::shutdown`], records not yet sent fail
/// with [`ProduceError::ShutDown`] (handed back) and requests in flight finish in the background.
#[derive(Clone)]
pub struct Producer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("stream", &self.inner.stream)
            .field("closed", &self.inner.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Producer {
    /// Options for a producer of `stream` (a name or an ARN).
    pub fn builder(stream: impl Into<StreamRef>) -> ProducerBuilder {
        ProducerBuilder {
            stream: stream.into(),
            client: None,
            config: Config::default(),
        }
    }

    /// The stream this producer writes to.
    pub fn stream(&self) -> &StreamRef {
        &self.inner.stream
    }

    /// Queues a record, waiting for room under the outstanding bounds, and returns a future
    /// of its put. Bad input fails here, at once, with the record handed back.
    ///
    /// # Backpressure
    /// It also waits while the shard the record is bound for holds more than it can send in a
    /// third of the record TTL at the rate that shard is accepting (less after throttling), so
    /// a sender faster than the stream slows to its pace instead of queueing records that
    /// would expire unsent. The record's TTL starts when `send` returns.
    ///
    /// # Cancellation
    /// Dropping this future before it completes drops the record unsent; nothing else is lost.
    /// Once it has returned a [`PutFuture`], dropping that does not cancel the put.
    pub async fn send(&self, record: UserRecord) -> Result<PutFuture, PutError> {
        let (record, hash_key, size) = self.admit(record)?;
        let charge = self.inner.admission.charge(hash_key, size.into()).await;
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(PutError::new(record, ProduceError::ShutDown));
        }
        let permits = async {
            let bytes = self
                .inner
                .bytes
                .clone()
                .acquire_many_owned(size)
                .await
                .ok()?;
            let slot = self.inner.records.clone().acquire_owned().await.ok()?;
            Some((bytes, slot))
        };
        match permits.await {
            Some(permits) => self.enqueue(record, hash_key, permits, charge),
            None => Err(PutError::new(record, ProduceError::ShutDown)),
        }
    }

    /// Like [`Producer::send`], but fails at once with [`ProduceError::Full`] instead of waiting.
    pub fn try_send(&self, record: UserRecord) -> Result<PutFuture, PutError> {
        let (record, hash_key, size) = self.admit(record)?;
        let full = |record| {
            let reason = ProduceError::Full {
                outstanding_records: self.outstanding_records(),
                outstanding_bytes: self.outstanding_bytes(),
            };
            PutError::new(record, reason)
        };
        let Ok(charge) = self.inner.admission.try_charge(hash_key, size.into()) else {
            return Err(full(record));
        };
        let bytes = match self.inner.bytes.clone().try_acquire_many_owned(size) {
            Ok(p) => p,
            Err(TryAcquireError::NoPermits) => return Err(full(record)),
            Err(TryAcquireError::Closed) => {
                return Err(PutError::new(record, ProduceError::ShutDown));
            }
        };
        let slot = match self.inner.records.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(TryAcquireError::NoPermits) => return Err(full(record)),
            Err(TryAcquireError::Closed) => {
                return Err(PutError::new(record, ProduceError::ShutDown));
            }
        };
        self.enqueue(record, hash_key, (bytes, slot), charge)
    }

    fn admit(
        &self,
        record: UserRecord,
    ) -> Result<(UserRecord, kinesis_common::HashKey, u32), PutError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(PutError::new(record, ProduceError::ShutDown));
        }
        match record.validate(self.inner.config.max_record_bytes) {
            Ok(hash_key) => {
                // Validated: at most 10 MiB, so it fits a u32.
                let size = u32::try_from(record.size()).unwrap_or(u32::MAX);
                Ok((record, hash_key, size))
            }
            Err(source) => Err(PutError::new(
                record,
                ProduceError::InvalidRecord { source },
            )),
        }
    }

    fn enqueue(
        &self,
        record: UserRecord,
        hash_key: kinesis_common::HashKey,
        permits: (
            tokio::sync::OwnedSemaphorePermit,
            tokio::sync::OwnedSemaphorePermit,
        ),
        charge: Option<crate::admission::Charge>,
    ) -> Result<PutFuture, PutError> {
        let (tx, rx) = oneshot::channel();
        let now = Instant::now();
        let ticket = Ticket::new(
            record,
            hash_key,
            now,
            now + self.inner.config.record_ttl,
            tx,
            permits,
            charge,
        );
        match self.inner.tx.send(Command::Record(ticket)) {
            Ok(()) => Ok(PutFuture::new(rx)),
            // The engine is gone: dropping the ticket resolves `rx` with the record.
            Err(mpsc::error::SendError(command)) => {
                drop(command);
                Err(futures_take(rx))
            }
        }
    }

    /// Waits until every record sent before this call is resolved (put or failed). Records
    /// still buffered are sent at once rather than after their buffering time.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.inner.tx.send(Command::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Flushes, then stops the engine. Later sends fail with [`ProduceError::ShutDown`].
    /// Resolves when every record is resolved and nothing is in flight.
    pub async fn shutdown(&self) {
        self.inner.closed.store(true, Ordering::Release);
        let (tx, rx) = oneshot::channel();
        if self.inner.tx.send(Command::Shutdown(tx)).is_ok() {
            let _ = rx.await;
        }
        self.inner.bytes.close();
        self.inner.records.close();
    }

    /// A snapshot of the producer's counters.
    pub fn stats(&self) -> ProducerStats {
        self.inner.stats.snapshot()
    }

    /// Throttled entries or requests so far, by shard.
    pub fn throttles_by_shard(&self) -> std::collections::BTreeMap<String, u64> {
        self.inner
            .stats
            .throttles_by_shard
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Records sent but not yet resolved.
    pub fn outstanding_records(&self) -> usize {
        self.inner.config.max_outstanding_records - self.inner.records.available_permits()
    }

    /// Bytes (data + partition key) sent but not yet resolved.
    pub fn outstanding_bytes(&self) -> usize {
        self.inner.config.max_outstanding_bytes - self.inner.bytes.available_permits()
    }
}

/// The error already sitting in a ticket's channel after the ticket was dropped.
fn futures_take(mut rx: oneshot::Receiver<crate::result::Outcome>) -> PutError {
    match rx.try_recv() {
        Ok(Err(e)) => e,
        _ => PutError::new(
            UserRecord::new(String::new(), bytes::Bytes::new()),
            ProduceError::ShutDown,
        ),
    }
}
