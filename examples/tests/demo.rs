//! The demo's flow end to end, and the sink's crash safety.

mod support;

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use kinesis_consumer::Worker;
use kinesis_examples::generator::{Generator, id_of};
use kinesis_examples::output::read_local_lines;
use kinesis_producer::{Producer, UserRecord};
use kinesis_sink::{Destination, Format, Sink};
use kinesis_testkit::{FaultRule, LocalAws};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "kinesis-demo-{name}-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The demo binary, which `cargo test` builds next to the test binaries.
fn demo_exe() -> PathBuf {
    support::example("demo_app")
}

fn ids_in(dir: &std::path::Path, run: &str) -> (HashSet<String>, usize) {
    let lines = read_local_lines(dir).unwrap();
    let total = lines.len();
    let ids = lines
        .iter()
        .filter_map(|l| id_of(l))
        .filter(|id| id.starts_with(run))
        .map(str::to_owned)
        .collect();
    (ids, total)
}

#[test]
fn headless_demo_with_enhanced_fan_out_writes_every_record() {
    let out = temp_dir("fan-out");
    let output = std::process::Command::new(demo_exe())
        .args(["--headless", "--records", "5000", "--fan-out", "demo-efo"])
        .arg("--output-dir")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("produced 5000, delivered 5000, missing 0"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn headless_demo_writes_every_record_to_files() {
    let demo = demo_exe();
    let out = temp_dir("headless");
    let output = std::process::Command::new(&demo)
        .args(["--headless", "--records", "20000", "--gzip", "--output-dir"])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("produced 20000, delivered 20000, missing 0"),
        "{stdout}"
    );
    let lines = read_local_lines(&out).unwrap();
    let ids: HashSet<_> = lines
        .iter()
        .filter_map(|l| id_of(l).map(str::to_owned))
        .collect();
    assert_eq!(ids.len(), 20_000);
    // Files live under YYYY/MM/dd/HH/ and are gzip-compressed.
    let hour = chrono::Utc::now().format("%Y").to_string();
    assert!(out.join(hour).is_dir());
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn an_s3_output_works_with_no_account_on_the_embedded_s3_in_parquet() {
    let root = temp_dir("embedded-s3");
    let output = std::process::Command::new(demo_exe())
        .args([
            "--headless",
            "--records",
            "3000",
            "--parquet",
            "--output-dir",
            "s3://demo/out",
        ])
        .arg("--s3-root")
        .arg(&root)
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_S3")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("produced 3000, delivered 3000, missing 0"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The embedded server keeps the bucket's objects as files: Parquet, whose rows read back
    // as the records' JSON.
    let out = root.join("demo/out");
    let lines = read_local_lines(&out).unwrap();
    assert_eq!(lines.len(), 3000);
    let ids: HashSet<_> = lines.iter().filter_map(|l| id_of(l)).collect();
    assert_eq!(ids.len(), 3000);
    let mut names = Vec::new();
    let mut stack = vec![out];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().is_dir() {
                if name != "_manifests" {
                    stack.push(entry.path());
                }
            } else if !name.starts_with('.') {
                names.push(name);
            }
        }
    }
    assert!(
        !names.is_empty() && names.iter().all(|n| n.ends_with(".parquet")),
        "{names:?}"
    );
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn bad_flags_give_one_clear_line() {
    let demo = demo_exe();
    let output = std::process::Command::new(&demo)
        .args(["--records", "lots"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("invalid value 'lots'"), "{stderr}");
    assert!(!stderr.contains("panicked"));
    let output = std::process::Command::new(&demo)
        .args([
            "--headless",
            "--kinesis-endpoint",
            "http://127.0.0.1:1",
            "--dynamodb-endpoint",
            "http://127.0.0.1:1",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.lines().any(|l| l.starts_with("demo_app: ")),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

async fn owners(aws: &LocalAws, table: &str) -> Vec<String> {
    let client = aws.dynamodb_client().await;
    let Ok(out) = client
        .scan()
        .table_name(table)
        .consistent_read(true)
        .send()
        .await
    else {
        return Vec::new();
    };
    out.items()
        .iter()
        .filter_map(|i| i.get("leaseOwner")?.as_s().ok().cloned())
        .collect()
}

async fn checkpoints(aws: &LocalAws, table: &str) -> Vec<String> {
    let client = aws.dynamodb_client().await;
    let out = client
        .scan()
        .table_name(table)
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    out.items()
        .iter()
        .filter_map(|i| i.get("checkpoint")?.as_s().ok().cloned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_file_write_and_checkpoint_loses_nothing() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("crashy", 2).await.unwrap();
    let out = temp_dir("crash");
    let sink = || {
        // Written well within the 2 s the leases outlive their failing renewals.
        Sink::builder(Destination::folder(&out))
            .buffer_interval(Duration::from_millis(200))
            .format(Format::newline_delimited())
            .build()
            .unwrap()
    };
    let kinesis = aws.kinesis_client().await;
    let dynamodb = aws.client_options().without_sdk_retries().dynamodb().await;
    let make = |id: &str, sink: &Sink| {
        Worker::builder("crashy-app", "crashy")
            .kinesis_client(kinesis.clone())
            .dynamodb_client(dynamodb.clone())
            .worker_id(id.to_owned())
            .failover_time(Duration::from_secs(2))
            .renewal_interval(Duration::from_millis(500))
            .deliver_empty_batches(true)
            .idle_time_between_reads(Duration::from_millis(100))
            .build(sink.factory())
            .unwrap()
    };

    // The first worker holds both leases before any record exists…
    let first = sink();
    let task = tokio::spawn(make("first", &first).run());
    let start = Instant::now();
    while owners(&aws, "crashy-app").await.len() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "leases not taken"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // …then every lease write fails, so files get written but never checkpointed.
    aws.dynamodb_faults()
        .add(FaultRule::internal_error().on("UpdateItem"));
    let generator = Generator::new(80);
    let produce = |range: std::ops::Range<u64>| {
        let (kinesis, generator) = (kinesis.clone(), generator.clone());
        async move {
            let producer = Producer::builder("crashy").client(kinesis).build().unwrap();
            let mut puts = Vec::new();
            for n in range {
                let (key, line) = generator.record(n);
                puts.push(producer.send(UserRecord::new(key, line)).await.unwrap());
            }
            for put in puts {
                put.await.unwrap();
            }
            producer.shutdown().await;
        }
    };
    produce(0..1_000).await;
    while first.stats().objects_written == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no files written"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task.abort(); // the crash, between file writes and checkpoints
    let _ = task.await;
    drop(first);
    assert!(
        checkpoints(&aws, "crashy-app")
            .await
            .iter()
            .all(|c| c == "TRIM_HORIZON"),
        "a checkpoint got through"
    );
    let (written_before, _) = ids_in(&out, generator.run());
    assert!(!written_before.is_empty());
    aws.dynamodb_faults().clear();
    produce(1_000..2_000).await;

    // A new worker takes over once the leases expire and resumes from the last checkpoint.
    let second_sink = sink();
    let second = make("second", &second_sink);
    let handle = second.handle();
    let task = tokio::spawn(second.run());
    let start = Instant::now();
    loop {
        let (ids, _) = ids_in(&out, generator.run());
        if ids.len() == 2_000 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "only {} of 2000 records in files",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    handle.shutdown().await;
    task.await.unwrap().unwrap();
    let (ids, lines) = ids_in(&out, generator.run());
    assert_eq!(ids.len(), 2_000, "nothing lost");
    // The records written but not checkpointed before the crash were delivered again.
    let received = second_sink.stats().records_received;
    assert!(
        received >= 2_000,
        "only {received} delivered after the crash"
    );
    // Records in files written before the crash but not checkpointed were delivered again,
    // and skipped: the manifests said which files hold them. Every record in one file.
    eprintln!(
        "{lines} lines for 2000 records ({} were in files before the crash)",
        written_before.len()
    );
    assert_eq!(lines, 2_000, "a record is in two files");
    assert!(second_sink.stats().records_skipped >= written_before.len() as u64);
    std::fs::remove_dir_all(&out).ok();
}

/// A minimal HTTP/1.1 client for the demo's API: (status, body).
fn http(addr: &str, method: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    // Bodies of JSON answers may come chunked: keep the JSON object only.
    let body = match (body.find('{'), body.rfind('}')) {
        (Some(a), Some(b))
            if body
                .trim_start()
                .starts_with(|c: char| c.is_ascii_hexdigit())
                && a < b =>
        {
            body[a..=b].to_owned()
        }
        _ => body,
    };
    (status, body)
}

/// Kills the demo when the test ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_web_api_produces_splits_and_moves_workers() {
    use std::io::BufRead;
    let demo = demo_exe();
    let out = temp_dir("web");
    let mut child = Child(
        std::process::Command::new(&demo)
            .args(["--port", "0", "--buffer-interval", "1", "--output-dir"])
            .arg(&out)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let line = std::io::BufReader::new(stdout)
        .lines()
        .next()
        .unwrap()
        .unwrap();
    let addr = line
        .strip_prefix("demo_app: open http://")
        .expect(&line)
        .to_owned();

    let (status, page) = http(&addr, "GET", "/");
    assert_eq!(status, 200);
    assert!(page.contains("<form id=\"produce\">"));
    assert_eq!(http(&addr, "POST", "/api/produce?count=0").0, 400);
    assert_eq!(
        http(&addr, "POST", "/api/produce?count=2000&size=100").0,
        202
    );
    let status_json = |addr: &str| {
        serde_json::from_str::<serde_json::Value>(&http(addr, "GET", "/api/status").1).unwrap()
    };
    let start = Instant::now();
    loop {
        let s = status_json(&addr);
        let shards = s["shards"].as_array().unwrap();
        // Each shard's hottest key appears once the producer's report (each second) has it.
        let hot_keys_shown = shards.iter().all(|sh| {
            sh["hot_key"].is_string()
                && sh["hot_key_share"]
                    .as_f64()
                    .is_some_and(|v| v > 0.0 && v <= 1.0)
        });
        if s["acknowledged"] == 2000 && s["written"] == 2000 && hot_keys_shown {
            assert_eq!(shards.len(), 4);
            assert!(s["files_total"].as_u64().unwrap() >= 1);
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "status {s}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(http(&addr, "POST", "/api/split").0, 200);
    assert_eq!(status_json(&addr)["shards"].as_array().unwrap().len(), 6);
    assert_eq!(http(&addr, "POST", "/api/workers/start").0, 200);
    assert_eq!(http(&addr, "POST", "/api/workers/stop?index=0").0, 200);
    let workers = status_json(&addr)["workers"].clone();
    assert_eq!(workers[0]["running"], false);
    assert_eq!(workers[1]["running"], true);
    assert_eq!(http(&addr, "POST", "/api/workers/stop?index=0").0, 404);
    drop(child);
    std::fs::remove_dir_all(&out).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_and_consumer_roles_share_one_stream_from_separate_processes() {
    let aws = LocalAws::start().await.unwrap();
    let out = temp_dir("roles");
    let run = |role: &str| {
        std::process::Command::new(demo_exe())
            .args([
                "--headless",
                "--records",
                "3000",
                "--role",
                role,
                "--kinesis-endpoint",
            ])
            .arg(aws.kinesis_endpoint())
            .arg("--dynamodb-endpoint")
            .arg(aws.dynamodb_endpoint())
            .arg("--output-dir")
            .arg(&out)
            .output()
            .unwrap()
    };
    let produced = run("producer");
    assert!(
        produced.status.success(),
        "{}",
        String::from_utf8_lossy(&produced.stderr)
    );
    let consumed = run("consumer");
    let stdout = String::from_utf8_lossy(&consumed.stdout);
    assert!(
        consumed.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&consumed.stderr)
    );
    assert!(stdout.contains("delivered 3000, missing 0"), "{stdout}");
    std::fs::remove_dir_all(&out).ok();
}
