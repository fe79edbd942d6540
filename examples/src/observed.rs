//! A [`RecordProcessor`] wrapper that watches another: it appends every lifecycle event to the
//! audit log the chaos test reads, and counts what the demo's page shows per shard.
//!
//! The demo wraps `kinesis-sink`'s processors in it; the checkpoints it audits are the ones
//! the sink wrote, seen on the checkpointer after each call.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use kinesis_consumer::{
    CheckpointError, Checkpointer, InitializeInput, ProcessRecordsInput, ProcessorError,
    ProcessorFactory, RecordProcessor, ShardEndCheckpointer, ShardEnded,
};
use serde_json::json;

use crate::audit::AuditLog;

/// What the processors of a process received, for the demo's page and summary.
#[derive(Debug, Default)]
pub struct Received {
    /// Records received.
    pub records: u64,
    /// Records received per shard.
    pub per_shard: BTreeMap<String, u64>,
    /// Latest `millis_behind_latest` per shard, as Kinesis reports it.
    pub lag_ms: BTreeMap<String, i64>,
}

/// Wraps the processors `factory` makes.
pub fn observed<F: ProcessorFactory>(
    factory: F,
    audit: Option<AuditLog>,
    received: Arc<Mutex<Received>>,
) -> impl Fn(&str) -> Observed<F::Processor> + Send + Sync + 'static {
    move |shard: &str| Observed {
        inner: factory.create(shard),
        shard: shard.to_owned(),
        audit: audit.clone(),
        received: received.clone(),
    }
}

/// One shard's processor, watched.
pub struct Observed<P> {
    inner: P,
    shard: String,
    audit: Option<AuditLog>,
    received: Arc<Mutex<Received>>,
}

impl<P> Observed<P> {
    fn audit(&self, event: &str, fields: serde_json::Value) {
        if let Some(audit) = &self.audit {
            audit.event(event, &self.shard, fields);
        }
    }

    /// Audits the checkpoint the wrapped processor wrote, if it moved.
    fn audit_checkpoint(&self, before: Option<(String, u64)>, checkpointer: &Checkpointer) {
        let after = checkpointer.last_checkpoint();
        if after.is_some() && after != before.as_ref().map(|(s, n)| (s.as_str(), *n)) {
            let (seq, sub) = after.unwrap_or_default();
            self.audit("checkpoint", json!({"seq": seq, "sub": sub}));
        }
    }
}

fn owned(position: Option<(&str, u64)>) -> Option<(String, u64)> {
    position.map(|(s, n)| (s.to_owned(), n))
}

impl<P: RecordProcessor> RecordProcessor for Observed<P> {
    async fn initialize(&mut self, input: InitializeInput) {
        self.audit("init", json!({"from": input.checkpoint.as_str()}));
        self.inner.initialize(input).await;
    }

    async fn process_records(
        &mut self,
        input: ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        let before = owned(checkpointer.last_checkpoint());
        let (count, shard, lag) = (
            input.records.len() as u64,
            input.shard_id.clone(),
            input.millis_behind_latest,
        );
        let records: Vec<_> = if self.audit.is_some() {
            input
                .records
                .iter()
                .map(|r| {
                    json!([
                        r.sequence_number,
                        r.sub_sequence_number,
                        String::from_utf8_lossy(&r.data)
                    ])
                })
                .collect()
        } else {
            Vec::new()
        };
        let outcome = self.inner.process_records(input, checkpointer).await;
        if outcome.is_ok() {
            if !records.is_empty() {
                self.audit("batch", json!({ "records": records }));
            }
            let mut received = self.received.lock().unwrap_or_else(|e| e.into_inner());
            received.records += count;
            *received.per_shard.entry(shard.clone()).or_default() += count;
            if let Some(lag) = lag {
                received.lag_ms.insert(shard, lag);
            }
        }
        self.audit_checkpoint(before, checkpointer);
        outcome
    }

    async fn shard_ended(
        &mut self,
        checkpointer: ShardEndCheckpointer,
    ) -> Result<ShardEnded, CheckpointError> {
        let ended = self.inner.shard_ended(checkpointer).await?;
        self.audit("end", json!({}));
        Ok(ended)
    }

    async fn lease_lost(&mut self) {
        self.audit("lost", json!({}));
        self.inner.lease_lost().await;
    }

    async fn shutdown_requested(&mut self, checkpointer: &mut Checkpointer) {
        let before = owned(checkpointer.last_checkpoint());
        self.inner.shutdown_requested(checkpointer).await;
        self.audit_checkpoint(before, checkpointer);
        // Whether everything delivered is checkpointed: if not, the next owner reads the rest
        // again from the last checkpoint that was written.
        let checkpointed = checkpointer.last_checkpoint().is_some()
            && checkpointer.last_checkpoint() == checkpointer.last_delivered();
        self.audit("shutdown", json!({ "checkpointed": checkpointed }));
    }
}
