//! How fast each held lease's shard is read, for the leader's balance.
//!
//! The shard consumer counts the bytes it delivers and the arrival times of their records
//! in a [`ThroughputMeter`]; at each renewal the renewer takes what was counted since the
//! last one into an [`Estimate`] and writes its figure on the lease as `throughputKBps`, as
//! KCL 3.x does. The figure is the rate over the last [`HORIZON`] (20 s, a leader's round):
//! the bytes of the windows it covers divided by the longer of the wall time they lasted and
//! the span of arrival times their records cover. So a new owner reading a backlog reports
//! the rate the shard is written at, not its catch-up speed; a consumer that falls behind
//! for a moment loses a fraction of a second over twenty, not over one window; and the
//! figure of a steady shard varies by a percent or two, well inside the balance's
//! threshold, instead of moving a lease back and forth. Until the horizon is covered, the
//! previous owner's figure stands for the part not measured yet.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

/// Bytes per KiB, as KCL counts `throughputKBps`.
const BYTES_PER_KIB: f64 = 1024.0;

/// How far back the figure looks.
pub(crate) const HORIZON: Duration = Duration::from_secs(20);

#[derive(Debug, Default)]
struct Window {
    /// When the consumer started reading; `None` before (a taken lease still waiting).
    started: Option<Instant>,
    bytes: u64,
    newest_arrival: Option<SystemTime>,
    oldest_arrival: Option<SystemTime>,
}

/// What one shard consumer has delivered since the renewer last looked.
#[derive(Debug, Default)]
pub(crate) struct ThroughputMeter {
    window: Mutex<Window>,
}

impl ThroughputMeter {
    /// The consumer starts reading now.
    pub(crate) fn start(&self) {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        w.started.get_or_insert_with(Instant::now);
    }

    /// Counts a delivered batch: its data bytes and the arrival times of its first and
    /// last records.
    pub(crate) fn record(
        &self,
        bytes: u64,
        oldest: Option<SystemTime>,
        newest: Option<SystemTime>,
    ) {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        w.bytes += bytes;
        if let Some(t) = oldest {
            w.oldest_arrival = Some(w.oldest_arrival.map_or(t, |o| o.min(t)));
        }
        if let Some(t) = newest {
            w.newest_arrival = Some(w.newest_arrival.map_or(t, |n| n.max(t)));
        }
    }

    /// Takes the window: (when reading started, bytes, oldest and newest arrival).
    fn take(&self) -> Option<(Instant, u64, Option<SystemTime>, Option<SystemTime>)> {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        let started = w.started?;
        let taken = (
            started,
            std::mem::take(&mut w.bytes),
            w.oldest_arrival.take(),
            w.newest_arrival.take(),
        );
        Some(taken)
    }
}

/// One renewal's window, as the estimate keeps it.
#[derive(Debug, Clone, Copy)]
struct Sample {
    wall: Duration,
    bytes: u64,
    /// The arrival time its records follow: the newest one delivered before it, or its own
    /// oldest when nothing was delivered before.
    from_arrival: Option<SystemTime>,
}

/// The renewer's estimate for one held lease.
#[derive(Debug, Clone)]
pub(crate) struct Estimate {
    kbps: Option<f64>,
    /// The previous owner's figure, standing for what is not measured yet.
    carried: Option<f64>,
    /// The windows of the last [`HORIZON`], oldest first.
    samples: VecDeque<Sample>,
    /// End of the last window taken.
    last: Option<Instant>,
    /// Newest arrival time seen so far.
    newest_arrival: Option<SystemTime>,
}

impl Estimate {
    /// Starts from what the lease item says (the previous owner's figure), if anything.
    pub(crate) fn new(carried: Option<f64>) -> Self {
        Estimate {
            kbps: carried,
            carried,
            samples: VecDeque::new(),
            last: None,
            newest_arrival: None,
        }
    }

    /// The current figure.
    pub(crate) fn kbps(&self) -> Option<f64> {
        self.kbps
    }

    /// Takes the meter's window and updates the figure; returns it. A window shorter than
    /// a tenth of a second is left to accumulate.
    pub(crate) fn sample(&mut self, meter: &ThroughputMeter, now: Instant) -> Option<f64> {
        let from = match self.last {
            Some(last) => last,
            None => match meter
                .window
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .started
            {
                Some(started) => started,
                None => return self.kbps,
            },
        };
        let wall = now.saturating_duration_since(from);
        if wall < Duration::from_millis(100) {
            return self.kbps;
        }
        let Some((_, bytes, oldest, newest)) = meter.take() else {
            return self.kbps;
        };
        self.last = Some(now);
        self.samples.push_back(Sample {
            wall,
            bytes,
            from_arrival: self.newest_arrival.or(oldest),
        });
        if newest.is_some() {
            self.newest_arrival = newest.max(self.newest_arrival);
        }
        // Keep the fewest windows that still cover the horizon.
        let mut covered: Duration = self.samples.iter().map(|s| s.wall).sum();
        while let Some(front) = self.samples.front()
            && covered.saturating_sub(front.wall) >= HORIZON
        {
            covered -= front.wall;
            self.samples.pop_front();
        }
        self.kbps = Some(self.rate(covered));
        self.kbps
    }

