//! Checkpointing: recording in the lease table how far a shard is processed.
//!
//! A checkpoint is a conditional write fenced by lease ownership: a worker that lost the
//! lease gets [`CheckpointError::LeaseLost`] and cannot overwrite the new owner's progress.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kinesis_common::ServiceError;

use crate::lease::{Checkpoint, LeaseTable};

/// Why a checkpoint was not written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// This worker no longer holds the shard's lease.
    #[error("lease on {shard_id} is no longer held by this worker")]
    LeaseLost {
        /// The shard.
        shard_id: String,
    },
    /// The position is not a sequence number this processor may checkpoint.
    #[error("cannot checkpoint at {sequence_number}/{sub_sequence_number}: {reason}")]
    InvalidPosition {
        /// The sequence number given.
        sequence_number: String,
        /// The sub-sequence number given.
        sub_sequence_number: u64,
        /// Why.
        reason: &'static str,
    },
    /// The processor gives the shard up without checkpointing its end: what it wrote of the
    /// shard's records failed. The worker releases the lease, and the shard is read again
    /// from its last checkpoint (by this worker or another).
    #[error("the processor gave the shard up: {reason}")]
    GaveUp {
        /// The processor's reason.
        reason: String,
    },
    /// DynamoDB failed.
    #[error("checkpoint write failed: {source}")]
    Service {
        /// The classified error.
        #[source]
        source: ServiceError,
    },
}

impl CheckpointError {
    /// Whether trying again may work.
    pub fn is_retryable(&self) -> bool {
        matches!(self, CheckpointError::Service { source } if source.is_retryable())
    }
}

#[derive(Debug)]
pub(crate) struct ShardContext {
    /// The lease's key, for the table's writes.
    pub lease_key: String,
    /// The shard's id in Kinesis, for the processor and the logs.
    pub shard_id: String,
    pub owner: String,
    pub table: LeaseTable,
    /// Set when a write was refused because another worker holds the lease: the shard
    /// consumer reads it after every processor call, whatever the processor returned.
    pub lost: AtomicBool,
}

impl ShardContext {
    pub(crate) fn new(
        lease_key: String,
        shard_id: String,
        owner: String,
        table: LeaseTable,
    ) -> Self {
        ShardContext {
            lease_key,
            shard_id,
            owner,
            table,
            lost: AtomicBool::new(false),
        }
    }

    fn refused(&self) -> CheckpointError {
        self.lost.store(true, Ordering::Relaxed);
        CheckpointError::LeaseLost {
            shard_id: self.shard_id.clone(),
        }
    }
}

/// A position in a shard: sequence number, then sub-sequence number.
type Position = (String, u64);

/// Compares sequence numbers (decimal strings of varying length) numerically.
fn cmp_position(a: &(impl AsRef<str>, u64), b: &(impl AsRef<str>, u64)) -> std::cmp::Ordering {
    let (sa, sb) = (a.0.as_ref(), b.0.as_ref());
    sa.len()
        .cmp(&sb.len())
        .then_with(|| sa.cmp(sb))
        .then(a.1.cmp(&b.1))
}

/// Records progress for one shard. Handed to the processor with every batch.
///
/// Every write is conditional on this worker still holding the lease
/// ([`CheckpointError::LeaseLost`] otherwise), and a position before the current checkpoint or
/// after the last record delivered is refused.
///
/// # Examples
///
/// ```
/// use kinesis_consumer::{Checkpointer, ProcessRecordsInput, ProcessorError};
///
/// async fn handle(input: ProcessRecordsInput, c: &mut Checkpointer) -> Result<(), ProcessorError> {
///     // Every 100th record, checkpoint at it; a restart resumes just after it.
///     for record in input.records.iter().step_by(100) {
///         c.checkpoint_at(&record.sequence_number, record.sub_sequence_number).await?;
///     }
///     // Two-phase: record the intent, make the side effect durable, then commit.
///     if let Some(last) = input.records.last() {
///         let prepared = c.prepare_checkpoint(&last.sequence_number, last.sub_sequence_number).await?;
///         // … flush what was written for these records …
///         prepared.commit().await?;
///     }
///     Ok(())
/// }
/// ```
#[derive(Debug)]
pub struct Checkpointer {
    ctx: Arc<ShardContext>,
    last_delivered: Option<Position>,
    last_checkpoint: Option<Position>,
}

impl Checkpointer {
    pub(crate) fn new(ctx: Arc<ShardContext>, start: Option<Position>) -> Self {
        Checkpointer {
            ctx,
            last_delivered: None,
            last_checkpoint: start,
        }
    }

    pub(crate) fn delivered(&mut self, position: Position) {
        self.last_delivered = Some(position);
    }

    /// The shard this checkpointer writes for.
    pub fn shard_id(&self) -> &str {
        &self.ctx.shard_id
    }

    /// Whether a checkpoint was refused because another worker holds the lease now.
    pub fn lease_lost(&self) -> bool {
        self.ctx.lost.load(Ordering::Relaxed)
    }

    /// The last record delivered to the processor: sequence and sub-sequence number.
    pub fn last_delivered(&self) -> Option<(&str, u64)> {
        self.last_delivered.as_ref().map(|(s, n)| (s.as_str(), *n))
    }

