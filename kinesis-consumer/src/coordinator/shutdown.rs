//! Graceful shutdown: processors first, then every lease released at once and handed to the
//! live workers directly, the worker's item removed and the leader's lock given up, each
//! call with a timeout, so it ends in bounded time even when DynamoDB is gone.

use std::collections::HashMap;

use futures_util::StreamExt;

use super::{CALL_CONCURRENCY, Coordinator};
use crate::fleet::state_table::{Assignment, PLAN_CHUNK};
use crate::lease::renewer::Command;
use crate::processor::ProcessorFactory;
use crate::shard_consumer::Signal;

impl<F: ProcessorFactory> Coordinator<F> {
    /// Tells every consumer to shut down, waits for them, then releases every lease at once
    /// and assigns them to live workers; leaves the fleet and gives up the lead.
    pub(super) async fn graceful_shutdown(&mut self) {
        tracing::info!(leases = self.held.len(), "worker shutting down");
        // No more assignments from this worker as leader.
        self.leader_task = None;
        for held in self.held.values() {
            let _ = held.signal.send(Signal::Shutdown);
        }
        while let Some(joined) = self.tasks.join_next().await {
            if let Ok((shard, generation, exit)) = joined {
                self.on_exit(shard, generation, exit).await;
            }
        }
        for shard in self.held.keys() {
            let _ = self.renewer.send(Command::Drop {
                shard_id: shard.clone(),
            });
        }
        let me = self.parts.config.worker_id.clone();
        let table = self.parts.table.clone();
        let shards: Vec<String> = self.held.drain().map(|(s, _)| s).collect();
        // Each call has the DynamoDB timeout, so this ends even when DynamoDB is gone.
        let mut releases = futures_util::stream::iter(shards.into_iter().map(|shard| {
            let (table, me) = (table.clone(), me.clone());
            async move {
                let result = table.release(&shard, &me).await;
                (shard, result)
            }
        }))
        .buffer_unordered(CALL_CONCURRENCY);
        let mut released = Vec::new();
        while let Some((shard, result)) = releases.next().await {
            match result {
                Ok(true) => {
                    tracing::debug!(shard = %shard, "lease released");
                    released.push(shard);
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(shard = %shard, error = %e, "releasing a lease failed; it will expire")
                }
            }
        }
        self.parts.telemetry.leases_held.set(0.0);
        self.leave(released).await;
    }

    /// Hands released leases to live workers, removes this worker's item, releases the lock.
    async fn leave(&mut self, released: Vec<String>) {
        let me = self.parts.config.worker_id.clone();
        let state = self.parts.state.clone();
        let incarnation = self.membership.borrow().incarnation.clone();
        // The heartbeat stops first, or it would register again once the item is gone.
        self.heartbeat_task = None;
        if !released.is_empty()
            && let Ok(snapshot) = state.scan().await
        {
            let live: Vec<_> = snapshot
                .workers
                .iter()
                .filter(|w| !w.fenced && w.worker_id != me)
                .collect();
            if !live.is_empty() {
                let mut by_worker: HashMap<usize, Vec<Assignment>> = HashMap::new();
                for (i, shard) in released.into_iter().enumerate() {
                    by_worker
                        .entry(i % live.len())
                        .or_default()
                        .push(Assignment {
                            shard_id: shard,
                            counter: 0,
                            owner: None,
                            steal: false,
                            give_to: None,
                            handoff: false,
                        });
                }
                let mut calls: Vec<(String, String, Vec<Assignment>)> = Vec::new();
                for (w, assignments) in by_worker {
                    for chunk in assignments.chunks(PLAN_CHUNK) {
                        let worker = live[w];
                        calls.push((
                            worker.worker_id.clone(),
                            worker.incarnation.clone(),
                            chunk.to_vec(),
                        ));
                    }
                }
                let mut writes = futures_util::stream::iter(calls.into_iter().map(
                    |(worker, incarnation, chunk)| {
                        let state = state.clone();
                        async move { state.assign(&worker, &incarnation, &chunk).await }
                    },
                ))
                .buffer_unordered(CALL_CONCURRENCY);
                while let Some(result) = writes.next().await {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "handing a lease on failed; the leader will");
                    }
                }
            }
        }
        if !incarnation.is_empty()
            && let Err(e) = state.deregister(&me, &incarnation).await
        {
            tracing::debug!(error = %e, "removing the worker's item failed; the leader will");
        }
        let version = self.parts.leading.borrow().clone();
        if let Some(version) = version {
            if let Err(e) = state.release_lock(&me, &version).await {
                tracing::debug!(error = %e, "releasing the leader lock failed; it will expire");
            }
            let _ = self.parts.leading.send(None);
        }
    }
}
