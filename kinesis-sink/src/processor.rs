//! The sink's [`RecordProcessor`]: one per shard, feeding the shared buffers and
//! checkpointing only what is in durable objects.

use std::sync::Arc;
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use kinesis_consumer::{
    Checkpoint, CheckpointError, Checkpointer, InitializeInput, ProcessRecordsInput,
    ProcessorError, ProcessorFactory, Record, RecordProcessor, ShardEndCheckpointer, ShardEnded,
};

use crate::buffer::{Buffer, BufferKey, Buffers, Position, ShardKey, shard_of};
use crate::error::{RecordError, SinkError};
use crate::format::error_record;
use crate::manifest::AlreadyWritten;
use crate::sink::{Inner, Sink};

/// Makes a [`SinkProcessor`] for each shard a worker takes: give it to
/// [`kinesis_consumer::WorkerBuilder::build`]. Turn on the worker's
/// `deliver_empty_batches` so a quiet shard checkpoints soon after its objects are written
/// (otherwise it checkpoints with its next records).
#[derive(Debug, Clone)]
pub struct SinkFactory {
    sink: Sink,
}

impl Sink {
    /// The processor factory for a [`kinesis_consumer::Worker`].
    pub fn factory(&self) -> SinkFactory {
        SinkFactory { sink: self.clone() }
    }
}

impl ProcessorFactory for SinkFactory {
    type Processor = SinkProcessor;

    fn create(&self, shard_id: &str) -> SinkProcessor {
        SinkProcessor {
            inner: self.sink.inner.clone(),
            shard: self.sink.inner.shard_key(None, shard_id),
            pending: None,
            start: None,
            written: None,
        }
    }
}

/// Feeds one shard's records into the sink's buffers; checkpoints after the records that
/// are in durable objects.
pub struct SinkProcessor {
    inner: Arc<Inner>,
    shard: ShardKey,
    /// A durable position whose checkpoint failed, tried again on the next call.
    pending: Option<Position>,
    /// Where processing starts (`None`: the shard's start, or not known yet).
    start: Option<Position>,
    /// The records after `start` that objects already hold (read from the manifests before
    /// the first batch is taken).
    written: Option<AlreadyWritten>,
}

impl std::fmt::Debug for SinkProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkProcessor")
            .field("shard", &self.shard)
            .finish_non_exhaustive()
    }
}

impl Drop for SinkProcessor {
    fn drop(&mut self) {
        // Gone without a word (the worker gave the lease up): the next owner reads the
        // records since the checkpoint again, so they leave the buffers.
        self.inner.lock().drop_shard(&self.shard);
        self.inner.forget_manifests(&self.shard);
    }
}

impl SinkProcessor {
    /// Whether the record at `position`, routed to buffer `key`, is in an existing object
    /// already (written before a crash, never checkpointed).
    fn already_written(&self, key: &BufferKey, position: &Position) -> bool {
        let written = self
            .written
            .as_ref()
            .is_some_and(|w| w.covers(key, position));
        if written {
            self.inner.counters.skipped();
        }
        written
    }

