//! The coordinator table (`<lease table>-Coordinator`, hash key `key`): the leader's lock and
//! one small heartbeat item per worker, through which the leader hands out leases.
//!
//! ```text
//!  key = "Leader"       ownerName (S)  recordVersionNumber (S, new on every renewal)  leaseDuration (S, ms)
//!  key = "Worker#<id>"  workerId (S)  heartbeatCounter (N)  incarnation (S)  leaseCapacity (N)
//!                       isFenced (BOOL, set by the leader)  isStandby (BOOL, set by the leader)
//!                       assignments (M: shard id → {c: counter seen (N), o: owner seen (S),
//!                                                   st: steal (BOOL),
//!                                                   g: give to (S): hand the lease, once
//!                                                      stopped, to this worker of the
//!                                                      real KCL})
//! ```
//!
//! A worker's heartbeat is an UpdateItem that returns the item, so it learns what the leader
//! assigned it without a read. Every write is conditional on the incarnation that wrote the
//! item, so a restarted worker never acts on its predecessor's plan.

mod stream_claim;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity, ReturnValue};
use kinesis_common::ServiceError;

use super::heartbeat::HeartbeatSettings;
use crate::lease::Lease;
use crate::lease::capacity::CapacityMeter;
use crate::lease::dynamo::{conditional, ensure_table, n, s, scan_all};

const KEY: &str = "key";
const LEADER_KEY: &str = "Leader";
const WORKER_PREFIX: &str = "Worker#";

/// At most this many plan entries go into one write (an update expression is ≤ 4 KB).
pub(crate) const PLAN_CHUNK: usize = 20;

/// A lease the leader asks a worker to take, as the leader saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Assignment {
    pub shard_id: String,
    pub counter: u64,
    pub owner: Option<String>,
    /// Taken from a live owner: the taker waits out the failover time before processing.
    pub steal: bool,
    /// Not a take: the worker holding the lease stops it and hands it to this worker (of
    /// the real KCL, which takes no orders from our leader, or, with `handoff`, of ours).
    pub give_to: Option<String>,
    /// A graceful handoff (KCL 3.x's `checkpointOwner` protocol): with `give_to`, the giver
    /// marks the lease first; without, the receiver waits for the lease to be handed over
    /// (or for the handoff timeout, then steals it).
    pub handoff: bool,
}

impl Assignment {
    /// The lease as the leader saw it, for a conditional take.
    pub(crate) fn seen(&self) -> Lease {
        let mut lease = Lease::new(self.shard_id.clone(), crate::lease::Checkpoint::TrimHorizon);
        lease.counter = self.counter;
        lease.owner = self.owner.clone();
        lease
    }
}

/// A worker's heartbeat item.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WorkerState {
    pub worker_id: String,
    pub heartbeat: u64,
    pub incarnation: String,
    pub capacity: usize,
    /// The worker's own failover time: it is fenced only after its heartbeat has stood
    /// still for the longer of this and the leader's.
    pub failover: Duration,
    /// The worker's throughput cap in KiB/s (`max_throughput_per_worker`).
    pub max_throughput_kbps: Option<f64>,
    pub fenced: bool,
    pub standby: bool,
    pub plan: Vec<Assignment>,
}

/// The leader's lock, as last read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeaderLock {
    pub owner: String,
    pub version: String,
    /// The holder's failover time: the lock is stale only after its version has stood still
    /// for the longer of this and the reader's.
    pub duration: Duration,
}

/// Everything in the table, from one scan.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    pub lock: Option<LeaderLock>,
    pub workers: Vec<WorkerState>,
}

#[derive(Clone)]
pub(crate) struct StateTable {
    client: aws_sdk_dynamodb::Client,
    name: String,
    meter: CapacityMeter,
}

impl std::fmt::Debug for StateTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateTable")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn worker_key(worker: &str) -> AttributeValue {
    s(format!("{WORKER_PREFIX}{worker}"))
}

