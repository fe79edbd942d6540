//! A worker cut off from DynamoDB (connections open, nothing answers) while Kinesis still
//! works: it must stop delivering before another worker can take its leases, the other worker
//! takes them within the failover time + `TAKEOVER_SLACK`, and when the partition heals it
//! rejoins without a second owner.

use crate::support;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kinesis_producer::{Producer, UserRecord};
use kinesis_testkit::{FaultRule, LocalAws};
use support::{Log, leases, spawn_worker};

const FAILOVER: Duration = Duration::from_secs(4);

async fn worker(aws: &LocalAws, id: &str) -> kinesis_consumer::WorkerBuilder {
    // Each worker signs with its own key (letters and digits: DynamoDB Local refuses
    // others), so a fault rule can cut off one of them.
    let options = aws.client_options_for(&key(id));
    kinesis_consumer::Worker::builder("partition-app", "partition")
        .kinesis_client(options.kinesis().await)
        .dynamodb_client(options.dynamodb().await)
        .worker_id(id.to_owned())
        .idle_time_between_reads(Duration::from_millis(100))
        .failover_time(FAILOVER)
        .renewal_interval(Duration::from_millis(1200))
        .taking_interval(Duration::from_millis(500))
        .dynamodb_call_timeout(Duration::from_secs(1))
}

fn key(worker: &str) -> String {
    worker.replace('-', "")
}

async fn owners(aws: &LocalAws) -> HashMap<String, Vec<String>> {
    let mut by_owner: HashMap<String, Vec<String>> = HashMap::new();
    for (shard, item) in leases(aws, "partition-app").await {
        if let Some(owner) = item.get("leaseOwner").and_then(|o| o.as_s().ok()) {
            by_owner.entry(owner.clone()).or_default().push(shard);
        }
    }
    by_owner
}