    /// Routes one record into its buffers (the error prefix's when it fails on the way).
    /// A buffer that reaches the buffer size is taken out into `full` at once, so objects
    /// stay near the size however large the batch.
    fn add(&self, buffers: &mut Buffers, batch: u64, record: &Record, full: &mut Vec<Buffer>) {
        let cfg = &self.inner.cfg;
        let arrival = record.approximate_arrival_timestamp;
        let at = cfg.time_zone.local(DateTime::<Utc>::from(
            arrival.unwrap_or_else(SystemTime::now),
        ));
        let position = Position {
            sequence: record.sequence_number.clone(),
            sub: record.sub_sequence_number,
        };
        let now = tokio::time::Instant::now();
        let fail = |buffers: &mut Buffers, error: RecordError| {
            // The error prefix uses no partition keys (checked when the sink is built).
            let prefix = cfg
                .error_prefix
                .render(at, &[], Some(error.output_type()))
                .unwrap_or_else(|_| format!("{}/", error.output_type()));
            let key = (prefix, true);
            if self.already_written(&key, &position) {
                return;
            }
            let _ = buffers.append(key, &self.shard, batch, &position, arrival, now, |out| {
                error_record::encode(&error, record, out);
                Ok::<_, ()>(())
            });
        };
        let outputs = match &self.inner.transform {
            None => vec![record.data.clone()],
            Some(t) => match t.transform(record) {
                Ok(outputs) => outputs,
                Err(reason) => return fail(buffers, RecordError::Transform { reason }),
            },
        };
        for data in outputs {
            let keys = match &self.inner.partitioner {
                None => Vec::new(),
                Some(p) => match p.partition(&data, record) {
                    Ok(keys) => keys,
                    Err(reason) => {
                        fail(buffers, RecordError::Partition { reason });
                        continue;
                    }
                },
            };
            let prefix = match cfg.prefix.render(at, &keys, None) {
                Ok(prefix) => prefix,
                Err(e) => {
                    let reason = e.to_string();
                    fail(buffers, RecordError::Partition { reason });
                    continue;
                }
            };
            let key = (prefix, false);
            if self.already_written(&key, &position) {
                continue;
            }
            let appended = buffers.append(
                key.clone(),
                &self.shard,
                batch,
                &position,
                arrival,
                now,
                |out| cfg.format.encode(&data, record, out),
            );
            match appended {
                Err(e) => fail(buffers, e),
                Ok(()) if buffers.len_of(&key) >= cfg.buffer_size => {
                    full.extend(buffers.take(&key));
                }
                Ok(()) => {}
            }
        }
    }

    /// Checkpoints after the records now in durable objects, if that moved.
    async fn checkpoint_durable(
        &mut self,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), CheckpointError> {
        if let Some(position) = self.inner.lock().checkpointable(&self.shard) {
            self.pending = Some(position);
        }
        let Some(position) = &self.pending else {
            return Ok(());
        };
        checkpointer
            .checkpoint_at(&position.sequence, position.sub)
            .await?;
        if let Some(written) = &mut self.written {
            written.forget_through(position);
        }
        self.inner.checkpointed(&self.shard, Some(position));
        self.pending = None;
        Ok(())
    }

    /// Writes this shard's buffers now and waits until all its records are durable (or a
    /// write failed).
    async fn settle(&self) {
        self.inner.write_shard(&self.shard);
        loop {
            let notified = self.inner.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.inner.lock().settled(&self.shard) {
                return;
            }
            notified.await;
        }
    }

    fn failure(&self) -> Option<ProcessorError> {
        if let Some(reason) = self.inner.lock().failure(&self.shard) {
            return Some(reason.to_string().into());
        }
        self.inner
            .closed()
            .then(|| Box::new(SinkError::ShutDown) as ProcessorError)
    }
}

impl RecordProcessor for SinkProcessor {
    async fn initialize(&mut self, input: InitializeInput) {
        self.start = match &input.checkpoint {
            Checkpoint::Sequence(sequence) => Some(Position {
                sequence: sequence.clone(),
                sub: input.checkpoint_sub_sequence,
            }),
            _ => None,
        };
        // Forget what the factory's key held (nothing yet) and take the stream's too.
        self.inner.lock().drop_shard(&self.shard);
        self.shard = self
            .inner
            .shard_key(input.stream.as_deref(), &input.shard_id);
    }

