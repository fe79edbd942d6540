//! Which partition keys make a shard hot: per shard, the heaviest keys by bytes and by
//! records over a sliding window, in constant memory.
//!
//! Each shard keeps two Space-Saving sketches (Metwally et al.) per half window, one weighted
//! by bytes and one by records, of [`SLOTS`] counters each. A key with more than 1/[`SLOTS`]
//! of a shard's traffic is always among them, and each count overestimates by at most the
//! weight of the lightest counter. Keys are told apart by their hash key (what Kinesis routes
//! on), so records with the same explicit hash key count as one key, shown with the
//! partition key of the first of them. The report merges the current and the previous half
//! window: it covers between half a window and a whole one.

use std::time::Duration;

use tokio::time::Instant;

/// Counters per sketch: every key with more than an eighth of a shard's traffic is found.
pub(crate) const SLOTS: usize = 8;

/// One key's share of a shard's traffic.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct HotKey {
    /// The partition key (for an explicit hash key, that of its first record seen).
    pub partition_key: String,
    /// Bytes (data + partition key) sent with it, an estimate that may be high by at most
    /// the lightest counter's weight.
    pub bytes: u64,
    /// Records sent with it, estimated likewise.
    pub records: u64,
    /// Its estimated share of the shard's bytes (by-bytes list) or records (by-records list).
    pub share: f64,
}

/// One shard's heaviest keys over the window.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ShardHotKeys {
    /// The shard.
    pub shard_id: String,
    /// Bytes sent to the shard in the window.
    pub bytes: u64,
    /// User records sent to the shard in the window.
    pub records: u64,
    /// The heaviest keys by bytes, heaviest first.
    pub by_bytes: Vec<HotKey>,
    /// The heaviest keys by records, heaviest first.
    pub by_records: Vec<HotKey>,
}

impl ShardHotKeys {
    /// The hottest key's share of the shard's bytes, 0 if nothing was sent.
    pub fn hottest_share(&self) -> f64 {
        self.by_bytes.first().map_or(0.0, |k| k.share)
    }
}

#[derive(Debug, Clone, Default)]
struct Slot {
    id: u128,
    key: String,
    /// Estimated weight (the sketch's measure: bytes or records).
    weight: u64,
    /// The other measure, counted since the slot took this key.
    other: u64,
}

/// A counter of both half windows, its key borrowed.
struct Merged<'a> {
    id: u128,
    key: &'a str,
    weight: u64,
    other: u64,
}

/// A Space-Saving sketch of [`SLOTS`] counters.
#[derive(Debug, Clone, Default)]
struct Sketch {
    slots: Vec<Slot>,
}

impl Sketch {
    fn add(&mut self, id: u128, key: &str, weight: u64, other: u64) {
        if let Some(slot) = self.slots.iter_mut().find(|s| s.id == id) {
            slot.weight += weight;
            slot.other += other;
            return;
        }
        if self.slots.len() < SLOTS {
            self.slots.push(Slot {
                id,
                key: key.to_owned(),
                weight,
                other,
            });
            return;
        }
        // Replace the lightest counter; the newcomer inherits its weight as overestimate.
        let Some(min) = self.slots.iter_mut().min_by_key(|s| s.weight) else {
            return;
        };
        min.id = id;
        min.key.clear();
        min.key.push_str(key); // reuses the allocation: no allocation per record
        min.weight += weight;
        min.other = other;
    }
}

/// Both sketches and the totals of one half window.
#[derive(Debug, Clone, Default)]
struct Half {
    by_bytes: Sketch,
    by_records: Sketch,
    bytes: u64,
    records: u64,
}

/// A shard's hot-key tracker over a sliding window.
#[derive(Debug)]
pub(crate) struct HotKeys {
    half: Duration,
    current: Half,
    previous: Half,
    rotated: Instant,
}

impl HotKeys {
    pub(crate) fn new(window: Duration, now: Instant) -> Self {
        HotKeys {
            half: window / 2,
            current: Half::default(),
            previous: Half::default(),
            rotated: now,
        }
    }

    fn rotate(&mut self, now: Instant) {
        let since = now.saturating_duration_since(self.rotated);
        if since < self.half {
            return;
        }
        self.previous = if since < self.half * 2 {
            std::mem::take(&mut self.current)
        } else {
            self.current = Half::default();
            Half::default()
        };
        self.rotated = now;
    }

