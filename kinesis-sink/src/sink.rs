//! The shared sink: buffers every shard's records by prefix, writes due buffers on its own
//! timer, and tells each shard's processor how far it may checkpoint.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

use crate::buffer::{Buffer, BufferKey, Buffers, ShardKey};
use crate::config::Config;
use crate::destination::Destination;
use crate::error::SinkError;
use crate::naming::object_key;
use crate::recovery::Manifests;
use crate::stats::{Counters, SinkStats, WrittenObject};

/// How many written objects [`Sink::recent_objects`] keeps.
const RECENT: usize = 64;
use crate::transform::{Partitioner, Transform};
use crate::writer::{WritePolicy, write_object};

/// Delivers a stream's records to object storage as Firehose does. Cheap to clone; make
/// processors for a [`kinesis_consumer::Worker`] with [`Sink::factory`].
#[derive(Clone)]
pub struct Sink {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("name", &self.inner.cfg.name)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub cfg: Config,
    pub destination: Destination,
    pub manifests: Manifests,
    pub transform: Option<Arc<dyn Transform>>,
    pub partitioner: Option<Arc<dyn Partitioner>>,
    buffers: Mutex<Buffers>,
    /// Woken when a write finishes (durable or failed).
    pub changed: Notify,
    /// Wakes the flusher: a buffer may be due.
    wake: Notify,
    writes: Semaphore,
    in_flight: AtomicUsize,
    pub counters: Counters,
    recent: Mutex<std::collections::VecDeque<WrittenObject>>,
    closed: AtomicBool,
    /// Numbers processors, so two of one shard (a handoff inside one process) stay apart.
    processors: std::sync::atomic::AtomicU64,
}

impl Sink {
    pub(crate) fn start(
        cfg: Config,
        destination: Destination,
        transform: Option<Arc<dyn Transform>>,
        partitioner: Option<Arc<dyn Partitioner>>,
    ) -> Sink {
        let writes = Semaphore::new(cfg.max_concurrent_writes);
        let inner = Arc::new(Inner {
            cfg,
            destination,
            manifests: Manifests::default(),
            transform,
            partitioner,
            buffers: Mutex::new(Buffers::default()),
            changed: Notify::new(),
            wake: Notify::new(),
            writes,
            in_flight: AtomicUsize::new(0),
            counters: Counters::default(),
            recent: Mutex::default(),
            closed: AtomicBool::new(false),
            processors: std::sync::atomic::AtomicU64::new(0),
        });
        tokio::spawn(flusher(Arc::downgrade(&inner)));
        Sink { inner }
    }

    /// What the sink has done so far.
    pub fn stats(&self) -> SinkStats {
        let (buffered, open) = {
            let b = self.inner.lock();
            (b.buffered(), b.open_count())
        };
        self.inner.counters.snapshot(buffered, open)
    }

    /// The last 64 objects written, newest last.
    pub fn recent_objects(&self) -> Vec<WrittenObject> {
        let recent = self.inner.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.iter().cloned().collect()
    }

    /// Writes every open buffer now and waits until no write is in flight. Processors
    /// checkpoint what became durable on their next call.
    pub async fn flush(&self) {
        let keys: Vec<BufferKey> = {
            let b = self.inner.lock();
            b.due(Instant::now(), 0, Duration::ZERO, usize::MAX)
        };
        for key in keys {
            self.inner.write_buffer(&key);
        }
        self.inner.wait_writes().await;
    }

    /// Stops taking records, writes what is buffered and waits for it. Processors still
    /// running fail their next batch (it is delivered again to the next owner).
    pub async fn shutdown(&self) {
        self.inner.closed.store(true, Ordering::Relaxed);
        self.flush().await;
    }
}

impl Inner {
    /// The buffers; never held across an `.await`.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Buffers> {
        self.buffers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The key of a new processor of `shard` (of `stream`, with a worker of many streams):
    /// `stream/shard#n`, `n` telling processors of the same shard apart.
    pub(crate) fn shard_key(&self, stream: Option<&str>, shard: &str) -> ShardKey {
        let n = self.processors.fetch_add(1, Ordering::Relaxed);
        match stream {
            Some(stream) => format!("{stream}/{shard}#{n}").into(),
            None => format!("{shard}#{n}").into(),
        }
    }

    pub(crate) fn closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Asks the flusher to look at the buffers now.
    pub(crate) fn poke(&self) {
        self.wake.notify_one();
    }

