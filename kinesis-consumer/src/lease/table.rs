//! The lease table's DynamoDB operations, each a conditional write on what was read.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity, ReturnValue};
use kinesis_common::ServiceError;

use super::capacity::CapacityMeter;
use super::dynamo::{Consumed, conditional, ensure_table, n, s, scan_all};
use super::item::*;
use super::kcl_workers::{KclWorker, legacy_table};
use super::{Checkpoint, Lease, LeaseDecodeError};

/// Fences an update on ownership.
const OWNER_ONLY: &str = "leaseOwner = :owner";
/// The same, or on being the `checkpointOwner` of a handoff under way (which may still
/// checkpoint, and hands the lease over).
const OWNER_OR_HANDING_OFF: &str = "leaseOwner = :owner OR checkpointOwner = :owner";

/// A renewal's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Renewed {
    /// The counter now.
    pub counter: u64,
    /// A graceful handoff of the lease to this worker has begun (we are its
    /// `checkpointOwner`; KCL 3.x's leader begins them too).
    pub handoff_to: Option<String>,
}

/// What one scan of the lease table holds.
#[derive(Debug, Default)]
pub(crate) struct LeaseScan {
    pub leases: Vec<Lease>,
    /// Workers of the real KCL sharing the table.
    pub kcl_workers: Vec<KclWorker>,
}

#[derive(Clone)]
pub(crate) struct LeaseTable {
    client: aws_sdk_dynamodb::Client,
    name: String,
    meter: CapacityMeter,
}

