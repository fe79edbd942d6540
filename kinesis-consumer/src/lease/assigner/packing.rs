//! Packing leases onto as few workers as their throughput caps allow
//! ([`crate::Balance::Pack`]).
//!
//! * Workers of ours are **ranked** at the start of each round: most leases first, then by
//!   id. A lease only ever moves up the ranking, so the ranking a round leaves is the one the
//!   next round starts from, and nothing moves back and forth.
//! * A lease weighs the KiB/s read from it (`throughputKBps`, written by its owner with each
//!   renewal); one no owner has measured yet weighs as the average measured one.
//! * A worker **fits** a lease when it can renew one more and its load plus the lease stays
//!   within its cap, less `threshold` of it (a band that measurement noise does not cross);
//!   it **sheds** leases only above the cap itself.
//! * Each round: leases of a worker above its cap move to the first-ranked other worker that
//!   fits; free leases, heaviest first, go to the first-ranked worker that fits (none: the
//!   lease waits); then, from the last-ranked worker up, each lease moves to the first worker
//!   ranked above its owner that fits it. At most `max_steal` moves a round.
//! * On a quiet stream every lease fits the first worker: the whole stream sits on one
//!   worker (up to its lease capacity) and the others are idle spares. Leases held by
//!   members that are not ours (KCL's workers) are left where they are.

use std::collections::{HashMap, HashSet};

use super::{Assignment, Lease, Plan, PlanInput, Standing, assignment, average_kbps};

/// Plans a round.
pub(super) fn plan<'a>(input: &PlanInput<'a>, standing: Standing<'a>) -> Plan {
    let Standing {
        available,
        mut free,
        owned_by,
        pending_for,
        ..
    } = standing;
    let average = average_kbps(&available);
    let kbps = |l: &Lease| l.throughput_kbps.unwrap_or(average);

    let mut ranked: Vec<&super::Candidate> = input.workers.iter().collect();
    let held =
        |w: &str| owned_by.get(w).map_or(0, Vec::len) + pending_for.get(w).map_or(0, Vec::len);
    ranked.sort_by(|a, b| {
        held(&b.worker_id)
            .cmp(&held(&a.worker_id))
            .then(a.worker_id.cmp(&b.worker_id))
    });
    let mut load: HashMap<&str, (f64, usize)> = ranked
        .iter()
        .map(|w| {
            let w = w.worker_id.as_str();
            let leases = owned_by.get(w).into_iter().chain(pending_for.get(w));
            let kbps_sum = leases.flatten().map(|l| kbps(l)).sum();
            (w, (kbps_sum, held(w)))
        })
        .collect();
    let fits = |load: &HashMap<&str, (f64, usize)>, w: &super::Candidate, lease: &Lease| {
        let (kbps_now, count) = load[w.worker_id.as_str()];
        count < w.capacity
            && w.max_kbps
                .is_none_or(|cap| kbps_now + kbps(lease) <= cap * (1.0 - input.threshold))
    };
    // The first-ranked worker, among the first `among` of the ranking, that fits the lease.
    let first_fit = |load: &HashMap<&str, (f64, usize)>, among: usize, lease: &Lease, not: &str| {
        ranked[..among]
            .iter()
            .copied()
            .find(|w| w.worker_id != not && fits(load, w, lease))
    };
    let mut out: Vec<(String, Assignment)> = Vec::new();
    let mut moves = 0;
    let relocate = |load: &mut HashMap<&str, (f64, usize)>,
                    out: &mut Vec<(String, Assignment)>,
                    from: &str,
                    to: &str,
                    lease: &Lease| {
        let from = load.get_mut(from).expect("ranked");
        from.0 -= kbps(lease);
        from.1 = from.1.saturating_sub(1);
        let to_load = load.get_mut(to).expect("ranked");
        to_load.0 += kbps(lease);
        to_load.1 += 1;
        out.push((to.to_owned(), assignment(lease, true)));
    };
    let heaviest_first = |leases: &mut Vec<&Lease>| {
        leases.sort_by(|a, b| {
            kbps(b)
                .total_cmp(&kbps(a))
                .then(a.shard_id.cmp(&b.shard_id))
        })
    };

    // Workers above their caps shed, heaviest leases first, until within them.
    for w in &ranked {
        let Some(cap) = w.max_kbps else { continue };
        let mut leases = owned_by
            .get(w.worker_id.as_str())
            .cloned()
            .unwrap_or_default();
        heaviest_first(&mut leases);
        for lease in leases {
            if load[w.worker_id.as_str()].0 <= cap || moves >= input.max_steal {
                break;
            }
            if let Some(to) = first_fit(&load, ranked.len(), lease, &w.worker_id) {
                relocate(&mut load, &mut out, &w.worker_id, &to.worker_id, lease);
                moves += 1;
            }
        }
    }

    // Free leases, heaviest first, to the first-ranked worker that fits them.
    heaviest_first(&mut free);
    let mut unplaced = 0;
    let mut placed = Vec::new();
    for lease in free {
        match first_fit(&load, ranked.len(), lease, "") {
            Some(w) => {
                let entry = load.get_mut(w.worker_id.as_str()).expect("ranked");
                entry.0 += kbps(lease);
                entry.1 += 1;
                placed.push((w.worker_id.clone(), assignment(lease, false)));
            }
            None => unplaced += 1,
        }
    }

    // Then from the last-ranked up, each lease to the first worker ranked above its owner.
    for at in (1..ranked.len()).rev() {
        let owner = ranked[at].worker_id.as_str();
        // Leases this round already moved (shed above): a set, so a round stays linear in
        // the leases at tens of thousands of them.
        let moved: HashSet<&str> = out.iter().map(|(_, a)| a.shard_id.as_str()).collect();
        let mut leases = owned_by.get(owner).cloned().unwrap_or_default();
        leases.retain(|l| !moved.contains(l.shard_id.as_str()));
        heaviest_first(&mut leases);
        for lease in leases {
            if moves >= input.max_steal {
                break;
            }
            if let Some(to) = first_fit(&load, at, lease, owner) {
                relocate(&mut load, &mut out, owner, &to.worker_id, lease);
                moves += 1;
            }
        }
    }
    placed.extend(out);
    Plan {
        assignments: placed,
        unplaced,
    }
}

#[cfg(test)]
mod tests;
