//! Checks a chaos run's audit events against what was produced and what the driver did.
//!
//! - **Nothing lost**: every acknowledged record was delivered at least once.
//! - **Per-key order**: each key's records were first delivered in stream order (a child
//!   shard's records after its parents').
//! - **One owner at a time**: no two workers' processing episodes of a shard overlap.
//! - **Duplicates only after a crash**: a record is delivered again only if the episode that
//!   delivered it before ended without a checkpoint handover (its process was killed, its
//!   lease lost, or its shutdown checkpoint could not be written), and every episode starts
//!   after the last checkpoint written before it.

use std::collections::{HashMap, HashSet};

use kinesis_examples::audit::{Event, EventKind};

/// What the driver knows beyond the audit: what was acknowledged, whom it killed, shards.
#[derive(Debug, Default, Clone)]
pub struct Expected {
    /// Data of every record the producer acknowledged.
    pub acknowledged: HashSet<String>,
    /// Workers killed with SIGKILL, and when (µs since the epoch).
    pub killed: HashMap<u32, u64>,
    /// Depth of every shard in the stream's lineage (0 for the original shards).
    pub shard_rank: HashMap<String, u32>,
}

/// How an episode ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The shard ended, or the worker shut down gracefully: a checkpoint was handed over.
    Handover,
    /// The lease was lost.
    Lost,
    /// The worker shut down gracefully but could not write its last checkpoint (DynamoDB
    /// unreachable): the next owner resumes from the checkpoint before it.
    Unsaved,
    /// The process was killed.
    Killed,
    /// No ending was logged (the run ended first).
    Open,
}

/// One worker's stretch of processing one shard.
#[derive(Debug, Clone)]
pub struct Episode {
    /// The worker.
    pub worker: u32,
    /// The shard.
    pub shard: String,
    /// When it began (µs).
    pub start: u64,
    /// When it ended (µs).
    pub end: u64,
    /// How it ended.
    pub ending: Ending,
}

/// What the checks found. [`Report::ok`] says whether the run passed.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Records acknowledged by the producer.
    pub acknowledged: usize,
    /// Deliveries, duplicates included.
    pub deliveries: usize,
    /// Distinct acknowledged records delivered.
    pub delivered: usize,
    /// Acknowledged records never delivered.
    pub lost: usize,
    /// Deliveries of a record already delivered.
    pub duplicates: usize,
    /// Duplicates not explained by a crash or a lost lease.
    pub unexplained_duplicates: usize,
    /// Keys whose records were first delivered out of stream order.
    pub order_violations: usize,
    /// Pairs of overlapping episodes of one shard in two workers.
    pub overlapping_owners: usize,
    /// Episodes that started at or before a checkpoint already written.
    pub rewinds: usize,
    /// Processing episodes.
    pub episodes: usize,
    /// The first few problems, in words.
    pub problems: Vec<String>,
}

impl Report {
    /// Whether every check passed.
    pub fn ok(&self) -> bool {
        self.lost == 0
            && self.unexplained_duplicates == 0
            && self.order_violations == 0
            && self.overlapping_owners == 0
            && self.rewinds == 0
    }

    /// The report as one JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "ok": self.ok(), "acknowledged": self.acknowledged, "deliveries": self.deliveries,
            "delivered": self.delivered, "lost": self.lost, "duplicates": self.duplicates,
            "unexplained_duplicates": self.unexplained_duplicates,
            "order_violations": self.order_violations,
            "overlapping_owners": self.overlapping_owners, "rewinds": self.rewinds,
            "episodes": self.episodes, "problems": self.problems,
        })
    }

    fn problem(&mut self, text: String) {
        if self.problems.len() < 20 {
            self.problems.push(text);
        }
    }
}

/// A record's place in its shard: sequence number (compared as a number), sub-sequence.
type Position<'a> = (usize, &'a str, u64);

/// A key's first delivery: shard rank, position, shard.
type First<'a> = (u32, Position<'a>, &'a str);

fn position(seq: &str, sub: u64) -> Position<'_> {
    (seq.len(), seq, sub)
}

