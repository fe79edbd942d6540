//! Where handles leave records for their stream's engine.
//!
//! A record costs one uncontended lock and a push; the engine is woken only when the inbox
//! goes from empty to not empty, and takes everything waiting in one swap. (A channel slot
//! per record cost a wake-up per record and, every 32 records, a block of several KiB from
//! the allocator: about a tenth of the producer's CPU at 100-byte records, measured with
//! `perf`.) Flush and shutdown still go through the engine's command channel; the engine
//! empties the inbox before acting on one, so they see every record sent before them.

use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::ticket::Ticket;

/// Records kept between batches once the engine has taken them: enough for a busy
/// producer's batch without holding a burst's worth of memory afterwards.
const KEPT_CAPACITY: usize = 4096;

/// Records sent to one stream and not yet taken by its engine.
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    queue: Mutex<Queue>,
    /// Woken when the queue stops being empty (a permit is kept if the engine is busy).
    ready: Notify,
}

#[derive(Debug, Default)]
struct Queue {
    tickets: Vec<Ticket>,
    /// The engine has stopped: nothing more is accepted.
    closed: bool,
}

impl Inbox {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Leaves a record for the engine, or hands it back if the engine has stopped.
    // The refused ticket goes back by value: boxing it would cost an allocation per record.
    #[allow(clippy::result_large_err)]
    pub(crate) fn push(&self, ticket: Ticket) -> Result<(), Ticket> {
        let mut queue = self.queue();
        if queue.closed {
            return Err(ticket);
        }
        let was_empty = queue.tickets.is_empty();
        queue.tickets.push(ticket);
        drop(queue);
        if was_empty {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// Resolves once records may be waiting (possibly already taken by [`Inbox::take`]).
    pub(crate) async fn ready(&self) {
        self.ready.notified().await;
    }

    /// Moves every waiting record, in the order they were pushed, into `into`, which must
    /// be empty; its allocation becomes the inbox's (trimmed after a burst).
    pub(crate) fn take(&self, into: &mut Vec<Ticket>) {
        debug_assert!(into.is_empty());
        into.shrink_to(KEPT_CAPACITY);
        std::mem::swap(&mut self.queue().tickets, into);
    }

    /// Stops accepting records and returns those still waiting.
    pub(crate) fn close(&self) -> Vec<Ticket> {
        let mut queue = self.queue();
        queue.closed = true;
        std::mem::take(&mut queue.tickets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bounds::Bounds;
    use crate::completion::{Completions, Receiver};
    use kinesis_common::UserRecord;
    use std::sync::Arc;
    use tokio::time::Instant;

    fn ticket(key: &str, bounds: &Arc<Bounds>) -> (Ticket, Receiver) {
        let record = UserRecord::new(key.to_string(), b"data".to_vec());
        let hash_key = record.validate(1 << 20).expect("valid");
        let room = bounds.try_take(10).expect("room");
        let (tx, rx) = Completions::default().next();
        (
            Ticket::new(record, hash_key, Instant::now(), tx, room.with_charge(None)),
            rx,
        )
    }

    fn keys(tickets: &[Ticket]) -> Vec<&str> {
        tickets
            .iter()
            .map(|t| t.record.partition_key.as_str())
            .collect()
    }

    #[tokio::test]
    async fn records_come_out_in_push_order_and_wake_the_engine_once() {
        let bounds = Arc::new(Bounds::new(100, 1 << 20));
        let inbox = Inbox::default();
        let mut receivers = Vec::new();
        for key in ["a", "b", "c"] {
            let (t, rx) = ticket(key, &bounds);
            inbox.push(t).expect("open");
            receivers.push(rx);
        }
        // The first push left a permit: `ready` resolves without waiting.
        inbox.ready().await;
        let mut batch = Vec::new();
        inbox.take(&mut batch);
        assert_eq!(keys(&batch), ["a", "b", "c"]);
        // Nothing waits now, and no further wake-up is pending.
        let mut next = Vec::new();
        inbox.take(&mut next);
        assert!(next.is_empty());
        let pending = tokio::time::timeout(std::time::Duration::from_millis(20), inbox.ready());
        assert!(pending.await.is_err(), "no wake-up without a new record");
        drop(batch);
    }

    #[tokio::test]
    async fn a_closed_inbox_hands_records_back_and_gives_up_what_waits() {
        let bounds = Arc::new(Bounds::new(100, 1 << 20));
        let inbox = Inbox::default();
        let (waiting, _rx1) = ticket("waiting", &bounds);
        inbox.push(waiting).expect("open");
        let left = inbox.close();
        assert_eq!(keys(&left), ["waiting"]);
        let (late, _rx2) = ticket("late", &bounds);
        let refused = inbox.push(late).expect_err("closed");
        assert_eq!(refused.record.partition_key, "late");
    }
}
