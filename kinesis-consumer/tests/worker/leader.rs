//! The leader: one worker assigns leases for the fleet. When it crashes another takes over
//! and its leases fail over within the failover time + `TAKEOVER_SLACK`; when it is cut off
//! from DynamoDB it stops leading before its successor starts; when it comes back it rejoins
//! as a follower without a second owner of any shard.

use crate::support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kinesis_consumer::WorkerHandle;
use kinesis_testkit::{FaultRule, LocalAws};
use support::{Log, assert_exclusive, leases, produce, spawn_worker};

const FAILOVER: Duration = Duration::from_secs(4);

/// Both tests time a failover against a bound of a few hundred milliseconds over its
/// inherent ~1.5 s of polls; run side by side on a 2-core machine (six workers and two
/// emulators in a debug build) they measured each other's load instead (7.0 s once in CI).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
const WORKERS: [&str; 3] = ["lw1", "lw2", "lw3"];

async fn builder(
    aws: &LocalAws,
    app: &str,
    stream: &str,
    id: &str,
) -> kinesis_consumer::WorkerBuilder {
    // Each worker signs with its own key, so a fault rule can cut off one of them.
    let options = aws.client_options_for(id);
    kinesis_consumer::Worker::builder(app, stream)
        .kinesis_client(options.kinesis().await)
        .dynamodb_client(options.dynamodb().await)
        .worker_id(id.to_owned())
        .idle_time_between_reads(Duration::from_millis(100))
        .failover_time(FAILOVER)
        .renewal_interval(Duration::from_millis(1200))
        .dynamodb_call_timeout(Duration::from_secs(1))
}

async fn owners(aws: &LocalAws, table: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for item in leases(aws, table).await.values() {
        if let Some(owner) = item.get("leaseOwner").and_then(|o| o.as_s().ok()) {
            *counts.entry(owner.clone()).or_insert(0) += 1;
        }
    }
    counts
}