/// Splits the events into episodes; returns them and, per event index, its episode.
fn episodes(events: &[Event], expected: &Expected) -> (Vec<Episode>, Vec<Option<usize>>) {
    let mut all: Vec<Episode> = Vec::new();
    let mut open: HashMap<(u32, &str), usize> = HashMap::new();
    let mut of_event = Vec::with_capacity(events.len());
    let mut last_seen: HashMap<u32, u64> = HashMap::new();
    for e in events {
        last_seen.insert(e.worker, e.t);
        let key = (e.worker, e.shard.as_str());
        match &e.kind {
            EventKind::Init { .. } => {
                if let Some(previous) = open.remove(&key) {
                    all[previous].end = e.t;
                }
                all.push(Episode {
                    worker: e.worker,
                    shard: e.shard.clone(),
                    start: e.t,
                    end: u64::MAX,
                    ending: Ending::Open,
                });
                open.insert(key, all.len() - 1);
                of_event.push(Some(all.len() - 1));
            }
            EventKind::Lost | EventKind::End | EventKind::Shutdown { .. } => {
                let index = open.remove(&key);
                if let Some(i) = index {
                    all[i].end = e.t;
                    all[i].ending = match e.kind {
                        EventKind::Lost => Ending::Lost,
                        EventKind::Shutdown {
                            checkpointed: false,
                        } => Ending::Unsaved,
                        _ => Ending::Handover,
                    };
                }
                of_event.push(index);
            }
            _ => of_event.push(open.get(&key).copied()),
        }
    }
    for episode in all.iter_mut().filter(|e| e.ending == Ending::Open) {
        if let Some(&killed) = expected.killed.get(&episode.worker) {
            episode.end = killed;
            episode.ending = Ending::Killed;
        } else {
            episode.end = last_seen
                .get(&episode.worker)
                .copied()
                .unwrap_or(episode.start);
        }
    }
    (all, of_event)
}

