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
//! * Free leases go to the least loaded live workers below target. Then, at most `max_steal`
//!   leases move from the most loaded owner above target to the least loaded worker below
//!   it: a large imbalance is fixed in one round, and a balanced fleet (everyone within one
//!   of the target) never moves a lease. A stolen lease is processed by its taker only
//!   after the failover time, when its old owner has stopped.
//! * A lease already in a live worker's pending plan counts as that worker's and is left
//!   alone until it is taken.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use rand::seq::SliceRandom;
use tokio::time::Instant;

use super::{Checkpoint, Lease};
use crate::fleet::state_table::Assignment;

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
                .get(p.as_str())
                .is_none_or(|parent| parent.checkpoint == Checkpoint::ShardEnd)
        })
}

/// A live worker the leader may assign leases to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub worker_id: String,
    /// How many leases it can renew.
    pub capacity: usize,
    /// Its own failover time: its leases expire after the longer of this and the leader's.
    pub failover: Duration,
}

/// What the leader plans with.
pub(crate) struct PlanInput<'a> {
    pub leases: &'a [Lease],
    pub observed: &'a Observed,
    /// Live workers.
    pub workers: &'a [Candidate],
    /// Leases held by a dead incarnation: shard → (owner, counter) when it died.
    pub orphans: &'a HashMap<String, (String, u64)>,
    /// Leases already in a worker's pending plan: shard → worker.
    pub pending: &'a HashMap<String, String>,
    pub now: Instant,
    pub failover: Duration,
    pub max_steal: usize,
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

/// A round's outcome.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// The assignments to write: (worker, lease as seen).
    pub assignments: Vec<(String, Assignment)>,
    /// Free leases no worker could take (all at their cap): try again soon.
    pub unplaced: usize,
}

