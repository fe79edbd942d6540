//! The leader's view of the real KCL's workers sharing the lease table: which of them count
//! as members of the fleet when it plans (see `lease::kcl_workers` for where they report).
//!
//! A KCL worker counts while its report is fresh, unless a lease of its has expired: then it
//! died (its report stays fresh for up to a minute after), and it does not count again until
//! it reports anew.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::lease::assigner::Observed;
use crate::lease::kcl_workers::KclWorker;
use crate::lease::{Lease, LeaseTable};

/// How often the leader looks for KCL 3.0–3.4's worker-metrics table while it is absent.
const LEGACY_CHECK: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub(super) struct KclMembers {
    /// KCL workers seen dead, with the report they had then.
    dead: HashMap<String, SystemTime>,
    /// When to look for the legacy worker-metrics table again.
    next_legacy_check: Option<Instant>,
}

impl KclMembers {
    /// KCL 3.0–3.4 workers, from their own table (each call with the given timeout).
    pub(super) async fn legacy(
        &mut self,
        table: &LeaseTable,
        now: Instant,
        timeout: Duration,
    ) -> Vec<KclWorker> {
        if self.next_legacy_check.is_some_and(|at| now < at) {
            return Vec::new();
        }
        let found = match tokio::time::timeout(timeout, table.legacy_kcl_workers()).await {
            Ok(Ok(workers)) => workers,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "KCL's worker-metrics table cannot be read");
                Vec::new()
            }
            Err(_) => Vec::new(),
        };
        self.next_legacy_check = found.is_empty().then(|| now + LEGACY_CHECK);
        found
    }

    /// The KCL workers that count as members now, given the latest lease scan.
    pub(super) fn members(
        &mut self,
        reported: Vec<KclWorker>,
        leases: &[Lease],
        observed: &Observed,
        ours: &HashSet<&str>,
        now: Instant,
        failover: Duration,
    ) -> Vec<String> {
        for k in &reported {
            let expired = leases.iter().any(|l| {
                l.owner.as_deref() == Some(k.worker_id.as_str())
                    && observed.is_expired(l, now, failover)
            });
            if expired {
                self.dead.insert(k.worker_id.clone(), k.last_update);
            }
        }
        self.dead.retain(|id, at| {
            reported
                .iter()
                .any(|k| k.worker_id == *id && k.last_update == *at)
        });
        let wall = SystemTime::now();
        reported
            .into_iter()
            .filter(|k| k.is_live(wall) && !ours.contains(k.worker_id.as_str()))
            .filter(|k| !self.dead.contains_key(&k.worker_id))
            .map(|k| k.worker_id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::Checkpoint;

    fn report(id: &str, at: SystemTime) -> KclWorker {
        KclWorker {
            worker_id: id.into(),
            last_update: at,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_kcl_worker_whose_lease_expired_counts_again_only_after_a_new_report() {
        let failover = Duration::from_secs(10);
        let mut lease = Lease::new("shard-0", Checkpoint::TrimHorizon);
        lease.owner = Some("kcl-1".into());
        let leases = vec![lease];
        let mut observed = Observed::default();
        observed.update(&leases, Instant::now());
        let mut members = KclMembers::default();
        let at = SystemTime::now();
        let ours = HashSet::from(["rs-1"]);
        let count = |m: &mut KclMembers, observed: &Observed, at| {
            m.members(
                vec![report("kcl-1", at), report("rs-1", at)],
                &leases,
                observed,
                &ours,
                Instant::now(),
                failover,
            )
        };
        assert_eq!(count(&mut members, &observed, at), ["kcl-1"]);
        tokio::time::advance(failover).await;
        observed.update(&leases, Instant::now());
        assert!(count(&mut members, &observed, at).is_empty(), "it died");
        // Even once its lease is someone else's, the old report does not bring it back.
        let taken = vec![Lease::new("shard-0", Checkpoint::TrimHorizon)];
        observed.update(&taken, Instant::now());
        let members_now = members.members(
            vec![report("kcl-1", at)],
            &taken,
            &observed,
            &ours,
            Instant::now(),
            failover,
        );
        assert!(members_now.is_empty());
        let later = at + Duration::from_secs(30);
        let members_now = members.members(
            vec![report("kcl-1", later)],
            &taken,
            &observed,
            &ours,
            Instant::now(),
            failover,
        );
        assert_eq!(members_now, ["kcl-1"], "a new report");
    }
}
