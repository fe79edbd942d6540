//! Who owns which lease, as an observer sees it: the fleet benchmarks' yardstick.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Leases per owner, by a strongly consistent scan (the observer's reads are not the fleet's).
pub async fn owners(client: &aws_sdk_dynamodb::Client, table: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    let mut start = None;
    loop {
        let Ok(page) = client
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
        else {
            return counts;
        };
        for item in page.items() {
            if let Some(owner) = item.get("leaseOwner").and_then(|o| o.as_s().ok()) {
                *counts.entry(owner.clone()).or_insert(0) += 1;
            }
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            return counts;
        }
    }
}

/// Polls [`owners`] until `done` holds (then how long it took) or `bound` passes.
pub async fn wait_for<F: Fn(&HashMap<String, usize>) -> bool>(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    bound: Duration,
    done: F,
) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < bound {
        let scan = Instant::now();
        if done(&owners(client, table).await) {
            return Some(start.elapsed());
        }
        // Every 250 ms, or less often for a large table, so that watching takes no more
        // than a fifth of the emulator's time (at 4,000 leases a scan is ~1.4 MB).
        tokio::time::sleep(Duration::from_millis(250).max(scan.elapsed() * 4)).await;
    }
    None
}

/// Every lease owned, by exactly `workers` workers, each within one of the mean.
pub fn balanced(o: &HashMap<String, usize>, leases: usize, workers: usize) -> bool {
    let floor = leases / workers;
    o.len() == workers
        && o.values().sum::<usize>() == leases
        && o.values().all(|&n| n >= floor && n <= floor + 1)
}

/// A duration as the benchmarks print it.
pub fn shown(d: Option<Duration>) -> String {
    d.map_or("not reached".into(), |d| {
        format!("{:.1} s", d.as_secs_f64())
    })
}
