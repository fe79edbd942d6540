//! What a put resolves to.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::error::{ProduceError, PutError};
use kinesis_common::UserRecord;

/// Where and when a user record landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutResult {
    /// The shard that holds it.
    pub shard_id: String,
    /// Sequence number of the Kinesis record that carries it.
    pub sequence_number: String,
    /// Its position inside the aggregate, when it was aggregated with others.
    pub sub_sequence_number: Option<u64>,
    /// PutRecords attempts it took (1 when nothing was retried).
    pub attempts: u32,
    /// Time from `send` until the successful PutRecords request started.
    pub buffered: Duration,
}

pub(crate) type Outcome = Result<PutResult, PutError>;

/// Resolves when the record is put, or fails with the record handed back.
///
/// Dropping it does not cancel the put; the outcome is then just not observed.
#[derive(Debug)]
#[must_use = "a put's outcome is only known by awaiting its future"]
pub struct PutFuture {
    rx: oneshot::Receiver<Outcome>,
}

impl PutFuture {
    pub(crate) fn new(rx: oneshot::Receiver<Outcome>) -> Self {
        PutFuture { rx }
    }
}

impl Future for PutFuture {
    type Output = Outcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx).poll(cx).map(|r| {
            // The engine resolves every ticket, even while unwinding (see `Ticket`'s Drop), so
            // a closed channel without a value cannot happen; answer sensibly all the same.
            r.unwrap_or_else(|_| {
                Err(PutError::new(
                    UserRecord::new(String::new(), bytes::Bytes::new()),
                    ProduceError::ShutDown,
                ))
            })
        })
    }
}
