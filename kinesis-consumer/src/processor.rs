//! The user's side: a processor per shard, made by a factory.

use std::future::Future;

use crate::checkpoint::{CheckpointError, Checkpointer, ShardEndCheckpointer, ShardEnded};
use crate::lease::Checkpoint;
use crate::record::ProcessRecordsInput;

/// What a processor may fail with; the batch is then delivered again after a backoff.
pub type ProcessorError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Where a shard's processing starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitializeInput {
    /// The shard.
    pub shard_id: String,
    /// With a worker of many streams, the shard's stream (`account:stream:creationEpoch`,
    /// KCL's stream identifier); `None` for a single-stream worker.
    pub stream: Option<String>,
    /// The checkpoint processing resumes from (or the initial position).
    pub checkpoint: Checkpoint,
    /// Sub-sequence number of the checkpoint inside its aggregate.
    pub checkpoint_sub_sequence: u64,
}

/// Processes one shard's records. One instance per shard, made by a [`ProcessorFactory`].
///
/// Lifecycle: [`initialize`](Self::initialize), then [`process_records`](Self::process_records)
/// repeatedly, then exactly one of [`shard_ended`](Self::shard_ended) (the shard is closed and
/// read to its end), [`lease_lost`](Self::lease_lost) (another worker holds the shard now;
/// checkpointing is no longer possible) or [`shutdown_requested`](Self::shutdown_requested)
/// (the worker is shutting down gracefully, or the lease moves to another worker for
/// balance).
///
/// A `process_records` that returns an error or panics does not lose records: the same batch
/// is delivered again after a backoff (after a panic, to a new processor from the factory).
///
/// # Examples
///
/// A processor that writes each batch somewhere durable, checkpoints after it, and says
/// goodbye when the lease moves:
///
/// ```
/// use kinesis_consumer::{Checkpointer, InitializeInput, ProcessRecordsInput, ProcessorError,
///     RecordProcessor};
///
/// struct Archive { shard: String, lines: Vec<String> }
///
/// impl RecordProcessor for Archive {
///     async fn initialize(&mut self, input: InitializeInput) {
///         self.shard = input.shard_id; // resumes after input.checkpoint
///     }
///
///     async fn process_records(&mut self, input: ProcessRecordsInput, c: &mut Checkpointer)
///         -> Result<(), ProcessorError> {
///         for record in &input.records {
///             let text = std::str::from_utf8(&record.data)?; // an error: the batch comes again
///             self.lines.push(format!("{} {text}", record.partition_key));
///         }
///         c.checkpoint().await?; // after the side effect, so a crash replays, never skips
///         Ok(())
///     }
///
///     async fn lease_lost(&mut self) {
///         self.lines.clear(); // another worker has the shard now; it cannot checkpoint
///     }
/// }
/// # let _ = Archive { shard: String::new(), lines: Vec::new() };
/// ```
pub trait RecordProcessor: Send + 'static {
    /// Called once before the first batch.
    fn initialize(&mut self, input: InitializeInput) -> impl Future<Output = ()> + Send {
        let _ = input;
        async {}
    }

    /// Handles a batch of records, in shard order. Checkpoint through `checkpointer` when the
    /// records are safely processed (every batch, or less often to save DynamoDB writes).
    fn process_records(
        &mut self,
        input: ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> impl Future<Output = Result<(), ProcessorError>> + Send;

    /// The shard is closed and every record was delivered. The only way to return is to
    /// checkpoint the shard's end, which the children's processing waits for: the default
    /// does just that. A failed checkpoint is retried after a backoff.
    fn shard_ended(
        &mut self,
        checkpointer: ShardEndCheckpointer,
    ) -> impl Future<Output = Result<ShardEnded, CheckpointError>> + Send {
        checkpointer.checkpoint()
    }

    /// Another worker took the shard (this worker could not renew its lease in time, or the
    /// lease was stolen with graceful handoffs off). Records since the last checkpoint will
    /// be delivered to it again.
    fn lease_lost(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// The worker is shutting down, or the lease moves to another worker for balance (a
    /// graceful handoff, KCL 3.x's `checkpointOwner` protocol); the lease is released or
    /// handed over right after, so another worker continues at once from the checkpoint
    /// written here: nothing is delivered twice if it covers the last record delivered. A
    /// handoff waits for this at most `graceful_handoff_timeout` (30 s), then the call is
    /// cut off and the lease handed over anyway. The default checkpoints the last record
    /// delivered.
    fn shutdown_requested(
        &mut self,
        checkpointer: &mut Checkpointer,
    ) -> impl Future<Output = ()> + Send {
        async move {
            if let Err(e) = checkpointer.checkpoint().await {
                tracing::warn!(error = %e, "checkpoint at shutdown failed");
            }
        }
    }
}

/// Makes a processor for each shard a worker takes.
pub trait ProcessorFactory: Send + Sync + 'static {
    /// The processor type.
    type Processor: RecordProcessor;

    /// A new processor for `shard_id`.
    fn create(&self, shard_id: &str) -> Self::Processor;
}

impl<F, P> ProcessorFactory for F
where
    F: Fn(&str) -> P + Send + Sync + 'static,
    P: RecordProcessor,
{
    type Processor = P;

    fn create(&self, shard_id: &str) -> P {
        self(shard_id)
    }
}
