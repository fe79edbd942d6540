//! Producer soak: send as fast as the producer accepts, for a bounded time, into a stream whose
//! shard limits are enforced and whose PutRecords calls fail now and then (throttled, 500,
//! dropped connections, partial failures). Every second it samples this process's memory and
//! the producer's request rate; at the end it reads the stream back.
//!
//! `cargo build --workspace --all-targets && target/debug/soak [--seconds 30] [--shards 2]
//! [--fault-probability 0.1]` (the emulator is the `kinesis-testkit` binary of the same build)
//!
//! The emulator runs in a child process (the `kinesis-testkit` binary, built next to this
//! example) so that the memory measured is the producer's alone. Passes (exit code 0) when
//! nothing acknowledged is missing, nothing failed, memory stayed bounded (the peak of the
//! second half of the run within 1.5× + 32 MiB of the first half's) and requests per second
//! stayed bounded while throttled (no retry storm: at most `--max-requests-per-shard` per
//! shard per second).

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use kinesis_common::client::ClientOptions;
use kinesis_producer::{Producer, UserRecord};
use kinesis_testkit::streams;

#[derive(Parser)]
struct Args {
    /// How long to send.
    #[arg(long, default_value_t = 30.0)]
    seconds: f64,
    /// Shards of the stream.
    #[arg(long, default_value_t = 2)]
    shards: u32,
    /// Bytes per record.
    #[arg(long, default_value_t = 200)]
    size: usize,
    /// Fraction of PutRecords requests that fail.
    #[arg(long, default_value_t = 0.1)]
    fault_probability: f64,
    /// Most PutRecords requests per shard per second allowed before it counts as a storm.
    #[arg(long, default_value_t = 25.0)]
    max_requests_per_shard: f64,
}

/// This process's resident set size in bytes.
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