async fn wait_until<F: Fn(&HashMap<String, Vec<String>>) -> bool>(
    aws: &LocalAws,
    what: &str,
    bound: Duration,
    done: F,
) -> Instant {
    let start = Instant::now();
    loop {
        let got = owners(aws).await;
        if done(&got) {
            return Instant::now();
        }
        assert!(
            start.elapsed() < bound,
            "{what}: owners {got:?} after {bound:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_cut_off_from_dynamodb_stops_before_its_leases_move_and_rejoins_cleanly() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("partition", 4).await.unwrap();
    let log = Log::default();
    let (ha, ta) = spawn_worker(worker(&aws, "worker-a").await, "worker-a", &log).await;
    wait_until(&aws, "a owns all", Duration::from_secs(30), |o| {
        o.get("worker-a").is_some_and(|s| s.len() == 4)
    })
    .await;
    let (hb, tb) = spawn_worker(worker(&aws, "worker-b").await, "worker-b", &log).await;
    wait_until(&aws, "balanced", Duration::from_secs(30), |o| {
        o.values().all(|s| s.len() == 2) && o.len() == 2
    })
    .await;

    // Records keep arriving on every shard for the whole test.
    let producing = Arc::new(AtomicBool::new(true));
    let producer = Producer::builder("partition")
        .client(aws.kinesis_client().await)
        .build()
        .unwrap();
    let feeder = {
        let producing = producing.clone();
        tokio::spawn(async move {
            let mut sent = 0usize;
            let mut puts = Vec::new();
            while producing.load(Ordering::Relaxed) {
                for _ in 0..20 {
                    let record = UserRecord::new(format!("key-{sent}"), format!("p-{sent:07}"));
                    puts.push(producer.send(record).await.unwrap());
                    sent += 1;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            for put in puts {
                put.await.unwrap();
            }
            producer.shutdown().await;
            sent
        })
    };
    // Both workers deliver for a while first.
    tokio::time::sleep(Duration::from_secs(2)).await;
    // a's share at the cut: normally 2, but on a loaded machine the fleet can still move a lease
    // (a late renewal of b's, a handoff for balance) before the cut, so the checks below follow
    // what the table says a holds, not a constant.
    let a_shards: HashSet<String> = owners(&aws).await["worker-a"].iter().cloned().collect();
    assert!(!a_shards.is_empty(), "a owns shards before the cut");

    let cut = aws
        .dynamodb_faults()
        .add_rule(FaultRule::black_hole().from_client(key("worker-a")));
    let cut_at = Instant::now();
    let moved_at = wait_until(&aws, "b takes over", FAILOVER * 4, |o| {
        o.get("worker-b").is_some_and(|s| s.len() == 4)
    })
    .await;
    let took = moved_at - cut_at;
    println!("partition: b owned a's shards {took:?} after the cut (failover {FAILOVER:?})");
    assert!(
        took <= FAILOVER + support::TAKEOVER_SLACK,
        "b took over after {took:?}"
    );

    // Every batch a received on its old shards came before b started each of them, and a's
    // processors were told the lease was lost.
    // The table shows the take before b's processor is initialised (b first asks Kinesis
    // for an iterator), so wait for both starts.
    let b_started = |log: &Log| -> HashMap<String, Instant> {
        let events = log.events.lock().unwrap();
        events
            .iter()
            .filter(|(w, s, what, at)| {
                w == "worker-b" && *what == "init" && *at > cut_at && a_shards.contains(s)
            })
            .map(|(_, s, _, at)| (s.clone(), *at))
            .collect()
    };
    let waiting = Instant::now();
    while b_started(&log).len() < a_shards.len() && waiting.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let b_started = b_started(&log);
    assert_eq!(
        b_started.len(),
        a_shards.len(),
        "b started every one of a's shards {a_shards:?}"
    );
    for d in log.deliveries.lock().unwrap().iter() {
        if d.worker == "worker-a"
            && let Some(started) = b_started.get(&d.shard_id)
        {
            assert!(
                d.at < *started,
                "a delivered on {} {:?} after b started it",
                d.shard_id,
                d.at - *started
            );
        }
    }
    // The table can run ahead of a's processors: a lease handed to a for balance just before
    // the cut has `leaseOwner` a, but a starts its processor only once it reads the handover,
    // which the cut prevents. So the shards whose processor a had open at the cut (or opened
    // after it) are the ones a must have been told it lost.
    let mut told = 0;
    for shard in &a_shards {
        let a_events: Vec<(&'static str, Instant)> = log
            .events
            .lock()
            .unwrap()
            .iter()
            .filter(|(w, s, _, _)| w == "worker-a" && s == shard)
            .map(|(_, _, what, at)| (*what, *at))
            .collect();
        let open_at_cut = a_events
            .iter()
            .rev()
            .find(|(_, at)| *at < cut_at)
            .is_some_and(|(what, _)| *what == "init");
        let opened_after = a_events
            .iter()
            .any(|(what, at)| *what == "init" && *at >= cut_at);
        if open_at_cut || opened_after {
            assert_eq!(
                a_events.last().map(|(what, _)| *what),
                Some("lost"),
                "a was told it lost {shard}: {:?}",
                log.events_for(shard)
            );
            told += 1;
        }
    }
    assert!(told > 0, "a was processing shards at the cut: {a_shards:?}");

    // Heal: a rejoins and gets its share back, with no second owner at any time.
    assert!(aws.dynamodb_faults().remove(cut));
    wait_until(&aws, "balanced again", Duration::from_secs(60), |o| {
        o.values().all(|s| s.len() == 2) && o.len() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    producing.store(false, Ordering::Relaxed);
    let sent = feeder.await.unwrap();
    log.wait_for(sent, Duration::from_secs(60)).await;
    hb.shutdown().await;
    ha.shutdown().await;
    tb.await.unwrap().unwrap();
    ta.await.unwrap().unwrap();
    support::assert_exclusive(&log);
}
