//! The `Producer` handle: sending, flushing, shutting down, and what it has done.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use kinesis_common::stream::StreamRef;
use kinesis_common::{HashKey, UserRecord};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::admission::Charge;
use crate::bounds::{Refused, Room};
use crate::builder::ProducerBuilder;
use crate::engine::Command;
use crate::error::{ProduceError, PutError};
use crate::pipeline::{Pipeline, Shared};
use crate::result::PutFuture;
use crate::stats::ProducerStats;
use crate::ticket::Ticket;

/// A KPL-class producer. Cheap to clone; all clones share one pipeline per stream and one
/// set of outstanding bounds.
///
/// A handle writes to one stream, the builder's; [`Producer::for_stream`] gives a handle to
/// another stream of the same producer (its shard map, rate limits and statistics are its
/// own; the outstanding bounds, client and configuration are shared).
///
/// When the last clone is dropped without [`Producer::shutdown`], records not yet sent fail
/// with [`ProduceError::ShutDown`] (handed back) and requests in flight finish in the background.
#[derive(Clone)]
pub struct Producer {
    shared: Arc<Shared>,
    pipeline: Arc<Pipeline>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("stream", &self.pipeline.stream)
            .field("closed", &self.shared.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Producer {
    /// Options for a producer of `stream` (a name or an ARN).
    pub fn builder(stream: impl Into<StreamRef>) -> ProducerBuilder {
        ProducerBuilder::new(stream.into())
    }

    pub(crate) fn new(shared: Arc<Shared>, stream: &StreamRef) -> Self {
        let pipeline = shared.pipeline(stream);
        Producer { shared, pipeline }
    }

    /// A handle of this producer for `stream` (a name or an ARN), whose pipeline starts on
    /// first use: one producer, one set of outstanding bounds, any number of streams. The
    /// same stream asked for by name and by ARN gets two pipelines.
    pub fn for_stream(&self, stream: impl Into<StreamRef>) -> Producer {
        Producer::new(self.shared.clone(), &stream.into())
    }

    /// The stream this handle writes to.
    pub fn stream(&self) -> &StreamRef {
        &self.pipeline.stream
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
    ///
    /// # Examples
    ///
    /// ```
    /// use kinesis_producer::{ProduceError, Producer, UserRecord};
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let aws = kinesis_testkit::LocalAws::start().await?;
    /// # aws.create_stream("clicks", 1).await?;
    /// # let client = aws.kinesis_client().await;
    /// let producer = Producer::builder("clicks").client(client).build()?;
    /// // `send` returns once the record is queued; the future resolves when Kinesis answers.
    /// let put = producer.send(UserRecord::new("user-42", "clicked")).await?;
    /// let landed = put.await?;
    /// assert!(landed.shard_id().starts_with("shardId-"));
    ///
    /// // Bad input fails at once, with the record handed back.
    /// let refused = producer.send(UserRecord::new("", "no key")).await.unwrap_err();
    /// assert!(matches!(refused.reason(), ProduceError::InvalidRecord { .. }));
    /// assert_eq!(refused.record().data, "no key");
    /// producer.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send(&self, record: UserRecord) -> Result<PutFuture, PutError> {
        let (record, hash_key, size) = self.admit(record)?;
        let charge = self.pipeline.admission.charge(hash_key, size.into()).await;
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(PutError::new(record, ProduceError::ShutDown));
        }
        match self.shared.bounds.take(size).await {
            Some(room) => self.enqueue(record, hash_key, room, charge),
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
        let Ok(charge) = self.pipeline.admission.try_charge(hash_key, size.into()) else {
            return Err(full(record));
        };
        match self.shared.bounds.try_take(size) {
            Ok(room) => self.enqueue(record, hash_key, room, charge),
            Err(Refused::Full) => Err(full(record)),
            Err(Refused::Closed) => Err(PutError::new(record, ProduceError::ShutDown)),
        }
    }

    fn admit(&self, record: UserRecord) -> Result<(UserRecord, HashKey, u32), PutError> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(PutError::new(record, ProduceError::ShutDown));
        }
        match record.validate(self.shared.config.max_record_bytes) {
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
        mut record: UserRecord,
        hash_key: HashKey,
        room: Room,
        charge: Option<Charge>,
    ) -> Result<PutFuture, PutError> {
        // A small record's data is copied, and the application's buffer freed, on this thread.
        let copied = self.pipeline.arena.copy(&record.data, record.size());
        let in_arena = copied.is_some();
        if let Some(copy) = copied {
            record.data = copy;
        }
        let (tx, rx) = self.pipeline.completions.next();
        let now = Instant::now();
        let mut ticket = Ticket::new(record, hash_key, now, tx, room.with_charge(charge));
        ticket.in_arena = in_arena;
        match self.pipeline.inbox.push(ticket) {
            Ok(()) => Ok(PutFuture::new(rx)),
            // The engine is gone: dropping the ticket resolves `rx` with the record.
            Err(ticket) => {
                drop(ticket);
                Err(futures_take(rx))
            }
        }
    }

    /// Waits until every record sent before this call, to any stream of this producer, is
    /// resolved (put or failed). Records still buffered are sent at once rather than after
    /// their buffering time.
    pub async fn flush(&self) {
        self.tell_every_pipeline(Command::Flush).await;
    }

    /// Sends `command` to every stream's engine at once, then waits for each to answer.
    async fn tell_every_pipeline(&self, command: fn(oneshot::Sender<()>) -> Command) {
        let waits: Vec<_> = self
            .shared
            .all()
            .into_iter()
            .filter_map(|pipeline| {
                let (tx, rx) = oneshot::channel();
                pipeline.tx.send(command(tx)).ok().map(|()| rx)
            })
            .collect();
        for rx in waits {
            let _ = rx.await;
        }
    }

    /// Flushes, then stops every stream's pipeline. Later sends fail with
    /// [`ProduceError::ShutDown`]. Resolves when every record is resolved and nothing is in
    /// flight.
    pub async fn shutdown(&self) {
        self.shared.closed.store(true, Ordering::Release);
        self.tell_every_pipeline(Command::Shutdown).await;
        self.shared.bounds.close();
    }

    /// A snapshot of the counters of this handle's stream.
    pub fn stats(&self) -> ProducerStats {
        self.pipeline.stats.snapshot()
    }

    /// The counters of every stream this producer has written, by stream.
    pub fn stats_by_stream(&self) -> std::collections::BTreeMap<String, ProducerStats> {
        self.shared
            .all()
            .into_iter()
            .map(|p| (p.stream.to_string(), p.stats.snapshot()))
            .collect()
    }

    /// The heaviest partition keys of each shard of this handle's stream, by bytes and by
    /// records, over the last `hot_key_window` (as of the engine's last report, at most a
    /// second old), ordered by shard id. A key with more than an eighth of a shard's traffic
    /// is always listed.
    pub fn hot_keys(&self) -> Vec<crate::ShardHotKeys> {
        self.pipeline
            .stats
            .hot_keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Throttled entries or requests so far on this handle's stream, by shard.
    pub fn throttles_by_shard(&self) -> std::collections::BTreeMap<String, u64> {
        self.pipeline
            .stats
            .throttles_by_shard
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Records sent but not yet resolved, over all streams.
    pub fn outstanding_records(&self) -> usize {
        self.shared.bounds.records()
    }

    /// Bytes (data + partition key) sent but not yet resolved, over all streams.
    pub fn outstanding_bytes(&self) -> usize {
        self.shared.bounds.bytes()
    }
}

/// The error already sitting in a ticket's channel after the ticket was dropped.
fn futures_take(mut rx: crate::completion::Receiver) -> PutError {
    match rx.try_take() {
        Some(Err(e)) => e,
        _ => PutError::new(
            UserRecord::new(String::new(), bytes::Bytes::new()),
            ProduceError::ShutDown,
        ),
    }
}