#[tokio::main]
async fn main() -> Result<std::process::ExitCode, Box<dyn std::error::Error>> {
    let args = Args::parse();
    let testkit = std::env::current_exe()?
        .parent()
        .map(|p| p.join("kinesis-testkit"))
        .ok_or("no folder for the kinesis-testkit binary")?;
    let mut emulator = Command::new(&testkit)
        .args([
            "--kinesis-port",
            "0",
            "--dynamodb-port",
            "0",
            "--enforce-limits",
        ])
        .arg("--put-fault-probability")
        .arg(args.fault_probability.to_string())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(
            std::env::temp_dir().join("kinesis-soak-emulator.log"),
        )?)
        .spawn()
        .map_err(|e| {
            format!(
                "{}: {e} (cargo build --bin kinesis-testkit)",
                testkit.display()
            )
        })?;
    let stdout = emulator.stdout.take().ok_or("no emulator stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let kinesis_url = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("kinesis  ").map(str::to_owned))
        .ok_or("the emulator did not print its endpoint")?;
    // Keep reading what else it prints, so it never writes into a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let options = ClientOptions::local(kinesis_url.clone(), kinesis_url);
    let client = options.kinesis().await;
    streams::create_stream(&client, "soak", args.shards).await?;
    let producer = Producer::builder("soak").client(client.clone()).build()?;

    // One flag per record sent (by number), so the soak's own bookkeeping stays small.
    let acknowledged: Arc<Mutex<Vec<bool>>> = Arc::default();
    let failed = Arc::new(Mutex::new(0u64));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(args.seconds);
    let sender = {
        let (producer, acknowledged, failed) =
            (producer.clone(), acknowledged.clone(), failed.clone());
        let size = args.size;
        tokio::spawn(async move {
            let mut puts = tokio::task::JoinSet::new();
            let mut n = 0u64;
            while Instant::now() < deadline {
                let id = format!("soak-{n:09}-");
                let mut data = id.clone().into_bytes();
                data.resize(size.max(data.len()), b'.');
                let key = format!("key-{}", n % 1024);
                let index = n as usize;
                acknowledged.lock().unwrap().push(false);
                n += 1;
                // `send` waits while the producer's outstanding bound is reached.
                let Ok(put) = producer.send(UserRecord::new(key, data)).await else {
                    *failed.lock().unwrap() += 1;
                    continue;
                };
                let (acknowledged, failed) = (acknowledged.clone(), failed.clone());
                puts.spawn(async move {
                    match put.await {
                        Ok(_) => acknowledged.lock().unwrap()[index] = true,
                        Err(e) => {
                            eprintln!("soak: a record failed: {e}");
                            *failed.lock().unwrap() += 1;
                        }
                    }
                });
                while puts.try_join_next().is_some() {}
            }
            while puts.join_next().await.is_some() {}
            n
        })
    };

    println!("  s   records/s  requests/s  throttled/s  outstanding MiB  RSS MiB");
    let mut samples: Vec<(f64, u64)> = Vec::new();
    let mut worst_rate = 0.0f64;
    let mut last = producer.stats();
    let mut last_acked = 0usize;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let stats = producer.stats();
        let acked = acknowledged.lock().unwrap().iter().filter(|a| **a).count();
        let requests = stats.requests - last.requests;
        let throttled = stats.throttled_requests - last.throttled_requests;
        let t = start.elapsed().as_secs_f64();
        let memory = rss();
        samples.push((t, memory));
        worst_rate = worst_rate.max(requests as f64);
        println!(
            "{t:4.0} {:10} {requests:11} {throttled:12} {:16.1} {:8.1}",
            acked - last_acked,
            producer.outstanding_bytes() as f64 / 1048576.0,
            memory as f64 / 1048576.0
        );
        (last, last_acked) = (stats, acked);
    }
    let sent = sender.await?;
    producer.shutdown().await;
    let stats = producer.stats();
    let seconds = start.elapsed().as_secs_f64();

    let records = streams::read_stream(&client, "soak").await?;
    let mut seen: HashSet<u64> = HashSet::new();
    let mut stored = 0usize;
    for (_, record) in &records {
        let d = kinesis_common::aggregation::deaggregate(
            record.partition_key(),
            None,
            record.data().clone().into_inner().into(),
        );
        for r in d.records {
            stored += 1;
            let text = String::from_utf8_lossy(&r.data);
            // The id is the fixed-width head: "soak-NNNNNNNNN-".
            if let Some(n) = text.get(5..14).and_then(|n| n.parse().ok()) {
                seen.insert(n);
            }
        }
    }
    let acknowledged: Vec<u64> = (0u64..)
        .zip(acknowledged.lock().unwrap().iter())
        .filter_map(|(n, acked)| acked.then_some(n))
        .collect();
    let lost = acknowledged.iter().filter(|n| !seen.contains(*n)).count();
    let failed = *failed.lock().unwrap();
    let half = samples.len() / 2;
    let first_peak = samples[..half].iter().map(|s| s.1).max().unwrap_or(0);
    let second_peak = samples[half..].iter().map(|s| s.1).max().unwrap_or(0);
    let memory_bounded = (second_peak as f64) <= first_peak as f64 * 1.5 + 32.0 * 1048576.0;
    let storm_bound = args.max_requests_per_shard * f64::from(args.shards);
    let no_storm = worst_rate <= storm_bound;
    let _ = Command::new("kill")
        .args(["-TERM", &emulator.id().to_string()])
        .status();
    let _ = emulator.wait();

    let ok = lost == 0 && failed == 0 && memory_bounded && no_storm;
    println!(
        "{}",
        serde_json::json!({
            "ok": ok, "seconds": seconds, "sent": sent, "acknowledged": acknowledged.len(),
            "failed": failed, "lost": lost, "stored_user_records": stored,
            "duplicates": stored.saturating_sub(seen.len()),
            "records_per_s": acknowledged.len() as f64 / seconds,
            "requests": stats.requests, "throttled_requests": stats.throttled_requests,
            "retries": stats.retries, "worst_requests_per_s": worst_rate,
            "storm_bound_requests_per_s": storm_bound,
            "rss_mib_first_half_peak": first_peak as f64 / 1048576.0,
            "rss_mib_second_half_peak": second_peak as f64 / 1048576.0,
        })
    );
    Ok(if ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}
