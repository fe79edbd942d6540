//! Balancing by load, round after round on simulated leases.

use std::time::Duration;

use super::super::Candidate;
use super::super::sim::Sim;

/// 8 shards, two of which carry 80% of the bytes.
const SKEWED: [f64; 8] = [400.0, 400.0, 33.3, 33.3, 33.3, 33.3, 33.3, 33.5];

#[tokio::test(start_paused = true)]
async fn two_hot_shards_of_eight_split_between_two_workers() {
    let mut sim = Sim::new(&SKEWED, &["a", "b"]);
    // "a" holds both hot shards and two cold ones, as a count balance may leave it.
    for (i, lease) in sim.leases.iter_mut().enumerate() {
        lease.owner = Some(if [0, 1, 2, 3].contains(&i) { "a" } else { "b" }.into());
    }
    assert!(sim.settle() >= 1);
    let mean = SKEWED.iter().sum::<f64>() / 2.0;
    for w in ["a", "b"] {
        let off = (sim.kbps_of(w) - mean).abs() / mean;
        assert!(off <= 0.2, "{w}: {} KiB/s, mean {mean}", sim.kbps_of(w));
        assert_eq!(sim.count_of(w), 4);
    }
    // Steady load: nothing more moves.
    for _ in 0..50 {
        assert_eq!(sim.round(), 0);
    }
}

#[tokio::test(start_paused = true)]
async fn a_cold_start_places_the_hot_shards_apart() {
    let mut sim = Sim::new(&SKEWED, &["a", "b", "c"]);
    sim.settle();
    let hot: Vec<&str> = sim.leases[..2]
        .iter()
        .map(|l| l.owner.as_deref().unwrap())
        .collect();
    assert_ne!(hot[0], hot[1], "the two hot shards on one worker");
    assert!(
        sim.moves.is_empty(),
        "placed right at once: {:?}",
        sim.moves
    );
    // A hot shard alone is above the mean; nothing can do better, nothing flaps.
    for _ in 0..50 {
        assert_eq!(sim.round(), 0);
    }
}

#[tokio::test(start_paused = true)]
async fn noise_within_the_threshold_moves_nothing() {
    let mut sim = Sim::new(&SKEWED, &["a", "b"]);
    sim.settle();
    let before = sim.moves.values().sum::<usize>();
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..200 {
        for (i, base) in SKEWED.iter().enumerate() {
            // ±5% noise on every lease, every round.
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let noise = (rng % 1000) as f64 / 10_000.0 - 0.05;
            sim.set(i, base * (1.0 + noise));
        }
        sim.round();
    }
    assert_eq!(sim.moves.values().sum::<usize>(), before);
}

#[tokio::test(start_paused = true)]
async fn a_hot_shard_that_cools_down_is_not_moved_back_and_forth() {
    let mut sim = Sim::new(&SKEWED, &["a", "b"]);
    sim.settle();
    sim.moves.clear();
    sim.set(0, 33.3);
    sim.settle();
    for _ in 0..50 {
        assert_eq!(sim.round(), 0);
    }
    assert!(
        sim.moves.values().all(|m| *m <= 1),
        "a lease moved twice: {:?}",
        sim.moves
    );
    // And warming up again settles again.
    sim.set(0, 400.0);
    sim.settle();
    for _ in 0..50 {
        assert_eq!(sim.round(), 0);
    }
}

#[tokio::test(start_paused = true)]
async fn a_quiet_stream_balances_by_count() {
    let mut sim = Sim::new(&[0.0; 12], &["a", "b", "c"]);
    sim.settle();
    for w in ["a", "b", "c"] {
        assert_eq!(sim.count_of(w), 4);
    }
    sim.workers.push(Candidate {
        worker_id: "d".into(),
        capacity: usize::MAX,
        failover: Duration::ZERO,
        max_kbps: None,
    });
    sim.settle();
    for w in ["a", "b", "c", "d"] {
        assert_eq!(sim.count_of(w), 3);
    }
}

#[tokio::test(start_paused = true)]
async fn unmeasured_leases_weigh_as_the_average() {
    let mut sim = Sim::new(&[100.0, 100.0, 0.0, 0.0], &["a", "b"]);
    sim.leases[2].throughput_kbps = None;
    sim.leases[3].throughput_kbps = None;
    sim.settle();
    // Four leases of 100 KiB/s each as far as the leader knows: two each.
    assert_eq!(sim.count_of("a"), 2);
    assert_eq!(sim.count_of("b"), 2);
}

#[tokio::test(start_paused = true)]
async fn a_worker_is_kept_under_its_throughput_cap() {
    let mut sim = Sim::new(&[100.0; 6], &["a", "b"]);
    sim.workers[0].max_kbps = Some(150.0);
    sim.settle();
    assert_eq!(sim.count_of("a"), 1);
    assert_eq!(sim.count_of("b"), 5);
    // Above its cap (its shards got busier): leases move off it.
    let mut sim = Sim::new(&[100.0; 6], &["a", "b"]);
    sim.settle();
    assert_eq!(sim.count_of("a"), 3);
    sim.workers[0].max_kbps = Some(150.0);
    sim.settle();
    assert!(sim.kbps_of("a") <= 150.0, "{}", sim.kbps_of("a"));
    // No room anywhere: a lease waits rather than overload a worker.
    let mut sim = Sim::new(&[100.0; 3], &["a"]);
    sim.workers[0].max_kbps = Some(250.0);
    sim.settle();
    assert_eq!(sim.count_of("a"), 2);
    assert!(sim.leases.iter().any(|l| l.owner.is_none()));
}

#[tokio::test(start_paused = true)]
async fn a_joining_worker_gets_one_hot_shard_not_both() {
    let mut sim = Sim::new(&SKEWED, &["a"]);
    sim.settle();
    assert_eq!(sim.count_of("a"), 8);
    sim.workers.push(Candidate {
        worker_id: "b".into(),
        capacity: usize::MAX,
        failover: Duration::ZERO,
        max_kbps: None,
    });
    assert_eq!(sim.settle(), 1, "fixed in one round");
    let mean = SKEWED.iter().sum::<f64>() / 2.0;
    for w in ["a", "b"] {
        assert!(
            (sim.kbps_of(w) - mean).abs() / mean <= 0.2,
            "{w}: {}",
            sim.kbps_of(w)
        );
    }
}