/// Plans a round of assignments.
pub(crate) fn plan(input: &PlanInput<'_>) -> Plan {
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
        return Plan::default();
    }
    let live: HashMap<&str, usize> = input
        .workers
        .iter()
        .map(|w| (w.worker_id.as_str(), w.capacity))
        .collect();
    let mut load: HashMap<&str, usize> = live.keys().map(|w| (*w, 0)).collect();
    let mut free: Vec<&Lease> = Vec::new();
    let mut owned_by: HashMap<&str, Vec<&Lease>> = HashMap::new();
    for lease in &available {
        if let Some(worker) = input.pending.get(&lease.shard_id)
            && live.contains_key(worker.as_str())
        {
            *load.entry(worker.as_str()).or_default() += 1;
        } else if input.is_free(lease) {
            free.push(lease);
        } else if let Some(owner) = lease.owner.as_deref() {
            *load.entry(owner).or_default() += 1;
            owned_by.entry(owner).or_default().push(lease);
        }
    }
    let target = available.len().div_ceil(load.len());
    let cap = |w: &str| target.min(live.get(w).copied().unwrap_or(0));
    let mut out = Vec::new();
    // Free leases to the least loaded workers below their cap.
    free.shuffle(&mut rand::rng());
    let mut unplaced = free.len();
    for lease in free {
        let Some(worker) = least_loaded(input.workers, &load, &cap) else {
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

fn assignment(lease: &Lease, steal: bool) -> Assignment {
    Assignment {
        shard_id: lease.shard_id.clone(),
        counter: lease.counter,
        owner: lease.owner.clone(),
        steal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAILOVER: Duration = Duration::from_secs(10);

    fn lease(shard: &str, owner: Option<&str>, counter: u64) -> Lease {
        let mut l = Lease::new(shard, Checkpoint::TrimHorizon);
        l.owner = owner.map(str::to_owned);
        l.counter = counter;
        l
    }

    fn leases(owners: &[Option<&str>]) -> Vec<Lease> {
        owners
            .iter()
            .enumerate()
            .map(|(i, o)| lease(&format!("shard-{i:04}"), *o, 1))
            .collect()
    }

    fn workers(ids: &[&str]) -> Vec<Candidate> {
        ids.iter()
            .map(|id| Candidate {
                worker_id: (*id).to_owned(),
                capacity: usize::MAX,
                failover: Duration::ZERO,
            })
            .collect()
    }

    struct Fleet {
        observed: Observed,
        orphans: HashMap<String, (String, u64)>,
        pending: HashMap<String, String>,
        max_steal: usize,
    }

    impl Fleet {
        fn new(table: &[Lease]) -> Self {
            let mut observed = Observed::default();
            observed.update(table, Instant::now());
            Fleet {
                observed,
                orphans: HashMap::new(),
                pending: HashMap::new(),
                max_steal: usize::MAX,
            }
        }

        fn plan(&self, table: &[Lease], workers: &[Candidate]) -> Vec<(String, Assignment)> {
            plan(&PlanInput {
                leases: table,
                observed: &self.observed,
                workers,
                orphans: &self.orphans,
                pending: &self.pending,
                now: Instant::now(),
                failover: FAILOVER,
                max_steal: self.max_steal,
            })
            .assignments
        }
    }

    fn count(plan: &[(String, Assignment)], worker: &str) -> usize {
        plan.iter().filter(|(w, _)| w == worker).count()
    }

    #[tokio::test(start_paused = true)]
    async fn a_cold_table_is_split_evenly_in_one_round() {
        let table = leases(&[None; 1000]);
        let fleet = Fleet::new(&table);
        let plan = fleet.plan(&table, &workers(&["a", "b", "c", "d"]));
        assert_eq!(plan.len(), 1000);
        for w in ["a", "b", "c", "d"] {
            assert_eq!(count(&plan, w), 250);
        }
        assert!(plan.iter().all(|(_, a)| !a.steal));
    }

    #[tokio::test(start_paused = true)]
    async fn owned_leases_expire_only_after_the_failover_time_without_renewal() {
        let mut table = leases(&[Some("gone"), Some("gone")]);
        let mut fleet = Fleet::new(&table);
        tokio::time::advance(Duration::from_secs(9)).await;
        fleet.observed.update(&table, Instant::now());
        let plan = fleet.plan(&table, &workers(&["a"]));
        assert!(
            plan.iter().all(|(_, a)| a.steal),
            "only balancing, no expiry yet"
        );
        // A renewal resets the clock.
        table[1].counter += 1;
        fleet.observed.update(&table, Instant::now());
        tokio::time::advance(Duration::from_secs(1)).await;
        fleet.observed.update(&table, Instant::now());
        assert!(
            fleet
                .observed
                .is_expired(&table[0], Instant::now(), FAILOVER)
        );
        assert!(
            !fleet
                .observed
                .is_expired(&table[1], Instant::now(), FAILOVER)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_dead_incarnations_leases_are_free_at_once_at_the_counter_it_died_with() {
        let mut table = leases(&[Some("dead"), Some("dead"), Some("a"), Some("a")]);
        let mut fleet = Fleet::new(&table);
        fleet
            .orphans
            .insert("shard-0000".into(), ("dead".into(), 1));
        fleet
            .orphans
            .insert("shard-0001".into(), ("dead".into(), 1));
        // The restarted "dead" took shard-0001 again since: that one is not free.
        table[1].counter = 2;
        let plan = fleet.plan(&table, &workers(&["a", "b", "dead"]));
        let free: Vec<&str> = plan
            .iter()
            .filter(|(_, a)| !a.steal)
            .map(|(_, a)| a.shard_id.as_str())
            .collect();
        assert_eq!(free, ["shard-0000"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_large_imbalance_is_fixed_in_one_round_without_overshooting() {
        let table = leases(&[Some("a"); 1000]);
        let fleet = Fleet::new(&table);
        let plan = fleet.plan(&table, &workers(&["a", "b"]));
        assert_eq!(count(&plan, "b"), 500);
        assert!(
            plan.iter()
                .all(|(_, a)| a.steal && a.owner.as_deref() == Some("a"))
        );
        // 334/333/333: within one of the target, nothing moves.
        let owners: Vec<Option<&str>> = (0..1000).map(|i| Some(["a", "b", "c"][i % 3])).collect();
        let nearly = leases(&owners);
        let fleet = Fleet::new(&nearly);
        assert!(fleet.plan(&nearly, &workers(&["a", "b", "c"])).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn steals_are_bounded_per_round() {
        let table = leases(&[Some("a"); 12]);
        let mut fleet = Fleet::new(&table);
        fleet.max_steal = 1;
        let plan = fleet.plan(&table, &workers(&["a", "b", "c"]));
        assert_eq!(plan.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn free_leases_go_before_steals_and_to_the_least_loaded() {
        let mut owners = vec![Some("a"); 6];
        owners.extend([Some("b"), None, None]);
        let table = leases(&owners);
        let fleet = Fleet::new(&table);
        let plan = fleet.plan(&table, &workers(&["a", "b", "c"]));
        // Target 3: c gets both free leases and one stolen from a; b one stolen from a.
        assert_eq!(count(&plan, "c"), 3);
        assert_eq!(count(&plan, "b"), 2);
        let frees: Vec<&String> = plan
            .iter()
            .filter(|(_, a)| !a.steal)
            .map(|(w, _)| w)
            .collect();
        assert_eq!(frees.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn pending_assignments_count_and_are_not_planned_twice() {
        let table = leases(&[None; 4]);
        let mut fleet = Fleet::new(&table);
        fleet.pending.insert("shard-0000".into(), "a".into());
        fleet.pending.insert("shard-0001".into(), "a".into());
        let plan = fleet.plan(&table, &workers(&["a", "b"]));
        assert_eq!(count(&plan, "b"), 2);
        assert_eq!(count(&plan, "a"), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn children_wait_for_their_parents_and_finished_leases_are_ignored() {
        let mut parent = lease("parent", None, 1);
        let mut child = lease("child", None, 1);
        child.parent_shard_ids = vec!["parent".into()];
        let table = vec![parent.clone(), child.clone()];
        let fleet = Fleet::new(&table);
        let shards = |plan: Vec<(String, Assignment)>| -> Vec<String> {
            plan.into_iter().map(|(_, a)| a.shard_id).collect()
        };
        assert_eq!(shards(fleet.plan(&table, &workers(&["a"]))), ["parent"]);
        parent.checkpoint = Checkpoint::ShardEnd;
        let table = vec![parent, child];
        assert_eq!(shards(fleet.plan(&table, &workers(&["a"]))), ["child"]);
        // A child whose parent lease is gone (cleaned up) is available too.
        let mut orphan = lease("orphan", None, 1);
        orphan.parent_shard_ids = vec!["long-gone".into()];
        assert_eq!(fleet.plan(&[orphan], &workers(&["a"])).len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_worker_gets_no_more_than_it_can_renew() {
        let table = leases(&[None; 10]);
        let fleet = Fleet::new(&table);
        let mut fleet_workers = workers(&["a"]);
        fleet_workers[0].capacity = 3;
        assert_eq!(fleet.plan(&table, &fleet_workers).len(), 3);
        let outcome = plan(&PlanInput {
            leases: &table,
            observed: &fleet.observed,
            workers: &fleet_workers,
            orphans: &fleet.orphans,
            pending: &fleet.pending,
            now: Instant::now(),
            failover: FAILOVER,
            max_steal: usize::MAX,
        });
        assert_eq!(outcome.unplaced, 7, "the rest waits for more capacity");
    }

    #[tokio::test(start_paused = true)]
    async fn the_next_expiry_is_that_of_the_stillest_lease_outside_the_fleet() {
        let start = Instant::now();
        let mut table = leases(&[Some("a"), Some("b"), Some("me"), None]);
        let mut observed = Observed::default();
        observed.update(&table, start);
        tokio::time::advance(Duration::from_secs(3)).await;
        table[0].counter += 1; // "a" renewed; "b" did not
        observed.update(&table, Instant::now());
        let live = HashSet::from(["me"]);
        assert_eq!(
            observed.next_expiry(&live, Instant::now(), FAILOVER),
            Some(start + FAILOVER)
        );
        tokio::time::advance(Duration::from_secs(8)).await;
        assert_eq!(
            observed.next_expiry(&live, Instant::now(), FAILOVER),
            Some(start + Duration::from_secs(3) + FAILOVER)
        );
        // Leases of live workers are the heartbeats' business.
        let everyone = HashSet::from(["me", "a", "b"]);
        assert_eq!(
            observed.next_expiry(&everyone, Instant::now(), FAILOVER),
            None
        );
    }
}
