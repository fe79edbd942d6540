//! Shard discovery: a lease for every shard that needs one, parents before children, and
//! cleanup of finished leases once their children are under way.

use std::collections::{HashMap, HashSet};

use aws_sdk_kinesis::types::Shard;
use kinesis_common::ServiceError;
use kinesis_common::shard_map::{is_open, list_shards};
use kinesis_common::stream::StreamRef;

use crate::config::InitialPosition;
use crate::lease::key::KeySpace;
use crate::lease::{Checkpoint, Lease, LeaseTable};

fn parents(shard: &Shard) -> Vec<String> {
    shard
        .parent_shard_id()
        .into_iter()
        .chain(shard.adjacent_parent_shard_id())
        .map(str::to_owned)
        .collect()
}

/// Orders shards so that every parent comes before its children.
fn topological(shards: &[Shard]) -> Vec<&Shard> {
    let ids: HashSet<&str> = shards.iter().map(|s| s.shard_id()).collect();
    let mut placed: HashSet<&str> = HashSet::new();
    let mut ordered = Vec::with_capacity(shards.len());
    let mut remaining: Vec<&Shard> = shards.iter().collect();
    while !remaining.is_empty() {
        let before = remaining.len();
        remaining.retain(|shard| {
            let ready = shard
                .parent_shard_id()
                .into_iter()
                .chain(shard.adjacent_parent_shard_id())
                .all(|p| !ids.contains(p) || placed.contains(p));
            if ready {
                placed.insert(shard.shard_id());
                ordered.push(*shard);
            }
            !ready
        });
        if remaining.len() == before {
            // A cycle cannot happen in Kinesis; keep whatever is left in listed order.
            ordered.append(&mut remaining);
        }
    }
    ordered
}

fn has_leased_descendant(
    shard: &str,
    children: &HashMap<String, Vec<String>>,
    leased: &HashSet<String>,
) -> bool {
    let mut stack: Vec<&str> = children
        .get(shard)
        .map(|c| c.iter().map(String::as_str).collect())
        .unwrap_or_default();
    let mut seen = HashSet::new();
    while let Some(next) = stack.pop() {
        if !seen.insert(next) {
            continue;
        }
        if leased.contains(next) {
            return true;
        }
        if let Some(grandchildren) = children.get(next) {
            stack.extend(grandchildren.iter().map(String::as_str));
        }
    }
    false
}

/// Creates leases for the children a closed shard's last read named (its `ChildShards`), so
/// they start without a ListShards call or a table scan: `finished` has a lease (it was just
/// read to its end); any other parent (a merge's) is looked up with one consistent GetItem,
/// and each child is created with one conditional write. A child waits for those of its
/// parents that have leases, as in [`sync`].
pub(crate) async fn create_children(
    table: &LeaseTable,
    space: &KeySpace,
    finished: &str,
    children: &[aws_sdk_kinesis::types::ChildShard],
) -> Result<Vec<String>, ServiceError> {
    let mut leased: HashMap<String, bool> = HashMap::from([(finished.to_owned(), true)]);
    let mut created = Vec::new();
    for child in children {
        let mut parents = Vec::new();
        for parent in &child.parent_shards {
            let has_lease = match leased.get(parent) {
                Some(known) => *known,
                None => {
                    let found = table.get(&space.key(parent)).await?.is_some();
                    leased.insert(parent.clone(), found);
                    found
                }
            };
            if has_lease {
                parents.push(parent.clone());
            }
        }
        let mut lease = space.new_lease(&child.shard_id, Checkpoint::TrimHorizon);
        lease.parent_shard_ids = parents;
        if let Some(range) = &child.hash_key_range {
            lease.starting_hash_key = Some(range.starting_hash_key.clone());
            lease.ending_hash_key = Some(range.ending_hash_key.clone());
        }
        if table.create_if_absent(&lease).await? {
            created.push(lease.shard_id.clone());
        }
    }
    Ok(created)
}

/// What one sync did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct SyncOutcome {
    pub created: Vec<String>,
    pub deleted: Vec<String>,
    /// Leases of shards the stream no longer lists (aged out of retention, or never of this
    /// stream), with the counter they had: candidates for cleanup after a grace period.
    pub vanished: Vec<(String, u64)>,
}

/// Leases created at once by one sync.
const CREATE_CONCURRENCY: usize = 16;

/// Creates one wave of leases, several at once (workers starting together on a cold table
/// each try every lease; the refused writes are a one-off cost, less than a renewal round).
async fn create_wave(table: &LeaseTable, wave: Vec<Lease>) -> Result<Vec<String>, ServiceError> {
    use futures_util::StreamExt;
    let mut results = futures_util::stream::iter(wave.into_iter().map(|lease| async move {
        let created = table.create_if_absent(&lease).await?;
        Ok::<_, ServiceError>((lease, created))
    }))
    .buffer_unordered(CREATE_CONCURRENCY);
    let mut created = Vec::new();
    let mut failure = None;
    while let Some(result) = results.next().await {
        match result {
            Ok((lease, true)) => {
                tracing::debug!(shard = %lease.shard_id, checkpoint = %lease.checkpoint, "lease created");
                created.push(lease.shard_id);
            }
            Ok(_) => {}
            Err(e) => failure = Some(e),
        }
    }
    failure.map_or(Ok(created), Err)
}