    /// Writes every buffer holding records of `shard` now.
    pub(crate) fn write_shard(self: &Arc<Self>, shard: &ShardKey) {
        let keys = self.lock().holding(shard);
        for key in keys {
            self.write_buffer(&key);
        }
    }

    /// Takes the buffer `key` and writes it in a task of its own.
    fn write_buffer(self: &Arc<Self>, key: &BufferKey) {
        let Some(buffer) = self.lock().take(key) else {
            return;
        };
        self.write_taken(buffer);
    }

    /// Writes a buffer already taken out, in a task of its own.
    pub(crate) fn write_taken(self: &Arc<Self>, buffer: Buffer) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        tokio::spawn(self.clone().write(buffer));
    }

    fn policy(&self) -> WritePolicy {
        WritePolicy {
            retry_duration: self.cfg.retry_duration,
            attempt_timeout: self.cfg.attempt_timeout,
            multipart_threshold: self.cfg.multipart_threshold,
            part_size: self.cfg.part_size,
        }
    }

    /// Writes `buffer` as an object, its manifest first; then its batches wait for it no
    /// more, or its shards stop if it could not be written.
    async fn write(self: Arc<Self>, buffer: Buffer) {
        let _permit = self.writes.acquire().await;
        let key = object_key(&buffer, &self.cfg);
        let (records, errors) = (buffer.records, buffer.key.1);
        let batches = buffer.batches.clone();
        let manifest = self.manifest_of(&buffer, &key);
        let compression = self.cfg.compression;
        // Error records are JSON lines whatever the format.
        let format = if errors {
            crate::format::Format::default()
        } else {
            self.cfg.format.clone()
        };
        let raw = buffer.into_bytes();
        let raw_len = raw.len();
        // Compressing or converting 128 MiB takes a while: off the runtime's threads.
        let compressed = tokio::task::spawn_blocking(move || format.finish(raw, compression))
            .await
            .map_err(|e| object_store::Error::JoinError { source: e })
            .and_then(|r| {
                r.map_err(|e| object_store::Error::Generic {
                    store: "kinesis-sink",
                    source: Box::new(e),
                })
            })
            .map_err(|source| SinkError::Write {
                key: key.clone(),
                attempts: 0,
                source,
            });
        let policy = self.policy();
        let outcome = async {
            let bytes = compressed?;
            let len = bytes.len();
            if let Some(pending) = &manifest {
                let json = pending.manifest.to_json().into();
                write_object(&self.destination, &pending.key, json, &policy).await?;
            }
            let written = write_object(&self.destination, &key, bytes.into(), &policy).await?;
            Ok::<_, SinkError>((written, len))
        };
        match outcome.await {
            Ok((written, len)) => {
                self.counters
                    .written(records, errors, raw_len, len, written);
                tracing::debug!(key, records, bytes = len, "object written");
                self.remember(WrittenObject {
                    key,
                    bytes: len,
                    records,
                });
                if let Some(pending) = manifest {
                    self.await_checkpoints(pending);
                }
                self.lock().durable(&batches);
            }
            Err(e) => {
                self.counters.write_failed();
                tracing::error!(error = %e, records, "object not written; its shards stop and are read again");
                let reason: Arc<str> = e.to_string().into();
                self.lock().failed(&batches, &reason);
            }
        }
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.changed.notify_waiters();
    }

    fn remember(&self, object: WrittenObject) {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back(object);
    }

    /// Waits until no write is in flight.
    async fn wait_writes(&self) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.in_flight.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Writes the buffers that are due now.
    pub(crate) fn write_due(self: &Arc<Self>) {
        let due = {
            let b = self.lock();
            b.due(
                Instant::now(),
                self.cfg.buffer_size,
                self.cfg.buffer_interval,
                self.cfg.max_buffered_bytes,
            )
        };
        for key in due {
            self.write_buffer(&key);
        }
    }
}

/// The sink's own timer: buffers are written when due whether or not records arrive.
async fn flusher(inner: Weak<Inner>) {
    let tick = |cfg: &Config| {
        (cfg.buffer_interval / 10).clamp(Duration::from_millis(10), Duration::from_secs(1))
    };
    let Some(period) = inner.upgrade().map(|i| tick(&i.cfg)) else {
        return;
    };
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        strong.write_due();
        let wake = async {
            let notified = strong.wake.notified();
            tokio::select! {
                () = notified => {}
                () = tokio::time::sleep(period) => {}
            }
        };
        wake.await;
        if Arc::strong_count(&strong) == 1 {
            // Only the flusher is left: nothing can add records any more.
            return;
        }
    }
}
