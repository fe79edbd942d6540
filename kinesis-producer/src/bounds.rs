//! The outstanding bounds: at most `max_outstanding_records` user records and
//! `max_outstanding_bytes` bytes (data + partition key) sent but not yet resolved, over every
//! stream of one producer.
//!
//! A record takes a [`Room`] in `send` and gives it back when it is resolved (the ticket that
//! holds it is dropped). Taking and giving back are a few atomic operations, with no lock:
//! they happen once per record on the hot path. A sender that finds no room waits until the
//! producer is back under [`REOPEN_SHARE`] of both bounds, so waiters are woken in batches
//! rather than on every resolved record; while anyone waits, new senders wait behind them, so
//! a large record is not starved by a stream of small ones.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::Notify;

use crate::admission::{Charge, Gate};

/// Waiters are woken once both counts are at or below this share of their bound.
const REOPEN_SHARE: f64 = 15.0 / 16.0;

/// Why no room was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The bounds are full (or others are waiting for room).
    Full,
    /// The producer is shutting down.
    Closed,
}

/// The producer's outstanding bounds.
#[derive(Debug)]
pub(crate) struct Bounds {
    max_records: usize,
    max_bytes: usize,
    records: AtomicUsize,
    bytes: AtomicUsize,
    /// A sender waits on `notify`.
    waiting: AtomicBool,
    closed: AtomicBool,
    notify: Notify,
}

/// One record's room under the bounds, and its bytes on its shard's gate if it was charged
/// there: both given back when dropped. One token per record, two pointers wide.
#[derive(Debug)]
pub(crate) struct Room {
    bounds: Arc<Bounds>,
    gate: Option<Arc<Gate>>,
    bytes: u32,
}

impl Room {
    /// Takes over `charge` (made for the same bytes), to give it back with the room.
    pub(crate) fn with_charge(mut self, charge: Option<Charge>) -> Room {
        self.gate = charge.and_then(Charge::into_gate);
        self
    }
}

impl Drop for Room {
    fn drop(&mut self) {
        if let Some(gate) = self.gate.take() {
            gate.release(u64::from(self.bytes));
        }
        self.bounds.give_back(self.bytes);
    }
}

/// Adds `n` to `counter` if the result stays within `max` (or the counter is at 0: a record
/// larger than a whole bound still goes, alone).
fn take(counter: &AtomicUsize, n: usize, max: usize) -> bool {
    let mut current = counter.load(Ordering::SeqCst);
    loop {
        if current != 0 && current + n > max {
            return false;
        }
        match counter.compare_exchange_weak(
            current,
            current + n,
            Ordering::SeqCst,
            Ordering::SeqCst,
        ) {
            Ok(_) => return true,
            Err(now) => current = now,
        }
    }
}

impl Bounds {
    /// Bounds of `max_records` records and `max_bytes` bytes.
    pub(crate) fn new(max_records: usize, max_bytes: usize) -> Self {
        Bounds {
            max_records,
            max_bytes,
            records: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            waiting: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            notify: Notify::new(),
        }
    }

