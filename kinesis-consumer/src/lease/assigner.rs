//! The leader's assignment: which worker should take which lease, for the whole fleet.
//!
//! Pure logic over one scan of the lease table, the live workers and the local clock, so it
//! is tested in milliseconds.
//!
//! * A lease is **free** when it has no owner, when its owner's incarnation is known dead (a
//!   fenced, restarted or departed worker, at the counter it had then), or when its counter
//!   has not moved for the failover time as seen by the leader (an owner that stopped
//!   renewing, or one that is not part of this fleet: no clock comparison between machines).
//! * **Target** = ceil(available leases / workers), workers being the live ones plus any
//!   other owner of a lease that is not free. Finished leases and children whose parents are
//!   not finished are not available. A worker never gets more than it says it can renew.
//! * Free leases go to the least loaded live workers below target (beyond it, up to what
//!   they can renew, only when every one of ours is at the target). Then, at most `max_steal`
//!   leases move from the most loaded owner above target to the least loaded worker below
//!   it: a large imbalance is fixed in one round, and a balanced fleet (everyone within one
//!   of the target) never moves a lease. A stolen lease is processed by its taker only
//!   after the failover time, when its old owner has stopped.
//! * A lease already in a live worker's pending plan counts as that worker's and is left
//!   alone until it is taken, except a handoff awaited from an owner fenced since: that
//!   lease is free, and planned again as a take.
//! * Workers of the real KCL sharing the table (`foreign`) count as members too. Our
//!   leader cannot tell them what to take, so when one is below the target while one of
//!   ours is above it, ours is asked to **give** it a lease: stop processing it, then hand
//!   it over in the lease table (at most `max_steal` a round). Leases that KCL's own leader
//!   gives its workers beyond the target are stolen back as from any owner.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use rand::seq::SliceRandom;
use tokio::time::Instant;

use super::{Checkpoint, Lease};
use crate::fleet::state_table::Assignment;

mod by_load;
mod packing;
#[cfg(test)]
mod sim;

/// What this worker has seen of each lease's counter, and when it last moved.
#[derive(Debug, Default)]
pub(crate) struct Observed {
    seen: HashMap<String, (u64, Option<String>, Instant)>,
}

impl Observed {
    /// Records a scan.
    pub(crate) fn update(&mut self, leases: &[Lease], now: Instant) {
        let mut present = HashSet::new();
        for lease in leases {
            present.insert(lease.shard_id.clone());
            let entry = self.seen.entry(lease.shard_id.clone()).or_insert((
                lease.counter,
                lease.owner.clone(),
                now,
            ));
            if entry.0 != lease.counter || entry.1 != lease.owner {
                *entry = (lease.counter, lease.owner.clone(), now);
            }
        }
        self.seen.retain(|k, _| present.contains(k));
    }

    /// The next moment, after `now`, at which a lease of an owner outside `live` (a worker
    /// of another library, or one that never registered) expires if its counter keeps
    /// standing still: a lease scan then fails it over without waiting for the interval.
    pub(crate) fn next_expiry(
        &self,
        live: &HashSet<&str>,
        now: Instant,
        failover: Duration,
    ) -> Option<Instant> {
        self.seen
            .values()
            .filter(|(_, owner, _)| owner.as_deref().is_some_and(|o| !live.contains(o)))
            .map(|(_, _, since)| *since + failover)
            .filter(|at| *at > now)
            .min()
    }

    /// Whether a lease is free to take: no owner, or its counter stood still for `failover`.
    pub(crate) fn is_expired(&self, lease: &Lease, now: Instant, failover: Duration) -> bool {
        if lease.owner.is_none() {
            return true;
        }
        match self.seen.get(&lease.shard_id) {
            Some((counter, owner, since)) if *counter == lease.counter && *owner == lease.owner => {
                now.saturating_duration_since(*since) >= failover
            }
            _ => false,
        }
    }
}

