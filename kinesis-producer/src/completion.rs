//! Where each record's outcome is left for its future: slots in blocks that many records share.
//!
//! A channel per record cost an allocation on the sender's thread and a free on another
//! thread for every record, the allocator's slow path both ways (`perf`, docs/FIGURES.md).
//! Here [`SLOTS`] records share one block: a record costs two reference counts and two
//! uncontended locks, and the allocator sees one block per [`SLOTS`] records.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use crate::result::Outcome;

/// Records per block.
const SLOTS: usize = 64;

/// One record's place in a block.
#[derive(Default)]
enum Slot {
    /// Neither resolved nor polled yet.
    #[default]
    Empty,
    /// Polled before it was resolved: who to wake.
    Waiting(Waker),
    /// Resolved, not yet taken by its future.
    Done(Outcome),
    /// Taken by its future, its future dropped, or its sender gone without an outcome.
    Closed,
}

/// The slots of [`SLOTS`] records; it lives until every one of them is resolved and its
/// future dropped.
struct Block {
    slots: [Mutex<Slot>; SLOTS],
}

impl Block {
    fn slot(&self, index: usize) -> MutexGuard<'_, Slot> {
        self.slots[index].lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Hands out slots, a block at a time; one per stream's pipeline.
pub(crate) struct Completions {
    /// The block being handed out and its next free slot.
    current: Mutex<(Arc<Block>, usize)>,
}

impl Default for Completions {
    fn default() -> Self {
        Completions {
            current: Mutex::new((new_block(), 0)),
        }
    }
}

impl fmt::Debug for Completions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Completions").finish_non_exhaustive()
    }
}

fn new_block() -> Arc<Block> {
    Arc::new(Block {
        slots: std::array::from_fn(|_| Mutex::new(Slot::Empty)),
    })
}

impl Completions {
    /// A new record's slot: the side that resolves it, and the side that awaits it.
    pub(crate) fn next(&self) -> (Completer, Receiver) {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if current.1 == SLOTS {
            *current = (new_block(), 0);
        }
        let (block, index) = (current.0.clone(), current.1);
        current.1 += 1;
        drop(current);
        let receiver = Receiver {
            block: block.clone(),
            index,
        };
        let completer = Completer {
            block: Some(block),
            index,
        };
        (completer, receiver)
    }
}

/// Resolves one record's slot, once. Dropped without [`Completer::complete`], it closes the
/// slot, and its future resolves as shut down.
pub(crate) struct Completer {
    block: Option<Arc<Block>>,
    index: usize,
}

impl fmt::Debug for Completer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Completer")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl Completer {
    /// Leaves `outcome` for the record's future and wakes it. An outcome nobody awaits any
    /// more (its future was dropped) is dropped at once.
    pub(crate) fn complete(mut self, outcome: Outcome) {
        self.finish(Some(outcome));
    }

    fn finish(&mut self, outcome: Option<Outcome>) {
        let Some(block) = self.block.take() else {
            return;
        };
        let mut slot = block.slot(self.index);
        let next = match outcome {
            Some(outcome) => Slot::Done(outcome),
            None => Slot::Closed,
        };
        let (waiting, unwanted) = match std::mem::replace(&mut *slot, next) {
            Slot::Waiting(waker) => (Some(waker), None),
            Slot::Closed => (None, Some(std::mem::replace(&mut *slot, Slot::Closed))),
            Slot::Empty | Slot::Done(_) => (None, None),
        };
        drop(slot);
        drop(unwanted);
        if let Some(waker) = waiting {
            waker.wake();
        }
    }
}

impl Drop for Completer {
    fn drop(&mut self) {
        self.finish(None);
    }
}

/// Awaits one record's slot.
pub(crate) struct Receiver {
    block: Arc<Block>,
    index: usize,
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl Receiver {
    /// The outcome, once resolved; `None` inside when the slot closed without one.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Option<Outcome>> {
        let mut slot = self.block.slot(self.index);
        match &mut *slot {
            Slot::Done(_) => match std::mem::replace(&mut *slot, Slot::Closed) {
                Slot::Done(outcome) => Poll::Ready(Some(outcome)),
                _ => unreachable!("matched as done"),
            },
            Slot::Closed => Poll::Ready(None),
            Slot::Waiting(waker) if waker.will_wake(cx.waker()) => Poll::Pending,
            waiting => {
                *waiting = Slot::Waiting(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    /// The outcome if it is already there.
    pub(crate) fn try_take(&mut self) -> Option<Outcome> {
        let mut slot = self.block.slot(self.index);
        match std::mem::replace(&mut *slot, Slot::Closed) {
            Slot::Done(outcome) => Some(outcome),
            other => {
                *slot = other;
                None
            }
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let mut slot = self.block.slot(self.index);
        let unwanted = std::mem::replace(&mut *slot, Slot::Closed);
        drop(slot);
        drop(unwanted);
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;

    use super::*;
    use crate::error::{ProduceError, PutError};
    use kinesis_common::UserRecord;

    fn failed(key: &str) -> Outcome {
        Err(PutError::new(
            UserRecord::new(key, "data"),
            ProduceError::ShutDown,
        ))
    }

    fn key(outcome: Option<Outcome>) -> String {
        match outcome {
            Some(Err(e)) => e.record().partition_key.clone(),
            other => panic!("an error with its record: {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_outcome_reaches_its_future_whether_it_comes_before_or_after_the_poll() {
        let completions = Completions::default();
        let (early, mut early_rx) = completions.next();
        early.complete(failed("early"));
        assert_eq!(key(poll_fn(|cx| early_rx.poll(cx)).await), "early");

        let (late, mut late_rx) = completions.next();
        let waiting = tokio::spawn(async move { poll_fn(|cx| late_rx.poll(cx)).await });
        tokio::task::yield_now().await;
        late.complete(failed("late"));
        assert_eq!(key(waiting.await.expect("joined")), "late");
    }

    #[tokio::test]
    async fn a_completer_dropped_unused_closes_its_slot() {
        let completions = Completions::default();
        let (completer, mut rx) = completions.next();
        drop(completer);
        assert!(poll_fn(|cx| rx.poll(cx)).await.is_none());
    }

    #[test]
    fn records_share_blocks_and_each_gets_its_own_slot() {
        let completions = Completions::default();
        let pairs: Vec<_> = (0..3 * SLOTS).map(|_| completions.next()).collect();
        let blocks: std::collections::HashSet<_> = pairs
            .iter()
            .map(|(_, rx)| Arc::as_ptr(&rx.block) as usize)
            .collect();
        assert_eq!(blocks.len(), 3);
        for (i, (completer, mut rx)) in pairs.into_iter().enumerate() {
            completer.complete(failed(&i.to_string()));
            assert_eq!(key(rx.try_take()), i.to_string());
        }
    }

    #[test]
    fn an_outcome_nobody_awaits_is_dropped_when_it_arrives() {
        let completions = Completions::default();
        let (completer, rx) = completions.next();
        drop(rx);
        completer.complete(failed("unwanted"));
        // The block lives on (more records will use it); the outcome is not kept in it.
        let current = completions.current.lock().expect("not poisoned");
        assert!(matches!(*current.0.slot(0), Slot::Closed));
    }
}