    /// The last checkpoint written through this checkpointer (or the one processing started at).
    pub fn last_checkpoint(&self) -> Option<(&str, u64)> {
        self.last_checkpoint.as_ref().map(|(s, n)| (s.as_str(), *n))
    }

    /// Checkpoints the last record delivered. Does nothing if none was, or if it is
    /// already checkpointed.
    pub async fn checkpoint(&mut self) -> Result<(), CheckpointError> {
        let Some((sequence, sub)) = self.last_delivered.clone() else {
            return Ok(());
        };
        if self.last_checkpoint.as_ref() == Some(&(sequence.clone(), sub)) {
            return Ok(());
        }
        self.checkpoint_at(&sequence, sub).await
    }

    fn validate(&self, sequence: &str, sub: u64) -> Result<(), CheckpointError> {
        let invalid = |reason| CheckpointError::InvalidPosition {
            sequence_number: sequence.to_owned(),
            sub_sequence_number: sub,
            reason,
        };
        if sequence.is_empty() || !sequence.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("not a sequence number"));
        }
        let position = (sequence, sub);
        if let Some(last) = &self.last_checkpoint
            && cmp_position(&position, last).is_lt()
        {
            return Err(invalid("it is before the current checkpoint"));
        }
        match &self.last_delivered {
            Some(delivered) if cmp_position(&position, delivered).is_le() => Ok(()),
            _ => Err(invalid("no record at or after it has been delivered")),
        }
    }

    /// Checkpoints at a given record (one that was delivered).
    pub async fn checkpoint_at(
        &mut self,
        sequence_number: &str,
        sub_sequence_number: u64,
    ) -> Result<(), CheckpointError> {
        self.validate(sequence_number, sub_sequence_number)?;
        self.write(
            Checkpoint::Sequence(sequence_number.to_owned()),
            sub_sequence_number,
        )
        .await?;
        self.last_checkpoint = Some((sequence_number.to_owned(), sub_sequence_number));
        Ok(())
    }

    /// First phase of a two-phase checkpoint: records the position as `pendingCheckpoint`.
    /// Commit it with [`PreparedCheckpoint::commit`] once the side effects are durable.
    pub async fn prepare_checkpoint(
        &mut self,
        sequence_number: &str,
        sub_sequence_number: u64,
    ) -> Result<PreparedCheckpoint<'_>, CheckpointError> {
        self.validate(sequence_number, sub_sequence_number)?;
        let ctx = &self.ctx;
        let written = ctx
            .table
            .prepare_checkpoint(
                &ctx.lease_key,
                &ctx.owner,
                sequence_number,
                sub_sequence_number,
            )
            .await
            .map_err(|source| CheckpointError::Service { source })?;
        if !written {
            return Err(ctx.refused());
        }
        Ok(PreparedCheckpoint {
            checkpointer: self,
            sequence_number: sequence_number.to_owned(),
            sub_sequence_number,
        })
    }

    async fn write(&self, checkpoint: Checkpoint, sub: u64) -> Result<(), CheckpointError> {
        let ctx = &self.ctx;
        let written = ctx
            .table
            .checkpoint(&ctx.lease_key, &ctx.owner, &checkpoint, sub)
            .await
            .map_err(|source| CheckpointError::Service { source })?;
        if written {
            tracing::debug!(shard = %ctx.shard_id, checkpoint = %checkpoint, sub, "checkpointed");
            Ok(())
        } else {
            Err(ctx.refused())
        }
    }
}

/// A prepared checkpoint, committed with [`PreparedCheckpoint::commit`].
#[derive(Debug)]
#[must_use = "a prepared checkpoint does nothing until committed"]
pub struct PreparedCheckpoint<'a> {
    checkpointer: &'a mut Checkpointer,
    sequence_number: String,
    sub_sequence_number: u64,
}

impl PreparedCheckpoint<'_> {
    /// The prepared position.
    pub fn position(&self) -> (&str, u64) {
        (&self.sequence_number, self.sub_sequence_number)
    }

    /// Second phase: makes the prepared position the checkpoint.
    pub async fn commit(self) -> Result<(), CheckpointError> {
        self.checkpointer
            .checkpoint_at(&self.sequence_number, self.sub_sequence_number)
            .await
    }
}

/// Given to [`crate::RecordProcessor::shard_ended`]; its only use is to checkpoint the end
/// of the shard, which yields the [`ShardEnded`] that method must return.
#[derive(Debug)]
pub struct ShardEndCheckpointer {
    inner: Checkpointer,
}

/// Proof that a shard's end was checkpointed.
#[derive(Debug)]
pub struct ShardEnded {
    _private: (),
}

impl ShardEndCheckpointer {
    pub(crate) fn new(inner: Checkpointer) -> Self {
        ShardEndCheckpointer { inner }
    }

    /// The shard this is for.
    pub fn shard_id(&self) -> &str {
        self.inner.shard_id()
    }

    /// Checkpoints `SHARD_END`, letting the shard's children start.
    pub async fn checkpoint(self) -> Result<ShardEnded, CheckpointError> {
        self.inner.write(Checkpoint::ShardEnd, 0).await?;
        Ok(ShardEnded { _private: () })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_compare_numerically() {
        let a = ("999".to_string(), 0);
        let b = ("1000".to_string(), 0);
        assert!(cmp_position(&a, &b).is_lt());
        assert!(cmp_position(&("1000", 2), &("1000", 1)).is_gt());
    }
}
