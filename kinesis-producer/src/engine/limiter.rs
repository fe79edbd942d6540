//! Per-shard rate limiting with adaptation to throttling.
//!
//! **Window.** Kinesis counts a shard's writes per second as it processes them, and a
//! request is counted at some moment between the time we send it and the time its answer
//! arrives. A new entry may go only while everything that could still share a service-side
//! second with it, plus itself, fits in one second's allowance. Holding each entry until a
//! second after its answer is always safe but costs the whole request latency every second,
//! which on a slow link or a loaded endpoint is several percent of the rate. Part of every
//! request's latency is spent before it is counted and part after; the fastest recent
//! answer bounds what every request spends in those fixed parts, and a new entry spends
//! at least that long before it is counted too. So an entry is held until a second after
//! its answer minus the fastest of the shard's recent latencies ([`LATENCY_SAMPLES`]
//! answers): with steady latencies that is a second after it was sent, and a slow answer
//! holds it longer by how much slower it was. Until that many answers are known, the full
//! latency is held. Should the service count differently anyway, its throttles shrink
//! the allowance (below).
//!
//! **Pacing.** Within the window a token bucket with a burst of a tenth of a second paces
//! the sends, so a shard gets a steady stream of modest batches instead of a full second's
//! worth at once. The engine waits until the bucket covers a shard's backlog (or a full
//! burst) before sending, so pacing does not shrink requests to one entry each. Once a request
//! goes, another shard's entry joins it if its bucket holds half the entry's cost, and its
//! bucket runs into debt for the rest: the rate is the same, but the shards fall into step
//! and share requests instead of each sending its own (4 shards: 3.5 entries a request
//! instead of 1.4, about half the requests; each costs the SDK's request path whatever it
//! carries).
//!
//! **Adaptation (AIMD).** When Kinesis throttles the shard anyway (other producers share it,
//! or the service counts differently), the allowance drops multiplicatively, at most once a
//! second; each quiet second it grows back additively, up to the configured rate. Several
//! producers on one stream thus converge on a share each instead of storming (KPL keeps
//! sending at its configured rate and retries without backoff).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// How long an answered entry keeps occupying the budget, less the fastest recent latency.
pub(crate) const WINDOW: Duration = Duration::from_millis(1000);
/// Answers whose latency the window discount is taken from (the fastest of them).
pub(crate) const LATENCY_SAMPLES: usize = 16;
/// The discount never exceeds this part of the window.
const MAX_DISCOUNT: Duration = Duration::from_millis(500);
/// Allowance factor after a throttle: multiplied by this.
const DECREASE: f64 = 0.8;
/// Allowance factor regained per second without throttling.
const RECOVERY_PER_SEC: f64 = 0.05;
/// The allowance never drops below this share of the configured rate.
pub(crate) const MIN_FACTOR: f64 = 0.1;
/// Burst of the pacing bucket, as seconds of rate.
const BURST_SECS: f64 = 0.1;
/// A shard's batch goes once the bucket holds this many seconds of rate (or the whole
/// backlog): half the burst, so a wake-up that comes late still finds the bucket below its
/// cap instead of losing the tokens that overflowed it.
const TRIGGER_SECS: f64 = 0.05;
/// Share of an entry's cost its shard's bucket must hold for the entry to join a request
/// that goes out anyway (see [`ShardLimiter::try_join`]).
const JOIN_SHARE: f64 = 0.5;

/// Seconds over which the stored rate is measured.
const ACCEPTANCE_SECS: u64 = 5;

/// Bytes stored per second over the last [`ACCEPTANCE_SECS`] seconds, in one-second buckets.
#[derive(Debug)]
struct Acceptance {
    buckets: [usize; ACCEPTANCE_SECS as usize],
    /// The second (counted from `start`) of the newest bucket.
    second: u64,
    start: Instant,
}

impl Acceptance {
    fn new(now: Instant) -> Self {
        Acceptance {
            buckets: [0; ACCEPTANCE_SECS as usize],
            second: 0,
            start: now,
        }
    }

    /// Moves to the bucket of `now`, clearing those skipped.
    fn advance(&mut self, now: Instant) {
        let second = now.saturating_duration_since(self.start).as_secs();
        let skipped = second.saturating_sub(self.second).min(ACCEPTANCE_SECS);
        for s in 1..=skipped {
            self.buckets[((self.second + s) % ACCEPTANCE_SECS) as usize] = 0;
        }
        self.second = self.second.max(second);
    }