/// Runs every check.
pub fn verify(events: &[Event], expected: &Expected) -> Report {
    let mut report = Report {
        acknowledged: expected.acknowledged.len(),
        ..Report::default()
    };
    let (episodes, of_event) = episodes(events, expected);
    report.episodes = episodes.len();

    // One owner at a time.
    let mut by_shard: HashMap<&str, Vec<&Episode>> = HashMap::new();
    for e in &episodes {
        by_shard.entry(e.shard.as_str()).or_default().push(e);
    }
    for (shard, mut list) in by_shard {
        list.sort_by_key(|e| e.start);
        for (i, a) in list.iter().enumerate() {
            for b in &list[i + 1..] {
                if b.start >= a.end {
                    break;
                }
                if a.worker != b.worker {
                    report.overlapping_owners += 1;
                    report.problem(format!(
                        "{shard}: worker {} started at {} while worker {} held it until {}",
                        b.worker, b.start, a.worker, a.end
                    ));
                }
            }
        }
    }

    // Deliveries, duplicates, rewinds and order.
    let mut last_delivery: HashMap<&str, usize> = HashMap::new();
    let mut checkpoints: HashMap<&str, Position<'_>> = HashMap::new();
    let mut started: HashSet<usize> = HashSet::new();
    let mut first_positions: HashMap<&str, Vec<First<'_>>> = HashMap::new();
    for (event, episode) in events.iter().zip(&of_event) {
        match &event.kind {
            EventKind::Checkpoint { seq, sub } => {
                checkpoints.insert(event.shard.as_str(), position(seq, *sub));
            }
            EventKind::Batch { records } => {
                let Some(episode) = *episode else {
                    report.problem(format!("a batch of {} outside any episode", event.shard));
                    continue;
                };
                if started.insert(episode)
                    && let (Some(first), Some(checkpoint)) =
                        (records.first(), checkpoints.get(event.shard.as_str()))
                    && position(&first.0, first.1) <= *checkpoint
                {
                    report.rewinds += 1;
                    report.problem(format!(
                        "{}: worker {} began at {} {} at or before the checkpoint {:?}",
                        event.shard, event.worker, first.0, first.1, checkpoint
                    ));
                }
                for (seq, sub, data) in records {
                    report.deliveries += 1;
                    match last_delivery.insert(data.as_str(), episode) {
                        None => {
                            let key = data.split(':').next().unwrap_or(data);
                            let rank = expected.shard_rank.get(&event.shard).copied();
                            first_positions.entry(key).or_default().push((
                                rank.unwrap_or(0),
                                position(seq, *sub),
                                &event.shard,
                            ));
                        }
                        Some(previous) => {
                            report.duplicates += 1;
                            let explained = previous != episode
                                && matches!(
                                    episodes[previous].ending,
                                    Ending::Killed | Ending::Lost | Ending::Unsaved
                                );
                            if !explained {
                                report.unexplained_duplicates += 1;
                                report.problem(format!(
                                    "{data} delivered again by worker {} on {} after a {:?} episode",
                                    event.worker, event.shard, episodes[previous].ending
                                ));
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    for (key, firsts) in &first_positions {
        let in_order = firsts.windows(2).all(|w| {
            let ((ra, pa, sa), (rb, pb, sb)) = (&w[0], &w[1]);
            if sa == sb { pa < pb } else { ra < rb }
        });
        if !in_order {
            report.order_violations += 1;
            report.problem(format!("key {key} was first delivered out of stream order"));
        }
    }
    report.delivered = expected
        .acknowledged
        .iter()
        .filter(|d| last_delivery.contains_key(d.as_str()))
        .count();
    report.lost = report.acknowledged - report.delivered;
    if report.lost > 0 {
        let example = expected
            .acknowledged
            .iter()
            .find(|d| !last_delivery.contains_key(d.as_str()));
        report.problem(format!("{} records lost, e.g. {example:?}", report.lost));
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(t: u64, worker: u32, shard: &str, kind: EventKind) -> Event {
        Event {
            t,
            worker,
            shard: shard.into(),
            kind,
        }
    }

    fn batch(records: &[(&str, &str)]) -> EventKind {
        EventKind::Batch {
            records: records
                .iter()
                .map(|(s, d)| (s.to_string(), 0, d.to_string()))
                .collect(),
        }
    }

    fn checkpoint(seq: &str) -> EventKind {
        EventKind::Checkpoint {
            seq: seq.into(),
            sub: 0,
        }
    }

    fn init() -> EventKind {
        EventKind::Init {
            from: "TRIM_HORIZON".into(),
        }
    }

    fn expected(data: &[&str]) -> Expected {
        Expected {
            acknowledged: data.iter().map(|d| d.to_string()).collect(),
            ..Expected::default()
        }
    }

    #[test]
    fn a_crash_and_redelivery_since_the_checkpoint_passes() {
        let events = vec![
            ev(1, 1, "s0", init()),
            ev(2, 1, "s0", batch(&[("10", "k:0"), ("11", "k:1")])),
            ev(3, 1, "s0", checkpoint("10")),
            ev(10, 2, "s0", init()),
            ev(11, 2, "s0", batch(&[("11", "k:1"), ("12", "k:2")])),
            ev(12, 2, "s0", EventKind::Shutdown { checkpointed: true }),
        ];
        let mut exp = expected(&["k:0", "k:1", "k:2"]);
        exp.killed.insert(1, 5);
        let report = verify(&events, &exp);
        assert!(report.ok(), "{report:?}");
        assert_eq!((report.duplicates, report.lost), (1, 0));
    }

    #[test]
    fn loss_overlap_rewind_and_unexplained_duplicates_are_caught() {
        let events = vec![
            ev(1, 1, "s0", init()),
            ev(2, 1, "s0", batch(&[("10", "k:0"), ("11", "k:1")])),
            ev(3, 1, "s0", checkpoint("11")),
            // Worker 2 starts while worker 1 still holds the shard, before the checkpoint.
            ev(4, 2, "s0", init()),
            ev(5, 2, "s0", batch(&[("11", "k:1")])),
            ev(6, 1, "s0", EventKind::Shutdown { checkpointed: true }),
        ];
        let report = verify(&events, &expected(&["k:0", "k:1", "k:9"]));
        assert!(!report.ok());
        assert_eq!(report.lost, 1);
        assert_eq!(report.overlapping_owners, 1);
        assert_eq!(report.rewinds, 1);
        assert_eq!(report.unexplained_duplicates, 1);
    }

    #[test]
    fn a_shutdown_whose_checkpoint_failed_explains_redelivery_and_one_that_wrote_it_does_not() {
        let run = |checkpointed| {
            let events = vec![
                ev(1, 1, "s0", init()),
                ev(2, 1, "s0", batch(&[("10", "k:0"), ("11", "k:1")])),
                ev(3, 1, "s0", checkpoint("10")),
                ev(4, 1, "s0", EventKind::Shutdown { checkpointed }),
                ev(10, 2, "s0", init()),
                ev(11, 2, "s0", batch(&[("11", "k:1")])),
            ];
            verify(&events, &expected(&["k:0", "k:1"]))
        };
        let unsaved = run(false);
        assert!(unsaved.ok(), "{unsaved:?}");
        assert_eq!(unsaved.duplicates, 1);
        assert_eq!(run(true).unexplained_duplicates, 1);
    }

    #[test]
    fn a_shutdown_line_without_the_field_counts_as_checkpointed() {
        let line = r#"{"e":"shutdown","shard":"s0","t":5,"w":7}"#;
        let event = kinesis_examples::audit::Event::parse(line).unwrap();
        assert_eq!(event.kind, EventKind::Shutdown { checkpointed: true });
    }

    #[test]
    fn keys_out_of_stream_order_are_caught_across_parent_and_child() {
        let events = vec![
            ev(1, 1, "child", init()),
            ev(2, 1, "child", batch(&[("50", "k:1")])),
            ev(3, 1, "parent", init()),
            ev(4, 1, "parent", batch(&[("10", "k:0")])),
        ];
        let mut exp = expected(&["k:0", "k:1"]);
        exp.shard_rank = [("parent".to_string(), 0), ("child".to_string(), 1)].into();
        assert_eq!(verify(&events, &exp).order_violations, 1);
    }
}