    /// Takes room for one record of `bytes` if there is some now and nobody is waiting.
    pub(crate) fn try_take(self: &Arc<Self>, bytes: u32) -> Result<Room, Refused> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Refused::Closed);
        }
        if self.waiting.load(Ordering::SeqCst) {
            return Err(Refused::Full);
        }
        self.take_now(bytes).ok_or(Refused::Full)
    }

    fn take_now(self: &Arc<Self>, bytes: u32) -> Option<Room> {
        if !take(&self.records, 1, self.max_records) {
            return None;
        }
        if !take(&self.bytes, bytes as usize, self.max_bytes) {
            self.records.fetch_sub(1, Ordering::SeqCst);
            self.wake_if_room();
            return None;
        }
        Some(Room {
            bounds: self.clone(),
            gate: None,
            bytes,
        })
    }

    /// Waits for room for one record of `bytes` and takes it; `None` once shut down.
    pub(crate) async fn take(self: &Arc<Self>, bytes: u32) -> Option<Room> {
        match self.try_take(bytes) {
            Ok(room) => return Some(room),
            Err(Refused::Closed) => return None,
            Err(Refused::Full) => {}
        }
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            self.waiting.store(true, Ordering::SeqCst);
            if self.closed.load(Ordering::SeqCst) {
                return None;
            }
            // Room given back since the look above, and not yet announced: take it.
            if let Some(room) = self.take_now(bytes) {
                return Some(room);
            }
            notified.await;
            if self.closed.load(Ordering::SeqCst) {
                return None;
            }
            if let Some(room) = self.take_now(bytes) {
                return Some(room);
            }
        }
    }

    fn give_back(&self, bytes: u32) {
        self.bytes.fetch_sub(bytes as usize, Ordering::SeqCst);
        self.records.fetch_sub(1, Ordering::SeqCst);
        self.wake_if_room();
    }

    fn wake_if_room(&self) {
        if !self.waiting.load(Ordering::SeqCst) {
            return;
        }
        let low = |max: usize| (max as f64 * REOPEN_SHARE) as usize;
        let records = self.records.load(Ordering::SeqCst);
        let bytes = self.bytes.load(Ordering::SeqCst);
        if (records <= low(self.max_records) || records == 0)
            && (bytes <= low(self.max_bytes) || bytes == 0)
            && self.waiting.swap(false, Ordering::SeqCst)
        {
            self.notify.notify_waiters();
        }
    }

    /// Refuses every later request and releases the waiters.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.waiting.store(false, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Records holding room now.
    pub(crate) fn records(&self) -> usize {
        self.records.load(Ordering::Relaxed)
    }

    /// Bytes held now.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn room_is_taken_up_to_both_bounds_and_given_back_on_drop() {
        let bounds = Arc::new(Bounds::new(3, 100));
        let a = bounds.try_take(60).unwrap();
        let b = bounds.try_take(40).unwrap();
        assert_eq!(bounds.try_take(1).unwrap_err(), Refused::Full, "bytes full");
        assert_eq!((bounds.records(), bounds.bytes()), (2, 100));
        drop(b);
        let c = bounds.try_take(10).unwrap();
        let d = bounds.try_take(10).unwrap();
        assert_eq!(
            bounds.try_take(0).unwrap_err(),
            Refused::Full,
            "records full"
        );
        drop((a, c, d));
        assert_eq!((bounds.records(), bounds.bytes()), (0, 0));
        // A record larger than the byte bound goes alone.
        let big = bounds.try_take(500).unwrap();
        assert_eq!(bounds.try_take(1).unwrap_err(), Refused::Full);
        drop(big);
        bounds.close();
        assert_eq!(bounds.try_take(1).unwrap_err(), Refused::Closed);
    }

    #[tokio::test]
    async fn a_waiter_gets_room_once_enough_is_given_back() {
        let bounds = Arc::new(Bounds::new(32, 1_000_000));
        let mut held: Vec<Room> = (0..32).map(|_| bounds.try_take(1).unwrap()).collect();
        let waiter = tokio::spawn({
            let bounds = bounds.clone();
            async move { bounds.take(1).await.is_some() }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        // Others queue behind the waiter, even with room given back above the low mark.
        held.pop();
        assert_eq!(bounds.try_take(1).unwrap_err(), Refused::Full);
        held.truncate(20);
        let taken = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .unwrap();
        assert!(taken);
        assert!(bounds.try_take(1).is_ok());
    }

    #[tokio::test]
    async fn close_releases_waiters_empty_handed() {
        let bounds = Arc::new(Bounds::new(1, 10));
        let _held = bounds.try_take(1).unwrap();
        let waiter = tokio::spawn({
            let bounds = bounds.clone();
            async move { bounds.take(1).await.is_some() }
        });
        tokio::task::yield_now().await;
        bounds.close();
        let taken = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .unwrap();
        assert!(!taken);
    }
}
