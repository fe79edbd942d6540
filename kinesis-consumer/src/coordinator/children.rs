//! After a shard end: the children's leases, created and taken by the worker that finished
//! the parent, so they start without waiting for the leader.

use std::time::Duration;

use tokio::time::Instant;

use super::Coordinator;
use crate::lease::Checkpoint;
use crate::lease::key::KeySpace;
use crate::processor::ProcessorFactory;
use crate::shard_sync;

impl<F: ProcessorFactory> Coordinator<F> {
    /// After a shard end: creates the children's leases (from the children the endpoint
    /// named, else from a shard sync) and takes those whose parents have all finished, so
    /// they start without waiting for the leader. The leader rebalances later if need be.
    pub(super) async fn continue_with_children(
        &mut self,
        finished: &str,
        space: KeySpace,
        named: &[aws_sdk_kinesis::types::ChildShard],
    ) {
        let table = self.parts.table.clone();
        // `finished` is the lease key; the children name their parents by shard id.
        let finished_key = finished;
        let finished = space_shard(&space, finished_key);
        let children: Vec<String> = if named.is_empty() {
            let p = &self.parts;
            let Some((stream, initial)) = p.source.stream_of(&space) else {
                return;
            };
            let sync = shard_sync::sync(&p.kinesis, &stream, &space, &p.table, initial, None);
            if let Err(e) = sync.await {
                tracing::warn!(error = %e, "shard sync after a shard end failed; the leader will retry");
                return;
            }
            match table.list(true).await {
                Ok(leases) => leases
                    .into_iter()
                    .filter(|l| space.holds(l) && l.parent_shard_ids.iter().any(|p| p == finished))
                    .map(|l| l.shard_id)
                    .collect(),
                Err(_) => return,
            }
        } else {
            if let Err(e) = shard_sync::create_children(&table, &space, finished, named).await {
                tracing::debug!(error = %e, "creating the children's leases failed; the leader will");
                return;
            }
            named.iter().map(|c| space.key(&c.shard_id)).collect()
        };
        let me = self.parts.config.worker_id.clone();
        for child in children {
            let Ok(Some(lease)) = table.get(&child).await else {
                continue;
            };
            if lease.owner.is_some() || lease.is_finished() {
                continue;
            }
            let mut ready = true;
            for parent in lease.parent_shard_ids.iter().filter(|p| *p != finished) {
                match table.get(&space.key(parent)).await {
                    Ok(Some(p)) if p.checkpoint != Checkpoint::ShardEnd => ready = false,
                    Ok(_) => {}
                    Err(_) => ready = false,
                }
            }
            if !ready {
                continue; // the other parent's worker takes it when that parent ends
            }
            let sent = Instant::now();
            if let Ok(Some(lease)) = table.take(&lease, &me, false).await {
                tracing::info!(shard = %lease.shard_id, parent = finished_key, "child lease taken");
                self.start(lease, sent, Duration::ZERO);
            }
        }
    }
}

/// The shard id in Kinesis of a lease key of `space`.
fn space_shard<'a>(space: &KeySpace, key: &'a str) -> &'a str {
    match space.stream() {
        Some(stream) => key.strip_prefix(&format!("{stream}:")).unwrap_or(key),
        None => key,
    }
}
