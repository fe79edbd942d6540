//! A user record on its way through the pipeline, and the Kinesis records that carry them.

use kinesis_common::{HashKey, KinesisRecord, UserRecord};
use std::time::Duration;

use tokio::time::Instant;

use crate::bounds::Room;
use crate::completion::Completer;
use crate::error::{ProduceError, PutError};
use crate::result::PutResult;

/// One user record in flight. It resolves its future exactly once: through
/// [`Ticket::resolve`], or, if the engine drops it unresolved (a bug or a panic), through
/// `Drop` with [`ProduceError::ShutDown`], so the record always comes back.
#[derive(Debug)]
pub(crate) struct Ticket {
    pub id: u64,
    pub record: UserRecord,
    pub hash_key: HashKey,
    /// When `send` returned it; its TTL runs from here.
    pub arrival: Instant,
    pub attempts: u32,
    /// Counted in its shard's hot-key report (once, whatever its retries).
    pub counted: bool,
    /// Its data is a copy in its pipeline's arena, to be let go once its aggregate closes.
    pub in_arena: bool,
    tx: Option<Completer>,
    /// Its room under the outstanding bounds and its bytes on its shard's admission gate,
    /// given back when it is resolved.
    _room: Room,
}

impl Ticket {
    pub(crate) fn new(
        record: UserRecord,
        hash_key: HashKey,
        arrival: Instant,
        tx: Completer,
        room: Room,
    ) -> Self {
        Ticket {
            id: 0,
            record,
            hash_key,
            arrival,
            attempts: 0,
            counted: false,
            in_arena: false,
            tx: Some(tx),
            _room: room,
        }
    }

    /// When its TTL of `ttl` runs out.
    pub(crate) fn deadline(&self, ttl: Duration) -> Instant {
        self.arrival + ttl
    }

    /// Whether its TTL of `ttl` has run out at `at`.
    pub(crate) fn expired(&self, at: Instant, ttl: Duration) -> bool {
        self.deadline(ttl) <= at
    }

    /// Bytes the shard limit counts for this record alone.
    pub(crate) fn size(&self) -> usize {
        self.record.size()
    }

    /// Gives the record a copy of its data of its own if it is held in the arena, before it
    /// goes out alone or waits outside an aggregate.
    pub(crate) fn leave_arena(&mut self) {
        if std::mem::take(&mut self.in_arena) {
            self.record.data = bytes::Bytes::copy_from_slice(&self.record.data);
        }
    }

    /// Resolves the record's future and frees its room under the outstanding bounds.
    pub(crate) fn succeed(mut self, result: PutResult) {
        if let Some(tx) = self.tx.take() {
            tx.complete(Ok(result));
        }
    }

    /// Fails the record's future, handing the record back.
    pub(crate) fn fail(mut self, reason: ProduceError) {
        if let Some(tx) = self.tx.take() {
            let record = take_record(&mut self.record);
            tx.complete(Err(PutError::new(record, reason)));
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
            tx.complete(Err(PutError::new(record, ProduceError::ShutDown)));
        }
    }
}

/// One PutRecords entry: a plain record or an aggregate, with the user records it carries.
#[derive(Debug)]
pub(crate) struct Entry {
    /// The shard the entry was predicted for (shared with its shard's state: an aggregate
    /// of two records at 1,000 shards is no place for an allocation).
    pub shard_id: std::sync::Arc<str>,
    pub record: KinesisRecord,
    /// In order: ticket `i` has sub-sequence number `i` in an aggregate.
    pub tickets: Vec<Ticket>,
    /// Arrival of its oldest user record (the earliest of its tickets').
    pub oldest: Instant,
    /// Its claim on the shard's rate budget while in flight.
    pub claim: Option<crate::engine::limiter::Claim>,
    /// The slot its shard had when it went out: where to look for the shard first when its
    /// answer comes (a hint, checked against `shard_id`).
    pub slot: usize,
}

impl Entry {
    pub(crate) fn size(&self) -> usize {
        self.record.size()
    }

    pub(crate) fn aggregated(&self) -> bool {
        self.tickets.len() > 1
    }

    /// The earliest deadline among its user records, whose TTL is `ttl`: its oldest
    /// record's (an entry's records are fixed when it is made; looking through them for
    /// every look at a shard's front cost 2% of the producer's CPU at 4 shards).
    pub(crate) fn deadline(&self, ttl: Duration) -> Instant {
        debug_assert_eq!(
            self.tickets.iter().map(|t| t.arrival).min(),
            Some(self.oldest),
            "an entry's oldest arrival is its records' earliest"
        );
        self.oldest + ttl
    }
}

#[cfg(test)]
mod tests {
    /// Memory per outstanding record is a stated figure (README): a ticket and the result
    /// its future carries stay this small.
    #[test]
    fn a_ticket_and_its_result_stay_small() {
        assert!(size_of::<super::Ticket>() <= 176);
        assert!(size_of::<crate::result::Outcome>() <= 32);
    }
}
