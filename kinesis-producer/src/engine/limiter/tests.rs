//! The limiter on paused time: the window, pacing, joining and adaptation.

use super::*;

const MIB: f64 = 1024.0 * 1024.0;

/// Offers `entry`-byte entries every millisecond for `secs`, answering each after
/// `latency`; returns the send times.
async fn drive(
    limiter: &mut ShardLimiter,
    entry: usize,
    secs: u64,
    latency: Duration,
) -> Vec<(Instant, usize)> {
    drive_varying(limiter, entry, secs, |_| latency)
        .await
        .into_iter()
        .map(|(sent, _, bytes)| (sent, bytes))
        .collect()
}

/// Like [`drive`], with the `i`th entry answered after `latency(i)`; returns the send
/// and answer times.
async fn drive_varying(
    limiter: &mut ShardLimiter,
    entry: usize,
    secs: u64,
    latency: impl Fn(usize) -> Duration,
) -> Vec<(Instant, Instant, usize)> {
    drive_taking(limiter, entry, secs, latency, ShardLimiter::try_acquire).await
}

/// Like [`drive_varying`], taking room with `take`.
async fn drive_taking(
    limiter: &mut ShardLimiter,
    entry: usize,
    secs: u64,
    latency: impl Fn(usize) -> Duration,
    take: fn(&mut ShardLimiter, usize, Instant) -> Option<Claim>,
) -> Vec<(Instant, Instant, usize)> {
    let start = Instant::now();
    let mut log = Vec::new();
    let mut pending: Vec<(Instant, Claim)> = Vec::new();
    while Instant::now() < start + Duration::from_secs(secs) {
        let now = Instant::now();
        pending.retain(|(at, claim)| {
            if *at <= now {
                limiter.answered(*claim, now);
            }
            *at > now
        });
        if let Some(claim) = take(limiter, entry, now) {
            let answer = now + latency(log.len());
            log.push((now, answer, entry));
            pending.push((answer, claim));
        }
        tokio::time::advance(Duration::from_millis(1)).await;
    }
    log
}

/// Over `secs` seconds the log carried more than 93% of the limit, and no second more
/// than all of it.
fn assert_close_to_the_limit(log: &[(Instant, usize)], secs: u64) {
    let total: usize = log.iter().map(|e| e.1).sum();
    assert!(
        total as f64 > 0.93 * MIB * secs as f64,
        "only {total} bytes in {secs} s"
    );
    assert!(max_in_any_second(log) as f64 <= MIB);
}