/// Whether a lease may be processed now: not finished, and every parent that still has a
/// lease has finished (a parent without a lease was finished and cleaned up, or never needed).
pub(crate) fn is_available(lease: &Lease, by_shard: &HashMap<&str, &Lease>) -> bool {
    !lease.is_finished()
        && lease.parent_shard_ids.iter().all(|p| {
            by_shard
                .get(super::key::parent_key(lease, p).as_str())
                .is_none_or(|parent| parent.checkpoint == Checkpoint::ShardEnd)
        })
}

/// A live worker the leader may assign leases to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Candidate {
    pub worker_id: String,
    /// How many leases it can renew.
    pub capacity: usize,
    /// Its own failover time: its leases expire after the longer of this and the leader's.
    pub failover: Duration,
    /// The most KiB/s it reads (`max_throughput_per_worker`).
    pub max_kbps: Option<f64>,
}

/// What the leader plans with.
pub(crate) struct PlanInput<'a> {
    pub leases: &'a [Lease],
    pub observed: &'a Observed,
    /// Live workers.
    pub workers: &'a [Candidate],
    /// Leases held by a dead incarnation: shard → (owner, counter) when it died.
    pub orphans: &'a HashMap<String, (String, u64)>,
    /// Leases already in a worker's pending plan: shard → worker (for a give, the receiver).
    pub pending: &'a HashMap<String, String>,
    /// Live workers of the real KCL sharing the table.
    pub foreign: &'a [String],
    pub now: Instant,
    pub failover: Duration,
    pub max_steal: usize,
    /// By count only, or by count and throughput ([`by_load`]).
    pub balance: crate::Balance,
    /// With [`crate::Balance::Throughput`]: how far above the mean a worker may be; with
    /// [`crate::Balance::Pack`]: the band below its cap that a worker is filled to.
    pub threshold: f64,
    /// Moves between our workers are graceful handoffs rather than steals.
    pub graceful: bool,
}

impl PlanInput<'_> {
    fn is_free(&self, lease: &Lease) -> bool {
        let failover = lease
            .owner
            .as_deref()
            .and_then(|o| self.workers.iter().find(|w| w.worker_id == o))
            .map_or(self.failover, |w| w.failover.max(self.failover));
        lease.owner.is_none()
            || self
                .orphans
                .get(&lease.shard_id)
                .is_some_and(|(owner, counter)| {
                    lease.owner.as_deref() == Some(owner) && lease.counter == *counter
                })
            || self.observed.is_expired(lease, self.now, failover)
    }
}

/// The leases in live workers' plans: shard → the worker that is to hold it (for a give, the
/// receiver). A receiver's wait for a handoff from an owner fenced since (an orphan at the
/// counter it had then) is left out: that owner will never hand the lease over, so the
/// lease is free at once and planned again as a take, rather than waited on for the
/// receiver's own failover time after its wait began (up to twice the failover time after
/// the crash, when the plan came from a leader that had not yet seen the owner die).
pub(crate) fn pending<'a>(
    plans: impl IntoIterator<Item = (&'a str, &'a [Assignment])>,
    orphans: &HashMap<String, (String, u64)>,
) -> HashMap<String, String> {
    let mut pending = HashMap::new();
    for (worker, plan) in plans {
        for a in plan {
            let from_fenced = a.handoff
                && a.give_to.is_none()
                && orphans
                    .get(&a.shard_id)
                    .is_some_and(|(owner, _)| a.owner.as_ref() == Some(owner));
            if !from_fenced {
                let to = a.give_to.as_deref().unwrap_or(worker);
                pending.insert(a.shard_id.clone(), to.to_string());
            }
        }
    }
    pending
}

/// A round's outcome.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// The assignments to write: (worker, lease as seen).
    pub assignments: Vec<(String, Assignment)>,
    /// Free leases no worker could take (all at their cap): try again soon.
    pub unplaced: usize,
}

/// The available leases of a round, sorted by where they stand.
pub(super) struct Standing<'a> {
    pub available: Vec<&'a Lease>,
    /// Free to take.
    pub free: Vec<&'a Lease>,
    /// Held by a member and not in anyone's pending plan: member → leases.
    pub owned_by: HashMap<&'a str, Vec<&'a Lease>>,
    /// In a member's pending plan: member → leases.
    pub pending_for: HashMap<&'a str, Vec<&'a Lease>>,
    /// Members: live workers (ours), then KCL's, then any other owner of a lease.
    pub members: Vec<&'a str>,
}

