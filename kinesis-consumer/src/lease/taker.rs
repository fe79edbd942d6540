//! Deciding which leases to take: expiry by observed counters, and balancing.
//!
//! Pure logic over a scan of the table and the local clock, so it is tested in milliseconds.
//!
//! * A lease is **expired** when it has no owner, or when its counter has not moved for the
//!   failover time as seen from here (no clock comparison between machines).
//! * **Target** = ceil(available leases / live workers), live workers being the owners of
//!   unexpired leases plus this one. Finished leases and children whose parents are not
//!   finished are not available.
//! * Below target, take expired leases first, this worker's share of them first (a hash of
//!   the shard id over the sorted live workers), so workers that see the same fleet split a
//!   crashed or departed worker's leases without racing for the same ones; if none, steal at most `max_steal` leases from the
//!   most loaded worker, and only down to the target, so a large imbalance is fixed in one
//!   round and a balanced fleet (every worker within one of the target) never moves a lease.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use kinesis_common::HashKey;
use rand::seq::SliceRandom;
use tokio::time::Instant;

use super::{Checkpoint, Lease};

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

    /// The next moment, after `now`, at which a lease of another worker expires if its
    /// counter keeps standing still: a taking round then fails it over without waiting for
    /// the next interval.
    pub(crate) fn next_expiry(
        &self,
        me: &str,
        now: Instant,
        failover: Duration,
    ) -> Option<Instant> {
        self.seen
            .values()
            .filter(|(_, owner, _)| owner.as_deref().is_some_and(|o| o != me))
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

/// Balancing settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TakerSettings {
    pub failover: Duration,
    pub max_leases: usize,
    pub max_steal: usize,
}

