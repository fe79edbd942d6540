//! One shard's processing loop: fetch, deaggregate, deliver with retries, checkpoint,
//! and end in exactly one of shard end, lease lost or shutdown.
//!
//! No batch is handed to the processor once the lease's local [`Deadline`] has passed (the
//! renewer could not renew it in time, so another worker may take it): the consumer stops
//! and the processor gets `lease_lost`, whether or not DynamoDB ever answers. A batch
//! already being processed at that moment runs to its end (user code is not cancelled); its
//! checkpoint is refused if the lease has moved.

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use kinesis_common::HashKey;
use kinesis_common::aggregation::deaggregate;
use tokio::sync::{mpsc, watch};

use crate::checkpoint::{Checkpointer, ShardContext, ShardEndCheckpointer};
use crate::config::{Config, InitialPosition};
use crate::lease::renewer::Deadline;
use crate::lease::throughput::ThroughputMeter;
use crate::lease::{Checkpoint, Lease};
use crate::processor::{InitializeInput, ProcessorFactory, RecordProcessor};
use crate::record::{ProcessRecordsInput, Record};
use crate::retrieval::{Batch, FetchEnd, Fetcher, StartAt};
use crate::telemetry::ShardMetrics;

/// What the worker tells a running shard consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    Run,
    LeaseLost,
    Shutdown,
}

/// How a shard consumer ended.
#[derive(Debug)]
pub(crate) enum Exit {
    /// The shard is read to its end and `SHARD_END` is checkpointed; its children, when the
    /// endpoint named them.
    ShardEnded(Vec<aws_sdk_kinesis::types::ChildShard>),
    /// The lease is gone; the processor was told.
    LeaseLost,
    /// Shut down on request; the processor was told and may have checkpointed.
    Shutdown,
    /// The processor kept failing, or the shard cannot be read: give the lease up.
    GaveUp(String),
}

pub(crate) struct ShardConsumer<F: ProcessorFactory> {
    pub config: Arc<Config>,
    pub factory: Arc<F>,
    pub fetcher: Fetcher,
    pub ctx: Arc<ShardContext>,
    pub lease: Lease,
    pub signal: watch::Receiver<Signal>,
    /// The lease's local deadline, kept up by the renewer.
    pub deadline: Deadline,
    /// Wait before starting: after stealing a lease, until its old owner must have stopped.
    pub start_delay: Duration,
    /// This shard's metric handles.
    pub metrics: ShardMetrics,
    /// What is delivered, for the renewer's `throughputKBps`.
    pub meter: Arc<ThroughputMeter>,
}

