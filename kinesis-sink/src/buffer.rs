//! Buffers, one per resulting prefix (not per shard), and each shard's progress: which of its
//! batches are wholly in durable objects, so it can checkpoint after them.
//!
//! ```text
//!  batch of shard A ─┬─▶ buffer "2026/12/05/10/"  ─(size or interval)─▶ object ─▶ durable
//!                    └─▶ buffer "2026/12/05/11/"                         │
//!  shard A's progress: [batch 7: waits for 2 buffers] [batch 8: 1] ◀─────┘ one fewer each
//!  checkpoint: after the last batch of the leading run that waits for none
//! ```
//!
//! Inside a buffer each shard's bytes are kept apart, so a shard whose lease is lost takes its
//! unwritten records out (the next owner reads them again) without touching the others'.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::SystemTime;

use tokio::time::Instant;

/// One processor's shard: `stream/shard#n` (`shard#n` for a single-stream worker), `n`
/// telling apart two processors of one shard in one process (during a handoff).
pub(crate) type ShardKey = Arc<str>;

/// The shard (with its stream) of a key, without the processor's number.
pub(crate) fn shard_of(key: &str) -> &str {
    key.rsplit_once('#').map_or(key, |(shard, _)| shard)
}

/// A record's place in its shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Position {
    pub sequence: String,
    pub sub: u64,
}

/// What a buffer is keyed by: its prefix, and whether it holds error records (another
/// format and extension).
pub(crate) type BufferKey = (String, bool);

/// Records on their way to one object.
#[derive(Debug)]
pub(crate) struct Buffer {
    pub key: BufferKey,
    pub opened: Instant,
    pub oldest_arrival: Option<SystemTime>,
    pub records: u64,
    bytes: usize,
    /// Each shard's records, in order of first appearance.
    chunks: Vec<Chunk>,
    /// Each shard's first and last position in the buffer.
    pub ranges: Vec<(ShardKey, Position, Position)>,
    /// The batches with records here; each waits for this buffer once.
    pub batches: Vec<(ShardKey, u64)>,
}

impl Buffer {
    fn new(key: BufferKey, now: Instant) -> Buffer {
        Buffer {
            key,
            opened: now,
            oldest_arrival: None,
            records: 0,
            bytes: 0,
            chunks: Vec::new(),
            ranges: Vec::new(),
            batches: Vec::new(),
        }
    }

    /// The object's bytes: every shard's records, one shard after another.
    pub fn into_bytes(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.bytes);
        for chunk in self.chunks {
            out.extend_from_slice(&chunk.bytes);
        }
        out
    }
}

/// One shard's records in a buffer.
#[derive(Debug)]
struct Chunk {
    shard: ShardKey,
    bytes: Vec<u8>,
    records: u64,
}

#[derive(Debug)]
struct Batch {
    id: u64,
    last: Position,
    waiting: usize,
}

#[derive(Debug, Default)]
struct Progress {
    batches: VecDeque<Batch>,
    failed: Option<Arc<str>>,
}

/// Every open buffer and every shard's progress.
#[derive(Debug, Default)]
pub(crate) struct Buffers {
    open: HashMap<BufferKey, Buffer>,
    buffered: usize,
    next_batch: u64,
    progress: HashMap<ShardKey, Progress>,
}

impl Buffers {
    /// Starts a batch of `shard` whose last record is at `last`; its records follow through
    /// [`append`](Self::append) before the lock is released.
    pub fn begin_batch(&mut self, shard: &ShardKey, last: Position) -> u64 {
        let id = self.next_batch;
        self.next_batch += 1;
        self.progress
            .entry(shard.clone())
            .or_default()
            .batches
            .push_back(Batch {
                id,
                last,
                waiting: 0,
            });
        id
    }

    /// Appends one record of `shard`'s batch `batch` to the buffer `key`, as `encode` writes
    /// it (which appends nothing on error).
    #[allow(clippy::too_many_arguments)]
    pub fn append<E>(
        &mut self,
        key: BufferKey,
        shard: &ShardKey,
        batch: u64,
        position: &Position,
        arrival: Option<SystemTime>,
        now: Instant,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let buffer = self
            .open
            .entry(key)
            .or_insert_with_key(|key| Buffer::new(key.clone(), now));
        let chunk = match buffer.chunks.iter().position(|c| &c.shard == shard) {
            Some(i) => &mut buffer.chunks[i],
            None => {
                buffer.chunks.push(Chunk {
                    shard: shard.clone(),
                    bytes: Vec::new(),
                    records: 0,
                });
                buffer.chunks.last_mut().expect("just pushed")
            }
        };
        let before = chunk.bytes.len();
        encode(&mut chunk.bytes)?;
        let added = chunk.bytes.len() - before;
        chunk.records += 1;
        buffer.bytes += added;
        self.buffered += added;
        buffer.records += 1;
        if let Some(at) = arrival {
            buffer.oldest_arrival = Some(buffer.oldest_arrival.map_or(at, |o| o.min(at)));
        }
        match buffer.ranges.iter_mut().find(|(s, ..)| s == shard) {
            Some((_, _, last)) => *last = position.clone(),
            None => buffer
                .ranges
                .push((shard.clone(), position.clone(), position.clone())),
        }
        if buffer
            .batches
            .last()
            .is_none_or(|(s, b)| s != shard || *b != batch)
        {
            buffer.batches.push((shard.clone(), batch));
            if let Some(b) = self
                .progress
                .get_mut(shard)
                .and_then(|p| p.batches.back_mut())
                .filter(|b| b.id == batch)
            {
                b.waiting += 1;
            }
        }
        Ok(())
    }

