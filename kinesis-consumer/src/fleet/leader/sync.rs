//! The leader's shard sync: leases for every stream's shards, and the cleanup of leases
//! of shards that no longer exist and of streams no longer tracked.

use std::collections::HashMap;

use tokio::time::Instant;

use super::{Duties, Leader};
use crate::lease::Lease;
use crate::shard_sync;

impl Leader {
    /// Lists shards and creates the leases they need, for every stream; cleans up vanished
    /// leases and those of streams no longer tracked. Returns how many leases it created.
    pub(super) async fn sync(&self, d: &mut Duties, leases: &[Lease]) -> usize {
        let streams = self.source.resolve(&self.kinesis).await;
        let mut created = 0;
        let mut vanished = Vec::new();
        for r in &streams {
            let call = shard_sync::sync(
                &self.kinesis,
                &r.stream,
                &r.space,
                &self.leases,
                r.initial,
                Some(leases),
            );
            match call.await {
                Ok(outcome) => {
                    created += outcome.created.len();
                    vanished.extend(outcome.vanished);
                }
                Err(e) => {
                    tracing::warn!(stream = %r.stream, error = %e, "shard sync failed; will retry")
                }
            }
        }
        if created > 0 {
            tracing::debug!(created, "new shards have leases");
        }
        let grace = self.settings.cleanup_grace;
        for (shard, counter) in d.vanished.observe(vanished, Instant::now(), grace) {
            match self.leases.delete_vanished(&shard, counter).await {
                Ok(deleted) => {
                    if deleted {
                        tracing::info!(shard = %shard, "lease of a shard that no longer exists deleted");
                    }
                    d.vanished.forget(&shard);
                }
                Err(e) => {
                    tracing::warn!(shard = %shard, error = %e, "lease cleanup failed; will retry")
                }
            }
        }
        if self.source.is_multi() {
            self.clean_former_streams(d, leases, &streams).await;
        }
        created
    }

    /// Deletes the leases of streams the tracker no longer names, once they have been gone
    /// for the grace period (their owners lose them at their next renewal).
    async fn clean_former_streams(
        &self,
        d: &mut Duties,
        leases: &[Lease],
        streams: &[crate::streams::Resolved],
    ) {
        let tracked = self.source.tracked_names();
        let now = Instant::now();
        let mut former: HashMap<String, Instant> = HashMap::new();
        for lease in leases {
            let Some(id) = lease.stream_identifier.as_deref() else {
                continue;
            };
            let name = id.split(':').nth(1).unwrap_or_default();
            let current = streams
                .iter()
                .any(|r| r.space.stream().is_some_and(|s| s.to_string() == id));
            // Untracked, or tracked under the same name but created again since.
            let same_name_resolved = streams
                .iter()
                .any(|r| r.space.stream().is_some_and(|s| s.stream_name == name));
            if current || (tracked.contains(name) && !same_name_resolved) {
                continue;
            }
            let since = d.former.get(id).copied().unwrap_or(now);
            former.insert(id.to_owned(), since);
        }
        d.former = former;
        let grace = self.settings.cleanup_grace;
        for lease in leases {
            let due = lease
                .stream_identifier
                .as_deref()
                .and_then(|id| d.former.get(id))
                .is_some_and(|since| now.saturating_duration_since(*since) >= grace);
            if !due {
                continue;
            }
            match self.leases.delete_lease(&lease.shard_id).await {
                Ok(_) => {
                    tracing::info!(lease = %lease.shard_id, "lease of a stream no longer tracked deleted")
                }
                Err(e) => {
                    tracing::warn!(lease = %lease.shard_id, error = %e, "deleting a former stream's lease failed; will retry")
                }
            }
        }
    }
}