/// Aborts the fetcher when the consumer ends, however it ends.
struct AbortOnDrop(tokio::task::JoinHandle<FetchEnd>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn to_records(
    batch: &Batch,
    range: Option<(HashKey, HashKey)>,
    skip: &mut Option<(String, u64)>,
    metrics: &ShardMetrics,
) -> Vec<Record> {
    let mut out = Vec::new();
    for r in &batch.records {
        let arrival = r
            .approximate_arrival_timestamp()
            .and_then(|t| std::time::SystemTime::try_from(*t).ok());
        let d = deaggregate(
            r.partition_key(),
            None,
            bytes::Bytes::copy_from_slice(r.data().as_ref()),
        );
        if let Some(reason) = &d.corrupt {
            tracing::warn!(sequence = r.sequence_number(), %reason, "corrupt aggregated record passed through whole");
            metrics.corrupt_aggregates.increment(1);
        }
        for user in d.records {
            // Resuming inside an aggregate: skip what the checkpoint covers.
            if let Some((seq, sub)) = skip.as_ref()
                && r.sequence_number() == seq
                && user.sub_sequence_number <= *sub
            {
                continue;
            }
            // KCL drops user records of an aggregate that fall outside the shard's range.
            if d.aggregated
                && let Some((start, end)) = range
            {
                let key = match &user.explicit_hash_key {
                    Some(ehk) => HashKey::parse_explicit(ehk).ok(),
                    None => Some(HashKey::from_partition_key(&user.partition_key)),
                };
                if key.is_some_and(|k| k < start || k > end) {
                    continue;
                }
            }
            out.push(Record {
                partition_key: user.partition_key,
                explicit_hash_key: user.explicit_hash_key,
                data: user.data,
                sequence_number: r.sequence_number().to_owned(),
                sub_sequence_number: user.sub_sequence_number,
                aggregated: d.aggregated,
                approximate_arrival_timestamp: arrival,
            });
        }
        if skip
            .as_ref()
            .is_some_and(|(seq, _)| r.sequence_number() != seq)
        {
            *skip = None;
        }
    }
    out
}

impl<F: ProcessorFactory> ShardConsumer<F> {
    fn signalled(&self) -> Signal {
        *self.signal.borrow()
    }

    /// Waits for the worker's next word. A worker that went away counts as a lost lease:
    /// nobody can vouch for it any more.
    async fn next_signal(signal: &mut watch::Receiver<Signal>) -> Signal {
        match signal.changed().await {
            Ok(()) => *signal.borrow(),
            Err(_) => Signal::LeaseLost,
        }
    }

    /// Waits `delay` unless the worker speaks first; a passed deadline reads as a lost lease.
    async fn wait(&mut self, delay: Duration) -> Signal {
        let signal = tokio::select! {
            _ = tokio::time::sleep(delay) => self.signalled(),
            signal = Self::next_signal(&mut self.signal) => signal,
            _ = self.deadline.expired() => Signal::LeaseLost,
        };
        if self.deadline.passed() {
            Signal::LeaseLost
        } else {
            signal
        }
    }

    async fn new_processor(&self) -> F::Processor {
        let mut processor = self.factory.create(&self.ctx.shard_id);
        processor
            .initialize(InitializeInput {
                shard_id: self.ctx.shard_id.clone(),
                stream: self.lease.stream_identifier.clone(),
                checkpoint: self.lease.checkpoint.clone(),
                checkpoint_sub_sequence: self.lease.checkpoint_sub_sequence,
            })
            .await;
        processor
    }

    pub(crate) async fn run(mut self) -> Exit {
        let shard_id = self.ctx.shard_id.clone();
        if !self.start_delay.is_zero() {
            let signal = tokio::select! {
                _ = tokio::time::sleep(self.start_delay) => Signal::Run,
                signal = Self::next_signal(&mut self.signal) => signal,
                _ = self.deadline.expired() => Signal::LeaseLost,
            };
            match signal {
                Signal::Run => {}
                Signal::LeaseLost => return Exit::LeaseLost,
                Signal::Shutdown => return Exit::Shutdown,
            }
        }
        self.meter.start();
        let span = tracing::debug_span!("shard", shard = %shard_id);
        let metrics = self.metrics.clone();
        // The span follows the future (a guard held across an await would leak it to
        // whatever else the thread polls).
        let exit = tracing::Instrument::instrument(self.process(), span).await;
        metrics.ended();
        exit
    }

    async fn process(mut self) -> Exit {
        let shard_id = self.ctx.shard_id.clone();
        let mut processor = self.new_processor().await;
        let start_position = match &self.lease.checkpoint {
            Checkpoint::Sequence(seq) => Some((seq.clone(), self.lease.checkpoint_sub_sequence)),
            _ => None,
        };
        let mut skip = start_position.clone();
        let mut checkpointer = Checkpointer::new(self.ctx.clone(), start_position);
        let range = match (&self.lease.starting_hash_key, &self.lease.ending_hash_key) {
            (Some(a), Some(b)) => a
                .parse::<u128>()
                .ok()
                .zip(b.parse::<u128>().ok())
                .map(|(a, b)| (HashKey(a), HashKey(b))),
            _ => None,
        };
        let timestamp = match self.config.initial_position {
            InitialPosition::AtTimestamp(t) => Some(t),
            _ => None,
        };
        let start = StartAt {
            checkpoint: self.lease.checkpoint.clone(),
            timestamp,
        };
        let (tx, mut rx) = mpsc::channel(self.config.max_prefetch_batches);
        let _fetcher = AbortOnDrop(tokio::spawn(self.fetcher.clone().run(start, tx)));

        loop {
            let (batch, signal) = tokio::select! {
                biased;
                signal = Self::next_signal(&mut self.signal) => (None, signal),
                _ = self.deadline.expired() => (None, Signal::LeaseLost),
                batch = rx.recv() => match batch {
                    Some(batch) if self.deadline.passed() => (Some(batch), Signal::LeaseLost),
                    Some(batch) => (Some(batch), self.signalled()),
                    // The fetcher stopped without a shard end: it hit a fatal error.
                    None => return Exit::GaveUp(format!("shard {shard_id} cannot be read")),
                },
            };
            match signal {
                Signal::LeaseLost => {
                    processor.lease_lost().await;
                    return Exit::LeaseLost;
                }
                Signal::Shutdown => {
                    processor.shutdown_requested(&mut checkpointer).await;
                    return Exit::Shutdown;
                }
                Signal::Run => {}
            }
            let Some(batch) = batch else { continue };
            let records = to_records(&batch, range, &mut skip, &self.metrics);
            let newest_age = records
                .iter()
                .filter_map(|r| r.approximate_arrival_timestamp)
                .max()
                .map(|t| t.elapsed().unwrap_or_default());
            self.metrics
                .observe_lag(batch.millis_behind_latest, newest_age);
            if let Some(last) = records.last() {
                checkpointer.delivered((last.sequence_number.clone(), last.sub_sequence_number));
            }
            let deliver =
                !records.is_empty() || (self.config.deliver_empty_batches && !batch.shard_end);
            if deliver {
                let input = ProcessRecordsInput {
                    shard_id: shard_id.clone(),
                    stream: self.lease.stream_identifier.clone(),
                    records,
                    millis_behind_latest: batch.millis_behind_latest,
                };
                if let Some(exit) = self.deliver(&mut processor, &mut checkpointer, input).await {
                    return exit;
                }
            }
            if batch.shard_end {
                return self.end_shard(&mut processor, batch.child_shards).await;
            }
        }
    }

    /// Delivers a batch until the processor takes it; `Some(exit)` if the consumer must stop.
    async fn deliver(
        &mut self,
        processor: &mut F::Processor,
        checkpointer: &mut Checkpointer,
        input: ProcessRecordsInput,
    ) -> Option<Exit> {
        let count = input.records.len() as u64;
        let bytes: u64 = input.records.iter().map(|r| r.data.len() as u64).sum();
        let mut retries = self.config.processor_backoff.start();
        for attempt in 1..=self.config.processor_max_attempts {
            let call = std::panic::AssertUnwindSafe(
                processor.process_records(input.clone(), checkpointer),
            );
            let started = std::time::Instant::now();
            let outcome = call.catch_unwind().await;
            self.metrics
                .processing_seconds
                .record(started.elapsed().as_secs_f64());
            // A checkpoint refused because another worker holds the lease now, whatever the
            // processor made of it: the batch must not be delivered here again; the new
            // owner reads it.
            if checkpointer.lease_lost() {
                tracing::info!("checkpoint refused: the lease was taken by another worker");
                processor.lease_lost().await;
                return Some(Exit::LeaseLost);
            }
            let failure = match outcome {
                Ok(Ok(())) => {
                    self.metrics.records_processed.increment(count);
                    self.metrics.bytes_processed.increment(bytes);
                    let arrival =
                        |r: Option<&crate::Record>| r.and_then(|r| r.approximate_arrival_timestamp);
                    self.meter.record(
                        bytes,
                        arrival(input.records.first()),
                        arrival(input.records.last()),
                    );
                    return None;
                }
                Ok(Err(e)) => format!("process_records failed: {e}"),
                Err(_) => {
                    // A panicking processor may be in any state: start over with a new one.
                    *processor = self.new_processor().await;
                    "process_records panicked".to_owned()
                }
            };
            self.metrics.processor_failures.increment(1);
            tracing::warn!(attempt, error = %failure, "batch will be delivered again");
            if attempt == self.config.processor_max_attempts {
                tracing::error!(
                    attempts = attempt,
                    "processor keeps failing; releasing the lease"
                );
                return Some(Exit::GaveUp(failure));
            }
            let delay = retries.next_delay().unwrap_or(Duration::from_secs(1));
            match self.wait(delay).await {
                Signal::LeaseLost => {
                    processor.lease_lost().await;
                    return Some(Exit::LeaseLost);
                }
                Signal::Shutdown => {
                    // Records of this batch were not processed: do not checkpoint them.
                    return Some(Exit::Shutdown);
                }
                Signal::Run => {}
            }
        }
        None
    }

    /// Hands the processor the shard's end until it checkpoints it.
    async fn end_shard(
        &mut self,
        processor: &mut F::Processor,
        children: Vec<aws_sdk_kinesis::types::ChildShard>,
    ) -> Exit {
        let mut retries = self.config.processor_backoff.start();
        loop {
            let checkpointer = ShardEndCheckpointer::new(Checkpointer::new(self.ctx.clone(), None));
            match processor.shard_ended(checkpointer).await {
                Ok(_) => return Exit::ShardEnded(children),
                Err(crate::CheckpointError::LeaseLost { .. }) => {
                    processor.lease_lost().await;
                    return Exit::LeaseLost;
                }
                Err(crate::CheckpointError::GaveUp { reason }) => {
                    tracing::error!(%reason, "processor gave the shard up at its end; releasing the lease");
                    return Exit::GaveUp(reason);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "shard end checkpoint failed; retrying");
                    let delay = retries.next_delay().unwrap_or(Duration::from_secs(1));
                    // The lease may have moved while the checkpoint failed (a partition):
                    // the processor hears of it, as everywhere else.
                    match self.wait(delay).await {
                        Signal::Run => {}
                        Signal::LeaseLost => {
                            processor.lease_lost().await;
                            return Exit::LeaseLost;
                        }
                        Signal::Shutdown => return Exit::Shutdown,
                    }
                }
            }
        }
    }
}
