//! Following the leader's plan: what the heartbeat brings back from this worker's item is
//! taken, given away or awaited.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::Instant;

use super::{CALL_CONCURRENCY, Coordinator, GiveKind};
use crate::fleet::state_table::{Assignment, PLAN_CHUNK};
use crate::processor::ProcessorFactory;

impl<F: ProcessorFactory> Coordinator<F> {
    /// Acts on the heartbeat's news: drops everything when fenced, takes what the plan says.
    pub(super) async fn follow_plan(&mut self) {
        let membership = self.membership.borrow_and_update().clone();
        if membership.fenced != self.fenced {
            self.fenced = membership.fenced;
            let shards: Vec<String> = self.held.keys().cloned().collect();
            for shard in shards {
                self.lose(&shard);
            }
            self.done.clear();
            self.awaiting.clear();
        }
        let Some(state) = membership
            .state
            .filter(|s| s.incarnation == membership.incarnation)
        else {
            return;
        };
        // Entries gone from the plan need no memory any more.
        self.done
            .retain(|shard, _| state.plan.iter().any(|a| a.shard_id == *shard));
        // A give stays in the plan until its hand-over is over, so that the leader counts
        // the lease as the receiver's meanwhile and gives no other in its place.
        let gives_over: Vec<String> = state
            .plan
            .iter()
            .filter(|a| {
                a.give_to.is_some()
                    && self.done.get(&a.shard_id) == Some(&a.counter)
                    && !self.giving.contains_key(&a.shard_id)
            })
            .map(|a| a.shard_id.clone())
            .collect();
        // A handoff still awaited that the leader turned into a take (its giver was fenced
        // meanwhile) is new, even at the same counter.
        let todo: Vec<Assignment> = state
            .plan
            .into_iter()
            .filter(|a| {
                self.done.get(&a.shard_id) != Some(&a.counter)
                    || (!a.handoff && a.give_to.is_none() && self.is_awaiting(&a.shard_id))
            })
            .collect();
        if todo.is_empty() && gives_over.is_empty() {
            return;
        }
        let cfg = self.parts.config.clone();
        let mut takes = Vec::new();
        for a in &todo {
            self.done.insert(a.shard_id.clone(), a.counter);
            if let Some(to) = &a.give_to {
                let kind = if a.handoff {
                    GiveKind::Handoff
                } else {
                    GiveKind::ToKcl
                };
                self.give(&a.shard_id, to, kind).await;
            } else if a.handoff {
                self.await_handoff(a.clone());
            } else if self.awaiting.remove(&a.shard_id).is_some() {
                // Its giver was fenced: the leader found the lease free.
                takes.push(a.clone());
            } else if !self.held.contains_key(&a.shard_id)
                && !self.stopping.contains_key(&a.shard_id)
            {
                takes.push(a.clone());
            }
        }
        let table = self.parts.table.clone();
        let me = cfg.worker_id.clone();
        let mut results = futures_util::stream::iter(takes.into_iter().map(|a| {
            let (table, me) = (table.clone(), me.clone());
            async move {
                let sent = Instant::now();
                let result = table.take(&a.seen(), &me, a.steal).await;
                (a, sent, result)
            }
        }))
        .buffer_unordered(CALL_CONCURRENCY);
        while let Some((a, sent, result)) = results.next().await {
            match result {
                Ok(Some(lease)) => {
                    // Stolen from a live worker: it stops at its next renewal, or at the
                    // latest at its deadline, which passes within the failover time of our
                    // take; until then the shard waits, so it is never processed twice.
                    let delay = if a.steal {
                        cfg.failover_time
                    } else {
                        Duration::ZERO
                    };
                    tracing::info!(shard = %lease.shard_id, from = ?a.owner, stolen = a.steal, "lease taken");
                    self.parts.telemetry.leases_taken.increment(1);
                    if a.steal {
                        self.parts.telemetry.leases_stolen.increment(1);
                    }
                    self.start(lease, sent, delay);
                }
                Ok(None) => {
                    tracing::debug!(shard = %a.shard_id, "assigned lease moved before it was taken")
                }
                Err(e) => {
                    tracing::warn!(shard = %a.shard_id, error = %e, "taking a lease failed")
                }
            }
        }
        let mut shards: Vec<String> = todo
            .into_iter()
            .filter(|a| a.give_to.is_none() || !self.giving.contains_key(&a.shard_id))
            .filter(|a| !self.is_awaiting(&a.shard_id))
            .map(|a| a.shard_id)
            .collect();
        shards.extend(gives_over);
        for chunk in shards.chunks(PLAN_CHUNK) {
            let call = self.parts.state.done(&me, &membership.incarnation, chunk);
            if let Err(e) = call.await {
                tracing::debug!(error = %e, "clearing done assignments failed; they are ignored");
            }
        }
    }
}
