//! Per-shard rate limiting with adaptation to throttling.
//!
//! Each shard gets a sliding-window limiter over bytes (data + partition key) and Kinesis
//! records: an entry may go when what was sent to the shard in the last window, plus the
//! entry, stays within one second's allowance. Unlike a token bucket, this never lets any
//! one-second stretch exceed the shard limit, whatever second the service counts in, so a
//! producer at 100% of the limit is not throttled by its own bursts. The window is slightly
//! longer than a second (so the steady rate is 98% of the allowance) to absorb the spread of
//! request latencies.
//!
//! Adaptation (AIMD): when Kinesis throttles the shard anyway (other producers share it, or
//! the service counts differently), the allowance drops multiplicatively, at most once per
//! window; each quiet second it grows back additively, up to the configured rate. Several
//! producers on one stream thus converge on a share each instead of storming (KPL keeps
//! sending at its configured rate and retries without backoff).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// Length of the sliding window.
pub(crate) const WINDOW: Duration = Duration::from_millis(1020);
/// Allowance factor after a throttle: multiplied by this.
const DECREASE: f64 = 0.8;
/// Allowance factor regained per second without throttling.
const RECOVERY_PER_SEC: f64 = 0.05;
/// The allowance never drops below this share of the configured rate.
const MIN_FACTOR: f64 = 0.1;

/// Rate limiter of one shard.
#[derive(Debug)]
pub(crate) struct ShardLimiter {
    bytes_per_window: f64,
    records_per_window: f64,
    sent: VecDeque<(Instant, usize)>,
    sent_bytes: usize,
    factor: f64,
    last_throttle: Option<Instant>,
    last_recovery: Instant,
}

impl ShardLimiter {
    /// A limiter allowing `bytes_per_sec` and `records_per_sec` at full rate.
    pub(crate) fn new(bytes_per_sec: f64, records_per_sec: f64, now: Instant) -> Self {
        ShardLimiter {
            bytes_per_window: bytes_per_sec,
            records_per_window: records_per_sec,
            sent: VecDeque::new(),
            sent_bytes: 0,
            factor: 1.0,
            last_throttle: None,
            last_recovery: now,
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(at, bytes)) = self.sent.front() {
            if now.saturating_duration_since(at) < WINDOW {
                break;
            }
            self.sent.pop_front();
            self.sent_bytes -= bytes;
        }
        // Additive recovery, counted from the last throttle or the last recovery step.
        if self.factor < 1.0 {
            let quiet_since = self
                .last_throttle
                .map_or(self.last_recovery, |t| t.max(self.last_recovery));
            let quiet = now.saturating_duration_since(quiet_since).as_secs_f64();
            if quiet >= 1.0 {
                self.factor = (self.factor + RECOVERY_PER_SEC * quiet.floor()).min(1.0);
                self.last_recovery = now;
            }
        } else {
            self.last_recovery = now;
        }
    }

    fn fits(&self, bytes: usize) -> bool {
        if self.sent.is_empty() {
            // An entry larger than the whole allowance still goes, alone.
            return true;
        }
        let byte_allowance = self.bytes_per_window * self.factor;
        let record_allowance = (self.records_per_window * self.factor).max(1.0);
        (self.sent_bytes + bytes) as f64 <= byte_allowance
            && (self.sent.len() + 1) as f64 <= record_allowance
    }

    /// Takes room for one Kinesis record of `bytes` if the shard has it now.
    pub(crate) fn try_acquire(&mut self, bytes: usize, now: Instant) -> bool {
        self.expire(now);
        if !self.fits(bytes) {
            return false;
        }
        self.sent.push_back((now, bytes));
        self.sent_bytes += bytes;
        true
    }

    /// The earliest time an entry of `bytes` could fit, judging by what is in the window now.
    pub(crate) fn ready_at(&mut self, bytes: usize, now: Instant) -> Instant {
        self.expire(now);
        if self.fits(bytes) {
            return now;
        }
        let byte_allowance = self.bytes_per_window * self.factor;
        let record_allowance = (self.records_per_window * self.factor).max(1.0);
        let mut remaining_bytes = self.sent_bytes;
        let mut remaining_records = self.sent.len();
        for &(at, sent) in &self.sent {
            remaining_bytes -= sent;
            remaining_records -= 1;
            let fits = remaining_records == 0
                || ((remaining_bytes + bytes) as f64 <= byte_allowance
                    && (remaining_records + 1) as f64 <= record_allowance);
            if fits {
                return at + WINDOW;
            }
        }
        now + WINDOW
    }

