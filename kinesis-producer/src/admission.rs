//! Admission: `send` waits while the shard its record is bound for holds more than it can
//! send within the record TTL at the rate that shard is accepting.
//!
//! The outstanding bounds (`max_outstanding_bytes`, `max_outstanding_records`) cap memory;
//! they say nothing about time. At 2 shards' 2 MiB/s the default 64 MiB is 32 s of data, more
//! than the 30 s TTL, so a sender filling the bounds would see records expire that were never
//! sent. So each shard has a gate: a record takes a [`Charge`] of its bytes on its shard's
//! gate in `send`, before any room under the outstanding bounds, and gives it back when it is
//! resolved, so queued, in-flight and retried records all count. The engine sets each gate's
//! limit to what the shard sends in [`drain_budget`] at the rate it is accepting: what
//! Kinesis stored of ours per second over the last seconds, within the shard's allowance
//! (see `ShardLimiter::admission_rate`). A sender whose record would take its shard over the limit
//! waits until the shard is back below 80% of it; records bound for other shards keep
//! flowing. Charges are taken by the handles, so records still in the channel to the engine
//! count too.
//!
//! A record waiting here has no TTL yet: its clock starts when `send` returns.
//!
//! The flag a waiter raises and the count a releaser lowers are read crosswise (the waiter
//! raises the flag, then looks at the count; the releaser lowers the count, then looks at
//! the flag), so both sides use sequentially consistent operations: with weaker ones a wake
//! could be missed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use kinesis_common::HashKey;
use kinesis_common::shard_map::ShardMap;
use tokio::sync::Notify;

/// How long a shard's queue may take to drain: a third of the TTL, leaving the rest for
/// buffering, requests, throttling and retries.
pub(crate) fn drain_budget(ttl: Duration) -> Duration {
    ttl / 3
}

/// Waiters are woken once the queue is below this share of the limit (no flapping).
const REOPEN_SHARE: f64 = 0.8;

/// One shard's gate.
#[derive(Debug)]
pub(crate) struct Gate {
    /// Bytes charged by records not yet taken into a request.
    queued: AtomicU64,
    /// Most bytes queued before `send` waits.
    limit: AtomicU64,
    /// A sender waits on `notify`.
    waiting: AtomicBool,
    notify: Notify,
}

impl Gate {
    /// A gate letting `limit` bytes queue.
    pub(crate) fn new(limit: u64) -> Self {
        Gate {
            queued: AtomicU64::new(0),
            limit: AtomicU64::new(limit),
            waiting: AtomicBool::new(false),
            notify: Notify::new(),
        }
    }

    fn has_room(&self, bytes: u64) -> bool {
        let queued = self.queued.load(Ordering::SeqCst);
        // A record larger than the whole limit still goes, once the queue is empty.
        queued == 0 || queued + bytes <= self.limit.load(Ordering::SeqCst)
    }

    fn try_charge(self: &Arc<Self>, bytes: u64) -> Option<Charge> {
        self.has_room(bytes).then(|| {
            self.queued.fetch_add(bytes, Ordering::SeqCst);
            Charge {
                gate: Some(self.clone()),
                bytes,
            }
        })
    }

    /// Gives back `bytes` charged before.
    pub(crate) fn release(&self, bytes: u64) {
        self.queued.fetch_sub(bytes, Ordering::SeqCst);
        self.wake_if_room();
    }

    /// Whether senders would wait for this gate now.
    pub(crate) fn is_full(&self) -> bool {
        self.waiting.load(Ordering::SeqCst) || !self.has_room(1)
    }

    /// Wakes the waiters if the queue is low enough.
    fn wake_if_room(&self) {
        let low = (self.limit.load(Ordering::SeqCst) as f64 * REOPEN_SHARE) as u64;
        if self.waiting.load(Ordering::SeqCst) && self.queued.load(Ordering::SeqCst) <= low {
            self.waiting.store(false, Ordering::SeqCst);
            self.notify.notify_waiters();
        }
    }

    /// Sets the limit (the shard's allowance changed).
    pub(crate) fn set_limit(&self, limit: u64) {
        if self.limit.swap(limit, Ordering::SeqCst) < limit {
            self.wake_if_room();
        }
    }

    /// No limit at all, for good: the shard is gone or the producer is shutting down.
    fn open(&self) {
        self.limit.store(u64::MAX, Ordering::SeqCst);
        self.waiting.store(false, Ordering::SeqCst);
        self.notify.notify_waiters();
    }
}

/// A record's bytes on its shard's gate, given back when dropped.
#[derive(Debug)]
pub(crate) struct Charge {
    gate: Option<Arc<Gate>>,
    bytes: u64,
}

impl Charge {
    /// The gate, whose bytes the caller now gives back through [`Gate::release`].
    pub(crate) fn into_gate(mut self) -> Option<Arc<Gate>> {
        self.gate.take()
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if let Some(gate) = self.gate.take() {
            gate.release(self.bytes);
        }
    }
}

/// The gates of the current shard map, by ending hash key.
#[derive(Debug, Default)]
struct GateMap {
    ends: Vec<u128>,
    gates: Vec<Arc<Gate>>,
}

/// The gates shared by the producer's handles and its engine.
#[derive(Debug, Default)]
pub(crate) struct Admission {
    map: RwLock<GateMap>,
    shut: AtomicBool,
}

impl Admission {
    /// The gate of `key`'s shard, if a shard map is installed.
    fn gate(&self, key: HashKey) -> Option<Arc<Gate>> {
        if self.shut.load(Ordering::SeqCst) {
            return None;
        }
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        if map.gates.is_empty() {
            return None;
        }
        let i = map.ends.partition_point(|end| *end < key.0);
        Some(map.gates[i.min(map.gates.len() - 1)].clone())
    }