    /// Counts one record of `bytes` with hash key `id` and partition key `key`.
    pub(crate) fn add(&mut self, id: u128, key: &str, bytes: usize, now: Instant) {
        self.rotate(now);
        let bytes = bytes as u64;
        let half = &mut self.current;
        half.bytes += bytes;
        half.records += 1;
        half.by_bytes.add(id, key, bytes, 1);
        half.by_records.add(id, key, 1, bytes);
    }

    /// The report for `shard_id`: both half windows merged, the heaviest `top` keys of each
    /// measure.
    pub(crate) fn report(&mut self, shard_id: &str, top: usize, now: Instant) -> ShardHotKeys {
        self.rotate(now);
        let bytes = self.current.bytes + self.previous.bytes;
        let records = self.current.records + self.previous.records;
        let merge = |pick: fn(&Half) -> &Sketch, by_bytes: bool| {
            // Merged by reference: only the keys reported are copied (at 10,000 shards,
            // copying every counter's key each second was 5% of the producer's CPU).
            let mut merged: Vec<Merged<'_>> = Vec::with_capacity(2 * SLOTS);
            for slot in pick(&self.current)
                .slots
                .iter()
                .chain(&pick(&self.previous).slots)
            {
                match merged.iter_mut().find(|m| m.id == slot.id) {
                    Some(m) => {
                        m.weight += slot.weight;
                        m.other += slot.other;
                    }
                    None => merged.push(Merged {
                        id: slot.id,
                        key: &slot.key,
                        weight: slot.weight,
                        other: slot.other,
                    }),
                }
            }
            merged.sort_by_key(|s| std::cmp::Reverse(s.weight));
            merged.truncate(top);
            let total = if by_bytes { bytes } else { records };
            merged
                .into_iter()
                .map(|s| {
                    let (b, r) = if by_bytes {
                        (s.weight, s.other)
                    } else {
                        (s.other, s.weight)
                    };
                    HotKey {
                        partition_key: s.key.to_owned(),
                        bytes: b,
                        records: r,
                        share: if total == 0 {
                            0.0
                        } else {
                            (s.weight as f64 / total as f64).min(1.0)
                        },
                    }
                })
                .collect::<Vec<_>>()
        };
        ShardHotKeys {
            shard_id: shard_id.to_owned(),
            bytes,
            records,
            by_bytes: merge(|h| &h.by_bytes, true),
            by_records: merge(|h| &h.by_records, false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_key_with_most_of_the_traffic_is_found_among_many_cold_ones() {
        let mut hot = HotKeys::new(Duration::from_secs(60), Instant::now());
        for i in 0..100_000u128 {
            if i % 2 == 0 {
                hot.add(7, "hot-key", 1000, Instant::now());
            } else {
                // 50,000 distinct cold keys of 100 bytes.
                hot.add(1000 + i, &format!("cold-{i}"), 100, Instant::now());
            }
        }
        let report = hot.report("shardId-0", 3, Instant::now());
        assert_eq!(report.records, 100_000);
        assert_eq!(report.bytes, 50_000 * 1100);
        let top = &report.by_bytes[0];
        assert_eq!(top.partition_key, "hot-key");
        assert_eq!(top.records, 50_000);
        assert!(top.share > 0.9 && top.share <= 1.0, "{}", top.share);
        assert_eq!(report.by_records[0].partition_key, "hot-key");
        assert!((report.by_records[0].share - 0.5).abs() < 0.01);
        assert!((report.hottest_share() - top.share).abs() < 1e-12);
    }

    #[tokio::test(start_paused = true)]
    async fn the_window_slides_and_memory_stays_constant() {
        let mut hot = HotKeys::new(Duration::from_secs(10), Instant::now());
        for i in 0..10_000u128 {
            hot.add(i, &format!("k{i}"), 10, Instant::now());
        }
        assert!(hot.current.by_bytes.slots.len() <= SLOTS);
        tokio::time::advance(Duration::from_secs(6)).await;
        hot.add(1, "late", 10, Instant::now());
        // Both halves are reported.
        assert_eq!(hot.report("s", 3, Instant::now()).records, 10_001);
        tokio::time::advance(Duration::from_secs(6)).await;
        // The first half has slid out.
        assert_eq!(hot.report("s", 3, Instant::now()).records, 1);
        tokio::time::advance(Duration::from_secs(60)).await;
        let idle = hot.report("s", 3, Instant::now());
        assert_eq!((idle.records, idle.by_bytes.len()), (0, 0));
        assert_eq!(idle.hottest_share(), 0.0);
    }
}
