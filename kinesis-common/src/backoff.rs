//! Exponential backoff with full jitter, a cap and a deadline.
//!
//! Delay before retry *n* (from 0) is drawn uniformly from `[0, min(max_delay, initial × 2ⁿ)]`
//! ("full jitter"), which spreads retries of many clients apart instead of letting them
//! return together. Time is tokio's clock: under `tokio::time::pause()` the waits and the
//! deadline advance with the test's virtual time, so backoff is tested in milliseconds.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

/// A backoff policy. Cheap to clone; [`Backoff::start`] begins one sequence of retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max_delay: Duration,
    max_elapsed: Option<Duration>,
    max_retries: Option<u32>,
    seed: Option<u64>,
}

impl Default for Backoff {
    /// 100 ms initial, 10 s cap, no deadline, unlimited retries.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
            max_elapsed: None,
            max_retries: None,
            seed: None,
        }
    }
}

impl Backoff {
    /// A policy starting at `initial` and doubling up to `max_delay`.
    pub fn new(initial: Duration, max_delay: Duration) -> Self {
        Backoff {
            initial,
            max_delay: max_delay.max(initial),
            ..Backoff::default()
        }
    }

    /// Gives up once this much time has passed since [`Backoff::start`].
    pub fn with_deadline(mut self, max_elapsed: Duration) -> Self {
        self.max_elapsed = Some(max_elapsed);
        self
    }

    /// Gives up after this many retries.
    pub fn with_max_retries(mut self, max_retries: u32) -> Self {
        self.max_retries = Some(max_retries);
        self
    }

    /// Seeds the jitter, for reproducible tests.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The first delay's upper bound.
    pub fn initial(&self) -> Duration {
        self.initial
    }

    /// The cap on any one delay.
    pub fn max_delay(&self) -> Duration {
        self.max_delay
    }

    /// Upper bound of the delay before retry `retry` (0-based), before jitter.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max_delay)
    }

    /// A jittered delay before retry `retry` (0-based): uniform in `[0, ceiling(retry)]`.
    /// For callers that track retries per item themselves.
    pub fn delay(&self, retry: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(retry);
        if ceiling.is_zero() {
            ceiling
        } else {
            rng.random_range(Duration::ZERO..=ceiling)
        }
    }

    /// Starts a sequence of retries now.
    pub fn start(&self) -> Retries {
        let rng = match self.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        Retries {
            policy: self.clone(),
            retries: 0,
            started: Instant::now(),
            rng,
        }
    }
}

/// One sequence of retries under a [`Backoff`] policy.
#[derive(Debug)]
pub struct Retries {
    policy: Backoff,
    retries: u32,
    started: Instant,
    rng: StdRng,
}

impl Retries {
    /// The delay before the next retry, or `None` when the retry budget or the deadline
    /// would be exceeded.
    pub fn next_delay(&mut self) -> Option<Duration> {
        if self
            .policy
            .max_retries
            .is_some_and(|max| self.retries >= max)
        {
            return None;
        }
        let delay = self.policy.delay(self.retries, &mut self.rng);
        if let Some(max_elapsed) = self.policy.max_elapsed
            && self.started.elapsed() + delay >= max_elapsed
        {
            return None;
        }
        self.retries += 1;
        Some(delay)
    }

    /// Sleeps for the next delay; `false` (at once) when no retry is left.
    ///
    /// # Cancellation
    /// Dropping the future before it completes cancels the wait; the retry is still counted.
    pub async fn wait(&mut self) -> bool {
        match self.next_delay() {
            Some(delay) => {
                tokio::time::sleep(delay).await;
                true
            }
            None => false,
        }
    }

    /// Retries taken so far.
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// Time since the sequence started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Starts over after a success: the next delay is short again, the deadline restarts.
    pub fn reset(&mut self) {
        self.retries = 0;
        self.started = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_double_up_to_the_cap() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let ceilings: Vec<_> = (0..6).map(|n| b.ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.ceiling(200), Duration::from_secs(1));
    }

    #[test]
    fn delays_are_jittered_below_the_ceiling() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1)).with_seed(7);
        let mut retries = b.start();
        let delays: Vec<_> = (0..50).map(|_| retries.next_delay().unwrap()).collect();
        for (n, d) in delays.iter().enumerate() {
            assert!(*d <= b.ceiling(n as u32));
        }
        // Full jitter: the delays are not all at the ceiling.
        assert!(
            delays
                .iter()
                .skip(5)
                .any(|d| *d < Duration::from_millis(900))
        );
        // Same seed, same delays.
        let mut again = b.start();
        let replay: Vec<_> = (0..50).map(|_| again.next_delay().unwrap()).collect();
        assert_eq!(delays, replay);
    }

    #[test]
    fn retry_budget_runs_out() {
        let mut retries = Backoff::default().with_max_retries(3).with_seed(1).start();
        assert!(retries.next_delay().is_some());
        assert!(retries.next_delay().is_some());
        assert!(retries.next_delay().is_some());
        assert_eq!(retries.next_delay(), None);
        retries.reset();
        assert!(retries.next_delay().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn deadline_is_kept_on_tokio_time() {
        let policy = Backoff::new(Duration::from_millis(100), Duration::from_secs(2))
            .with_deadline(Duration::from_secs(10))
            .with_seed(3);
        let start = Instant::now();
        let mut retries = policy.start();
        let mut count = 0;
        while retries.wait().await {
            count += 1;
        }
        let elapsed = start.elapsed();
        assert!(elapsed < Duration::from_secs(10), "waited {elapsed:?}");
        assert!(count >= 5, "only {count} retries in 10 s of backoff");
        // Virtual time passed, so the test took no real seconds.
        assert!(elapsed > Duration::from_secs(3));
    }
}
