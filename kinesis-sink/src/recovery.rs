//! The sink's side of exactly-once objects: the manifest of each object, the manifests still
//! needed until their shards checkpoint, and what a shard's new owner must skip.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use crate::buffer::{Buffer, Position, ShardKey, shard_of};
use crate::manifest::{
    AlreadyWritten, Manifest, ShardRange, cmp_position, manifest_dir, manifest_key,
};
use crate::sink::Inner;

/// How long a listing of the manifests serves the shards that start after it: a worker
/// taking a thousand leases lists once, not a thousand times.
const LISTING_TTL: Duration = Duration::from_secs(2);

/// Manifests in memory: those waiting for their shards' checkpoints, and the last listing.
#[derive(Debug, Default)]
pub(crate) struct Manifests {
    /// Manifest key → the shards (processors) whose checkpoint it waits for, and the last
    /// position of each in its object.
    waiting: std::sync::Mutex<HashMap<String, Vec<(ShardKey, Position)>>>,
    /// The manifests found in the destination whose objects exist, and when they were read.
    listing: tokio::sync::Mutex<Option<(Instant, Arc<Vec<Manifest>>)>>,
}

/// A manifest to write before its object, and the shards whose checkpoints it will wait for.
#[derive(Debug)]
pub(crate) struct PendingManifest {
    pub key: String,
    pub manifest: Manifest,
    waiting: Vec<(ShardKey, Position)>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Inner {
    /// The manifest of `buffer`, to be written as object `key`; `None` without exactly-once.
    pub(crate) fn manifest_of(&self, buffer: &Buffer, key: &str) -> Option<PendingManifest> {
        if !self.cfg.exactly_once {
            return None;
        }
        let manifest = Manifest {
            object: key.to_owned(),
            buffer: buffer.key.clone(),
            ranges: buffer
                .ranges
                .iter()
                .map(|(shard, first, last)| ShardRange {
                    shard: shard_of(shard).to_owned(),
                    first: first.clone(),
                    last: last.clone(),
                })
                .collect(),
            written_ms: now_ms(),
        };
        Some(PendingManifest {
            key: manifest_key(&self.cfg.name, key),
            manifest,
            waiting: buffer
                .ranges
                .iter()
                .map(|(shard, _, last)| (shard.clone(), last.clone()))
                .collect(),
        })
    }

    /// The object of `pending` is written: its manifest stays until every shard in it has
    /// checkpointed past its records.
    pub(crate) fn await_checkpoints(&self, pending: PendingManifest) {
        self.manifests
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(pending.key, pending.waiting);
    }

    /// `shard` checkpointed through `position` (`None`: its end): manifests no shard waits
    /// for any more are deleted.
    pub(crate) fn checkpointed(self: &Arc<Self>, shard: &ShardKey, position: Option<&Position>) {
        let done: Vec<String> = {
            let mut waiting = self
                .manifests
                .waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            for shards in waiting.values_mut() {
                shards.retain(|(s, last)| {
                    s != shard || position.is_some_and(|p| cmp_position(last, p).is_gt())
                });
            }
            let done = waiting
                .iter()
                .filter(|(_, shards)| shards.is_empty())
                .map(|(key, _)| key.clone())
                .collect();
            waiting.retain(|_, shards| !shards.is_empty());
            done
        };
        for key in done {
            let inner = self.clone();
            tokio::spawn(async move {
                let deleting = inner.destination.delete(&key);
                match tokio::time::timeout(inner.cfg.attempt_timeout, deleting).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(key, error = %e, "manifest not deleted"),
                    Err(_) => tracing::warn!(key, "manifest not deleted in time"),
                }
            });
        }
    }

    /// `shard` left this process: its next owner reads the manifests it still needs.
    pub(crate) fn forget_manifests(&self, shard: &ShardKey) {
        let mut waiting = self
            .manifests
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for shards in waiting.values_mut() {
            shards.retain(|(s, _)| s != shard);
        }
        waiting.retain(|_, shards| !shards.is_empty());
    }

    /// The records of `shard` after `checkpoint` that existing objects already hold.
    pub(crate) async fn already_written(
        &self,
        shard: &str,
        checkpoint: Option<&Position>,
    ) -> Result<AlreadyWritten, object_store::Error> {
        if !self.cfg.exactly_once {
            return Ok(AlreadyWritten::default());
        }
        let manifests = self.listing().await?;
        Ok(AlreadyWritten::of(shard, checkpoint, &manifests))
    }

    /// Every manifest whose object exists (listed at most every 2 s); those older than the
    /// retention are deleted on the way.
    async fn listing(&self) -> Result<Arc<Vec<Manifest>>, object_store::Error> {
        let mut listing = self.manifests.listing.lock().await;
        if let Some((at, manifests)) = listing.as_ref()
            && at.elapsed() < LISTING_TTL
        {
            return Ok(manifests.clone());
        }
        let timeout = self.cfg.attempt_timeout;
        let bounded = |what: &'static str| {
            move |_| object_store::Error::Generic {
                store: "kinesis-sink",
                source: format!("{what}: no answer within {timeout:?}").into(),
            }
        };
        let keys = tokio::time::timeout(
            timeout,
            self.destination.list(&manifest_dir(&self.cfg.name)),
        )
        .await
        .map_err(bounded("listing manifests"))??;
        let oldest = now_ms().saturating_sub(self.cfg.manifest_retention.as_millis() as u64);
        let mut manifests = Vec::new();
        for key in keys {
            let read = tokio::time::timeout(timeout, self.destination.get(&key))
                .await
                .map_err(bounded("reading a manifest"))??;
            let Some(manifest) = read.as_deref().and_then(Manifest::parse) else {
                continue;
            };
            if manifest.written_ms < oldest {
                let _ = tokio::time::timeout(timeout, self.destination.delete(&key)).await;
                continue;
            }
            // A manifest without its object: the write never finished.
            let exists = tokio::time::timeout(timeout, self.destination.exists(&manifest.object))
                .await
                .map_err(bounded("checking an object"))??;
            if exists {
                manifests.push(manifest);
            }
        }
        let manifests = Arc::new(manifests);
        *listing = Some((Instant::now(), manifests.clone()));
        Ok(manifests)
    }
}