impl std::fmt::Debug for LeaseTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseTable")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl LeaseTable {
    pub(crate) fn new(client: aws_sdk_dynamodb::Client, name: impl Into<String>) -> Self {
        LeaseTable {
            client,
            name: name.into(),
            meter: CapacityMeter::default(),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The capacity this worker's calls on the table consumed.
    pub(crate) fn meter(&self) -> &CapacityMeter {
        &self.meter
    }

    fn conditional<T: Consumed, E>(
        &self,
        operation: &'static str,
        result: Result<T, SdkError<E, aws_smithy_runtime_api::http::Response>>,
    ) -> Result<Option<T>, ServiceError>
    where
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata
            + std::error::Error
            + Send
            + Sync
            + 'static,
    {
        conditional(&self.meter, operation, result)
    }

    /// Creates the table (hash key `leaseKey`, with `options`) unless it exists, and waits
    /// until it is ACTIVE.
    pub(crate) async fn ensure_exists(
        &self,
        options: &super::TableOptions,
    ) -> Result<(), ServiceError> {
        ensure_table(&self.client, &self.name, LEASE_KEY, options).await
    }

    /// Every lease, by paginated scan, strongly or eventually consistent (half the read
    /// units). Items that are not leases are skipped.
    pub(crate) async fn list(&self, consistent: bool) -> Result<Vec<Lease>, ServiceError> {
        Ok(self.scan(consistent).await?.leases)
    }

    /// Every lease and every KCL worker's entry, by one paginated scan. KCL 3.5+ keeps its
    /// lock, migration state and worker metrics in the lease table too: those are not
    /// leases; anything else unreadable is skipped with a warning.
    pub(crate) async fn scan(&self, consistent: bool) -> Result<LeaseScan, ServiceError> {
        let items = scan_all(&self.client, &self.name, consistent, &self.meter).await?;
        let mut scan = LeaseScan {
            leases: Vec::with_capacity(items.len()),
            kcl_workers: Vec::new(),
        };
        for item in &items {
            match Lease::from_item(item) {
                Ok(lease) => scan.leases.push(lease),
                Err(LeaseDecodeError::OtherEntity { .. }) => {
                    scan.kcl_workers.extend(KclWorker::from_item(item));
                }
                Err(e) => {
                    tracing::warn!(error = %e, table = %self.name, "skipping an item that is not a lease")
                }
            }
        }
        Ok(scan)
    }

    /// The KCL 3.0–3.4 workers reporting in the legacy worker-metrics table; none when it
    /// does not exist (a fleet without them, or one on KCL 3.5's single table).
    pub(crate) async fn legacy_kcl_workers(&self) -> Result<Vec<KclWorker>, ServiceError> {
        let table = legacy_table(&self.name);
        match scan_all(&self.client, &table, false, &self.meter).await {
            Ok(items) => Ok(items
                .iter()
                .filter_map(KclWorker::from_legacy_item)
                .collect()),
            Err(e) if e.code.as_deref() == Some("ResourceNotFoundException") => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Creates a lease unless one exists. Returns whether it was created.
    pub(crate) async fn create_if_absent(&self, lease: &Lease) -> Result<bool, ServiceError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(lease.to_item()))
            .condition_expression("attribute_not_exists(leaseKey)")
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        Ok(self.conditional("PutItem", result)?.is_some())
    }

    /// One lease by strongly consistent read; `None` if it has no item.
    pub(crate) async fn get(&self, shard_id: &str) -> Result<Option<Lease>, ServiceError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.name)
            .key(LEASE_KEY, s(shard_id))
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| ServiceError::from_sdk("GetItem", e))?;
        self.meter.record("GetItem", out.consumed());
        Ok(out.item().and_then(|item| Lease::from_item(item).ok()))
    }

    /// Bumps the counter of a lease we hold and writes its throughput when measured. `None`:
    /// it is no longer ours at that counter. A lease whose handoff has begun (KCL 3.x's
    /// `checkpointOwner` = us, `leaseOwner` = the next owner) is still renewed, and the
    /// answer says who it goes to.
    pub(crate) async fn renew(
        &self,
        shard_id: &str,
        owner: &str,
        counter: u64,
        throughput_kbps: Option<f64>,
    ) -> Result<Option<Renewed>, ServiceError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.name)
            .key(LEASE_KEY, s(shard_id))
            .condition_expression(
                "leaseCounter = :counter AND (leaseOwner = :owner OR checkpointOwner = :owner)",
            )
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":counter", n(counter))
            .return_values(ReturnValue::AllNew)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        request = match throughput_kbps {
            // Written with the renewal, as KCL 3.x does: no extra call, no extra unit.
            Some(kbps) => request
                .update_expression("SET leaseCounter = leaseCounter + :one, throughputKBps = :kbps")
                .expression_attribute_values(
                    ":kbps",
                    AttributeValue::N(super::item::format_kbps(kbps)),
                ),
            None => request.update_expression("SET leaseCounter = leaseCounter + :one"),
        };
        let result = request.send().await;
        Ok(self.conditional("UpdateItem", result)?.map(|out| {
            let lease = out
                .attributes
                .as_ref()
                .and_then(|a| Lease::from_item(a).ok());
            let handoff_to = lease.and_then(|l| {
                (l.checkpoint_owner.as_deref() == Some(owner))
                    .then_some(l.owner)
                    .flatten()
                    .filter(|to| to != owner)
            });
            Renewed {
                counter: counter + 1,
                handoff_to,
            }
        }))
    }

    /// Begins a graceful handoff of a lease we hold, as KCL 3.x's leader does: `leaseOwner`
    /// becomes `to` and `checkpointOwner` us, the counter unchanged, so we keep renewing and
    /// may checkpoint until we hand it over. Returns whether it was ours and not already
    /// being handed off.
    pub(crate) async fn begin_handoff(
        &self,
        shard_id: &str,
        owner: &str,
        to: &str,
    ) -> Result<bool, ServiceError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.name)
            .key(LEASE_KEY, s(shard_id))
            .update_expression("SET leaseOwner = :to, checkpointOwner = :owner")
            .condition_expression("leaseOwner = :owner AND attribute_not_exists(checkpointOwner)")
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":to", s(to))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        Ok(self.conditional("UpdateItem", result)?.is_some())
    }

    /// Takes a lease as it was seen. `None`: someone moved first.
    ///
    /// An unowned lease is taken if it still has no owner; an expired one only at the
    /// counter seen (it stood still for the failover time, so its owner stopped); a `steal`
    /// from a live owner only needs that owner still to hold it, at whatever counter, since
    /// the thief starts only after the failover time, when the victim has stopped.
    pub(crate) async fn take(
        &self,
        seen: &Lease,
        owner: &str,
        steal: bool,
    ) -> Result<Option<Lease>, ServiceError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.name)
            .key(LEASE_KEY, s(&seen.shard_id))
            // `checkpointOwner` marks a KCL 3.x handoff in progress; a take ends it.
            .update_expression(
                "SET leaseOwner = :owner, leaseCounter = leaseCounter + :one, \
                 ownerSwitchesSinceCheckpoint = if_not_exists(ownerSwitchesSinceCheckpoint, :zero) + :switch \
                 REMOVE checkpointOwner",
            )
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":switch", n(u64::from(seen.owner.as_deref() != Some(owner))))
            .return_values(ReturnValue::AllNew)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        request = match &seen.owner {
            Some(previous) if steal => request
                .condition_expression("leaseOwner = :previous")
                .expression_attribute_values(":previous", s(previous)),
            Some(previous) => request
                .condition_expression("leaseCounter = :counter AND leaseOwner = :previous")
                .expression_attribute_values(":counter", n(seen.counter))
                .expression_attribute_values(":previous", s(previous)),
            None => request
                .condition_expression(
                    "attribute_exists(leaseKey) AND (attribute_not_exists(leaseOwner) OR leaseOwner = :empty)",
                )
                .expression_attribute_values(":empty", s("")),
        };
        let result = request.send().await;
        Ok(self.conditional("UpdateItem", result)?.and_then(|out| {
            out.attributes
                .as_ref()
                .and_then(|a| Lease::from_item(a).ok())
        }))
    }

    /// An update of a lease fenced by ownership: applied only while `owner` holds it.
    /// Returns whether it was applied.
    async fn update_owned(
        &self,
        shard_id: &str,
        owner: &str,
        expression: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<bool, ServiceError> {
        self.update_fenced(shard_id, OWNER_ONLY, owner, expression, values)
            .await
    }

    /// An update applied only while `condition` (on `:owner`) holds.
    async fn update_fenced(
        &self,
        shard_id: &str,
        condition: &str,
        owner: &str,
        expression: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<bool, ServiceError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.name)
            .key(LEASE_KEY, s(shard_id))
            .update_expression(expression)
            .condition_expression(condition)
            .expression_attribute_values(":owner", s(owner))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        for (name, value) in values {
            request = request.expression_attribute_values(name, value);
        }
        Ok(self
            .conditional("UpdateItem", request.send().await)?
            .is_some())
    }

    /// Gives a lease up so another worker can take it at once. Returns whether it was ours.
    pub(crate) async fn release(&self, shard_id: &str, owner: &str) -> Result<bool, ServiceError> {
        self.update_owned(
            shard_id,
            owner,
            "REMOVE leaseOwner SET leaseCounter = leaseCounter + :one",
            vec![(":one", n(1))],
        )
        .await
    }

    /// Hands a lease this worker has stopped processing straight to another worker (KCL's
    /// `assignLease`: new owner, counter and owner switches bumped, any `checkpointOwner`
    /// handoff mark cleared). Returns whether it was still ours (as owner, or as
    /// `checkpointOwner` of a handoff begun).
    pub(crate) async fn hand_over(
        &self,
        shard_id: &str,
        owner: &str,
        to: &str,
    ) -> Result<bool, ServiceError> {
        self.update_fenced(
            shard_id,
            OWNER_OR_HANDING_OFF,
            owner,
            "SET leaseOwner = :to, leaseCounter = leaseCounter + :one, \
             ownerSwitchesSinceCheckpoint = if_not_exists(ownerSwitchesSinceCheckpoint, :zero) + :one \
             REMOVE checkpointOwner",
            vec![(":to", s(to)), (":one", n(1)), (":zero", n(0))],
        )
        .await
    }

    /// Writes a checkpoint, fenced by ownership (or by `checkpointOwner` while a handoff is
    /// under way). Returns whether the lease was still ours.
    pub(crate) async fn checkpoint(
        &self,
        shard_id: &str,
        owner: &str,
        checkpoint: &Checkpoint,
        sub_sequence: u64,
    ) -> Result<bool, ServiceError> {
        self.update_fenced(
            shard_id,
            OWNER_OR_HANDING_OFF,
            owner,
            "SET checkpoint = :checkpoint, checkpointSubSequenceNumber = :sub, ownerSwitchesSinceCheckpoint = :zero \
             REMOVE pendingCheckpoint, pendingCheckpointSubSequenceNumber",
            vec![
                (":checkpoint", s(checkpoint.as_str())),
                (":sub", n(sub_sequence)),
                (":zero", n(0)),
            ],
        )
        .await
    }

    /// Writes a pending checkpoint (first phase of a two-phase checkpoint).
    pub(crate) async fn prepare_checkpoint(
        &self,
        shard_id: &str,
        owner: &str,
        sequence: &str,
        sub_sequence: u64,
    ) -> Result<bool, ServiceError> {
        self.update_fenced(
            shard_id,
            OWNER_OR_HANDING_OFF,
            owner,
            "SET pendingCheckpoint = :seq, pendingCheckpointSubSequenceNumber = :sub",
            vec![(":seq", s(sequence)), (":sub", n(sub_sequence))],
        )
        .await
    }

    /// Records a finished shard's children on its lease (for tools and cleanup).
    pub(crate) async fn set_children(
        &self,
        shard_id: &str,
        children: &[String],
    ) -> Result<(), ServiceError> {
        if children.is_empty() {
            return Ok(());
        }
        let result = self
            .client
            .update_item()
            .table_name(&self.name)
            .key(LEASE_KEY, s(shard_id))
            .update_expression("SET childShardIds = :children")
            .condition_expression("attribute_exists(leaseKey)")
            .expression_attribute_values(":children", AttributeValue::Ss(children.to_vec()))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        self.conditional("UpdateItem", result).map(|_| ())
    }

    /// Deletes the lease of a shard that no longer exists, unless its counter moved since
    /// `counter` was seen (someone still holds it). Returns whether it was deleted.
    pub(crate) async fn delete_vanished(
        &self,
        shard_id: &str,
        counter: u64,
    ) -> Result<bool, ServiceError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.name)
            .key(LEASE_KEY, s(shard_id))
            .condition_expression("leaseCounter = :counter")
            .expression_attribute_values(":counter", n(counter))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        Ok(self.conditional("DeleteItem", result)?.is_some())
    }

    /// Deletes a lease whatever its state (a stream no longer tracked). Returns whether it
    /// was there.
    pub(crate) async fn delete_lease(&self, key: &str) -> Result<bool, ServiceError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.name)
            .key(LEASE_KEY, s(key))
            .condition_expression("attribute_exists(leaseKey)")
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        Ok(self.conditional("DeleteItem", result)?.is_some())
    }

    /// Deletes a finished lease.
    pub(crate) async fn delete_finished(&self, shard_id: &str) -> Result<bool, ServiceError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.name)
            .key(LEASE_KEY, s(shard_id))
            .condition_expression("checkpoint = :end")
            .expression_attribute_values(":end", s("SHARD_END"))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        Ok(self.conditional("DeleteItem", result)?.is_some())
    }
}