    /// Charges `bytes` on `key`'s shard if it has room now. `Ok(None)`: no gate applies.
    pub(crate) fn try_charge(&self, key: HashKey, bytes: u64) -> Result<Option<Charge>, ()> {
        match self.gate(key) {
            None => Ok(None),
            Some(gate) => gate.try_charge(bytes).map(Some).ok_or(()),
        }
    }

    /// Waits until `key`'s shard has room for `bytes` and charges them (no charge when no
    /// shard map is installed yet or the producer is shutting down).
    pub(crate) async fn charge(&self, key: HashKey, bytes: u64) -> Option<Charge> {
        loop {
            let gate = self.gate(key)?;
            if let Some(charge) = gate.try_charge(bytes) {
                return Some(charge);
            }
            let notified = gate.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            gate.waiting.store(true, Ordering::SeqCst);
            // Room made, gate replaced or producer shut since the look above: look again.
            if gate.has_room(bytes) || self.shut.load(Ordering::SeqCst) {
                continue;
            }
            notified.await;
        }
    }

    /// Installs the gates of a new shard map: `gate_of` gives each shard's gate (the one it
    /// had, or a new one). Gates no longer in the map open, so their waiters look again.
    pub(crate) fn install(&self, map: &ShardMap, mut gate_of: impl FnMut(&str) -> Arc<Gate>) {
        let next = GateMap {
            ends: map.shards().iter().map(|s| s.ending_hash_key.0).collect(),
            gates: map.shards().iter().map(|s| gate_of(&s.shard_id)).collect(),
        };
        let kept: std::collections::HashSet<*const Gate> =
            next.gates.iter().map(Arc::as_ptr).collect();
        let old = std::mem::replace(
            &mut *self.map.write().unwrap_or_else(|e| e.into_inner()),
            next,
        );
        for gate in old.gates {
            if !kept.contains(&Arc::as_ptr(&gate)) {
                gate.open();
            }
        }
    }

    /// Opens every gate for good: the producer is shutting down.
    pub(crate) fn shut(&self) {
        self.shut.store(true, Ordering::SeqCst);
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        for gate in &map.gates {
            gate.open();
        }
    }
}

#[cfg(test)]
mod tests {
    use kinesis_common::shard_map::ShardRange;

    use super::*;

    fn two_shards() -> ShardMap {
        let half = u128::MAX / 2;
        ShardMap::new(vec![
            ShardRange {
                shard_id: "a".into(),
                starting_hash_key: HashKey(0),
                ending_hash_key: HashKey(half),
            },
            ShardRange {
                shard_id: "b".into(),
                starting_hash_key: HashKey(half + 1),
                ending_hash_key: HashKey(u128::MAX),
            },
        ])
        .unwrap()
    }

    #[test]
    fn a_gate_takes_charges_up_to_its_limit_and_wakes_below_four_fifths() {
        let gate = Arc::new(Gate::new(1000));
        let a = gate.try_charge(600).unwrap();
        let b = gate.try_charge(400).unwrap();
        assert!(gate.try_charge(1).is_none());
        gate.waiting.store(true, Ordering::SeqCst);
        drop(b);
        assert!(
            !gate.waiting.load(Ordering::SeqCst),
            "woken at 600, below 80%"
        );
        assert!(!gate.is_full());
        drop(a);
        assert!(!gate.is_full());
        // A record larger than the limit goes alone.
        let big = gate.try_charge(5000).unwrap();
        assert!(gate.try_charge(1).is_none());
        drop(big);
        gate.set_limit(10);
        assert!(gate.try_charge(10).is_some());
    }

    #[tokio::test]
    async fn a_full_shard_holds_its_senders_and_no_others() {
        let admission = Arc::new(Admission::default());
        let gates: std::collections::HashMap<&str, Arc<Gate>> = [
            ("a", Arc::new(Gate::new(100))),
            ("b", Arc::new(Gate::new(100))),
        ]
        .into();
        admission.install(&two_shards(), |id| gates[id].clone());
        let held = admission.charge(HashKey(1), 100).await.unwrap();
        assert!(admission.try_charge(HashKey(1), 1).is_err());
        assert!(
            admission
                .try_charge(HashKey(u128::MAX), 1)
                .unwrap()
                .is_some()
        );

        let waiter = tokio::spawn({
            let admission = admission.clone();
            async move { admission.charge(HashKey(1), 50).await.is_some() }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        assert!(gates["a"].is_full());
        drop(held);
        let charged = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .unwrap();
        assert!(charged);
    }

    #[tokio::test]
    async fn a_new_map_or_shutdown_releases_waiters() {
        let admission = Arc::new(Admission::default());
        let full = Arc::new(Gate::new(0));
        admission.install(&two_shards(), |_| full.clone());
        let _held = admission.charge(HashKey(1), 1).await;
        let waiter = tokio::spawn({
            let admission = admission.clone();
            async move { admission.charge(HashKey(1), 1).await.is_some() }
        });
        tokio::task::yield_now().await;
        // A reshard: the shard is gone, its gate opens, the waiter finds the new one.
        admission.install(&two_shards(), |_| Arc::new(Gate::new(100)));
        let charged = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .unwrap();
        assert!(charged);

        let full = Arc::new(Gate::new(0));
        admission.install(&two_shards(), |_| full.clone());
        let _held = admission.charge(HashKey(1), 1).await;
        let waiter = tokio::spawn({
            let admission = admission.clone();
            async move { admission.charge(HashKey(1), 1).await.is_some() }
        });
        tokio::task::yield_now().await;
        admission.shut();
        let charged = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .unwrap();
        assert!(!charged, "no charge once shut");
    }
}
