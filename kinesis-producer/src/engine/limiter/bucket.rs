//! A token bucket that paces one shard's sends.

use std::time::Duration;

use tokio::time::Instant;

/// Burst of the pacing bucket, as seconds of rate.
pub(super) const BURST_SECS: f64 = 0.1;

/// A token bucket that may run into debt by one entry, so entries larger than its burst pass.
#[derive(Debug)]
pub(super) struct Bucket {
    rate: f64,
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    pub(super) fn new(rate: f64, now: Instant) -> Self {
        Bucket {
            rate,
            tokens: rate * BURST_SECS,
            updated: now,
        }
    }

    pub(super) fn refill(&mut self, now: Instant, factor: f64) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        let rate = self.rate * factor;
        self.tokens = (self.tokens + elapsed * rate).min(rate * BURST_SECS);
        self.updated = now;
    }

    /// Spends `cost` tokens, running into debt if the bucket holds fewer.
    pub(super) fn spend(&mut self, cost: f64) {
        self.tokens -= cost;
    }

    /// When the bucket holds `cost` tokens, or a full burst if `cost` is larger.
    pub(super) fn ready_at(&self, cost: f64, factor: f64, now: Instant) -> Instant {
        self.share_ready_at(cost, 1.0, factor, now)
    }

    /// When the bucket holds `share` of what [`Bucket::ready_at`] waits for.
    pub(super) fn share_ready_at(
        &self,
        cost: f64,
        share: f64,
        factor: f64,
        now: Instant,
    ) -> Instant {
        let rate = self.rate * factor;
        let missing = share * cost.min(rate * BURST_SECS) - self.tokens;
        if missing <= 0.0 {
            now
        } else {
            now + Duration::from_secs_f64(missing / rate)
        }
    }
}