fn text(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<u64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

fn flag(item: &HashMap<String, AttributeValue>, name: &str) -> bool {
    item.get(name).and_then(|v| v.as_bool().ok()).copied() == Some(true)
}

fn decode_plan(item: &HashMap<String, AttributeValue>) -> Vec<Assignment> {
    let Some(Ok(plan)) = item.get("assignments").map(|p| p.as_m()) else {
        return Vec::new();
    };
    let mut entries: Vec<Assignment> = plan
        .iter()
        .filter_map(|(shard, entry)| {
            let entry = entry.as_m().ok()?;
            Some(Assignment {
                shard_id: shard.clone(),
                counter: number(entry, "c")?,
                owner: text(entry, "o"),
                steal: flag(entry, "st"),
                give_to: text(entry, "g"),
                handoff: flag(entry, "h"),
            })
        })
        .collect();
    entries.sort_by(|a, b| a.shard_id.cmp(&b.shard_id));
    entries
}

fn decode_worker(item: &HashMap<String, AttributeValue>) -> Option<WorkerState> {
    Some(WorkerState {
        worker_id: text(item, "workerId")?,
        heartbeat: number(item, "heartbeatCounter")?,
        incarnation: text(item, "incarnation")?,
        capacity: number(item, "leaseCapacity").unwrap_or(u64::MAX) as usize,
        failover: Duration::from_millis(number(item, "failoverMillis").unwrap_or(0)),
        max_throughput_kbps: item
            .get("maxThroughputKBps")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok()),
        fenced: flag(item, "isFenced"),
        standby: flag(item, "isStandby"),
        plan: decode_plan(item),
    })
}

fn encode_entry(a: &Assignment) -> AttributeValue {
    let mut m = HashMap::from([
        ("c".to_owned(), n(a.counter)),
        ("st".to_owned(), AttributeValue::Bool(a.steal)),
    ]);
    if let Some(owner) = &a.owner {
        m.insert("o".to_owned(), s(owner));
    }
    if let Some(to) = &a.give_to {
        m.insert("g".to_owned(), s(to));
    }
    if a.handoff {
        m.insert("h".to_owned(), AttributeValue::Bool(true));
    }
    AttributeValue::M(m)
}

/// A fresh random token (incarnations and lock versions).
pub(crate) fn token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

