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
//! worth at once. The engine waits until the bucket covers a shard's backlog (or half a
//! burst) before sending, so pacing does not shrink requests to one entry each. On a
//! stream of fewer than 8 shards the burst grows to up to a fifth of a second, so the
//! shards' batches together still fill a request of about 400 KiB. Once a request goes,
//! another shard's entry may join it if its bucket holds half the entry's cost (for the
//! request's first few entries), and its bucket runs into debt for the rest: the rate is
//! the same, but the shards fall into step and share requests instead of each sending its
//! own. Each request costs the SDK's request path whatever it carries; 4 shards now send
//! about 5 entries a request instead of 1.4, a third as many requests.
//!
//! **Adaptation (AIMD).** When Kinesis throttles the shard anyway (other producers share it,
//! or the service counts differently), the allowance drops multiplicatively, at most once a
//! second; each quiet second it grows back additively, up to the configured rate. Several
//! producers on one stream thus converge on a share each instead of storming (KPL keeps
//! sending at its configured rate and retries without backoff).

mod bucket;

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use bucket::Bucket;

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
/// A shard's batch goes once the bucket holds this many seconds of rate (or the whole
/// backlog), on a stream of many shards. The bucket's burst is twice the trigger, so a
/// wake-up that comes late still finds the bucket below its cap instead of losing the
/// tokens that overflowed it.
const TRIGGER_SECS: f64 = 0.05;
/// The longest a shard's batch waits for its bucket, on a stream of few shards.
const MAX_TRIGGER_SECS: f64 = 0.1;
/// Bytes a request is paced to carry when the stream's shards together can fill it
/// ([`ShardLimiter::pace_for`]).
const REQUEST_BYTES: f64 = 400.0 * 1024.0;
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
    /// Seconds of rate a batch waits for (see [`TRIGGER_SECS`]).
    trigger_secs: f64,
    factor: f64,
    last_throttle: Option<Instant>,
    last_recovery: Instant,
    acceptance: Acceptance,
}

impl ShardLimiter {
    /// A limiter allowing `bytes_per_sec` and `records_per_sec` at full rate.
    pub(crate) fn new(bytes_per_sec: f64, records_per_sec: f64, now: Instant) -> Self {
        ShardLimiter {
            byte_bucket: Bucket::new(bytes_per_sec, 2.0 * TRIGGER_SECS, now),
            record_bucket: Bucket::new(records_per_sec, 2.0 * TRIGGER_SECS, now),
            bytes_per_sec,
            records_per_sec,
            sent: VecDeque::new(),
            sent_bytes: 0,
            next_id: 0,
            latencies: Latencies::default(),
            trigger_secs: TRIGGER_SECS,
            factor: 1.0,
            last_throttle: None,
            last_recovery: now,
            acceptance: Acceptance::new(now),
        }
    }

    /// Paces the shard for a stream of `shards` shards: batches wait until the shards'
    /// batches together come to [`REQUEST_BYTES`], between [`TRIGGER_SECS`] and
    /// [`MAX_TRIGGER_SECS`] of rate. Each request costs the SDK's request path about the
    /// same whatever it carries, and on a stream of few shards batches of 50 ms made
    /// requests of 150 KiB or less; at 8 shards or more nothing changes.
    pub(crate) fn pace_for(&mut self, shards: usize) {
        let stream_rate = self.bytes_per_sec * shards.max(1) as f64;
        self.trigger_secs = (REQUEST_BYTES / stream_rate).clamp(TRIGGER_SECS, MAX_TRIGGER_SECS);
        self.byte_bucket.set_burst(2.0 * self.trigger_secs);
        self.record_bucket.set_burst(2.0 * self.trigger_secs);
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
        self.byte_bucket.spend(bytes as f64);
        self.record_bucket.spend(1.0);
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
            .min(self.bytes_per_sec * self.factor * self.trigger_secs)
            .max(front as f64);
        let entries = (backlog_entries.max(1) as f64)
            .min(self.records_per_sec * self.factor * self.trigger_secs)
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

    /// The lowest rate [`ShardLimiter::admission_rate`] gives: what a shard that has sent
    /// nothing lately is allowed.
    pub(crate) fn floor_rate(&self) -> f64 {
        self.bytes_per_sec * MIN_FACTOR
    }

    /// The share of the configured rate currently allowed (1.0 unless throttled lately).
    pub(crate) fn factor(&self) -> f64 {
        self.factor
    }
}

#[cfg(test)]
mod tests;