impl<'a> Standing<'a> {
    fn of(input: &PlanInput<'a>) -> Option<Self> {
        let by_shard: HashMap<&str, &Lease> = input
            .leases
            .iter()
            .map(|l| (l.shard_id.as_str(), l))
            .collect();
        let available: Vec<&Lease> = input
            .leases
            .iter()
            .filter(|l| is_available(l, &by_shard))
            .collect();
        if available.is_empty() || input.workers.is_empty() {
            return None;
        }
        let mut members: Vec<&str> = input.workers.iter().map(|w| w.worker_id.as_str()).collect();
        for kcl in input.foreign {
            if !members.contains(&kcl.as_str()) {
                members.push(kcl);
            }
        }
        let is_member = |w: &str| {
            input.workers.iter().any(|c| c.worker_id == w) || input.foreign.iter().any(|f| f == w)
        };
        let mut standing = Standing {
            available: Vec::new(),
            free: Vec::new(),
            owned_by: HashMap::new(),
            pending_for: HashMap::new(),
            members,
        };
        for lease in &available {
            if let Some(worker) = input.pending.get(&lease.shard_id)
                && is_member(worker)
            {
                standing
                    .pending_for
                    .entry(worker.as_str())
                    .or_default()
                    .push(lease);
            } else if input.is_free(lease) {
                standing.free.push(lease);
            } else if let Some(owner) = lease.owner.as_deref() {
                if !standing.members.contains(&owner) {
                    standing.members.push(owner);
                }
                standing.owned_by.entry(owner).or_default().push(lease);
            }
        }
        standing.available = available;
        Some(standing)
    }
}

/// Plans a round of assignments.
pub(crate) fn plan(input: &PlanInput<'_>) -> Plan {
    let Some(standing) = Standing::of(input) else {
        return Plan::default();
    };
    let plan = match input.balance {
        crate::Balance::LeaseCount => by_count(input, standing),
        crate::Balance::Pack => packing::plan(input, standing),
        _ => by_load::plan(input, standing),
    };
    if input.graceful {
        gracefully(input, plan)
    } else {
        plan
    }
}

/// Turns each steal from a live worker of ours into a graceful handoff: the owner is asked
/// to give the lease (its processor may checkpoint first) and the taker to wait for it.
fn gracefully(input: &PlanInput<'_>, plan: Plan) -> Plan {
    let mut out = Vec::with_capacity(plan.assignments.len());
    for (taker, a) in plan.assignments {
        let from_ours = a.steal
            && a.owner
                .as_deref()
                .is_some_and(|o| input.workers.iter().any(|w| w.worker_id == o));
        if !from_ours {
            out.push((taker, a));
            continue;
        }
        let owner = a.owner.clone().expect("stolen from an owner");
        out.push((
            owner,
            Assignment {
                steal: false,
                give_to: Some(taker.clone()),
                handoff: true,
                ..a.clone()
            },
        ));
        out.push((
            taker,
            Assignment {
                steal: false,
                handoff: true,
                ..a
            },
        ));
    }
    Plan {
        assignments: out,
        unplaced: plan.unplaced,
    }
}