    /// KiB/s over the windows kept, the carried figure filling what they do not cover.
    fn rate(&self, wall: Duration) -> f64 {
        let kib = self.samples.iter().map(|s| s.bytes).sum::<u64>() as f64 / BYTES_PER_KIB;
        let from = self.samples.iter().find_map(|s| s.from_arrival);
        let span = match (from, self.newest_arrival) {
            (Some(from), Some(to)) => to.duration_since(from).unwrap_or_default(),
            _ => Duration::ZERO,
        };
        let measured = wall.max(span).as_secs_f64();
        match self.carried {
            Some(carried) => {
                let missing = HORIZON.as_secs_f64() - measured;
                if missing > 0.0 {
                    (kib + carried * missing) / HORIZON.as_secs_f64()
                } else {
                    kib / measured
                }
            }
            None => kib / measured,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_shard_reads_at_its_write_rate() {
        let meter = ThroughputMeter::default();
        let mut estimate = Estimate::new(None);
        assert_eq!(estimate.sample(&meter, Instant::now()), None, "not started");
        meter.start();
        for second in 1..=10u64 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            meter.record(10 * 1024, Some(at(second - 1)), Some(at(second)));
            if second % 3 == 0 {
                estimate.sample(&meter, Instant::now());
            }
        }
        let kbps = estimate.kbps().unwrap();
        assert!((kbps - 10.0).abs() < 0.5, "{kbps}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_backlog_read_at_once_counts_at_the_rate_it_was_written() {
        // 60 s of a 5 KiB/s shard read in one second by a new owner.
        let meter = ThroughputMeter::default();
        let mut estimate = Estimate::new(Some(5.0));
        meter.start();
        tokio::time::sleep(Duration::from_secs(1)).await;
        meter.record(300 * 1024, Some(at(0)), Some(at(60)));
        tokio::time::sleep(Duration::from_secs(2)).await;
        let kbps = estimate.sample(&meter, Instant::now()).unwrap();
        assert!((kbps - 5.0).abs() < 0.1, "{kbps}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_owner_keeps_the_carried_figure_and_a_quiet_shard_decays() {
        let meter = ThroughputMeter::default();
        let mut estimate = Estimate::new(Some(8.0));
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(estimate.sample(&meter, Instant::now()), Some(8.0));
        meter.start();
        let mut figures = Vec::new();
        for _ in 0..7 {
            tokio::time::sleep(Duration::from_secs(3)).await;
            figures.push(estimate.sample(&meter, Instant::now()).unwrap());
        }
        // Down by the share of the horizon measured quiet, to nothing once it is covered.
        assert!(figures.windows(2).all(|w| w[1] < w[0]), "{figures:?}");
        assert!((figures[0] - 8.0 * 17.0 / 20.0).abs() < 0.01, "{figures:?}");
        assert_eq!(figures[6], 0.0, "{figures:?}");
    }

    /// A shard written 8 KiB every 200 ms (40 KiB/s), read by a consumer that polls every
    /// `poll` and is late by up to `jitter` now and then, its figure taken every 3.33 s.
    /// Returns the figures from the moment the horizon is covered.
    async fn steady_figures(poll: Duration, jitter: Duration) -> Vec<f64> {
        let meter = ThroughputMeter::default();
        let mut estimate = Estimate::new(None);
        let t0 = Instant::now();
        meter.start();
        let (mut read_up_to, mut next_renewal) = (0u64, Duration::from_millis(3333));
        let mut figures = Vec::new();
        let mut late = 0u64;
        let mut clock = Duration::ZERO;
        while clock < Duration::from_secs(120) {
            clock += poll;
            tokio::time::sleep_until(t0 + clock).await;
            // Every third poll comes late: what it reads ends `jitter` earlier.
            late += 1;
            let lag = if late.is_multiple_of(3) {
                jitter
            } else {
                Duration::ZERO
            };
            let written = (clock.saturating_sub(lag).as_millis() / 200) as u64;
            if written > read_up_to {
                let first = at_ms((read_up_to + 1) * 200);
                let last = at_ms(written * 200);
                meter.record((written - read_up_to) * 8 * 1024, Some(first), Some(last));
                read_up_to = written;
            }
            if clock >= next_renewal {
                next_renewal += Duration::from_millis(3333);
                let kbps = estimate.sample(&meter, Instant::now()).unwrap();
                if clock >= HORIZON + Duration::from_secs(4) {
                    figures.push(kbps);
                }
            }
        }
        figures
    }

    fn at_ms(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + ms)
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_shard_figure_stays_within_a_few_percent_of_its_rate() {
        // (poll, how late every third poll is, how far a figure may be from 40 KiB/s): 1%
        // on time; late, a figure is short by at most the lateness over the horizon.
        for (poll, jitter, bound) in [
            (100, 0, 0.4),
            (500, 0, 0.4),
            (100, 400, 1.0),
            (500, 900, 1.6),
        ] {
            let (poll, jitter) = (Duration::from_millis(poll), Duration::from_millis(jitter));
            let figures = steady_figures(poll, jitter).await;
            println!("polling every {poll:?}, late by {jitter:?}: {figures:?}");
            assert!(figures.len() > 20, "{figures:?}");
            for kbps in &figures {
                assert!(
                    (kbps - 40.0).abs() <= bound,
                    "polling every {poll:?}, late by {jitter:?}: {figures:?}"
                );
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_that_doubles_shows_within_the_horizon() {
        let meter = ThroughputMeter::default();
        let mut estimate = Estimate::new(Some(10.0));
        meter.start();
        let mut kbps = 0.0;
        for second in 1..=(HORIZON.as_secs() + 4) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            meter.record(20 * 1024, Some(at(second - 1)), Some(at(second)));
            if second % 3 == 0 {
                kbps = estimate.sample(&meter, Instant::now()).unwrap();
            }
        }
        assert!((kbps - 20.0).abs() < 0.5, "{kbps}");
    }
}