    fn add(&mut self, bytes: usize, now: Instant) {
        self.advance(now);
        self.buckets[(self.second % ACCEPTANCE_SECS) as usize] += bytes;
    }

    /// Bytes per second over the full buckets and the current one's elapsed part.
    fn rate(&mut self, now: Instant) -> f64 {
        self.advance(now);
        let elapsed = now.saturating_duration_since(self.start).as_secs_f64();
        let full = (ACCEPTANCE_SECS - 1) as f64 + elapsed.fract();
        let span = elapsed.min(full).max(1.0);
        self.buckets.iter().sum::<usize>() as f64 / span
    }
}

/// A token bucket that may run into debt by one entry, so entries larger than its burst pass.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    fn new(rate: f64, now: Instant) -> Self {
        Bucket {
            rate,
            tokens: rate * BURST_SECS,
            updated: now,
        }
    }

    fn refill(&mut self, now: Instant, factor: f64) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        let rate = self.rate * factor;
        self.tokens = (self.tokens + elapsed * rate).min(rate * BURST_SECS);
        self.updated = now;
    }

    /// When the bucket holds `cost` tokens, or a full burst if `cost` is larger.
    fn ready_at(&self, cost: f64, factor: f64, now: Instant) -> Instant {
        self.share_ready_at(cost, 1.0, factor, now)
    }

    /// When the bucket holds `share` of what [`Bucket::ready_at`] waits for.
    fn share_ready_at(&self, cost: f64, share: f64, factor: f64, now: Instant) -> Instant {
        let rate = self.rate * factor;
        let missing = share * cost.min(rate * BURST_SECS) - self.tokens;
        if missing <= 0.0 {
            now
        } else {
            now + Duration::from_secs_f64(missing / rate)
        }
    }
}

/// One entry counted against the budget.
#[derive(Debug)]
struct Sent {
    id: u64,
    bytes: usize,
    sent: Instant,
    /// When it stops occupying the budget; known once its answer came.
    release: Option<Instant>,
}

/// The latencies of a shard's last [`LATENCY_SAMPLES`] answers.
#[derive(Debug, Default)]
struct Latencies {
    samples: [Duration; LATENCY_SAMPLES],
    seen: usize,
}

impl Latencies {
    fn record(&mut self, latency: Duration) {
        self.samples[self.seen % LATENCY_SAMPLES] = latency;
        self.seen += 1;
    }

    /// What the window is shortened by: the fastest recent latency, once there are enough.
    fn discount(&self) -> Duration {
        if self.seen < LATENCY_SAMPLES {
            return Duration::ZERO;
        }
        self.samples
            .iter()
            .min()
            .copied()
            .unwrap_or_default()
            .min(MAX_DISCOUNT)
    }
}

/// A sent entry's claim on the budget; hand it back with [`ShardLimiter::answered`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Claim(u64);

/// Rate limiter of one shard.
#[derive(Debug)]
pub(crate) struct ShardLimiter {
    byte_bucket: Bucket,
    record_bucket: Bucket,
    bytes_per_sec: f64,
    records_per_sec: f64,
    sent: VecDeque<Sent>,
    sent_bytes: usize,
    next_id: u64,
    latencies: Latencies,
    factor: f64,
    last_throttle: Option<Instant>,
    last_recovery: Instant,
    acceptance: Acceptance,
}

impl ShardLimiter {
    /// A limiter allowing `bytes_per_sec` and `records_per_sec` at full rate.
    pub(crate) fn new(bytes_per_sec: f64, records_per_sec: f64, now: Instant) -> Self {
        ShardLimiter {
            byte_bucket: Bucket::new(bytes_per_sec, now),
            record_bucket: Bucket::new(records_per_sec, now),
            bytes_per_sec,
            records_per_sec,
            sent: VecDeque::new(),
            sent_bytes: 0,
            next_id: 0,
            latencies: Latencies::default(),
            factor: 1.0,
            last_throttle: None,
            last_recovery: now,
            acceptance: Acceptance::new(now),
        }
    }

