//! Small records' data, copied on the sender's thread into chunks that many records share.
//!
//! An application allocates each record's data on its own thread, and the engine, on another
//! thread, used to free it. glibc's allocator then missed its per-thread cache on the
//! sender's thread for every record: `_int_malloc` was about a third of that thread's time
//! at 100-byte records (`perf`). Copying a small record's data into a shared chunk frees the
//! application's buffer on the thread that allocated it, where the next record's allocation
//! reuses it at once, and leaves the engine one free per chunk instead of one per record
//! (measured in docs/FIGURES.md).
//!
//! A copy lives only until the record's aggregate closes: the engine then swaps it for a
//! slice of the aggregate, and a record that goes out alone gets a copy of its own (see
//! `shard::finish`), so a record that waits long (throttled, retried) never holds a chunk.

use std::sync::Mutex;

use bytes::{Bytes, BytesMut};

/// Bytes of one chunk: a few hundred small records share one allocation.
const CHUNK_BYTES: usize = 32 << 10;

/// Records larger than this (data and key) keep their own buffer: copying them would cost
/// more than the allocator's slow path it avoids.
pub(crate) const MAX_COPIED_BYTES: usize = 2 << 10;

/// Where small records' data is copied, one per stream's pipeline.
#[derive(Debug)]
pub(crate) struct Arena {
    chunk: Mutex<BytesMut>,
    /// The largest record (data and key) copied; 0 when nothing is.
    max_record: usize,
}

impl Arena {
    /// An arena for records of at most `max_record` bytes (data and key), which must be
    /// ones that join an aggregate; 0 copies nothing (aggregation off).
    pub(crate) fn new(max_record: usize) -> Self {
        Arena {
            chunk: Mutex::new(BytesMut::new()),
            max_record: max_record.min(MAX_COPIED_BYTES),
        }
    }

    /// A copy of `data` in a shared chunk when the record (`record_size` bytes with its key)
    /// is small enough, else `None`.
    pub(crate) fn copy(&self, data: &[u8], record_size: usize) -> Option<Bytes> {
        if record_size > self.max_record {
            return None;
        }
        let mut chunk = self.chunk.lock().unwrap_or_else(|e| e.into_inner());
        if chunk.capacity() < data.len() {
            // The full chunk lives on in the slices taken from it.
            *chunk = BytesMut::with_capacity(CHUNK_BYTES);
        }
        chunk.extend_from_slice(data);
        Some(chunk.split().freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_records_share_a_chunk_and_large_ones_are_left_alone() {
        let arena = Arena::new(100);
        let a = arena.copy(b"first", 10).expect("small");
        let b = arena.copy(b"second", 10).expect("small");
        assert_eq!((&a[..], &b[..]), (&b"first"[..], &b"second"[..]));
        // One after the other in the same chunk.
        assert_eq!(a.as_ptr().wrapping_add(a.len()), b.as_ptr());
        assert!(arena.copy(&[0; 200], 201).is_none());
        assert!(Arena::new(0).copy(b"x", 2).is_none());
    }

    #[test]
    fn a_full_chunk_is_replaced_and_its_copies_stay_intact() {
        let arena = Arena::new(MAX_COPIED_BYTES);
        let record = [7u8; 1000];
        let copies: Vec<Bytes> = (0..(3 * CHUNK_BYTES / record.len()))
            .map(|_| arena.copy(&record, record.len()).expect("small"))
            .collect();
        assert!(copies.iter().all(|c| c[..] == record[..]));
    }
}
