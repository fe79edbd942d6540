//! A lease and its DynamoDB item, attribute for attribute as KCL writes it.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::Checkpoint;

/// One lease: a shard, who holds it, and how far it is processed.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    /// The lease key (`leaseKey`): the shard id in a single-stream table, as KCL;
    /// `account:stream:creationEpoch:shardId` in a multi-stream one (see
    /// [`Lease::kinesis_shard_id`]).
    pub shard_id: String,
    /// The worker holding it (`leaseOwner`), if any.
    pub owner: Option<String>,
    /// Bumped on every renewal and ownership change (`leaseCounter`).
    pub counter: u64,
    /// Processed position (`checkpoint`).
    pub checkpoint: Checkpoint,
    /// Sub-sequence number within the checkpointed aggregate (`checkpointSubSequenceNumber`).
    pub checkpoint_sub_sequence: u64,
    /// A prepared, not yet committed checkpoint (`pendingCheckpoint`).
    pub pending_checkpoint: Option<String>,
    /// Its sub-sequence number (`pendingCheckpointSubSequenceNumber`).
    pub pending_checkpoint_sub_sequence: Option<u64>,
    /// Owner changes since the last checkpoint (`ownerSwitchesSinceCheckpoint`).
    pub owner_switches_since_checkpoint: u64,
    /// Parent shards that must finish first (`parentShardId`).
    pub parent_shard_ids: Vec<String>,
    /// Child shards, once known (`childShardIds`).
    pub child_shard_ids: Vec<String>,
    /// First hash key of the shard (`startingHashKey`).
    pub starting_hash_key: Option<String>,
    /// Last hash key of the shard (`endingHashKey`).
    pub ending_hash_key: Option<String>,
    /// Bytes per second its owner reads from the shard, in KiB/s (`throughputKBps`, as KCL
    /// 3.x writes it with each renewal); `None` until an owner has measured it.
    pub throughput_kbps: Option<f64>,
    /// While a KCL 3.x graceful handoff is under way, the previous owner, which may still
    /// checkpoint before it hands the lease to `owner` (`checkpointOwner`).
    pub checkpoint_owner: Option<String>,
    /// In a multi-stream table, the stream (`streamName`: `account:stream:creationEpoch`,
    /// as KCL's `MultiStreamLease`).
    pub stream_identifier: Option<String>,
}

/// An item that is not a lease.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LeaseDecodeError {
    /// A required attribute is missing.
    #[error("lease item has no {attribute}")]
    Missing {
        /// The attribute.
        attribute: &'static str,
    },
    /// An item of another kind that KCL 3.5+ keeps in the lease table (`entityType` other
    /// than `LEASE`: its leader lock, migration state, worker metrics).
    #[error("item {key:?} is a KCL {entity_type} entry, not a lease")]
    OtherEntity {
        /// Its `leaseKey`.
        key: String,
        /// Its `entityType`.
        entity_type: String,
    },
    /// An attribute has the wrong type or an unreadable value.
    #[error("lease item attribute {attribute} is malformed: {reason}")]
    Malformed {
        /// The attribute.
        attribute: &'static str,
        /// What is wrong.
        reason: String,
    },
}

pub(crate) const LEASE_KEY: &str = "leaseKey";
pub(crate) const LEASE_OWNER: &str = "leaseOwner";
pub(crate) const LEASE_COUNTER: &str = "leaseCounter";
pub(crate) const CHECKPOINT: &str = "checkpoint";
pub(crate) const CHECKPOINT_SUB: &str = "checkpointSubSequenceNumber";
pub(crate) const PENDING_CHECKPOINT: &str = "pendingCheckpoint";
pub(crate) const PENDING_CHECKPOINT_SUB: &str = "pendingCheckpointSubSequenceNumber";
pub(crate) const OWNER_SWITCHES: &str = "ownerSwitchesSinceCheckpoint";
pub(crate) const PARENT_SHARD_ID: &str = "parentShardId";
pub(crate) const CHILD_SHARD_IDS: &str = "childShardIds";
pub(crate) const STARTING_HASH_KEY: &str = "startingHashKey";
pub(crate) const ENDING_HASH_KEY: &str = "endingHashKey";
pub(crate) const THROUGHPUT_KBPS: &str = "throughputKBps";
pub(crate) const CHECKPOINT_OWNER: &str = "checkpointOwner";
pub(crate) const STREAM_NAME: &str = "streamName";
pub(crate) const SHARD_ID: &str = "shardId";
/// KCL 3.5+ tags every item of the lease table with its kind; items without it are leases.
pub(crate) const ENTITY_TYPE: &str = "entityType";
pub(crate) const ENTITY_LEASE: &str = "LEASE";