    async fn process_records(
        &mut self,
        input: ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        // Before taking the batch: a refused batch is delivered again, so it must add nothing.
        if let Some(e) = self.failure() {
            return Err(e);
        }
        if self.written.is_none() {
            let shard = shard_of(&self.shard).to_owned();
            let written = self
                .inner
                .already_written(&shard, self.start.as_ref())
                .await
                .map_err(|e| format!("reading the manifests of {shard}: {e}"))?;
            if !written.is_empty() {
                tracing::info!(
                    shard,
                    "records in objects written before the last checkpoint are skipped"
                );
            }
            self.written = Some(written);
        }
        self.inner.counters.received(input.records.len());
        if let Some(last) = input.records.last() {
            let last = Position {
                sequence: last.sequence_number.clone(),
                sub: last.sub_sequence_number,
            };
            let mut full = Vec::new();
            let mut buffers = self.inner.lock();
            let batch = buffers.begin_batch(&self.shard, last);
            for record in &input.records {
                self.add(&mut buffers, batch, record, &mut full);
            }
            let over = buffers.buffered() > self.inner.cfg.max_buffered_bytes;
            drop(buffers);
            for buffer in full {
                self.inner.write_taken(buffer);
            }
            if over || self.inner.cfg.buffer_interval.is_zero() {
                self.inner.poke();
            }
        }
        // The batch is in the buffers now: failing it would deliver it again and write it
        // twice. A failed checkpoint is tried again on the next call; a lost lease ends the
        // shard here (the worker sees it on the checkpointer).
        if let Err(e) = self.checkpoint_durable(checkpointer).await {
            tracing::warn!(error = %e, "checkpoint failed; tried again with the next batch");
        }
        Ok(())
    }

    async fn shard_ended(
        &mut self,
        checkpointer: ShardEndCheckpointer,
    ) -> Result<ShardEnded, CheckpointError> {
        // The children wait for this checkpoint: every record of the shard must be durable
        // first. A failed write leaves the shard unfinished; the next owner reads it again.
        self.settle().await;
        if let Some(reason) = self.inner.lock().failure(&self.shard) {
            return Err(CheckpointError::GaveUp {
                reason: reason.to_string(),
            });
        }
        let ended = checkpointer.checkpoint().await?;
        self.inner.checkpointed(&self.shard, None);
        Ok(ended)
    }

    async fn lease_lost(&mut self) {
        self.inner.lock().drop_shard(&self.shard);
        self.inner.forget_manifests(&self.shard);
    }

    async fn shutdown_requested(&mut self, checkpointer: &mut Checkpointer) {
        // Handing over: what is buffered is written and checkpointed, so the next owner
        // starts after it.
        self.settle().await;
        if let Err(e) = self.checkpoint_durable(checkpointer).await {
            tracing::warn!(error = %e, "checkpoint at shutdown failed");
        }
        self.inner.lock().drop_shard(&self.shard);
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::destination::Destination;

    fn record(seq: u64, arrival_secs: u64, data: &[u8]) -> Record {
        Record {
            partition_key: "pk".into(),
            explicit_hash_key: None,
            data: bytes::Bytes::copy_from_slice(data),
            sequence_number: format!("{seq:020}"),
            sub_sequence_number: 0,
            aggregated: false,
            approximate_arrival_timestamp: Some(UNIX_EPOCH + Duration::from_secs(arrival_secs)),
        }
    }

    #[tokio::test]
    async fn a_backlog_lands_in_the_hours_its_records_arrived() {
        let store: Arc<dyn object_store::ObjectStore> =
            Arc::new(object_store::memory::InMemory::new());
        let sink = Sink::builder(Destination::from(store)).build().unwrap();
        let processor = sink.factory().create("shardId-0");
        // 2025-12-05 08:59:59, 09:00:00 and 10:30:00 UTC.
        let arrivals = [1_764_925_199, 1_764_925_200, 1_764_930_600];
        let mut buffers = sink.inner.lock();
        let batch = buffers.begin_batch(
            &processor.shard,
            Position {
                sequence: format!("{:020}", 3),
                sub: 0,
            },
        );
        for (i, at) in arrivals.into_iter().enumerate() {
            processor.add(
                &mut buffers,
                batch,
                &record(i as u64 + 1, at, b"x"),
                &mut Vec::new(),
            );
        }
        let mut keys = buffers.holding(&processor.shard);
        keys.sort();
        let prefixes: Vec<&str> = keys.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            prefixes,
            ["2025/12/05/08/", "2025/12/05/09/", "2025/12/05/10/"]
        );
    }
}
