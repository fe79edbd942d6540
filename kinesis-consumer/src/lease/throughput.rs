//! How fast each held lease's shard is read, for the leader's balance.
//!
//! The shard consumer counts the bytes it delivers and the arrival times of their records
//! in a [`ThroughputMeter`]; at each renewal the renewer turns what was counted since the
//! last one into KiB/s ([`Estimate`]) and writes it on the lease as `throughputKBps`, as
//! KCL 3.x does. A window's bytes are divided by the longer of the time it lasted and the
//! span of arrival times it covered, so a new owner reading a backlog reports the rate the
//! shard is written at, not its catch-up speed, and a move does not make a lease look hot.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

/// Bytes per KiB, as KCL counts `throughputKBps`.
const BYTES_PER_KIB: f64 = 1024.0;

/// Weight of a new window in the moving average.
const SMOOTHING: f64 = 0.5;

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

/// The renewer's estimate for one held lease.
#[derive(Debug, Clone)]
pub(crate) struct Estimate {
    kbps: Option<f64>,
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
        let span_from = self.newest_arrival.or(oldest);
        let span = match (span_from, newest) {
            (Some(from), Some(to)) => to.duration_since(from).unwrap_or_default(),
            _ => Duration::ZERO,
        };
        if newest.is_some() {
            self.newest_arrival = newest.max(self.newest_arrival);
        }
        let rate = bytes as f64 / BYTES_PER_KIB / wall.max(span).as_secs_f64();
        let kbps = match self.kbps {
            Some(old) => old + SMOOTHING * (rate - old),
            None => rate,
        };
        self.kbps = Some(kbps);
        self.kbps
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
        for _ in 0..6 {
            tokio::time::sleep(Duration::from_secs(3)).await;
            estimate.sample(&meter, Instant::now());
        }
        assert!(estimate.kbps().unwrap() < 0.2, "{:?}", estimate.kbps());
    }
}