fn string(
    item: &HashMap<String, AttributeValue>,
    attribute: &'static str,
) -> Result<Option<String>, LeaseDecodeError> {
    match item.get(attribute) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::S(s)) => Ok(Some(s.clone())),
        Some(other) => Err(LeaseDecodeError::Malformed {
            attribute,
            reason: format!("expected S, found {other:?}"),
        }),
    }
}

fn number(
    item: &HashMap<String, AttributeValue>,
    attribute: &'static str,
) -> Result<Option<u64>, LeaseDecodeError> {
    match item.get(attribute) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::N(n)) => {
            n.parse()
                .map(Some)
                .map_err(|e| LeaseDecodeError::Malformed {
                    attribute,
                    reason: format!("{n:?}: {e}"),
                })
        }
        Some(other) => Err(LeaseDecodeError::Malformed {
            attribute,
            reason: format!("expected N, found {other:?}"),
        }),
    }
}

/// A decimal number (KCL writes `throughputKBps` as a double); negative, infinite or
/// unreadable values are malformed.
fn decimal(
    item: &HashMap<String, AttributeValue>,
    attribute: &'static str,
) -> Result<Option<f64>, LeaseDecodeError> {
    match item.get(attribute) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::N(n)) => match n.parse::<f64>() {
            Ok(v) if v.is_finite() && v >= 0.0 => Ok(Some(v)),
            _ => Err(LeaseDecodeError::Malformed {
                attribute,
                reason: format!("{n:?} is not a non-negative number"),
            }),
        },
        Some(other) => Err(LeaseDecodeError::Malformed {
            attribute,
            reason: format!("expected N, found {other:?}"),
        }),
    }
}

/// How a throughput is written: KiB/s with three decimals, as a DynamoDB number.
pub(crate) fn format_kbps(kbps: f64) -> String {
    format!("{:.3}", kbps.max(0.0))
}

fn string_set(
    item: &HashMap<String, AttributeValue>,
    attribute: &'static str,
) -> Result<Vec<String>, LeaseDecodeError> {
    match item.get(attribute) {
        None | Some(AttributeValue::Null(_)) => Ok(Vec::new()),
        Some(AttributeValue::Ss(v)) => Ok(v.clone()),
        // Some writers store a single parent as a plain string.
        Some(AttributeValue::S(s)) => Ok(vec![s.clone()]),
        Some(other) => Err(LeaseDecodeError::Malformed {
            attribute,
            reason: format!("expected SS, found {other:?}"),
        }),
    }
}

impl Lease {
    /// A new, unowned lease for a shard.
    pub fn new(shard_id: impl Into<String>, checkpoint: Checkpoint) -> Self {
        Lease {
            shard_id: shard_id.into(),
            owner: None,
            counter: 0,
            checkpoint,
            checkpoint_sub_sequence: 0,
            pending_checkpoint: None,
            pending_checkpoint_sub_sequence: None,
            owner_switches_since_checkpoint: 0,
            parent_shard_ids: Vec::new(),
            child_shard_ids: Vec::new(),
            starting_hash_key: None,
            ending_hash_key: None,
            throughput_kbps: None,
            checkpoint_owner: None,
            stream_identifier: None,
        }
    }

    /// Reads a lease from a DynamoDB item.
    pub fn from_item(item: &HashMap<String, AttributeValue>) -> Result<Lease, LeaseDecodeError> {
        let shard_id = string(item, LEASE_KEY)?.ok_or(LeaseDecodeError::Missing {
            attribute: LEASE_KEY,
        })?;
        if let Some(entity_type) = string(item, ENTITY_TYPE)?.filter(|t| t != ENTITY_LEASE) {
            return Err(LeaseDecodeError::OtherEntity {
                key: shard_id,
                entity_type,
            });
        }
        let checkpoint = string(item, CHECKPOINT)?
            .map(|c| Checkpoint::parse(&c))
            .unwrap_or(Checkpoint::TrimHorizon);
        Ok(Lease {
            shard_id,
            owner: string(item, LEASE_OWNER)?.filter(|o| !o.is_empty()),
            counter: number(item, LEASE_COUNTER)?.unwrap_or(0),
            checkpoint,
            checkpoint_sub_sequence: number(item, CHECKPOINT_SUB)?.unwrap_or(0),
            pending_checkpoint: string(item, PENDING_CHECKPOINT)?,
            pending_checkpoint_sub_sequence: number(item, PENDING_CHECKPOINT_SUB)?,
            owner_switches_since_checkpoint: number(item, OWNER_SWITCHES)?.unwrap_or(0),
            parent_shard_ids: string_set(item, PARENT_SHARD_ID)?,
            child_shard_ids: string_set(item, CHILD_SHARD_IDS)?,
            starting_hash_key: string(item, STARTING_HASH_KEY)?,
            ending_hash_key: string(item, ENDING_HASH_KEY)?,
            throughput_kbps: decimal(item, THROUGHPUT_KBPS)?,
            checkpoint_owner: string(item, CHECKPOINT_OWNER)?.filter(|o| !o.is_empty()),
            stream_identifier: string(item, STREAM_NAME)?,
        })
    }

