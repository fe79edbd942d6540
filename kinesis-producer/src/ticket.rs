//! A user record on its way through the pipeline, and the Kinesis records that carry them.

use kinesis_common::{HashKey, KinesisRecord, UserRecord};
use tokio::sync::{OwnedSemaphorePermit, oneshot};
use tokio::time::Instant;

use crate::admission::Charge;
use crate::error::{ProduceError, PutError};
use crate::result::{Outcome, PutResult};

/// One user record in flight. It resolves its future exactly once: through
/// [`Ticket::resolve`], or, if the engine drops it unresolved (a bug or a panic), through
/// `Drop` with [`ProduceError::ShutDown`], so the record always comes back.
#[derive(Debug)]
pub(crate) struct Ticket {
    pub id: u64,
    pub record: UserRecord,
    pub hash_key: HashKey,
    pub arrival: Instant,
    pub deadline: Instant,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// Counted in its shard's hot-key report (once, whatever its retries).
    pub counted: bool,
    /// Its bytes on its shard's admission gate, given back when it is resolved.
    _charge: Option<Charge>,
    tx: Option<oneshot::Sender<Outcome>>,
    _permits: (OwnedSemaphorePermit, OwnedSemaphorePermit),
}

impl Ticket {
    pub(crate) fn new(
        record: UserRecord,
        hash_key: HashKey,
        arrival: Instant,
        deadline: Instant,
        tx: oneshot::Sender<Outcome>,
        permits: (OwnedSemaphorePermit, OwnedSemaphorePermit),
        charge: Option<Charge>,
    ) -> Self {
        Ticket {
            id: 0,
            record,
            hash_key,
            arrival,
            deadline,
            attempts: 0,
            last_error: None,
            counted: false,
            _charge: charge,
            tx: Some(tx),
            _permits: permits,
        }
    }

    /// Bytes the shard limit counts for this record alone.
    pub(crate) fn size(&self) -> usize {
        self.record.size()
    }

    /// Resolves the record's future and frees its room under the outstanding bounds.
    pub(crate) fn succeed(mut self, result: PutResult) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Ok(result));
        }
    }

    /// Fails the record's future, handing the record back.
    pub(crate) fn fail(mut self, reason: ProduceError) {
        if let Some(tx) = self.tx.take() {
            let record = take_record(&mut self.record);
            let _ = tx.send(Err(PutError::new(record, reason)));
        }
    }
}

fn take_record(record: &mut UserRecord) -> UserRecord {
    std::mem::replace(record, UserRecord::new(String::new(), bytes::Bytes::new()))
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let record = take_record(&mut self.record);
            let _ = tx.send(Err(PutError::new(record, ProduceError::ShutDown)));
        }
    }
}

/// One PutRecords entry: a plain record or an aggregate, with the user records it carries.
#[derive(Debug)]
pub(crate) struct Entry {
    /// The shard the entry was predicted for.
    pub shard_id: String,
    pub record: KinesisRecord,
    /// In order: ticket `i` has sub-sequence number `i` in an aggregate.
    pub tickets: Vec<Ticket>,
    /// Arrival of its oldest user record.
    pub oldest: Instant,
    /// Its claim on the shard's rate budget while in flight.
    pub claim: Option<crate::engine::limiter::Claim>,
}

impl Entry {
    pub(crate) fn size(&self) -> usize {
        self.record.size()
    }

    pub(crate) fn aggregated(&self) -> bool {
        self.tickets.len() > 1
    }

    /// The earliest deadline among its user records.
    pub(crate) fn deadline(&self) -> Instant {
        self.tickets
            .iter()
            .map(|t| t.deadline)
            .min()
            .unwrap_or(self.oldest)
    }
}
