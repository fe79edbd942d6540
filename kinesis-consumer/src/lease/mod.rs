//! Leases: one DynamoDB item per shard, in KCL's schema, so a KCL table can be taken over.
//!
//! ```text
//!  leaseKey (S, hash key) = shard id     leaseOwner (S)      leaseCounter (N)
//!  checkpoint (S)  checkpointSubSequenceNumber (N)   pendingCheckpoint (S) + …SubSequenceNumber (N)
//!  ownerSwitchesSinceCheckpoint (N)   parentShardId (SS)   childShardIds (SS)
//!  startingHashKey (S)   endingHashKey (S)
//! ```
//!
//! Every change is a conditional write on what was read, so two workers never both own a
//! lease. Expiry needs no synchronised clocks: a worker notes when it last saw each lease's
//! counter move, and a lease whose counter has not moved for the failover time is expired.

pub(crate) mod assigner;
pub(crate) mod capacity;
pub(crate) mod cleanup;
pub(crate) mod dynamo;
mod item;
pub(crate) mod kcl_workers;
pub(crate) mod key;
pub(crate) mod renewer;
mod table;
pub(crate) mod table_options;
pub(crate) mod throughput;

pub use capacity::LeaseTableCapacity;
pub(crate) use item::format_kbps;
pub use item::{Lease, LeaseDecodeError};
pub(crate) use table::{LeaseScan, LeaseTable, Renewed};
pub use table_options::{Billing, TableOptions};

use std::fmt;

/// Where a shard's processing stands, as stored in `checkpoint`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Checkpoint {
    /// Start at the oldest record.
    TrimHorizon,
    /// Start at the newest record.
    Latest,
    /// Start at the configured timestamp.
    AtTimestamp,
    /// The shard is closed and fully processed.
    ShardEnd,
    /// Processed up to and including this sequence number.
    Sequence(String),
}

impl Checkpoint {
    /// Reads KCL's string form.
    pub fn parse(value: &str) -> Checkpoint {
        match value {
            "TRIM_HORIZON" => Checkpoint::TrimHorizon,
            "LATEST" => Checkpoint::Latest,
            "AT_TIMESTAMP" => Checkpoint::AtTimestamp,
            "SHARD_END" => Checkpoint::ShardEnd,
            seq => Checkpoint::Sequence(seq.to_owned()),
        }
    }

    /// KCL's string form.
    pub fn as_str(&self) -> &str {
        match self {
            Checkpoint::TrimHorizon => "TRIM_HORIZON",
            Checkpoint::Latest => "LATEST",
            Checkpoint::AtTimestamp => "AT_TIMESTAMP",
            Checkpoint::ShardEnd => "SHARD_END",
            Checkpoint::Sequence(s) => s,
        }
    }
}

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
