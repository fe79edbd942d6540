//! After a shard end: the children's leases, created and taken by the worker that finished
//! the parent, so they start without waiting for the leader.

use std::time::Duration;

use tokio::time::Instant;

use super::Coordinator;
use crate::lease::Checkpoint;
use crate::processor::ProcessorFactory;
use crate::shard_sync;

impl<F: ProcessorFactory> Coordinator<F> {
    /// After a shard end: creates the children's leases (from the children the endpoint
    /// named, else from a shard sync) and takes those whose parents have all finished, so
    /// they start without waiting for the leader. The leader rebalances later if need be.
    pub(super) async fn continue_with_children(
        &mut self,
        finished: &str,
        named: &[aws_sdk_kinesis::types::ChildShard],
    ) {
        let table = self.parts.table.clone();
        let children: Vec<String> = if named.is_empty() {
            let p = &self.parts;
            let sync = shard_sync::sync(
                &p.kinesis,
                &p.stream,
                &p.table,
                p.config.initial_position,
                None,
            );
            if let Err(e) = sync.await {
                tracing::warn!(error = %e, "shard sync after a shard end failed; the leader will retry");
                return;
            }
            match table.list(true).await {
                Ok(leases) => leases
                    .into_iter()
                    .filter(|l| l.parent_shard_ids.iter().any(|p| p == finished))
                    .map(|l| l.shard_id)
                    .collect(),
                Err(_) => return,
            }
        } else {
            if let Err(e) = shard_sync::create_children(&table, finished, named).await {
                tracing::debug!(error = %e, "creating the children's leases failed; the leader will");
                return;
            }
            named.iter().map(|c| c.shard_id.clone()).collect()
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
                match table.get(parent).await {
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
                tracing::info!(shard = %lease.shard_id, parent = finished, "child lease taken");
                self.start(lease, sent, Duration::ZERO);
            }
        }
    }
}
