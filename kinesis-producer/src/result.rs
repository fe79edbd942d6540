//! What a put resolves to.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::completion::Receiver;
use crate::error::{ProduceError, PutError};
use kinesis_common::UserRecord;

/// Where and when a user record landed.
///
/// The records of one Kinesis record (an aggregate) share its shard id and sequence number,
/// so a result costs one pointer for them, not two strings per user record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutResult {
    landing: Arc<Landing>,
    /// [`NOT_AGGREGATED`] for a record sent alone (an aggregate holds far fewer records).
    sub_sequence_number: u32,
    attempts: u32,
    buffered: Duration,
}

const NOT_AGGREGATED: u32 = u32::MAX;

/// The Kinesis record that carries one or more user records: its shard and sequence number.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Landing {
    pub shard_id: String,
    pub sequence_number: String,
}

impl Landing {
    pub(crate) fn new(shard_id: &str, sequence_number: &str) -> Arc<Self> {
        Arc::new(Landing {
            shard_id: shard_id.to_owned(),
            sequence_number: sequence_number.to_owned(),
        })
    }
}

impl PutResult {
    pub(crate) fn new(
        landing: Arc<Landing>,
        sub_sequence_number: Option<u64>,
        attempts: u32,
        buffered: Duration,
    ) -> Self {
        PutResult {
            landing,
            sub_sequence_number: sub_sequence_number
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(NOT_AGGREGATED),
            attempts,
            buffered,
        }
    }

    /// The shard that holds it.
    pub fn shard_id(&self) -> &str {
        &self.landing.shard_id
    }

    /// Sequence number of the Kinesis record that carries it.
    pub fn sequence_number(&self) -> &str {
        &self.landing.sequence_number
    }

    /// Its position inside the aggregate, when it was aggregated with others.
    pub fn sub_sequence_number(&self) -> Option<u64> {
        (self.sub_sequence_number != NOT_AGGREGATED).then_some(u64::from(self.sub_sequence_number))
    }

    /// PutRecords attempts it took (1 when nothing was retried).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Time from `send` until the successful PutRecords request started.
    pub fn buffered(&self) -> Duration {
        self.buffered
    }
}

pub(crate) type Outcome = Result<PutResult, PutError>;

/// Resolves when the record is put, or fails with the record handed back.
///
/// Dropping it does not cancel the put; the outcome is then just not observed.
#[derive(Debug)]
#[must_use = "a put's outcome is only known by awaiting its future"]
pub struct PutFuture {
    rx: Receiver,
}

impl PutFuture {
    pub(crate) fn new(rx: Receiver) -> Self {
        PutFuture { rx }
    }
}

impl Future for PutFuture {
    type Output = Outcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.rx.poll(cx).map(|r| {
            // The engine resolves every ticket, even while unwinding (see `Ticket`'s Drop), so
            // a slot closed without a value cannot happen; answer sensibly all the same.
            r.unwrap_or_else(|| {
                Err(PutError::new(
                    UserRecord::new(String::new(), bytes::Bytes::new()),
                    ProduceError::ShutDown,
                ))
            })
        })
    }
}
