//! Packing, round after round on simulated leases.

use super::super::sim::Sim;

/// A fleet with `balance: Pack`, every worker capped at `cap` KiB/s.
fn packed(kbps: &[f64], workers: &[&str], cap: f64) -> Sim {
    let mut sim = Sim::new(kbps, workers);
    sim.balance = crate::Balance::Pack;
    for w in &mut sim.workers {
        w.max_kbps = Some(cap);
    }
    sim
}

fn busy_workers(sim: &Sim) -> usize {
    sim.workers
        .iter()
        .filter(|w| sim.count_of(&w.worker_id) > 0)
        .count()
}

#[tokio::test(start_paused = true)]
async fn a_quiet_stream_of_a_thousand_shards_sits_on_one_worker() {
    let mut sim = packed(&[0.2; 1000], &["a", "b", "c", "d"], 1024.0);
    // As a count balance left it: 250 each.
    let ids = ["a", "b", "c", "d"];
    for (i, lease) in sim.leases.iter_mut().enumerate() {
        lease.owner = Some(ids[i % 4].into());
    }
    assert_eq!(sim.settle(), 1, "packed in one round");
    assert_eq!(busy_workers(&sim), 1);
    assert_eq!(sim.count_of("a"), 1000, "ties go to the first id");
    assert_eq!(
        sim.moves.len(),
        750,
        "only the leases that had to move moved"
    );
    for _ in 0..20 {
        assert_eq!(sim.round(), 0);
    }
}

#[tokio::test(start_paused = true)]
async fn ten_thousand_leases_over_a_hundred_workers_pack_in_one_round() {
    // A fleet-sized table: the round is linear in the leases (each one is looked at a bounded
    // number of times), so it takes milliseconds, not the minutes a quadratic one would.
    let workers: Vec<String> = (0..100).map(|i| format!("w{i:03}")).collect();
    let ids: Vec<&str> = workers.iter().map(String::as_str).collect();
    let mut sim = packed(&[0.2; 10_000], &ids, 4096.0);
    for (i, lease) in sim.leases.iter_mut().enumerate() {
        lease.owner = Some(ids[i % ids.len()].into());
    }
    let started = std::time::Instant::now();
    assert_eq!(
        sim.round(),
        9_900,
        "every lease but the first worker's moved"
    );
    let took = started.elapsed();
    println!("packing: a round over 10,000 leases and 100 workers took {took:?}");
    assert_eq!(busy_workers(&sim), 1);
    assert_eq!(sim.round(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_cold_start_places_every_free_lease_on_the_first_worker() {
    let mut sim = packed(&[0.2; 64], &["b", "a"], 1024.0);
    sim.settle();
    assert_eq!(sim.count_of("a"), 64);
    assert!(sim.moves.is_empty(), "placed, not moved: {:?}", sim.moves);
}

#[tokio::test(start_paused = true)]
async fn a_busy_stream_fills_workers_to_their_caps_less_the_band() {
    // 2,000 KiB/s in 20 leases, caps of 1,000 less 10%: three workers, the fourth idle.
    let mut sim = packed(&[100.0; 20], &["a", "b", "c", "d"], 1000.0);
    sim.settle();
    assert_eq!(busy_workers(&sim), 3);
    for w in ["a", "b", "c", "d"] {
        assert!(sim.kbps_of(w) <= 900.0, "{w}: {}", sim.kbps_of(w));
    }
    // ±5% noise on every lease, every round: within the band, nothing moves.
    let before = sim.moves.values().sum::<usize>();
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..200 {
        for i in 0..20 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let noise = (rng % 1000) as f64 / 10_000.0 - 0.05;
            sim.set(i, 100.0 * (1.0 + noise));
        }
        sim.round();
    }
    assert_eq!(sim.moves.values().sum::<usize>(), before);
}

#[tokio::test(start_paused = true)]
async fn a_worker_whose_shards_get_busy_sheds_down_to_its_cap() {
    let mut sim = packed(&[1.0; 10], &["a", "b", "c", "d"], 1000.0);
    sim.settle();
    assert_eq!(sim.count_of("a"), 10);
    for i in 0..10 {
        sim.set(i, 300.0);
    }
    sim.settle();
    for w in ["a", "b", "c", "d"] {
        assert!(sim.kbps_of(w) <= 1000.0, "{w}: {}", sim.kbps_of(w));
    }
    assert_eq!(sim.count_of("a"), 3, "a keeps what fits");
    // The stream quiets down again: back onto the first worker.
    for i in 0..10 {
        sim.set(i, 1.0);
    }
    sim.settle();
    assert_eq!(sim.count_of("a"), 10);
}

#[tokio::test(start_paused = true)]
async fn the_leases_of_a_lost_worker_go_to_the_next_in_rank() {
    let mut sim = packed(&[0.2; 40], &["a", "b", "c"], 1024.0);
    sim.settle();
    assert_eq!(sim.count_of("a"), 40);
    // "a" dies: its leases expire (no owner) and it is no longer a live worker.
    sim.workers.retain(|w| w.worker_id != "a");
    for lease in &mut sim.leases {
        lease.owner = None;
    }
    sim.settle();
    assert_eq!(sim.count_of("b"), 40);
    assert_eq!(busy_workers(&sim), 1);
}

#[tokio::test(start_paused = true)]
async fn lease_capacity_and_max_steal_are_kept() {
    let mut sim = packed(&[0.2; 30], &["a", "b"], 1024.0);
    sim.workers[0].capacity = 20;
    sim.settle();
    assert_eq!(sim.count_of("a"), 20);
    assert_eq!(sim.count_of("b"), 10);
    // At most max_steal moves a round.
    let mut sim = packed(&[0.2; 30], &["a", "b"], 1024.0);
    for (i, lease) in sim.leases.iter_mut().enumerate() {
        lease.owner = Some(if i < 15 { "a" } else { "b" }.into());
    }
    sim.max_steal = 4;
    assert_eq!(sim.round(), 4);
    assert_eq!(sim.count_of("a"), 19);
}