/// The leases this worker should try to take now, as they were seen.
pub(crate) fn choose(
    leases: &[Lease],
    observed: &Observed,
    me: &str,
    now: Instant,
    settings: TakerSettings,
) -> Vec<Lease> {
    let by_shard: HashMap<&str, &Lease> = leases.iter().map(|l| (l.shard_id.as_str(), l)).collect();
    let available: Vec<&Lease> = leases
        .iter()
        .filter(|l| is_available(l, &by_shard))
        .collect();
    if available.is_empty() {
        return Vec::new();
    }
    let mut load: HashMap<&str, usize> = HashMap::new();
    load.insert(me, 0);
    let mut expired: Vec<&Lease> = Vec::new();
    for lease in &available {
        let owner = lease.owner.as_deref();
        if owner == Some(me) {
            *load.entry(me).or_default() += 1;
        } else if observed.is_expired(lease, now, settings.failover) {
            expired.push(lease);
        } else if let Some(owner) = owner {
            *load.entry(owner).or_default() += 1;
        }
    }
    let workers = load.len();
    let target = available.len().div_ceil(workers).min(settings.max_leases);
    let mine = load[me];
    if mine >= target {
        return Vec::new();
    }
    let need = target - mine;
    if !expired.is_empty() {
        // Workers that see the same fleet split the expired leases between them instead of
        // racing for the same ones: this worker's share first (by the shard id's hash), then
        // the rest, each in random order.
        let mut fleet: Vec<&str> = load.keys().copied().collect();
        fleet.sort_unstable();
        let share = fleet.iter().position(|w| *w == me).unwrap_or(0) as u128;
        let n = fleet.len() as u128;
        expired.shuffle(&mut rand::rng());
        expired.sort_by_key(|l| HashKey::from_partition_key(&l.shard_id).0 % n != share);
        return expired.into_iter().take(need).cloned().collect();
    }
    // Steal from the most loaded worker, only while it is above target.
    let Some((victim, count)) = load
        .iter()
        .filter(|(w, _)| **w != me)
        .max_by_key(|(w, c)| (**c, std::cmp::Reverse(**w)))
        .map(|(w, c)| (*w, *c))
    else {
        return Vec::new();
    };
    if count <= target {
        return Vec::new();
    }
    let steal = need.min(settings.max_steal).min(count - target);
    let mut theirs: Vec<&Lease> = available
        .iter()
        .filter(|l| l.owner.as_deref() == Some(victim))
        .copied()
        .collect();
    theirs.shuffle(&mut rand::rng());
    theirs.into_iter().take(steal).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: TakerSettings = TakerSettings {
        failover: Duration::from_secs(10),
        max_leases: usize::MAX,
        max_steal: 1,
    };

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
            .map(|(i, o)| lease(&format!("shard-{i:02}"), *o, 1))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_worker_takes_every_unowned_lease() {
        let table = leases(&[None; 4]);
        let mut observed = Observed::default();
        observed.update(&table, Instant::now());
        assert_eq!(
            choose(&table, &observed, "a", Instant::now(), SETTINGS).len(),
            4
        );
    }

    #[tokio::test(start_paused = true)]
    async fn owned_leases_expire_only_after_the_failover_time_without_renewal() {
        let mut table = leases(&[Some("dead"), Some("dead")]);
        let mut observed = Observed::default();
        observed.update(&table, Instant::now());
        tokio::time::advance(Duration::from_secs(9)).await;
        observed.update(&table, Instant::now());
        assert!(
            choose(&table, &observed, "a", Instant::now(), SETTINGS).len() <= 1,
            "only balancing, no expiry yet"
        );
        // A renewal resets the clock.
        table[1].counter += 1;
        observed.update(&table, Instant::now());
        tokio::time::advance(Duration::from_secs(1)).await;
        observed.update(&table, Instant::now());
        assert!(observed.is_expired(&table[0], Instant::now(), SETTINGS.failover));
        assert!(!observed.is_expired(&table[1], Instant::now(), SETTINGS.failover));
    }

    #[tokio::test(start_paused = true)]
    async fn the_next_expiry_is_that_of_the_stillest_lease_of_another_worker() {
        let start = Instant::now();
        let mut table = leases(&[Some("a"), Some("b"), Some("me"), None]);
        let mut observed = Observed::default();
        observed.update(&table, start);
        tokio::time::advance(Duration::from_secs(3)).await;
        table[0].counter += 1; // "a" renewed; "b" did not
        observed.update(&table, Instant::now());
        let failover = SETTINGS.failover;
        assert_eq!(
            observed.next_expiry("me", Instant::now(), failover),
            Some(start + failover)
        );
        // Once passed, only expiries still to come count.
        tokio::time::advance(Duration::from_secs(8)).await;
        assert_eq!(
            observed.next_expiry("me", Instant::now(), failover),
            Some(start + Duration::from_secs(3) + failover)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn balancing_reaches_the_target_and_steals_one_at_a_time() {
        // 12 leases all held by "a"; "b" and "c" join.
        let table = leases(&[Some("a"); 12]);
        let mut observed = Observed::default();
        observed.update(&table, Instant::now());
        // b sees workers {a, b}: target 6, steals one per round.
        let stolen = choose(&table, &observed, "b", Instant::now(), SETTINGS);
        assert_eq!(stolen.len(), 1);
        assert_eq!(stolen[0].owner.as_deref(), Some("a"));
        // With a 4/4/4 split nobody takes anything.
        let owners: Vec<Option<&str>> = (0..12).map(|i| Some(["a", "b", "c"][i % 3])).collect();
        let balanced = leases(&owners);
        observed.update(&balanced, Instant::now());
        for me in ["a", "b", "c"] {
            assert!(choose(&balanced, &observed, me, Instant::now(), SETTINGS).is_empty());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_large_imbalance_is_fixed_in_one_round_without_overshooting() {
        // 1,000 leases on "a"; "b" joins and may steal as many as balance needs.
        let table = leases(&[Some("a"); 1000]);
        let mut observed = Observed::default();
        observed.update(&table, Instant::now());
        let unlimited = TakerSettings {
            max_steal: usize::MAX,
            ..SETTINGS
        };
        let stolen = choose(&table, &observed, "b", Instant::now(), unlimited);
        assert_eq!(stolen.len(), 500);
        // 334/333/333: within one of the target, nobody moves anything.
        let owners: Vec<Option<&str>> = (0..1000).map(|i| Some(["a", "b", "c"][i % 3])).collect();
        let nearly = leases(&owners);
        observed.update(&nearly, Instant::now());
        for me in ["a", "b", "c"] {
            assert!(choose(&nearly, &observed, me, Instant::now(), unlimited).is_empty());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn survivors_split_released_leases_without_racing_for_the_same_ones() {
        // "a", "b", "c" hold 100 each; "gone" released its 300.
        let mut owners: Vec<Option<&str>> = Vec::new();
        for w in ["a", "b", "c"] {
            owners.extend(std::iter::repeat_n(Some(w), 100));
        }
        owners.extend(std::iter::repeat_n(None, 300));
        let table = leases(&owners);
        let mut observed = Observed::default();
        observed.update(&table, Instant::now());
        let mut taken = HashSet::new();
        let mut total = 0;
        for me in ["a", "b", "c"] {
            let chosen = choose(&table, &observed, me, Instant::now(), SETTINGS);
            assert_eq!(chosen.len(), 100);
            total += chosen.len();
            taken.extend(chosen.into_iter().map(|l| l.shard_id));
        }
        // Hash shares are not exactly even, so a few overlap; most do not.
        assert!(
            taken.len() >= total * 9 / 10,
            "{} distinct of {total}",
            taken.len()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn expired_leases_are_taken_before_stealing() {
        let mut table = leases(&[Some("a"), Some("a"), Some("a"), Some("dead")]);
        let mut observed = Observed::default();
        observed.update(&table, Instant::now());
        tokio::time::advance(Duration::from_secs(11)).await;
        // "a" keeps renewing; "dead" does not.
        for l in table.iter_mut().take(3) {
            l.counter += 1;
        }
        observed.update(&table, Instant::now());
        let taken = choose(&table, &observed, "b", Instant::now(), SETTINGS);
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].shard_id, "shard-03");
    }

    #[tokio::test(start_paused = true)]
    async fn children_wait_for_their_parents_and_finished_leases_are_ignored() {
        let mut parent = lease("parent", None, 1);
        let mut child = lease("child", None, 1);
        child.parent_shard_ids = vec!["parent".into()];
        let mut observed = Observed::default();
        let table = vec![parent.clone(), child.clone()];
        observed.update(&table, Instant::now());
        let taken: Vec<String> = choose(&table, &observed, "a", Instant::now(), SETTINGS)
            .into_iter()
            .map(|l| l.shard_id)
            .collect();
        assert_eq!(taken, ["parent"]);
        parent.checkpoint = Checkpoint::ShardEnd;
        let table = vec![parent, child];
        let taken: Vec<String> = choose(&table, &observed, "a", Instant::now(), SETTINGS)
            .into_iter()
            .map(|l| l.shard_id)
            .collect();
        assert_eq!(taken, ["child"]);
        // A child whose parent lease is gone (cleaned up) is available too.
        let mut orphan = lease("orphan", None, 1);
        orphan.parent_shard_ids = vec!["long-gone".into()];
        assert_eq!(
            choose(&[orphan], &observed, "a", Instant::now(), SETTINGS).len(),
            1
        );
    }

    #[tokio::test(start_paused = true)]
    async fn max_leases_caps_the_target() {
        let table = leases(&[None; 10]);
        let mut observed = Observed::default();
        observed.update(&table, Instant::now());
        let settings = TakerSettings {
            max_leases: 3,
            ..SETTINGS
        };
        assert_eq!(
            choose(&table, &observed, "a", Instant::now(), settings).len(),
            3
        );
    }
}