    /// Kinesis throttled this shard: shrink the allowance (at most once per window).
    pub(crate) fn on_throttle(&mut self, now: Instant) {
        let recent = self
            .last_throttle
            .is_some_and(|t| now.saturating_duration_since(t) < WINDOW);
        if !recent {
            self.factor = (self.factor * DECREASE).max(MIN_FACTOR);
        }
        self.last_throttle = Some(now);
    }

    /// The share of the configured rate currently allowed (1.0 unless throttled lately).
    pub(crate) fn factor(&self) -> f64 {
        self.factor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: f64 = 1024.0 * 1024.0;

    #[tokio::test(start_paused = true)]
    async fn never_exceeds_the_byte_limit_in_any_window() {
        let start = Instant::now();
        let mut limiter = ShardLimiter::new(MIB, 1000.0, start);
        let entry = 50_000;
        let mut log: Vec<(Instant, usize)> = Vec::new();
        // Offer an entry every millisecond for 10 s of virtual time.
        for _ in 0..10_000 {
            let now = Instant::now();
            if limiter.try_acquire(entry, now) {
                log.push((now, entry));
            }
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        let total: usize = log.iter().map(|e| e.1).sum();
        // Close to the limit over the run…
        assert!(
            total as f64 > 0.9 * MIB * 10.0,
            "only {total} bytes in 10 s"
        );
        // …and no one-second stretch above it.
        for (i, &(t0, _)) in log.iter().enumerate() {
            let in_second: usize = log[i..]
                .iter()
                .take_while(|e| e.0 < t0 + Duration::from_secs(1))
                .map(|e| e.1)
                .sum();
            assert!(
                in_second as f64 <= MIB,
                "{in_second} bytes within one second"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn record_count_is_limited_too() {
        let now = Instant::now();
        let mut limiter = ShardLimiter::new(MIB, 1000.0, now);
        let granted = (0..2000).filter(|_| limiter.try_acquire(10, now)).count();
        assert_eq!(granted, 1000);
        assert_eq!(limiter.ready_at(10, now), now + WINDOW);
    }

    #[tokio::test(start_paused = true)]
    async fn an_oversize_entry_goes_alone() {
        let now = Instant::now();
        let mut limiter = ShardLimiter::new(MIB, 1000.0, now);
        assert!(limiter.try_acquire(5 * 1024 * 1024, now));
        assert!(!limiter.try_acquire(1, now));
        tokio::time::advance(WINDOW).await;
        assert!(limiter.try_acquire(1, Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_shrinks_the_allowance_and_quiet_restores_it() {
        let mut limiter = ShardLimiter::new(MIB, 1000.0, Instant::now());
        limiter.on_throttle(Instant::now());
        assert!((limiter.factor() - 0.8).abs() < 1e-9);
        // A burst of throttled entries in one window counts once.
        limiter.on_throttle(Instant::now());
        assert!((limiter.factor() - 0.8).abs() < 1e-9);
        tokio::time::advance(Duration::from_secs(2)).await;
        limiter.on_throttle(Instant::now());
        assert!((limiter.factor() - 0.64).abs() < 1e-9);
        // With the allowance at 64%, about 0.64 MiB fits in a window.
        let now = Instant::now();
        let granted = (0..100)
            .filter(|_| limiter.try_acquire(10_000, now))
            .count();
        assert_eq!(granted, (0.64 * MIB / 10_000.0) as usize);
        // Ten quiet seconds give back 0.05 each.
        tokio::time::advance(Duration::from_secs(10)).await;
        limiter.try_acquire(1, Instant::now());
        assert!(limiter.factor() > 0.99, "factor {}", limiter.factor());
    }

    #[tokio::test(start_paused = true)]
    async fn allowance_never_drops_below_the_floor() {
        let mut limiter = ShardLimiter::new(MIB, 1000.0, Instant::now());
        for _ in 0..50 {
            limiter.on_throttle(Instant::now());
            tokio::time::advance(Duration::from_millis(1100)).await;
        }
        assert!(limiter.factor() >= MIN_FACTOR);
        assert!(limiter.try_acquire(1000, Instant::now()));
    }
}