/// Balancing by lease count.
fn by_count(input: &PlanInput<'_>, standing: Standing<'_>) -> Plan {
    let Standing {
        available,
        mut free,
        mut owned_by,
        pending_for,
        members,
    } = standing;
    let live: HashMap<&str, usize> = input
        .workers
        .iter()
        .map(|w| (w.worker_id.as_str(), w.capacity))
        .collect();
    let mut load: HashMap<&str, usize> = members
        .iter()
        .map(|m| {
            let count = |map: &HashMap<&str, Vec<&Lease>>| map.get(m).map_or(0, Vec::len);
            (*m, count(&owned_by) + count(&pending_for))
        })
        .collect();
    let target = available.len().div_ceil(load.len());
    let cap = |w: &str| target.min(live.get(w).copied().unwrap_or(0));
    let mut out = Vec::new();
    // Free leases to the least loaded workers below their cap.
    free.shuffle(&mut rand::rng());
    let mut unplaced = free.len();
    // Beyond the target only when every worker of ours is at it, which happens only when
    // other members (KCL's) have a share: a free lease is better processed by one of ours
    // than left to a KCL leader that may be slow to act (its lock lasts two minutes) or
    // dead; the gives below move it once a KCL worker is below the target.
    let overflow = |w: &str| live.get(w).copied().unwrap_or(0);
    let mut overflowed = false;
    for lease in free {
        let Some(worker) = least_loaded(input.workers, &load, &cap).or_else(|| {
            overflowed = true;
            least_loaded(input.workers, &load, &overflow)
        }) else {
            break;
        };
        *load.get_mut(worker).expect("live worker") += 1;
        unplaced -= 1;
        out.push((worker.to_owned(), assignment(lease, false)));
    }
    // Then steals, only from above the target to below it.
    for leases in owned_by.values_mut() {
        leases.shuffle(&mut rand::rng());
    }
    for _ in 0..input.max_steal {
        let Some(thief) = least_loaded(input.workers, &load, &cap) else {
            break;
        };
        let Some(victim) = load
            .iter()
            .filter(|(w, c)| **c > target && owned_by.get(**w).is_some_and(|l| !l.is_empty()))
            .max_by_key(|(w, c)| (**c, std::cmp::Reverse(**w)))
            .map(|(w, _)| *w)
        else {
            break;
        };
        let lease = owned_by
            .get_mut(victim)
            .and_then(|l| l.pop())
            .expect("victim has leases");
        *load.get_mut(victim).expect("owner") -= 1;
        *load.get_mut(thief).expect("live worker") += 1;
        out.push((thief.to_owned(), assignment(lease, true)));
    }
    // Then gives, from ours above the target to KCL's below it; not in a round that went
    // beyond the target, so that a lease is not taken and another given at once.
    for _ in 0..if overflowed { 0 } else { input.max_steal } {
        let Some(receiver) = input
            .foreign
            .iter()
            .filter(|f| !live.contains_key(f.as_str()) && load[f.as_str()] < target)
            .min_by_key(|f| load[f.as_str()])
        else {
            break;
        };
        let Some(giver) = input
            .workers
            .iter()
            .map(|w| w.worker_id.as_str())
            .filter(|w| load[w] > target && owned_by.get(w).is_some_and(|l| !l.is_empty()))
            .max_by_key(|w| load[w])
        else {
            break;
        };
        let lease = owned_by
            .get_mut(giver)
            .and_then(|l| l.pop())
            .expect("giver has leases");
        *load.get_mut(giver).expect("live worker") -= 1;
        *load.get_mut(receiver.as_str()).expect("member") += 1;
        let mut give = assignment(lease, false);
        give.give_to = Some(receiver.clone());
        out.push((giver.to_owned(), give));
    }
    Plan {
        assignments: out,
        unplaced,
    }
}

/// The live worker with the fewest leases among those below their cap.
fn least_loaded<'a>(
    workers: &'a [Candidate],
    load: &HashMap<&str, usize>,
    cap: &impl Fn(&str) -> usize,
) -> Option<&'a str> {
    workers
        .iter()
        .map(|w| w.worker_id.as_str())
        .filter(|w| load[w] < cap(w))
        .min_by_key(|w| load[w])
}

/// The average KiB/s of the leases their owners have measured (`throughputKBps`), which a
/// lease not measured yet is taken to weigh; zero when none is measured.
pub(super) fn average_kbps(leases: &[&Lease]) -> f64 {
    let measured: Vec<f64> = leases.iter().filter_map(|l| l.throughput_kbps).collect();
    if measured.is_empty() {
        0.0
    } else {
        measured.iter().sum::<f64>() / measured.len() as f64
    }
}

pub(super) fn assignment(lease: &Lease, steal: bool) -> Assignment {
    Assignment {
        shard_id: lease.shard_id.clone(),
        counter: lease.counter,
        owner: lease.owner.clone(),
        steal,
        give_to: None,
        handoff: false,
    }
}

#[cfg(test)]
mod tests;
