//! Each shard's admission gate: where `send` waits while the shard holds more than it can
//! send within the records' time to live, at the rate it is accepting.
//!
//! The limits follow the limiters' measured rates, which move over seconds, so they are set
//! every [`GATE_UPDATE_INTERVAL`] rather than on every pass of the engine: at 1,000 shards
//! setting every gate on each of the engine's hundreds of passes a second took 16% of the
//! producer's CPU (`perf`, docs/FIGURES.md); and only for the shards whose rate moved.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{Engine, limiter};
use crate::admission::{self, Gate};

/// How often the gates' limits are set from the limiters.
pub(super) const GATE_UPDATE_INTERVAL: Duration = Duration::from_millis(100);

impl Engine {
    /// The admission limit of a shard sending `bytes_per_sec`.
    fn gate_limit(&self, bytes_per_sec: f64) -> u64 {
        (bytes_per_sec * admission::drain_budget(self.cfg.record_ttl).as_secs_f64()) as u64
    }

    /// The gate of shard `id`, made on first use.
    pub(super) fn gate(&mut self, id: &str) -> Arc<Gate> {
        if let Some(gate) = self.gates.get(id) {
            return gate.clone();
        }
        // Nothing measured yet: the floor, as the limiter's admission rate starts.
        let rate = self.cfg.shard_bytes_per_sec() * limiter::MIN_FACTOR;
        let gate = Arc::new(Gate::new(self.gate_limit(rate)));
        self.gates.insert(id.to_owned(), gate.clone());
        gate
    }

    /// Sets the gates' limits when [`GATE_UPDATE_INTERVAL`] has passed since the last time.
    pub(super) fn update_gates_if_due(&mut self, now: Instant) {
        if now < self.next_gate_update {
            return;
        }
        self.next_gate_update = now + GATE_UPDATE_INTERVAL;
        self.update_gates(now);
    }

    /// Sets each shard's admission limit to what it sends in the drain budget at the rate it
    /// is accepting, and counts the shards where senders wait. Only shards whose rate may
    /// have moved are visited (`shards.rs`): a shard leaves that list once its limit is at
    /// the floor, its gate is not full and it holds nothing, and any record or answer for it
    /// puts it back.
    fn update_gates(&mut self, now: Instant) {
        let budget = admission::drain_budget(self.cfg.record_ttl).as_secs_f64();
        let mut full = 0u64;
        self.shards.set_gates(|shard| {
            let rate = shard.limiter.admission_rate(now);
            shard.gate.set_limit((rate * budget) as u64);
            let is_full = shard.gate.is_full();
            full += u64::from(is_full);
            rate <= shard.limiter.floor_rate() && !is_full
        });
        self.gated_shards = full;
        self.stats
            .gated_shards
            .store(full, std::sync::atomic::Ordering::Relaxed);
        self.metrics.gated_shards.set(full as f64);
    }
}