    /// The item KCL would store for this lease.
    pub fn to_item(&self) -> HashMap<String, AttributeValue> {
        let mut item = HashMap::new();
        item.insert(LEASE_KEY.into(), AttributeValue::S(self.shard_id.clone()));
        item.insert(ENTITY_TYPE.into(), AttributeValue::S(ENTITY_LEASE.into()));
        if let Some(owner) = &self.owner {
            item.insert(LEASE_OWNER.into(), AttributeValue::S(owner.clone()));
        }
        item.insert(
            LEASE_COUNTER.into(),
            AttributeValue::N(self.counter.to_string()),
        );
        item.insert(
            CHECKPOINT.into(),
            AttributeValue::S(self.checkpoint.to_string()),
        );
        item.insert(
            CHECKPOINT_SUB.into(),
            AttributeValue::N(self.checkpoint_sub_sequence.to_string()),
        );
        if let Some(pending) = &self.pending_checkpoint {
            item.insert(
                PENDING_CHECKPOINT.into(),
                AttributeValue::S(pending.clone()),
            );
        }
        if let Some(sub) = self.pending_checkpoint_sub_sequence {
            item.insert(
                PENDING_CHECKPOINT_SUB.into(),
                AttributeValue::N(sub.to_string()),
            );
        }
        item.insert(
            OWNER_SWITCHES.into(),
            AttributeValue::N(self.owner_switches_since_checkpoint.to_string()),
        );
        // DynamoDB refuses empty sets: the attribute is left out instead.
        if !self.parent_shard_ids.is_empty() {
            item.insert(
                PARENT_SHARD_ID.into(),
                AttributeValue::Ss(self.parent_shard_ids.clone()),
            );
        }
        if !self.child_shard_ids.is_empty() {
            item.insert(
                CHILD_SHARD_IDS.into(),
                AttributeValue::Ss(self.child_shard_ids.clone()),
            );
        }
        if let Some(k) = &self.starting_hash_key {
            item.insert(STARTING_HASH_KEY.into(), AttributeValue::S(k.clone()));
        }
        if let Some(k) = &self.ending_hash_key {
            item.insert(ENDING_HASH_KEY.into(), AttributeValue::S(k.clone()));
        }
        if let Some(stream) = &self.stream_identifier {
            item.insert(STREAM_NAME.into(), AttributeValue::S(stream.clone()));
            item.insert(
                SHARD_ID.into(),
                AttributeValue::S(self.kinesis_shard_id().to_owned()),
            );
        }
        if let Some(previous) = &self.checkpoint_owner {
            item.insert(CHECKPOINT_OWNER.into(), AttributeValue::S(previous.clone()));
        }
        if let Some(kbps) = self.throughput_kbps {
            // Exactly (the shortest decimal that reads back as the same number).
            item.insert(THROUGHPUT_KBPS.into(), AttributeValue::N(kbps.to_string()));
        }
        item
    }

    /// The shard's id in Kinesis: the lease key in a single-stream table, the key without
    /// its stream part in a multi-stream one.
    pub fn kinesis_shard_id(&self) -> &str {
        match &self.stream_identifier {
            Some(stream) => self
                .shard_id
                .strip_prefix(stream.as_str())
                .and_then(|rest| rest.strip_prefix(':'))
                .unwrap_or(&self.shard_id),
            None => &self.shard_id,
        }
    }