    /// Bytes in the open buffer `key` (0 when none is open).
    pub fn len_of(&self, key: &BufferKey) -> usize {
        self.open.get(key).map_or(0, |b| b.bytes)
    }

    /// Bytes in every open buffer.
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// Open buffers.
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// Buffers due to be written: over `size`, older than `interval`, or (while more than
    /// `max_buffered` bytes are open) the largest ones.
    pub fn due(
        &self,
        now: Instant,
        size: usize,
        interval: std::time::Duration,
        max_buffered: usize,
    ) -> Vec<BufferKey> {
        let mut due: Vec<BufferKey> = self
            .open
            .values()
            .filter(|b| b.bytes >= size || now.saturating_duration_since(b.opened) >= interval)
            .map(|b| b.key.clone())
            .collect();
        let mut left = self.buffered - due.iter().map(|k| self.open[k].bytes).sum::<usize>();
        if left > max_buffered {
            let mut rest: Vec<&Buffer> = self
                .open
                .values()
                .filter(|b| !due.contains(&b.key))
                .collect();
            rest.sort_by_key(|b| std::cmp::Reverse(b.bytes));
            for b in rest {
                if left <= max_buffered {
                    break;
                }
                left -= b.bytes;
                due.push(b.key.clone());
            }
        }
        due
    }

    /// The open buffers holding records of `shard`.
    pub fn holding(&self, shard: &ShardKey) -> Vec<BufferKey> {
        self.open
            .values()
            .filter(|b| b.chunks.iter().any(|c| &c.shard == shard))
            .map(|b| b.key.clone())
            .collect()
    }

    /// Takes the buffer `key` out to be written.
    pub fn take(&mut self, key: &BufferKey) -> Option<Buffer> {
        let buffer = self.open.remove(key)?;
        self.buffered -= buffer.bytes;
        Some(buffer)
    }

    /// A written buffer's batches wait for it no more.
    pub fn durable(&mut self, batches: &[(ShardKey, u64)]) {
        for (shard, id) in batches {
            if let Some(progress) = self.progress.get_mut(shard)
                && let Ok(i) = progress.batches.binary_search_by_key(id, |b| b.id)
            {
                progress.batches[i].waiting -= 1;
            }
        }
    }

    /// A buffer could not be written: its shards must stop and be read again.
    pub fn failed(&mut self, batches: &[(ShardKey, u64)], reason: &Arc<str>) {
        for (shard, _) in batches {
            if let Some(progress) = self.progress.get_mut(shard) {
                progress.failed.get_or_insert_with(|| reason.clone());
            }
        }
    }

    /// Why `shard` cannot go on, if a write of its records failed.
    pub fn failure(&self, shard: &ShardKey) -> Option<Arc<str>> {
        self.progress.get(shard)?.failed.clone()
    }

    /// The position `shard` may checkpoint: the last of its leading batches that are wholly
    /// durable (those leave its progress). `None` when no more became so.
    pub fn checkpointable(&mut self, shard: &ShardKey) -> Option<Position> {
        let progress = self.progress.get_mut(shard)?;
        if progress.failed.is_some() {
            return None;
        }
        let mut last = None;
        while progress.batches.front().is_some_and(|b| b.waiting == 0) {
            last = progress.batches.pop_front().map(|b| b.last);
        }
        last
    }

    /// Whether every batch of `shard` is durable (or it failed).
    pub fn settled(&self, shard: &ShardKey) -> bool {
        self.progress
            .get(shard)
            .is_none_or(|p| p.failed.is_some() || p.batches.iter().all(|b| b.waiting == 0))
    }

    /// `shard` left this worker: its unwritten records leave the buffers (the next owner
    /// reads them again from the checkpoint) and its progress is forgotten.
    pub fn drop_shard(&mut self, shard: &ShardKey) {
        self.progress.remove(shard);
        let mut emptied = Vec::new();
        for buffer in self.open.values_mut() {
            if let Some(i) = buffer.chunks.iter().position(|c| &c.shard == shard) {
                let chunk = buffer.chunks.remove(i);
                buffer.bytes -= chunk.bytes.len();
                buffer.records -= chunk.records;
                self.buffered -= chunk.bytes.len();
                buffer.ranges.retain(|(s, ..)| s != shard);
                buffer.batches.retain(|(s, _)| s != shard);
                if buffer.chunks.is_empty() {
                    emptied.push(buffer.key.clone());
                }
            }
        }
        for key in emptied {
            self.open.remove(&key);
        }
    }
}

#[cfg(test)]
#[path = "buffer_tests.rs"]
mod tests;