    fn update(&mut self, now: Instant) {
        // Answered entries leave the budget at their release, oldest first (an unanswered or
        // longer-held older entry holds the ones behind it: conservative, and brief).
        while let Some(front) = self.sent.front() {
            match front.release {
                Some(at) if now >= at => {
                    self.sent_bytes -= front.bytes;
                    self.sent.pop_front();
                }
                _ => break,
            }
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
        self.byte_bucket.refill(now, self.factor);
        self.record_bucket.refill(now, self.factor);
    }

    fn fits_window(&self, bytes: usize) -> bool {
        if self.sent.is_empty() {
            // An entry larger than the whole allowance still goes, alone.
            return true;
        }
        let byte_allowance = self.bytes_per_sec * self.factor;
        let record_allowance = (self.records_per_sec * self.factor).max(1.0);
        (self.sent_bytes + bytes) as f64 <= byte_allowance
            && (self.sent.len() + 1) as f64 <= record_allowance
    }

    fn paced(&self, bytes: usize, share: f64, now: Instant) -> bool {
        self.byte_bucket
            .share_ready_at(bytes as f64, share, self.factor, now)
            <= now
            && self
                .record_bucket
                .share_ready_at(1.0, share, self.factor, now)
                <= now
    }

    /// Takes room for one Kinesis record of `bytes` if the shard has it now.
    #[cfg(test)]
    pub(crate) fn try_acquire(&mut self, bytes: usize, now: Instant) -> Option<Claim> {
        self.acquire(bytes, 1.0, now)
    }

    /// Like [`ShardLimiter::try_acquire`] for an entry that would ride along in a request
    /// going out anyway: the bucket need only hold [`JOIN_SHARE`] of its cost, and runs
    /// into debt for the rest. The rate is unchanged (the debt delays the shard's next
    /// batch by as much), but shards fall into step and share requests: each request
    /// costs the SDK's request path and a socket write whatever it carries.
    pub(crate) fn try_join(&mut self, bytes: usize, now: Instant) -> Option<Claim> {
        self.acquire(bytes, JOIN_SHARE, now)
    }

    fn acquire(&mut self, bytes: usize, share: f64, now: Instant) -> Option<Claim> {
        self.update(now);
        if !self.fits_window(bytes) || !self.paced(bytes, share, now) {
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.sent.push_back(Sent {
            id,
            bytes,
            sent: now,
            release: None,
        });
        self.sent_bytes += bytes;
        self.byte_bucket.tokens -= bytes as f64;
        self.record_bucket.tokens -= 1.0;
        Some(Claim(id))
    }

    /// The request carrying a claimed entry was answered (or failed) at `now`.
    pub(crate) fn answered(&mut self, claim: Claim, now: Instant) {
        if let Ok(i) = self.sent.binary_search_by_key(&claim.0, |s| s.id) {
            let entry = &mut self.sent[i];
            self.latencies
                .record(now.saturating_duration_since(entry.sent));
            entry.release = Some(now + WINDOW - self.latencies.discount());
        }
    }

    /// When a batch worth sending could go: the window has room for the front entry and the
    /// bucket holds tokens for the whole backlog or a full burst, whichever is less.
    /// `None` when only an answer still in flight can make room.
    pub(crate) fn batch_ready_at(
        &mut self,
        front: usize,
        backlog_bytes: usize,
        backlog_entries: usize,
        now: Instant,
    ) -> Option<Instant> {
        self.update(now);
        let bytes = (backlog_bytes.max(front) as f64)
            .min(self.bytes_per_sec * self.factor * TRIGGER_SECS)
            .max(front as f64);
        let entries = (backlog_entries.max(1) as f64)
            .min(self.records_per_sec * self.factor * TRIGGER_SECS)
            .max(1.0);
        let paced = self
            .byte_bucket
            .ready_at(bytes, self.factor, now)
            .max(self.record_bucket.ready_at(entries, self.factor, now));
        Some(paced.max(self.window_ready_at(front, now)?))
    }

    /// When the window will have room for `bytes`, judging by answers received so far.
    fn window_ready_at(&self, bytes: usize, now: Instant) -> Option<Instant> {
        if self.fits_window(bytes) {
            return Some(now);
        }
        let byte_allowance = self.bytes_per_sec * self.factor;
        let record_allowance = (self.records_per_sec * self.factor).max(1.0);
        let mut remaining_bytes = self.sent_bytes;
        let mut remaining_records = self.sent.len();
        let mut released = now;
        for sent in &self.sent {
            // Entries leave in order, so a prefix is gone when its latest release is past.
            released = released.max(sent.release?);
            remaining_bytes -= sent.bytes;
            remaining_records -= 1;
            let fits = remaining_records == 0
                || ((remaining_bytes + bytes) as f64 <= byte_allowance
                    && (remaining_records + 1) as f64 <= record_allowance);
            if fits {
                return Some(released);
            }
        }
        None
    }

    /// Kinesis throttled this shard: shrink the allowance (at most once a second).
    pub(crate) fn on_throttle(&mut self, now: Instant) {
        let recent = self
            .last_throttle
            .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(1));
        if !recent {
            self.factor = (self.factor * DECREASE).max(MIN_FACTOR);
        }
        self.last_throttle = Some(now);
    }

    /// Bytes of this shard's records Kinesis stored, answered at `now`.
    pub(crate) fn accepted(&mut self, bytes: usize, now: Instant) {
        self.acceptance.add(bytes, now);
    }

    /// The bytes per second this shard can be expected to take: what Kinesis stored of ours
    /// per second over the last [`ACCEPTANCE_SECS`] seconds, at most the allowance, at least
    /// the allowance floor. Measured, not assumed: the shard may take less than its allowance
    /// (other writers share it, a slow endpoint, the record-count limit with small records).
    /// A sender slower than the shard measures its own rate, which only bounds the queue it
    /// keeps, not the rate: the queue that rate fills in the drain budget keeps the shard fed,
    /// and the measure follows the sender up within seconds.
    pub(crate) fn admission_rate(&mut self, now: Instant) -> f64 {
        self.update(now);
        let allowance = self.bytes_per_sec * self.factor;
        self.acceptance
            .rate(now)
            .min(allowance)
            .max(self.bytes_per_sec * MIN_FACTOR)
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

    /// Offers `entry`-byte entries every millisecond for `secs`, answering each after
    /// `latency`; returns the send times.
    async fn drive(
        limiter: &mut ShardLimiter,
        entry: usize,
        secs: u64,
        latency: Duration,
    ) -> Vec<(Instant, usize)> {
        drive_varying(limiter, entry, secs, |_| latency)
            .await
            .into_iter()
            .map(|(sent, _, bytes)| (sent, bytes))
            .collect()
    }

    /// Like [`drive`], with the `i`th entry answered after `latency(i)`; returns the send
    /// and answer times.
    async fn drive_varying(
        limiter: &mut ShardLimiter,
        entry: usize,
        secs: u64,
        latency: impl Fn(usize) -> Duration,
    ) -> Vec<(Instant, Instant, usize)> {
        let start = Instant::now();
        let mut log = Vec::new();
        let mut pending: Vec<(Instant, Claim)> = Vec::new();
        while Instant::now() < start + Duration::from_secs(secs) {
            let now = Instant::now();
            pending.retain(|(at, claim)| {
                if *at <= now {
                    limiter.answered(*claim, now);
                }
                *at > now
            });
            if let Some(claim) = limiter.try_acquire(entry, now) {
                let answer = now + latency(log.len());
                log.push((now, answer, entry));
                pending.push((answer, claim));
            }
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        log
    }

    fn max_in_any_second(log: &[(Instant, usize)]) -> usize {
        (0..log.len())
            .map(|i| {
                log[i..]
                    .iter()
                    .take_while(|e| e.0 < log[i].0 + Duration::from_secs(1))
                    .map(|e| e.1)
                    .sum()
            })
            .max()
            .unwrap_or(0)
    }

    #[tokio::test(start_paused = true)]
    async fn stays_within_the_limit_in_any_second_yet_close_to_it() {
        let mut limiter = ShardLimiter::new(MIB, 1000.0, Instant::now());
        let log = drive(&mut limiter, 50_000, 10, Duration::from_millis(20)).await;
        let total: usize = log.iter().map(|e| e.1).sum();
        assert!(
            total as f64 > 0.93 * MIB * 10.0,
            "only {total} bytes in 10 s"
        );
        assert!(max_in_any_second(&log) as f64 <= MIB);
    }

    /// The most bytes counted in any second if the service counts each entry at its send
    /// and if it counts each at its answer.
    fn max_counted(log: &[(Instant, Instant, usize)]) -> (usize, usize) {
        let at_send: Vec<_> = log.iter().map(|e| (e.0, e.2)).collect();
        let mut at_answer: Vec<_> = log.iter().map(|e| (e.1, e.2)).collect();
        at_answer.sort_by_key(|e| e.0);
        (max_in_any_second(&at_send), max_in_any_second(&at_answer))
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_latency_costs_nothing() {
        // Every answer takes 300 ms: whether the service counts an entry as it arrives or
        // just before it answers, entries a second apart at sending are a second apart
        // there too, so a full second's allowance goes each second.
        let mut limiter = ShardLimiter::new(MIB, 1000.0, Instant::now());
        let log = drive_varying(&mut limiter, 50_000, 10, |_| Duration::from_millis(300)).await;
        let total: usize = log.iter().map(|e| e.2).sum();
        assert!(total as f64 > 0.93 * MIB * 10.0, "{total}");
        let (at_send, at_answer) = max_counted(&log);
        assert!(at_send as f64 <= MIB && at_answer as f64 <= MIB);
    }

    #[tokio::test(start_paused = true)]
    async fn slow_answers_hold_the_budget_longer() {
        // One answer in four takes 400 ms instead of 20: the service may have counted it
        // up to 380 ms later than its send suggests, so it holds the budget that much
        // longer and fewer bytes go per second, still never more than the limit in any
        // second wherever between send and answer the service counts.
        let mut limiter = ShardLimiter::new(MIB, 1000.0, Instant::now());
        let latency = |i: usize| Duration::from_millis(if i % 4 == 3 { 400 } else { 20 });
        let log = drive_varying(&mut limiter, 50_000, 10, latency).await;
        let total: usize = log.iter().map(|e| e.2).sum();
        // Entries leave in order, so a slow one also holds the fast ones sent after it.
        assert!(
            total as f64 > 0.6 * MIB * 10.0 && (total as f64) < 0.9 * MIB * 10.0,
            "{total}"
        );
        let (at_send, at_answer) = max_counted(&log);
        assert!(at_send as f64 <= MIB && at_answer as f64 <= MIB);
    }

    #[tokio::test(start_paused = true)]
    async fn record_count_is_limited_too() {
        let mut limiter = ShardLimiter::new(MIB, 1000.0, Instant::now());
        let log = drive(&mut limiter, 10, 3, Duration::from_millis(5)).await;
        assert!(
            log.len() <= 3000 && log.len() > 2700,
            "{} records in 3 s",
            log.len()
        );
        let max = (0..log.len())
            .map(|i| {
                log[i..]
                    .iter()
                    .take_while(|e| e.0 < log[i].0 + Duration::from_secs(1))
                    .count()
            })
            .max()
            .unwrap();
        assert!(max <= 1000);
    }

    #[tokio::test(start_paused = true)]
    async fn sends_are_paced_not_bursty() {
        let mut limiter = ShardLimiter::new(MIB, 1000.0, Instant::now());
        let log = drive(&mut limiter, 10_000, 3, Duration::from_millis(10)).await;
        for (i, (t0, _)) in log.iter().enumerate() {
            let n = log[i..]
                .iter()
                .take_while(|t| t.0 < *t0 + Duration::from_millis(100))
                .count();
            // At most a full burst plus 100 ms of rate: a fifth of what a plain one-second
            // window would let through at once.
            assert!(
                (n * 10_000) as f64 <= 0.2 * MIB + 10_000.0,
                "{n} entries within 100 ms"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_entry_joins_a_request_on_half_its_cost_and_repays_the_rest() {
        let start = Instant::now();
        let mut limiter = ShardLimiter::new(MIB, 1000.0, start);
        // A full burst (100 ms of rate) goes at once; then the bucket is empty.
        let entry = (0.1 * MIB) as usize;
        assert!(limiter.try_acquire(entry, start).is_some());
        tokio::time::advance(Duration::from_millis(60)).await;
        let now = Instant::now();
        // 60 ms of rate: not enough to send on its own, enough to ride along.
        assert!(limiter.try_acquire(entry, now).is_none());
        assert!(limiter.try_join(entry, now).is_some());
        // In debt by 40 ms of rate: the next batch of a full burst waits 140 ms, so the
        // rate stays what it was (two bursts in 200 ms).
        let ready = limiter.batch_ready_at(entry, entry, 1, now).unwrap();
        let waited = ready - now;
        assert!(
            waited >= Duration::from_millis(139) && waited <= Duration::from_millis(141),
            "{waited:?}"
        );
        assert!(limiter.try_join(entry, now).is_none(), "no second debt");
    }

    #[tokio::test(start_paused = true)]
    async fn joining_keeps_every_second_within_the_limit() {
        let mut limiter = ShardLimiter::new(MIB, 1000.0, Instant::now());
        let mut log = Vec::new();
        let mut pending: Vec<(Instant, Claim)> = Vec::new();
        let start = Instant::now();
        while Instant::now() < start + Duration::from_secs(10) {
            let now = Instant::now();
            pending.retain(|(at, claim)| {
                if *at <= now {
                    limiter.answered(*claim, now);
                }
                *at > now
            });
            if let Some(claim) = limiter.try_join(50_000, now) {
                log.push((now, 50_000));
                pending.push((now + Duration::from_millis(20), claim));
            }
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        let total: usize = log.iter().map(|e| e.1).sum();
        assert!(
            total as f64 > 0.93 * MIB * 10.0,
            "only {total} bytes in 10 s"
        );
        assert!(max_in_any_second(&log) as f64 <= MIB);
    }

    #[tokio::test(start_paused = true)]
    async fn an_oversize_entry_goes_alone() {
        let now = Instant::now();
        let mut limiter = ShardLimiter::new(MIB, 1000.0, now);
        let claim = limiter.try_acquire(5 * 1024 * 1024, now).unwrap();
        assert!(limiter.try_acquire(1, now).is_none());
        // Nothing can be planned until its answer arrives.
        assert_eq!(limiter.batch_ready_at(1, 1, 1, now), None);
        limiter.answered(claim, now);
        // Then the window frees a second later and the bucket pays its debt off in five.
        let ready = limiter.batch_ready_at(1, 1, 1, now).unwrap();
        assert!(ready >= now + Duration::from_secs(4), "{:?}", ready - now);
        tokio::time::advance(ready - now).await;
        assert!(limiter.try_acquire(1, Instant::now()).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_shrinks_the_allowance_and_quiet_restores_it() {
        let mut limiter = ShardLimiter::new(MIB, 1000.0, Instant::now());
        limiter.on_throttle(Instant::now());
        assert!((limiter.factor() - 0.8).abs() < 1e-9);
        // A burst of throttled entries within a second counts once.
        limiter.on_throttle(Instant::now());
        assert!((limiter.factor() - 0.8).abs() < 1e-9);
        tokio::time::advance(Duration::from_secs(2)).await;
        limiter.on_throttle(Instant::now());
        assert!((limiter.factor() - 0.64).abs() < 1e-9);
        // With the allowance at 64% (recovering by 0.05 a quiet second), well under 1 MiB/s goes.
        let log = drive(&mut limiter, 10_000, 2, Duration::from_millis(5)).await;
        let per_sec = log.iter().map(|e| e.1).sum::<usize>() as f64 / 2.0;
        assert!(
            per_sec > 0.55 * MIB && per_sec < 0.75 * MIB,
            "{per_sec} bytes/s"
        );
        // Quiet seconds give back 0.05 each.
        tokio::time::advance(Duration::from_secs(20)).await;
        let _ = limiter.try_acquire(1, Instant::now());
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
        assert!(limiter.try_acquire(1000, Instant::now()).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn admission_follows_what_the_shard_stored_within_allowance_and_floor() {
        let mut limiter = ShardLimiter::new(MIB, 1000.0, Instant::now());
        // Nothing stored yet: the floor, a tenth of the limit.
        assert!((limiter.admission_rate(Instant::now()) - 0.1 * MIB).abs() < 1.0);
        // Others take most of the shard: it stores 200 KiB a second of ours.
        for _ in 0..5 {
            limiter.accepted(200 * 1024, Instant::now());
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        let rate = limiter.admission_rate(Instant::now());
        assert!((rate - 200.0 * 1024.0).abs() < 1.0, "{rate}");
        // It stores more than the allowance after a throttle: the allowance.
        limiter.on_throttle(Instant::now());
        for _ in 0..5 {
            limiter.accepted(MIB as usize, Instant::now());
            tokio::time::advance(Duration::from_millis(999)).await;
        }
        let rate = limiter.admission_rate(Instant::now());
        assert!(
            rate <= limiter.bytes_per_sec * limiter.factor() + 1.0,
            "{rate}"
        );
        // Idle again: back to the floor.
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!((limiter.admission_rate(Instant::now()) - 0.1 * MIB).abs() < 1.0);
    }
}