    /// Whether the shard is closed and fully processed.
    pub fn is_finished(&self) -> bool {
        self.checkpoint == Checkpoint::ShardEnd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_round_trip_with_kcl_attribute_names() {
        let mut lease = Lease::new("shardId-000000000002", Checkpoint::Sequence("4960".into()));
        lease.owner = Some("worker-1".into());
        lease.counter = 42;
        lease.checkpoint_sub_sequence = 3;
        lease.parent_shard_ids = vec!["shardId-000000000000".into()];
        lease.starting_hash_key = Some("0".into());
        lease.ending_hash_key = Some("170141183460469231731687303715884105727".into());
        lease.throughput_kbps = Some(12.5);
        let item = lease.to_item();
        let names: Vec<&str> = {
            let mut n: Vec<&str> = item.keys().map(String::as_str).collect();
            n.sort();
            n
        };
        assert_eq!(
            names,
            [
                "checkpoint",
                "checkpointSubSequenceNumber",
                "endingHashKey",
                "entityType",
                "leaseCounter",
                "leaseKey",
                "leaseOwner",
                "ownerSwitchesSinceCheckpoint",
                "parentShardId",
                "startingHashKey",
                "throughputKBps"
            ]
        );
        assert_eq!(Lease::from_item(&item).unwrap(), lease);
    }

    #[test]
    fn malformed_items_are_typed_errors() {
        let mut item = HashMap::new();
        assert_eq!(
            Lease::from_item(&item),
            Err(LeaseDecodeError::Missing {
                attribute: "leaseKey"
            })
        );
        item.insert("leaseKey".into(), AttributeValue::S("s".into()));
        item.insert(
            "leaseCounter".into(),
            AttributeValue::S("not a number".into()),
        );
        assert!(matches!(
            Lease::from_item(&item),
            Err(LeaseDecodeError::Malformed {
                attribute: "leaseCounter",
                ..
            })
        ));
        item.insert("leaseCounter".into(), AttributeValue::N("x".into()));
        assert!(matches!(
            Lease::from_item(&item),
            Err(LeaseDecodeError::Malformed { .. })
        ));
        item.insert("leaseCounter".into(), AttributeValue::N("1".into()));
        item.insert("throughputKBps".into(), AttributeValue::N("-1".into()));
        assert!(matches!(
            Lease::from_item(&item),
            Err(LeaseDecodeError::Malformed {
                attribute: "throughputKBps",
                ..
            })
        ));
    }

    #[test]
    fn kcl_entries_of_other_kinds_are_not_leases() {
        let mut item = HashMap::new();
        item.insert("leaseKey".into(), AttributeValue::S("Leader".into()));
        item.insert("entityType".into(), AttributeValue::S("LEADER".into()));
        assert_eq!(
            Lease::from_item(&item),
            Err(LeaseDecodeError::OtherEntity {
                key: "Leader".into(),
                entity_type: "LEADER".into()
            })
        );
        item.insert("entityType".into(), AttributeValue::S("LEASE".into()));
        assert_eq!(Lease::from_item(&item).unwrap().shard_id, "Leader");
        item.remove("entityType");
        assert!(Lease::from_item(&item).is_ok());
    }

    #[test]
    fn multi_stream_items_read_as_kcl_writes_them() {
        let mut item = HashMap::new();
        let key = "123456789012:orders:1700000000:shardId-000000000003";
        item.insert("leaseKey".into(), AttributeValue::S(key.into()));
        item.insert(
            "streamName".into(),
            AttributeValue::S("123456789012:orders:1700000000".into()),
        );
        item.insert(
            "shardId".into(),
            AttributeValue::S("shardId-000000000003".into()),
        );
        let lease = Lease::from_item(&item).unwrap();
        assert_eq!(lease.shard_id, key);
        assert_eq!(lease.kinesis_shard_id(), "shardId-000000000003");
        let written = lease.to_item();
        for name in ["leaseKey", "streamName", "shardId"] {
            assert_eq!(written[name], item[name], "{name}");
        }
        // A single-stream lease: the key is the shard id.
        let single = Lease::new("shardId-000000000003", Checkpoint::TrimHorizon);
        assert_eq!(single.kinesis_shard_id(), "shardId-000000000003");
        assert!(!single.to_item().contains_key("shardId"));
    }

    #[test]
    fn special_checkpoints_parse() {
        for s in [
            "TRIM_HORIZON",
            "LATEST",
            "AT_TIMESTAMP",
            "SHARD_END",
            "49590338271490256608559692538361571095921575989136588898",
        ] {
            assert_eq!(Checkpoint::parse(s).as_str(), s);
        }
    }
}
