//! Balancing by load: throughput, and lease count where throughput does not tell
//! ([`crate::Balance::Throughput`]).
//!
//! * A lease's **weight** is the KiB/s read from it (`throughputKBps`, written by its owner
//!   with each renewal) plus a tenth of the average lease's, so that idle leases are spread
//!   too; a lease no owner has measured yet weighs as the average measured one. On a quiet
//!   stream every lease weighs the same and the balance is by count.
//! * Free leases go, heaviest first, to the worker of ours with the least load that can
//!   renew one more and stays within its throughput cap (none: the lease waits).
//! * Then, when the heaviest member is more than `threshold` above the mean load (or one
//!   of ours is above its cap), leases move, until it is at the mean: each time a lease moves from it to the lightest member that can take
//!   it: the lease that brings the two closest, and only if the move narrows their gap by
//!   the threshold, or by the lease's own weight if that is less (a lease about as heavy as
//!   the gap would only swap their places). Noise within the threshold therefore moves nothing, a lease that cannot
//!   help (a hot shard alone heavier than the mean) stays, and a move is not undone by the
//!   next round unless the load itself changes by more than the threshold. At most
//!   `max_steal` moves a round.
//! * A move to one of ours is a steal; a move from ours to a KCL worker is a give, as in
//!   the count balance.

use std::collections::HashMap;

use super::{Assignment, Lease, Plan, PlanInput, Standing, assignment, average_kbps};

/// Loads of the members, as the plan goes.
struct Loads<'a> {
    weight: HashMap<&'a str, f64>,
    kbps: HashMap<&'a str, f64>,
    count: HashMap<&'a str, usize>,
}

impl<'a> Loads<'a> {
    fn add(&mut self, member: &'a str, weight: f64, kbps: f64, sign: f64) {
        *self.weight.entry(member).or_default() += sign * weight;
        *self.kbps.entry(member).or_default() += sign * kbps;
        let count = self.count.entry(member).or_default();
        if sign > 0.0 {
            *count += 1;
        } else {
            *count = count.saturating_sub(1);
        }
    }
}

