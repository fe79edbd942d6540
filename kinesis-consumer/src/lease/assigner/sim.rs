//! A simulated fleet of ours for the planners' tests: leases with throughputs, each round's
//! plan applied on paused time.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use super::{Candidate, Observed, PlanInput, plan};
use crate::lease::{Checkpoint, Lease};

/// A fleet of ours on paused time: leases with throughputs, applying each plan.
pub(super) struct Sim {
    pub leases: Vec<Lease>,
    pub workers: Vec<Candidate>,
    /// Moves per lease so far.
    pub moves: HashMap<String, usize>,
    pub balance: crate::Balance,
    pub max_steal: usize,
}

impl Sim {
    pub(super) fn new(kbps: &[f64], workers: &[&str]) -> Self {
        let leases = kbps
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let mut l = Lease::new(format!("shard-{i:02}"), Checkpoint::TrimHorizon);
                l.throughput_kbps = Some(*k);
                l
            })
            .collect();
        let workers = workers
            .iter()
            .map(|w| Candidate {
                worker_id: (*w).into(),
                capacity: usize::MAX,
                failover: Duration::ZERO,
                max_kbps: None,
            })
            .collect();
        Sim {
            leases,
            workers,
            moves: HashMap::new(),
            balance: crate::Balance::Throughput,
            max_steal: usize::MAX,
        }
    }

    /// One round: plans and applies; returns the moves made (steals).
    pub(super) fn round(&mut self) -> usize {
        let mut observed = Observed::default();
        observed.update(&self.leases, Instant::now());
        let out = plan(&PlanInput {
            leases: &self.leases,
            observed: &observed,
            workers: &self.workers,
            orphans: &HashMap::new(),
            pending: &HashMap::new(),
            foreign: &[],
            now: Instant::now(),
            failover: Duration::from_secs(10),
            max_steal: self.max_steal,
            balance: self.balance,
            threshold: 0.1,
            graceful: false,
        });
        let mut steals = 0;
        for (worker, a) in out.assignments {
            let lease = self
                .leases
                .iter_mut()
                .find(|l| l.shard_id == a.shard_id)
                .unwrap();
            lease.owner = Some(worker);
            lease.counter += 1;
            if a.steal {
                steals += 1;
                *self.moves.entry(a.shard_id).or_default() += 1;
            }
        }
        steals
    }

    /// Rounds until one moves nothing; returns the rounds that moved something.
    pub(super) fn settle(&mut self) -> usize {
        (0..20).take_while(|_| self.round() > 0).count()
    }

    pub(super) fn kbps_of(&self, worker: &str) -> f64 {
        self.leases
            .iter()
            .filter(|l| l.owner.as_deref() == Some(worker))
            .filter_map(|l| l.throughput_kbps)
            .sum()
    }

    pub(super) fn count_of(&self, worker: &str) -> usize {
        self.leases
            .iter()
            .filter(|l| l.owner.as_deref() == Some(worker))
            .count()
    }

    pub(super) fn set(&mut self, shard: usize, kbps: f64) {
        self.leases[shard].throughput_kbps = Some(kbps);
    }
}
