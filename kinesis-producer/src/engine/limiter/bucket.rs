//! A token bucket that paces one shard's sends.

use std::time::Duration;

use tokio::time::Instant;

/// A token bucket that may run into debt by one entry, so entries larger than its burst pass.
#[derive(Debug)]
pub(super) struct Bucket {
    rate: f64,
    /// Its cap, as seconds of rate.
    burst_secs: f64,
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    /// A full bucket of `burst_secs` seconds of `rate`.
    pub(super) fn new(rate: f64, burst_secs: f64, now: Instant) -> Self {
        Bucket {
            rate,
            burst_secs,
            tokens: rate * burst_secs,
            updated: now,
        }
    }

    /// Caps the bucket at `burst_secs` seconds of rate from now on.
    pub(super) fn set_burst(&mut self, burst_secs: f64) {
        self.burst_secs = burst_secs;
        self.tokens = self.tokens.min(self.rate * burst_secs);
    }

    pub(super) fn refill(&mut self, now: Instant, factor: f64) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        let rate = self.rate * factor;
        self.tokens = (self.tokens + elapsed * rate).min(rate * self.burst_secs);
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
        let missing = share * cost.min(rate * self.burst_secs) - self.tokens;
        if missing <= 0.0 {
            now
        } else {
            now + Duration::from_secs_f64(missing / rate)
        }
    }
}