fn max_in_any_second(log: &[(Instant, usize)]) -> usize {
    (0..log.len())
        .map(|i| {
            log[i..]
                .iter()
                .take_while(|e| e.0 < log[i].0 + Duration::from_secs(1))
                .map(|e| e.1)
                .sum()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test(start_paused = true)]
async fn stays_within_the_limit_in_any_second_yet_close_to_it() {
    let mut limiter = ShardLimiter::new(MIB, 1000.0, Instant::now());
    let log = drive(&mut limiter, 50_000, 10, Duration::from_millis(20)).await;
    assert_close_to_the_limit(&log, 10);
}

/// The most bytes counted in any second if the service counts each entry at its send
/// and if it counts each at its answer.
fn max_counted(log: &[(Instant, Instant, usize)]) -> (usize, usize) {
    let at_send: Vec<_> = log.iter().map(|e| (e.0, e.2)).collect();
    let mut at_answer: Vec<_> = log.iter().map(|e| (e.1, e.2)).collect();
    at_answer.sort_by_key(|e| e.0);
    (max_in_any_second(&at_send), max_in_any_second(&at_answer))
}

#[tokio::test(start_paused = true)]
async fn a_steady_latency_costs_nothing() {
    // Every answer takes 300 ms: whether the service counts an entry as it arrives or
    // just before it answers, entries a second apart at sending are a second apart
    // there too, so a full second's allowance goes each second.
    let mut limiter = ShardLimiter::new(MIB, 1000.0, Instant::now());
    let log = drive_varying(&mut limiter, 50_000, 10, |_| Duration::from_millis(300)).await;
    let total: usize = log.iter().map(|e| e.2).sum();
    assert!(total as f64 > 0.93 * MIB * 10.0, "{total}");
    let (at_send, at_answer) = max_counted(&log);
    assert!(at_send as f64 <= MIB && at_answer as f64 <= MIB);
}

#[tokio::test(start_paused = true)]
async fn slow_answers_hold_the_budget_longer() {
    // One answer in four takes 400 ms instead of 20: the service may have counted it
    // up to 380 ms later than its send suggests, so it holds the budget that much
    // longer and fewer bytes go per second, still never more than the limit in any
    // second wherever between send and answer the service counts.
    let mut limiter = ShardLimiter::new(MIB, 1000.0, Instant::now());
    let latency = |i: usize| Duration::from_millis(if i % 4 == 3 { 400 } else { 20 });
    let log = drive_varying(&mut limiter, 50_000, 10, latency).await;
    let total: usize = log.iter().map(|e| e.2).sum();
    // Entries leave in order, so a slow one also holds the fast ones sent after it.
    assert!(
        total as f64 > 0.6 * MIB * 10.0 && (total as f64) < 0.9 * MIB * 10.0,
        "{total}"
    );
    let (at_send, at_answer) = max_counted(&log);
    assert!(at_send as f64 <= MIB && at_answer as f64 <= MIB);
}

#[tokio::test(start_paused = true)]
async fn record_count_is_limited_too() {
    let mut limiter = ShardLimiter::new(MIB, 1000.0, Instant::now());
    let log = drive(&mut limiter, 10, 3, Duration::from_millis(5)).await;
    assert!(
        log.len() <= 3000 && log.len() > 2700,
        "{} records in 3 s",
        log.len()
    );
    let max = (0..log.len())
        .map(|i| {
            log[i..]
                .iter()
                .take_while(|e| e.0 < log[i].0 + Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap();
    assert!(max <= 1000);
}

#[tokio::test(start_paused = true)]
async fn sends_are_paced_not_bursty() {
    let mut limiter = ShardLimiter::new(MIB, 1000.0, Instant::now());
    let log = drive(&mut limiter, 10_000, 3, Duration::from_millis(10)).await;
    for (i, (t0, _)) in log.iter().enumerate() {
        let n = log[i..]
            .iter()
            .take_while(|t| t.0 < *t0 + Duration::from_millis(100))
            .count();
        // At most a full burst plus 100 ms of rate: a fifth of what a plain one-second
        // window would let through at once.
        assert!(
            (n * 10_000) as f64 <= 0.2 * MIB + 10_000.0,
            "{n} entries within 100 ms"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn an_entry_joins_a_request_on_half_its_cost_and_repays_the_rest() {
    let start = Instant::now();
    let mut limiter = ShardLimiter::new(MIB, 1000.0, start);
    // A full burst (100 ms of rate) goes at once; then the bucket is empty.
    let entry = (0.1 * MIB) as usize;
    assert!(limiter.try_acquire(entry, start).is_some());
    tokio::time::advance(Duration::from_millis(60)).await;
    let now = Instant::now();
    // 60 ms of rate: not enough to send on its own, enough to ride along.
    assert!(limiter.try_acquire(entry, now).is_none());
    assert!(limiter.try_join(entry, now).is_some());
    // In debt by 40 ms of rate: the next batch of a full burst waits 140 ms, so the
    // rate stays what it was (two bursts in 200 ms).
    let ready = limiter.batch_ready_at(entry, entry, 1, now).unwrap();
    let waited = ready - now;
    assert!(
        waited >= Duration::from_millis(139) && waited <= Duration::from_millis(141),
        "{waited:?}"
    );
    assert!(limiter.try_join(entry, now).is_none(), "no second debt");
}

#[tokio::test(start_paused = true)]
async fn joining_keeps_every_second_within_the_limit() {
    let mut limiter = ShardLimiter::new(MIB, 1000.0, Instant::now());
    let latency = |_| Duration::from_millis(20);
    let log: Vec<_> = drive_taking(&mut limiter, 50_000, 10, latency, ShardLimiter::try_join)
        .await
        .into_iter()
        .map(|(sent, _, bytes)| (sent, bytes))
        .collect();
    assert_close_to_the_limit(&log, 10);
}

#[tokio::test(start_paused = true)]
async fn few_shards_wait_for_batches_that_fill_a_request_and_keep_the_limit() {
    // (shards of the stream, milliseconds of rate a batch waits for with a large backlog):
    // 4 shards make 400 KiB a request with 97.7 ms of each shard's rate.
    let cases = [
        (None, 50.0),
        (Some(64), 50.0),
        (Some(8), 50.0),
        (Some(4), 97.7),
        (Some(1), 100.0),
    ];
    for (shards, expected) in cases {
        let start = Instant::now();
        let mut limiter = ShardLimiter::new(MIB, 1000.0, start);
        if let Some(shards) = shards {
            limiter.pace_for(shards);
        }
        // Empty the bucket, then see how long the next batch of a second's backlog waits.
        limiter.try_acquire((0.1 * MIB) as usize, start).unwrap();
        let waited = limiter.batch_ready_at(1, MIB as usize, 100, start).unwrap() - start;
        let ms = waited.as_secs_f64() * 1000.0;
        assert!((ms - expected).abs() < 1.0, "{shards:?} shards: {waited:?}");
    }

    // Larger bursts still keep every second within the limit, close to it.
    let mut limiter = ShardLimiter::new(MIB, 1000.0, Instant::now());
    limiter.pace_for(1);
    let log = drive(&mut limiter, 20_000, 10, Duration::from_millis(20)).await;
    assert_close_to_the_limit(&log, 10);
}

#[tokio::test(start_paused = true)]
async fn an_oversize_entry_goes_alone() {
    let now = Instant::now();
    let mut limiter = ShardLimiter::new(MIB, 1000.0, now);
    let claim = limiter.try_acquire(5 * 1024 * 1024, now).unwrap();
    assert!(limiter.try_acquire(1, now).is_none());
    // Nothing can be planned until its answer arrives.
    assert_eq!(limiter.batch_ready_at(1, 1, 1, now), None);
    limiter.answered(claim, now);
    // Then the window frees a second later and the bucket pays its debt off in five.
    let ready = limiter.batch_ready_at(1, 1, 1, now).unwrap();
    assert!(ready >= now + Duration::from_secs(4), "{:?}", ready - now);
    tokio::time::advance(ready - now).await;
    assert!(limiter.try_acquire(1, Instant::now()).is_some());
}

#[tokio::test(start_paused = true)]
async fn throttling_shrinks_the_allowance_and_quiet_restores_it() {
    let mut limiter = ShardLimiter::new(MIB, 1000.0, Instant::now());
    limiter.on_throttle(Instant::now());
    assert!((limiter.factor() - 0.8).abs() < 1e-9);
    // A burst of throttled entries within a second counts once.
    limiter.on_throttle(Instant::now());
    assert!((limiter.factor() - 0.8).abs() < 1e-9);
    tokio::time::advance(Duration::from_secs(2)).await;
    limiter.on_throttle(Instant::now());
    assert!((limiter.factor() - 0.64).abs() < 1e-9);
    // With the allowance at 64% (recovering by 0.05 a quiet second), well under 1 MiB/s goes.
    let log = drive(&mut limiter, 10_000, 2, Duration::from_millis(5)).await;
    let per_sec = log.iter().map(|e| e.1).sum::<usize>() as f64 / 2.0;
    assert!(
        per_sec > 0.55 * MIB && per_sec < 0.75 * MIB,
        "{per_sec} bytes/s"
    );
    // Quiet seconds give back 0.05 each.
    tokio::time::advance(Duration::from_secs(20)).await;
    let _ = limiter.try_acquire(1, Instant::now());
    assert!(limiter.factor() > 0.99, "factor {}", limiter.factor());
}

#[tokio::test(start_paused = true)]
async fn allowance_never_drops_below_the_floor() {
    let mut limiter = ShardLimiter::new(MIB, 1000.0, Instant::now());
    for _ in 0..50 {
        limiter.on_throttle(Instant::now());
        tokio::time::advance(Duration::from_millis(1100)).await;
    }
    assert!(limiter.factor() >= MIN_FACTOR);
    assert!(limiter.try_acquire(1000, Instant::now()).is_some());
}

#[tokio::test(start_paused = true)]
async fn admission_follows_what_the_shard_stored_within_allowance_and_floor() {
    let mut limiter = ShardLimiter::new(MIB, 1000.0, Instant::now());
    // Nothing stored yet: the floor, a tenth of the limit.
    assert!((limiter.admission_rate(Instant::now()) - 0.1 * MIB).abs() < 1.0);
    // Others take most of the shard: it stores 200 KiB a second of ours.
    for _ in 0..5 {
        limiter.accepted(200 * 1024, Instant::now());
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    let rate = limiter.admission_rate(Instant::now());
    assert!((rate - 200.0 * 1024.0).abs() < 1.0, "{rate}");
    // It stores more than the allowance after a throttle: the allowance.
    limiter.on_throttle(Instant::now());
    for _ in 0..5 {
        limiter.accepted(MIB as usize, Instant::now());
        tokio::time::advance(Duration::from_millis(999)).await;
    }
    let rate = limiter.admission_rate(Instant::now());
    assert!(
        rate <= limiter.bytes_per_sec * limiter.factor() + 1.0,
        "{rate}"
    );
    // Idle again: back to the floor.
    tokio::time::advance(Duration::from_secs(6)).await;
    assert!((limiter.admission_rate(Instant::now()) - 0.1 * MIB).abs() < 1.0);
}