/// Plans a round.
pub(super) fn plan<'a>(input: &PlanInput<'a>, standing: Standing<'a>) -> Plan {
    let Standing {
        available,
        mut free,
        mut owned_by,
        pending_for,
        members,
    } = standing;
    let average = average_kbps(&available);
    let kbps = |l: &Lease| l.throughput_kbps.unwrap_or(average);
    let total: f64 = available.iter().map(|l| kbps(l)).sum();
    // Idle leases still weigh something (a tenth of the average lease), so that they are
    // spread too; on a quiet stream every lease weighs the same.
    let floor = if total > 0.0 {
        0.1 * total / available.len() as f64
    } else {
        1.0
    };
    let weight = |l: &Lease| kbps(l) + floor;
    let mut loads = Loads {
        weight: HashMap::new(),
        kbps: HashMap::new(),
        count: HashMap::new(),
    };
    for member in &members {
        loads.weight.insert(member, 0.0);
        loads.kbps.insert(member, 0.0);
        loads.count.insert(member, 0);
        for lease in owned_by
            .get(member)
            .into_iter()
            .chain(pending_for.get(member))
            .flatten()
        {
            loads.add(member, weight(lease), kbps(lease), 1.0);
        }
    }
    let ours: HashMap<&'a str, &super::Candidate> = input
        .workers
        .iter()
        .map(|w| (w.worker_id.as_str(), w))
        .collect();
    let fits = |loads: &Loads<'_>, member: &str, lease: &Lease| match ours.get(member) {
        Some(c) => {
            loads.count[member] < c.capacity
                && c.max_kbps
                    .is_none_or(|cap| loads.kbps[member] + kbps(lease) <= cap)
        }
        None => true,
    };
    let over_cap = |loads: &Loads<'_>, member: &str| {
        ours.get(member)
            .and_then(|c| c.max_kbps)
            .is_some_and(|cap| loads.kbps[member] > cap)
    };
    let mut out: Vec<(String, Assignment)> = Vec::new();

    // Free leases, heaviest first, to the lightest of ours that can take them.
    free.sort_by(|a, b| {
        weight(b)
            .total_cmp(&weight(a))
            .then(a.shard_id.cmp(&b.shard_id))
    });
    let (mut placed, mut unplaced) = (0, 0);
    for lease in free {
        let taker = input
            .workers
            .iter()
            .map(|w| w.worker_id.as_str())
            .filter(|w| fits(&loads, w, lease))
            .min_by(|a, b| lighter(&loads, a, b));
        match taker {
            Some(w) => {
                loads.add(w, weight(lease), kbps(lease), 1.0);
                out.push((w.to_owned(), assignment(lease, false)));
                placed += 1;
            }
            None => unplaced += 1,
        }
    }

    // Then moves from the heaviest to the lightest.
    let mean = loads.weight.values().sum::<f64>() / members.len() as f64;
    let enough = input.threshold * mean;
    for moved in 0..input.max_steal {
        // Ours above their caps first, then the heaviest member, while above the threshold.
        let capped = members
            .iter()
            .copied()
            .filter(|m| over_cap(&loads, m) && owned_by.get(m).is_some_and(|l| !l.is_empty()))
            .max_by(|a, b| loads.kbps[a].total_cmp(&loads.kbps[b]));
        let victim = match capped {
            Some(v) => v,
            None => {
                let Some(v) = members
                    .iter()
                    .copied()
                    .filter(|m| owned_by.get(m).is_some_and(|l| !l.is_empty()))
                    .max_by(|a, b| lighter(&loads, a, b))
                else {
                    break;
                };
                // The threshold starts a rebalance; once started, it goes to the mean.
                let bar = if moved == 0 { mean + enough } else { mean };
                if loads.weight[v] <= bar + f64::EPSILON {
                    break;
                }
                v
            }
        };
        let must = capped.is_some();
        let victim_is_ours = ours.contains_key(victim);
        // Gives to KCL's workers wait for a round that took no free lease, so that a lease
        // is not taken and another given at once.
        let gives = victim_is_ours && placed == 0;
        let mut receivers: Vec<&str> = members
            .iter()
            .copied()
            .filter(|m| *m != victim)
            .filter(|m| ours.contains_key(m) || (gives && input.foreign.iter().any(|f| f == m)))
            .collect();
        receivers.sort_by(|a, b| lighter(&loads, a, b));
        let mut chosen = None;
        for receiver in receivers {
            let gap = loads.weight[victim] - loads.weight[receiver];
            let best = owned_by[victim]
                .iter()
                .enumerate()
                .filter(|(_, l)| fits(&loads, receiver, l))
                .map(|(i, l)| (i, weight(l), gap - (gap - 2.0 * weight(l)).abs()))
                // Narrowing the gap by the threshold, or by the lease's own weight if that is
                // less: a lease about as heavy as the gap would only swap their places.
                .filter(|(_, w, narrowed)| must || (*narrowed >= w.min(enough) && *narrowed > 0.0))
                .max_by(|a, b| a.2.total_cmp(&b.2));
            if let Some((i, _, _)) = best {
                chosen = Some((receiver, i));
                break;
            }
        }
        let Some((receiver, index)) = chosen else {
            break;
        };
        let lease = owned_by.get_mut(victim).expect("victim").swap_remove(index);
        loads.add(victim, weight(lease), kbps(lease), -1.0);
        loads.add(receiver, weight(lease), kbps(lease), 1.0);
        if ours.contains_key(receiver) {
            out.push((receiver.to_owned(), assignment(lease, true)));
        } else {
            let mut give = assignment(lease, false);
            give.give_to = Some(receiver.to_owned());
            out.push((victim.to_owned(), give));
        }
    }
    Plan {
        assignments: out,
        unplaced,
    }
}

/// Orders members by load, then lease count, then id.
fn lighter(loads: &Loads<'_>, a: &&str, b: &&str) -> std::cmp::Ordering {
    loads.weight[a]
        .total_cmp(&loads.weight[b])
        .then(loads.count[a].cmp(&loads.count[b]))
        .then(a.cmp(b))
}

#[cfg(test)]
mod tests;