async fn wait_until<F: Fn(&HashMap<String, usize>) -> bool>(
    aws: &LocalAws,
    table: &str,
    what: &str,
    bound: Duration,
    done: F,
) {
    let start = Instant::now();
    loop {
        let got = owners(aws, table).await;
        if done(&got) {
            return;
        }
        assert!(
            start.elapsed() < bound,
            "{what}: owners {got:?} after {bound:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn leader(handles: &[(String, WorkerHandle)]) -> Option<String> {
    handles
        .iter()
        .find(|(_, h)| h.is_leader())
        .map(|(id, _)| id.clone())
}

type Fleet = Vec<(
    String,
    WorkerHandle,
    tokio::task::JoinHandle<Result<(), kinesis_consumer::ConsumerError>>,
)>;

async fn start_fleet(aws: &LocalAws, app: &str, stream: &str, log: &Log) -> Fleet {
    let mut fleet = Vec::new();
    for id in WORKERS {
        let (handle, task) = spawn_worker(builder(aws, app, stream, id).await, id, log).await;
        fleet.push((id.to_owned(), handle, task));
    }
    wait_until(aws, app, "balanced", Duration::from_secs(30), |o| {
        o.len() == 3 && o.values().all(|n| *n == 2)
    })
    .await;
    fleet
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_leader_is_replaced_and_its_leases_fail_over_in_time() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("leader-crash", 6).await.unwrap();
    produce(&aws, "leader-crash", 600, "a").await;
    let log = Log::default();
    let mut fleet = start_fleet(&aws, "leader-crash-app", "leader-crash", &log).await;
    log.wait_for(600, Duration::from_secs(30)).await;
    let handles: Vec<(String, WorkerHandle)> = fleet
        .iter()
        .map(|(id, h, _)| (id.clone(), h.clone()))
        .collect();
    let old = leader(&handles).expect("a leader");
    assert_eq!(
        handles.iter().filter(|(_, h)| h.is_leader()).count(),
        1,
        "one leader"
    );

    // Crash: the leader's future is dropped; nothing is released, the lock is not given up.
    let at = fleet.iter().position(|(id, _, _)| *id == old).unwrap();
    let (_, _, task) = fleet.remove(at);
    task.abort();
    let crashed = Instant::now();
    let _ = task.await;
    log.crashed(&old);
    let survivors: Vec<(String, WorkerHandle)> = fleet
        .iter()
        .map(|(id, h, _)| (id.clone(), h.clone()))
        .collect();
    wait_until(
        &aws,
        "leader-crash-app",
        "leases failed over",
        FAILOVER * 4,
        |o| !o.contains_key(&old) && o.values().sum::<usize>() == 6,
    )
    .await;
    let took = crashed.elapsed();
    let successor = leader(&survivors).expect("a new leader");
    println!("leader crash: {successor} leads and {old}'s leases moved {took:?} after the crash");
    assert!(
        took <= FAILOVER + support::TAKEOVER_SLACK,
        "failover took {took:?}"
    );

    // The new leader keeps assigning: records still flow on every shard, nothing lost.
    produce(&aws, "leader-crash", 600, "b").await;
    log.wait_for(1_200, Duration::from_secs(30)).await;
    for (_, handle, task) in fleet {
        handle.shutdown().await;
        task.await.unwrap().unwrap();
    }
    assert_exclusive(&log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_dynamodb_stops_leading_before_its_successor_starts() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("leader-cut", 6).await.unwrap();
    produce(&aws, "leader-cut", 600, "a").await;
    let log = Log::default();
    let fleet = start_fleet(&aws, "leader-cut-app", "leader-cut", &log).await;
    let handles: Vec<(String, WorkerHandle)> = fleet
        .iter()
        .map(|(id, h, _)| (id.clone(), h.clone()))
        .collect();
    let old = leader(&handles).expect("a leader");
    let old_handle = handles.iter().find(|(id, _)| *id == old).unwrap().1.clone();

    let cut = aws
        .dynamodb_faults()
        .add_rule(FaultRule::black_hole().from_client(old.clone()));
    let cut_at = Instant::now();
    // Watch who leads, every 10 ms, until another worker does.
    let mut stopped = None;
    let successor_at = loop {
        let now = Instant::now();
        if stopped.is_none() && !old_handle.is_leader() {
            stopped = Some(now);
        }
        if handles.iter().any(|(id, h)| *id != old && h.is_leader()) {
            break now;
        }
        assert!(cut_at.elapsed() < FAILOVER * 4, "no successor");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let stopped = stopped.expect("the cut-off leader stopped leading first");
    println!(
        "leader partition: {old} stopped leading {:?} after the cut, its successor started {:?} after it",
        stopped - cut_at,
        successor_at - stopped
    );
    assert!(stopped < successor_at);
    assert!(successor_at - cut_at <= FAILOVER + support::TAKEOVER_SLACK);
    wait_until(
        &aws,
        "leader-cut-app",
        "leases failed over",
        FAILOVER * 4,
        |o| !o.contains_key(&old) && o.values().sum::<usize>() == 6,
    )
    .await;
    let moved = cut_at.elapsed();
    println!("leader partition: {old}'s leases owned by others {moved:?} after the cut");
    assert!(
        moved <= FAILOVER + support::TAKEOVER_SLACK,
        "failover took {moved:?}"
    );

    // Heal: it rejoins as a follower and gets its share back, never a second owner.
    assert!(aws.dynamodb_faults().remove(cut));
    wait_until(
        &aws,
        "leader-cut-app",
        "balanced again",
        Duration::from_secs(60),
        |o| o.len() == 3 && o.values().all(|n| *n == 2),
    )
    .await;
    assert_eq!(
        handles.iter().filter(|(_, h)| h.is_leader()).count(),
        1,
        "one leader after healing"
    );
    produce(&aws, "leader-cut", 600, "b").await;
    log.wait_for(1_200, Duration::from_secs(60)).await;
    for (_, handle, task) in fleet {
        handle.shutdown().await;
        task.await.unwrap().unwrap();
    }
    assert_exclusive(&log);
}