impl StateTable {
    pub(crate) fn new(
        client: aws_sdk_dynamodb::Client,
        name: impl Into<String>,
        meter: CapacityMeter,
    ) -> Self {
        StateTable {
            client,
            name: name.into(),
            meter,
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The capacity this worker's calls on the table consumed.
    pub(crate) fn meter(&self) -> &CapacityMeter {
        &self.meter
    }

    /// Creates the table (hash key `key`, with `options`) unless it exists, and waits until
    /// it is ACTIVE.
    pub(crate) async fn ensure_exists(
        &self,
        options: &crate::TableOptions,
    ) -> Result<(), ServiceError> {
        ensure_table(&self.client, &self.name, KEY, options).await
    }

    /// Every item, by eventually consistent scan (the leader's and standby's view of the
    /// fleet: a stale answer only delays a decision, every write is conditional).
    pub(crate) async fn scan(&self) -> Result<Snapshot, ServiceError> {
        let mut snapshot = Snapshot::default();
        for item in &scan_all(&self.client, &self.name, false, &self.meter).await? {
            match text(item, KEY).as_deref() {
                Some(LEADER_KEY) => snapshot.lock = decode_lock(item),
                Some(k) if k.starts_with(WORKER_PREFIX) => {
                    snapshot.workers.extend(decode_worker(item))
                }
                _ => {}
            }
        }
        snapshot
            .workers
            .sort_by(|a, b| a.worker_id.cmp(&b.worker_id));
        Ok(snapshot)
    }

    /// The lock, by eventually consistent read (a follower's occasional check).
    pub(crate) async fn lock(&self) -> Result<Option<LeaderLock>, ServiceError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.name)
            .key(KEY, s(LEADER_KEY))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| ServiceError::from_sdk("GetItem", e))?;
        self.meter.record("GetItem", out.consumed_capacity());
        Ok(out.item().and_then(decode_lock))
    }

    /// Takes the lock: if there is none, or at the version seen standing still. Returns the
    /// new version on success.
    pub(crate) async fn acquire(
        &self,
        seen: Option<&LeaderLock>,
        me: &str,
        duration: Duration,
    ) -> Result<Option<String>, ServiceError> {
        let version = token();
        let mut request = self
            .client
            .put_item()
            .table_name(&self.name)
            .item(KEY, s(LEADER_KEY))
            .item("ownerName", s(me))
            .item("recordVersionNumber", s(&version))
            .item("leaseDuration", s(duration.as_millis().to_string()))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        request = match seen {
            None => request
                .condition_expression("attribute_not_exists(#k)")
                .expression_attribute_names("#k", KEY),
            Some(lock) => request
                .condition_expression("recordVersionNumber = :seen")
                .expression_attribute_values(":seen", s(&lock.version)),
        };
        let result = request.send().await;
        Ok(conditional(&self.meter, "PutItem", result)?.map(|_| version))
    }

    /// Renews the lock we hold at `version`. Returns the new version, `None` if it is not ours.
    pub(crate) async fn renew_lock(
        &self,
        me: &str,
        version: &str,
    ) -> Result<Option<String>, ServiceError> {
        let next = token();
        let result = self
            .client
            .update_item()
            .table_name(&self.name)
            .key(KEY, s(LEADER_KEY))
            .update_expression("SET recordVersionNumber = :next")
            .condition_expression("ownerName = :me AND recordVersionNumber = :version")
            .expression_attribute_values(":next", s(&next))
            .expression_attribute_values(":me", s(me))
            .expression_attribute_values(":version", s(version))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        Ok(conditional(&self.meter, "UpdateItem", result)?.map(|_| next))
    }

    /// Gives the lock up (graceful shutdown), so a successor need not wait for it to expire.
    pub(crate) async fn release_lock(&self, me: &str, version: &str) -> Result<(), ServiceError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.name)
            .key(KEY, s(LEADER_KEY))
            .condition_expression("ownerName = :me AND recordVersionNumber = :version")
            .expression_attribute_values(":me", s(me))
            .expression_attribute_values(":version", s(version))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        conditional(&self.meter, "DeleteItem", result).map(|_| ())
    }

    /// Writes a new incarnation of this worker's item (start, or after being fenced).
    pub(crate) async fn register(
        &self,
        worker: &str,
        incarnation: &str,
        capacity: usize,
        settings: &HeartbeatSettings,
    ) -> Result<(), ServiceError> {
        let mut request = self
            .client
            .put_item()
            .table_name(&self.name)
            .item(KEY, worker_key(worker))
            .item("workerId", s(worker))
            .item("heartbeatCounter", n(0))
            .item("incarnation", s(incarnation))
            .item("leaseCapacity", n(capacity as u64))
            .item("failoverMillis", n(settings.failover.as_millis() as u64))
            .item("assignments", AttributeValue::M(HashMap::new()))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        if let Some(cap) = settings.max_throughput_kbps {
            request = request.item(
                "maxThroughputKBps",
                AttributeValue::N(crate::lease::format_kbps(cap)),
            );
        }
        let result = request.send().await;
        conditional(&self.meter, "PutItem", result).map(|_| ())
    }

    /// One heartbeat; returns the item as it now is, `None` if this incarnation was fenced
    /// (or replaced).
    pub(crate) async fn heartbeat(
        &self,
        worker: &str,
        incarnation: &str,
        capacity: usize,
    ) -> Result<Option<WorkerState>, ServiceError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.name)
            .key(KEY, worker_key(worker))
            .update_expression(
                "SET heartbeatCounter = heartbeatCounter + :one, leaseCapacity = :capacity",
            )
            .condition_expression("incarnation = :incarnation AND attribute_not_exists(isFenced)")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":capacity", n(capacity as u64))
            .expression_attribute_values(":incarnation", s(incarnation))
            .return_values(ReturnValue::AllNew)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        Ok(conditional(&self.meter, "UpdateItem", result)?
            .and_then(|out| out.attributes.as_ref().and_then(decode_worker)))
    }

    /// Fences a worker whose heartbeat stood still at `heartbeat`: it can never heartbeat
    /// again in this incarnation. Returns whether it was fenced.
    pub(crate) async fn fence(&self, worker: &WorkerState) -> Result<bool, ServiceError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.name)
            .key(KEY, worker_key(&worker.worker_id))
            .update_expression("SET isFenced = :yes")
            .condition_expression("heartbeatCounter = :heartbeat AND incarnation = :incarnation")
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .expression_attribute_values(":heartbeat", n(worker.heartbeat))
            .expression_attribute_values(":incarnation", s(&worker.incarnation))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        Ok(conditional(&self.meter, "UpdateItem", result)?.is_some())
    }

    /// Marks or unmarks a worker as the leader's standby.
    pub(crate) async fn set_standby(
        &self,
        worker: &WorkerState,
        standby: bool,
    ) -> Result<bool, ServiceError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.name)
            .key(KEY, worker_key(&worker.worker_id))
            .update_expression("SET isStandby = :standby")
            .condition_expression("incarnation = :incarnation")
            .expression_attribute_values(":standby", AttributeValue::Bool(standby))
            .expression_attribute_values(":incarnation", s(&worker.incarnation))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        Ok(conditional(&self.meter, "UpdateItem", result)?.is_some())
    }

    /// Adds assignments (at most [`PLAN_CHUNK`]) to a worker's plan. Returns whether the
    /// worker still had that incarnation.
    pub(crate) async fn assign(
        &self,
        worker: &str,
        incarnation: &str,
        assignments: &[Assignment],
    ) -> Result<bool, ServiceError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.name)
            .key(KEY, worker_key(worker))
            .condition_expression("incarnation = :incarnation AND attribute_not_exists(isFenced)")
            .expression_attribute_values(":incarnation", s(incarnation))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        let mut sets = Vec::with_capacity(assignments.len());
        for (i, a) in assignments.iter().enumerate() {
            sets.push(format!("assignments.#s{i} = :a{i}"));
            request = request
                .expression_attribute_names(format!("#s{i}"), &a.shard_id)
                .expression_attribute_values(format!(":a{i}"), encode_entry(a));
        }
        let result = request
            .update_expression(format!("SET {}", sets.join(", ")))
            .send()
            .await;
        Ok(conditional(&self.meter, "UpdateItem", result)?.is_some())
    }

    /// Removes plan entries a worker has acted on (at most [`PLAN_CHUNK`]).
    pub(crate) async fn done(
        &self,
        worker: &str,
        incarnation: &str,
        shards: &[String],
    ) -> Result<(), ServiceError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.name)
            .key(KEY, worker_key(worker))
            .condition_expression("incarnation = :incarnation")
            .expression_attribute_values(":incarnation", s(incarnation))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        let mut paths = Vec::with_capacity(shards.len());
        for (i, shard) in shards.iter().enumerate() {
            paths.push(format!("assignments.#s{i}"));
            request = request.expression_attribute_names(format!("#s{i}"), shard);
        }
        let result = request
            .update_expression(format!("REMOVE {}", paths.join(", ")))
            .send()
            .await;
        conditional(&self.meter, "UpdateItem", result).map(|_| ())
    }

    /// Removes this worker's item (graceful shutdown): the leader sees it gone at once.
    pub(crate) async fn deregister(
        &self,
        worker: &str,
        incarnation: &str,
    ) -> Result<(), ServiceError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.name)
            .key(KEY, worker_key(worker))
            .condition_expression("incarnation = :incarnation")
            .expression_attribute_values(":incarnation", s(incarnation))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        conditional(&self.meter, "DeleteItem", result).map(|_| ())
    }
}

fn decode_lock(item: &HashMap<String, AttributeValue>) -> Option<LeaderLock> {
    Some(LeaderLock {
        owner: text(item, "ownerName")?,
        version: text(item, "recordVersionNumber")?,
        duration: Duration::from_millis(
            text(item, "leaseDuration")
                .and_then(|d| d.parse().ok())
                .unwrap_or(0),
        ),
    })
}
