//! The assigner on paused time.

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
            max_kbps: None,
        })
        .collect()
}

struct Fleet {
    observed: Observed,
    orphans: HashMap<String, (String, u64)>,
    pending: HashMap<String, String>,
    foreign: Vec<String>,
    max_steal: usize,
    balance: crate::Balance,
    graceful: bool,
}

impl Fleet {
    fn new(table: &[Lease]) -> Self {
        let mut observed = Observed::default();
        observed.update(table, Instant::now());
        Fleet {
            observed,
            orphans: HashMap::new(),
            pending: HashMap::new(),
            foreign: Vec::new(),
            max_steal: usize::MAX,
            balance: crate::Balance::default(),
            graceful: false,
        }
    }

    fn plan(&self, table: &[Lease], workers: &[Candidate]) -> Vec<(String, Assignment)> {
        self.outcome(table, workers).assignments
    }

    fn outcome(&self, table: &[Lease], workers: &[Candidate]) -> Plan {
        plan(&PlanInput {
            leases: table,
            observed: &self.observed,
            workers,
            orphans: &self.orphans,
            pending: &self.pending,
            foreign: &self.foreign,
            now: Instant::now(),
            failover: FAILOVER,
            max_steal: self.max_steal,
            balance: self.balance,
            threshold: 0.1,
            graceful: self.graceful,
        })
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
    let outcome = fleet.outcome(&table, &fleet_workers);
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

#[tokio::test(start_paused = true)]
async fn kcl_workers_count_and_get_leases_given_to_them() {
    // Ours took all 8 before the two KCL workers showed up: target 2 each.
    let owners: Vec<Option<&str>> = (0..8).map(|i| Some(["a", "b"][i % 2])).collect();
    let table = leases(&owners);
    let mut fleet = Fleet::new(&table);
    fleet.foreign = vec!["kcl-1".into(), "kcl-2".into()];
    let plan = fleet.plan(&table, &workers(&["a", "b"]));
    assert_eq!(plan.len(), 4);
    for (giver, a) in &plan {
        assert!(!a.steal);
        assert_eq!(
            a.owner.as_deref(),
            Some(giver.as_str()),
            "a worker gives its own"
        );
    }
    let to = |r: &str| {
        plan.iter()
            .filter(|(_, a)| a.give_to.as_deref() == Some(r))
            .count()
    };
    assert_eq!((to("kcl-1"), to("kcl-2")), (2, 2));
    assert_eq!((count(&plan, "a"), count(&plan, "b")), (2, 2));
    // Once given (KCL's renewals now move their counters), nothing more moves.
    let owners: Vec<Option<&str>> = (0..8)
        .map(|i| Some(["a", "b", "kcl-1", "kcl-2"][i % 4]))
        .collect();
    let table = leases(&owners);
    let mut fleet = Fleet::new(&table);
    fleet.foreign = vec!["kcl-1".into(), "kcl-2".into()];
    assert!(fleet.plan(&table, &workers(&["a", "b"])).is_empty());
}

#[tokio::test(start_paused = true)]
async fn leases_kcl_took_beyond_its_share_are_stolen_and_pending_gives_count() {
    let table = leases(&[Some("kcl-1"); 6]);
    let mut fleet = Fleet::new(&table);
    fleet.foreign = vec!["kcl-1".into()];
    let plan = fleet.plan(&table, &workers(&["a", "b"]));
    assert_eq!((count(&plan, "a"), count(&plan, "b")), (2, 2));
    assert!(plan.iter().all(|(_, a)| a.steal && a.give_to.is_none()));
    // A give already planned counts for its receiver: not planned twice.
    let table = leases(&[Some("a"), Some("a"), Some("a"), Some("a")]);
    let mut fleet = Fleet::new(&table);
    fleet.foreign = vec!["kcl-1".into()];
    fleet.pending.insert("shard-0000".into(), "kcl-1".into());
    fleet.pending.insert("shard-0001".into(), "kcl-1".into());
    assert!(fleet.plan(&table, &workers(&["a"])).is_empty());
}

#[tokio::test(start_paused = true)]
async fn free_leases_go_beyond_the_target_rather_than_wait_for_kcl() {
    // KCL's share is free (its leader is slow, or its worker died): ours takes it now.
    let table = leases(&[Some("a"), Some("a"), None, None]);
    let mut fleet = Fleet::new(&table);
    fleet.foreign = vec!["kcl-1".into()];
    let plan = fleet.plan(&table, &workers(&["a"]));
    let taken: Vec<&str> = plan
        .iter()
        .filter(|(w, a)| w == "a" && a.give_to.is_none())
        .map(|(_, a)| a.shard_id.as_str())
        .collect();
    assert_eq!(taken.len(), 2, "both free leases taken: {plan:?}");
    assert!(
        plan.iter().all(|(_, a)| a.give_to.is_none()),
        "no give in the same round"
    );
    // A round later, with the leases held, two go to the KCL worker, below the target.
    let table = leases(&[Some("a"); 4]);
    let mut fleet = Fleet::new(&table);
    fleet.foreign = vec!["kcl-1".into()];
    let plan = fleet.plan(&table, &workers(&["a"]));
    assert_eq!(
        plan.iter()
            .filter(|(_, a)| a.give_to.as_deref() == Some("kcl-1"))
            .count(),
        2
    );
}

#[tokio::test(start_paused = true)]
async fn moves_between_our_workers_become_graceful_handoffs() {
    // Four of ours on "a", two held by "kcl-2" (not one of ours): "b" gets its share.
    let mut table = leases(&[Some("a"); 4]);
    table.extend((0..2).map(|i| lease(&format!("kcl-{i}"), Some("kcl-2"), 1)));
    let mut fleet = Fleet::new(&table);
    fleet.balance = crate::Balance::LeaseCount;
    fleet.graceful = true;
    let out = fleet.plan(&table, &workers(&["a", "b"]));
    for (worker, a) in &out {
        match a.owner.as_deref() {
            // From ours: the owner gives, the taker waits for it; nobody steals.
            Some("a") if worker == "a" => {
                assert_eq!(a.give_to.as_deref(), Some("b"));
                assert!(a.handoff && !a.steal);
            }
            Some("a") => {
                assert_eq!(worker, "b");
                assert!(a.handoff && !a.steal && a.give_to.is_none());
            }
            // From a worker outside the fleet: a steal as before.
            _ => assert!(a.steal && !a.handoff, "{a:?}"),
        }
    }
    let gives = out.iter().filter(|(_, a)| a.give_to.is_some()).count();
    let waits = out
        .iter()
        .filter(|(_, a)| a.handoff && a.give_to.is_none())
        .count();
    assert_eq!(gives, waits);
    assert!(gives >= 1, "{out:?}");
}

#[tokio::test(start_paused = true)]
async fn a_handoff_awaited_from_an_owner_fenced_since_is_planned_again_as_a_take() {
    // "b" waits for "a" to hand over shard-0002 when "a" is fenced (it crashed before
    // giving): the wait no longer counts, the lease is free at once, and "b" is told to take
    // it, not to keep waiting for a handoff that will never come.
    let table = leases(&[Some("b"), Some("b"), Some("a"), Some("a")]);
    let wait = |shard: &str| Assignment {
        shard_id: shard.into(),
        counter: 1,
        owner: Some("a".into()),
        steal: false,
        give_to: None,
        handoff: true,
    };
    let b_plan = vec![wait("shard-0002")];
    let mut fleet = Fleet::new(&table);
    fleet.balance = crate::Balance::LeaseCount;
    fleet.graceful = true;

    // While "a" is alive its handoff counts as "b"'s and is not planned twice.
    fleet.pending = pending([("b", b_plan.as_slice())], &fleet.orphans);
    assert_eq!(
        fleet.pending.get("shard-0002").map(String::as_str),
        Some("b")
    );
    let out = fleet.plan(&table, &workers(&["a", "b"]));
    assert!(
        out.iter().all(|(_, a)| a.shard_id != "shard-0002"),
        "{out:?}"
    );

    // "a" is fenced: its leases are orphans at the counters they had.
    for shard in ["shard-0002", "shard-0003"] {
        fleet.orphans.insert(shard.into(), ("a".into(), 1));
    }
    fleet.pending = pending([("b", b_plan.as_slice())], &fleet.orphans);
    assert!(fleet.pending.is_empty(), "{:?}", fleet.pending);
    let out = fleet.plan(&table, &workers(&["b"]));
    let mut taken: Vec<&str> = out
        .iter()
        .filter(|(w, a)| w == "b" && !a.handoff && !a.steal && a.give_to.is_none())
        .map(|(_, a)| a.shard_id.as_str())
        .collect();
    taken.sort();
    assert_eq!(taken, ["shard-0002", "shard-0003"], "{out:?}");

    // A give that is still under way from a live owner is never re-planned.
    let give = Assignment {
        give_to: Some("b".into()),
        ..wait("shard-0001")
    };
    let kept = pending([("c", std::slice::from_ref(&give))], &fleet.orphans);
    assert_eq!(kept.get("shard-0001").map(String::as_str), Some("b"));
}
