//! Loading the shard map in the background, and acting on a new one.

use std::collections::HashMap;
use std::sync::Arc;

use kinesis_common::shard_map::{self, ShardMap};
use kinesis_common::{ErrorKind, ServiceError};
use tokio::time::Instant;

use super::{Engine, Landed, clone_service_error};
use crate::error::ProduceError;
use crate::stats;

/// A ListShards result: every shard (open and closed) or the error.
pub(super) type RefreshResult = Result<Vec<aws_sdk_kinesis::types::Shard>, ServiceError>;

/// The longest a whole shard map load (every ListShards page) may take: three request
/// timeouts. A load that hangs fails as transient and is retried after a backoff, so one
/// stuck call can never stop refreshes for good.
pub(super) fn refresh_timeout(request_timeout: std::time::Duration) -> std::time::Duration {
    request_timeout * 3
}

/// The result of a finished refresh task (a panic becomes a transient failure).
pub(super) fn joined(joined: Result<RefreshResult, tokio::task::JoinError>) -> RefreshResult {
    joined.unwrap_or_else(|e| {
        Err(ServiceError {
            operation: "ListShards",
            kind: ErrorKind::Transient,
            code: None,
            http_status: None,
            message: format!("refresh task failed: {e}"),
            source: None,
        })
    })
}

impl Engine {
    /// Asks for a refresh as soon as possible.
    pub(super) fn request_refresh(&mut self, now: Instant) {
        self.next_refresh = self.next_refresh.min(now);
    }

    /// When the next ListShards should start, if one should.
    pub(super) fn refresh_due_at(&self) -> Option<Instant> {
        let idle_closing = self.closing() && self.map.is_some() && self.verify.is_empty();
        (self.refresh.is_empty() && !idle_closing).then_some(self.next_refresh)
    }

    /// Starts a ListShards task when one is due and none is running.
    pub(super) fn maybe_refresh(&mut self, now: Instant) {
        if self.refresh_due_at().is_none_or(|at| at > now) {
            return;
        }
        let client = self.client.clone();
        let stream = self.stream.clone();
        let timeout = refresh_timeout(self.cfg.request_timeout);
        self.refresh.spawn(async move {
            match tokio::time::timeout(timeout, shard_map::list_shards(&client, &stream, false))
                .await
            {
                Ok(result) => result,
                Err(_) => Err(ServiceError::timed_out("ListShards", timeout)),
            }
        });
    }

    pub(super) fn on_refresh(&mut self, result: RefreshResult, now: Instant) {
        let shards = match result {
            Ok(shards) => shards,
            Err(error) => return self.on_refresh_failed(error, now),
        };
        let open: Vec<_> = shards
            .iter()
            .filter(|s| shard_map::is_open(s))
            .cloned()
            .collect();
        let map = match ShardMap::from_sdk_shards(&open) {
            Ok(map) => map,
            Err(e) => {
                // A reshard caught halfway, or a server with odd ranges: try again shortly.
                tracing::warn!(error = %e, "shard map incomplete; retrying");
                let error = ServiceError {
                    operation: "ListShards",
                    kind: ErrorKind::Transient,
                    code: None,
                    http_status: None,
                    message: e.to_string(),
                    source: None,
                };
                return self.on_refresh_failed(error, now);
            }
        };
        self.refresh_failures = 0;
        self.map_error = None;
        self.next_refresh = now + self.cfg.shard_map_refresh_interval;
        stats::add(&self.stats.shard_map_refreshes, 1);
        self.known_ranges = shards
            .iter()
            .filter_map(|s| shard_map::shard_range(s).ok())
            .map(|r| (r.shard_id.clone(), r))
            .collect::<HashMap<_, _>>();
        let changed = self.map.as_ref().is_none_or(|old| old.as_ref() != &map);
        if changed {
            tracing::debug!(shards = map.len(), "shard map loaded");
        }
        let open: std::collections::HashSet<&str> =
            map.shards().iter().map(|s| s.shard_id.as_str()).collect();
        self.gates.retain(|id, _| open.contains(id.as_str()));
        let admission = self.admission.clone();
        admission.install(&map, |id| self.gate(id));
        self.map = Some(Arc::new(map));
        self.shards.forget_positions();

        // Shards that closed: everything they hold goes through routing again.
        let open_ids: std::collections::HashSet<String> = self
            .map
            .iter()
            .flat_map(|m| m.shards().iter().map(|s| s.shard_id.clone()))
            .collect();
        let closed: Vec<String> = self
            .shards
            .keys()
            .filter(|id| !open_ids.contains(*id))
            .cloned()
            .collect();
        let mut reroute = std::mem::take(&mut self.unrouted);
        for id in closed {
            if let Some(mut shard) = self.shards.remove(&id) {
                if let Some(order) = self.order.as_mut() {
                    order.shard_closed(&shard.range);
                }
                reroute.extend(shard.drain());
            }
        }
        self.cursor = 0;
        self.route_returned(reroute, None, now);
        // Landed aggregates were sent before anything still queued: under per-key order
        // their records that must go again go to the very front.
        self.verify_landed(now);
    }

    fn on_refresh_failed(&mut self, error: ServiceError, now: Instant) {
        self.refresh_failures += 1;
        let delay = self
            .cfg
            .backoff
            .delay(self.refresh_failures.min(16), &mut self.rng)
            .max(std::time::Duration::from_millis(50));
        self.next_refresh = now + delay;
        if error.kind == ErrorKind::Fatal && self.map.is_none() {
            // The stream is missing or access is denied: fail what waits, and keep looking
            // in case the stream appears.
            tracing::warn!(error = %error, "cannot load the shard map");
            for ticket in std::mem::take(&mut self.unrouted) {
                let source = clone_service_error(&error);
                self.fail(ticket, ProduceError::Service { source });
            }
            self.next_refresh = now
                + self
                    .cfg
                    .shard_map_refresh_interval
                    .min(std::time::Duration::from_secs(5));
            self.map_error = Some(error);
        } else {
            tracing::debug!(error = %error, "shard map refresh failed; retrying");
        }
    }

    /// Checks aggregates that landed on an unexpected shard against that shard's range:
    /// records it owns are put; the others are sent again, since KCL would drop them.
    fn verify_landed(&mut self, now: Instant) {
        let (mut predicted, mut again) = (Vec::new(), Vec::new());
        for landed in std::mem::take(&mut self.verify) {
            let Landed {
                entry,
                shard_id,
                sequence_number,
                started,
            } = landed;
            let range = self.known_ranges.get(&shard_id).cloned();
            self.stats.kinesis_record_put(entry.size());
            let metrics = self.shard_metrics(&shard_id).clone();
            metrics.kinesis_records_put.increment(1);
            metrics.bytes_put.increment(entry.size() as u64);
            predicted.push(entry.shard_id);
            let landing = crate::result::Landing::new(&shard_id, &sequence_number);
            for (index, ticket) in entry.tickets.into_iter().enumerate() {
                if range.as_ref().is_some_and(|r| r.contains(ticket.hash_key)) {
                    metrics.user_records_put.increment(1);
                    self.succeed_ticket(ticket, &landing, Some(index as u64), started);
                } else {
                    stats::add(&self.stats.wrong_shard_resends, 1);
                    again.push(ticket);
                }
            }
        }
        // Sent again (to the front of their shards' queues under per-key order) before the
        // shards they were predicted for are settled and their children may go on.
        self.route_returned(again, None, now);
        for shard_id in predicted {
            self.settled(&shard_id);
        }
    }
}
