//! What the sink has done: objects, bytes and records written, errors, retries.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::writer::Written;

/// A snapshot of [`Sink::stats`](crate::Sink::stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SinkStats {
    /// Records taken from the stream (before transformation).
    pub records_received: u64,
    /// Objects written (data and error objects).
    pub objects_written: u64,
    /// Of those, objects under the error prefix.
    pub error_objects_written: u64,
    /// Objects written as multipart uploads.
    pub multipart_objects: u64,
    /// Records in data objects (a transformation's outputs count one each).
    pub records_written: u64,
    /// Records written under the error prefix.
    pub error_records_written: u64,
    /// Records delivered again after a crash that objects already held: not written twice.
    pub records_skipped: u64,
    /// Bytes before compression.
    pub bytes_before_compression: u64,
    /// Bytes stored.
    pub bytes_written: u64,
    /// Attempts that failed and were retried.
    pub write_retries: u64,
    /// Objects not written within the retry duration (their shards stop and are read again).
    pub writes_failed: u64,
    /// Bytes in open buffers now.
    pub buffered_bytes: u64,
    /// Open buffers now (one per prefix with records waiting).
    pub open_buffers: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    received: AtomicU64,
    skipped: AtomicU64,
    objects: AtomicU64,
    error_objects: AtomicU64,
    multipart: AtomicU64,
    records: AtomicU64,
    error_records: AtomicU64,
    raw_bytes: AtomicU64,
    bytes: AtomicU64,
    retries: AtomicU64,
    failed: AtomicU64,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    pub fn written(&self, records: u64, errors: bool, raw: usize, stored: usize, w: Written) {
        add(&self.objects, 1);
        if errors {
            add(&self.error_objects, 1);
            add(&self.error_records, records);
        } else {
            add(&self.records, records);
        }
        add(&self.multipart, u64::from(w.multipart));
        add(&self.raw_bytes, raw as u64);
        add(&self.bytes, stored as u64);
        add(&self.retries, u64::from(w.attempts.saturating_sub(1)));
    }

    pub fn received(&self, records: usize) {
        add(&self.received, records as u64);
    }

    pub fn skipped(&self) {
        add(&self.skipped, 1);
    }

    pub fn write_failed(&self) {
        add(&self.failed, 1);
    }

    pub fn snapshot(&self, buffered: usize, open: usize) -> SinkStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SinkStats {
            records_received: get(&self.received),
            records_skipped: get(&self.skipped),
            objects_written: get(&self.objects),
            error_objects_written: get(&self.error_objects),
            multipart_objects: get(&self.multipart),
            records_written: get(&self.records),
            error_records_written: get(&self.error_records),
            bytes_before_compression: get(&self.raw_bytes),
            bytes_written: get(&self.bytes),
            write_retries: get(&self.retries),
            writes_failed: get(&self.failed),
            buffered_bytes: buffered as u64,
            open_buffers: open as u64,
        }
    }
}

/// An object the sink wrote, as [`Sink::recent_objects`](crate::Sink::recent_objects) lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WrittenObject {
    /// Its key (without the destination's prefix).
    pub key: String,
    /// Bytes stored.
    pub bytes: usize,
    /// Records in it.
    pub records: u64,
}