/// Creates missing leases of one stream (its leases keyed in `space`) and deletes finished
/// ones nobody needs any more, given a scan of the lease table (`None`: scan it now,
/// consistently). Keys in the outcome are lease keys.
pub(crate) async fn sync(
    kinesis: &aws_sdk_kinesis::Client,
    stream: &StreamRef,
    space: &KeySpace,
    table: &LeaseTable,
    initial: InitialPosition,
    leases: Option<&[Lease]>,
) -> Result<SyncOutcome, ServiceError> {
    let shards = list_shards(kinesis, stream, false).await?;
    let scanned;
    let all = match leases {
        Some(leases) => leases,
        None => {
            scanned = table.list(true).await?;
            &scanned
        }
    };
    // This stream's leases, by the shard's id in Kinesis.
    let leases: Vec<&Lease> = all.iter().filter(|l| space.holds(l)).collect();
    let mut outcome = SyncOutcome::default();
    let mut leased: HashSet<String> = leases
        .iter()
        .map(|l| l.kinesis_shard_id().to_owned())
        .collect();
    let fresh_table = leases.is_empty();
    let children: HashMap<String, Vec<String>> =
        shards.iter().fold(HashMap::new(), |mut acc, s| {
            for p in parents(s) {
                acc.entry(p).or_default().push(s.shard_id().to_owned());
            }
            acc
        });
    // A shard with a leased descendant was read to its end and its lease cleaned up:
    // giving it a lease again would deliver its records twice.
    let finished_before: HashSet<String> = shards
        .iter()
        .filter(|s| has_leased_descendant(s.shard_id(), &children, &leased))
        .map(|s| s.shard_id().to_owned())
        .collect();

    // Parents are created before their children (a child whose parent has no lease would
    // start at once): each wave holds the leases whose parents are in earlier waves.
    let mut waves: Vec<Vec<Lease>> = Vec::new();
    let mut wave_of: HashMap<String, usize> = HashMap::new();
    for shard in topological(&shards) {
        if leased.contains(shard.shard_id()) || finished_before.contains(shard.shard_id()) {
            continue;
        }
        let waiting_on: Vec<String> = parents(shard)
            .into_iter()
            .filter(|p| leased.contains(p))
            .collect();
        let checkpoint = if !waiting_on.is_empty() || (!fresh_table && !parents(shard).is_empty()) {
            // A child of a shard we read (or one we read past) starts at its beginning.
            Checkpoint::TrimHorizon
        } else {
            match initial {
                InitialPosition::TrimHorizon => Checkpoint::TrimHorizon,
                InitialPosition::AtTimestamp(_) => Checkpoint::AtTimestamp,
                // Closed shards hold only records older than "now": nothing to read.
                InitialPosition::Latest if !is_open(shard) => continue,
                InitialPosition::Latest => Checkpoint::Latest,
            }
        };
        let wave = waiting_on
            .iter()
            .filter_map(|p| wave_of.get(p).map(|w| w + 1))
            .max()
            .unwrap_or(0);
        let mut lease = space.new_lease(shard.shard_id(), checkpoint);
        lease.parent_shard_ids = waiting_on;
        if let Some(range) = shard.hash_key_range() {
            lease.starting_hash_key = Some(range.starting_hash_key().to_owned());
            lease.ending_hash_key = Some(range.ending_hash_key().to_owned());
        }
        wave_of.insert(shard.shard_id().to_owned(), wave);
        if waves.len() <= wave {
            waves.resize_with(wave + 1, Vec::new);
        }
        waves[wave].push(lease);
        leased.insert(shard.shard_id().to_owned());
    }
    for mut wave in waves {
        // In random order, so workers starting together mostly create different leases first.
        rand::seq::SliceRandom::shuffle(wave.as_mut_slice(), &mut rand::rng());
        outcome.created.extend(create_wave(table, wave).await?);
    }

    let listed: HashSet<&str> = shards.iter().map(|s| s.shard_id()).collect();
    outcome.vanished = leases
        .iter()
        .filter(|l| !listed.contains(l.kinesis_shard_id()))
        .map(|l| (l.shard_id.clone(), l.counter))
        .collect();

    // A finished lease can go once every child has a lease that has made progress: the
    // children no longer wait on it.
    let by_shard: HashMap<&str, &Lease> =
        leases.iter().map(|l| (l.kinesis_shard_id(), *l)).collect();
    for lease in leases.iter().filter(|l| l.is_finished()) {
        let Some(kids) = children.get(lease.kinesis_shard_id()) else {
            continue;
        };
        let under_way = kids.iter().all(|k| {
            by_shard.get(k.as_str()).is_some_and(|c| {
                matches!(c.checkpoint, Checkpoint::Sequence(_) | Checkpoint::ShardEnd)
            })
        });
        if lease.child_shard_ids.is_empty() {
            table.set_children(&lease.shard_id, kids).await?;
        }
        if under_way && table.delete_finished(&lease.shard_id).await? {
            tracing::debug!(shard = %lease.shard_id, "finished lease cleaned up");
            outcome.deleted.push(lease.shard_id.clone());
        }
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: &str, parent: Option<&str>, adjacent: Option<&str>) -> Shard {
        Shard::builder()
            .shard_id(id)
            .set_parent_shard_id(parent.map(str::to_owned))
            .set_adjacent_parent_shard_id(adjacent.map(str::to_owned))
            .build()
            .unwrap()
    }

    #[test]
    fn parents_come_before_children() {
        let shards = vec![
            shard("merged", Some("left"), Some("right")),
            shard("left", Some("root"), None),
            shard("right", Some("root"), None),
            shard("root", None, None),
        ];
        let order: Vec<&str> = topological(&shards).iter().map(|s| s.shard_id()).collect();
        let pos = |id| order.iter().position(|s| *s == id).unwrap();
        assert!(pos("root") < pos("left") && pos("root") < pos("right"));
        assert!(pos("left") < pos("merged") && pos("right") < pos("merged"));
    }
}
