//! The sink behind a real worker, on the embedded emulators: every record in exactly one
//! object, objects not multiplied by shards, checkpoints after durable objects, errors kept.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use kinesis_consumer::{Record, Worker};
use kinesis_producer::{Producer, UserRecord};
use kinesis_sink::{Compression, Destination, Format, JsonLines, Sink};
use kinesis_testkit::LocalAws;
use serde_json::Value;

/// A fresh folder to deliver to.
fn folder(name: &str) -> (std::path::PathBuf, Destination) {
    let dir = std::env::temp_dir().join(format!("kinesis-sink-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    (dir.clone(), Destination::folder(dir))
}

/// Payload `i`: text, text with newlines, or binary, so every format meets all three.
fn payload(i: usize) -> Vec<u8> {
    match i % 3 {
        0 => format!("text-{i}").into_bytes(),
        1 => format!("two\nlines-{i}\r\n").into_bytes(),
        _ => {
            let mut p = vec![0u8, 0xff, b'\n'];
            p.extend_from_slice(format!("bin-{i}").as_bytes());
            p
        }
    }
}

async fn produce(aws: &LocalAws, stream: &str, keys: impl Fn(usize) -> String, n: usize) {
    let producer = Producer::builder(stream)
        .client(aws.kinesis_client().await)
        .build()
        .unwrap();
    let mut puts = Vec::new();
    for i in 0..n {
        let record = UserRecord::new(keys(i), payload(i));
        puts.push(producer.send(record).await.unwrap());
    }
    for put in puts {
        put.await.unwrap();
    }
    producer.shutdown().await;
}

/// Every object under `dir`: its key relative to `dir`, and its decompressed lines.
fn objects(dir: &std::path::Path) -> Vec<(String, Vec<Value>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.ends_with("_manifests") {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let key = path
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if key.ends_with(".parquet") {
                continue; // read by `parquet_rows`
            }
            let raw = std::fs::read(&path).unwrap();
            let bytes = Compression::of_key(&key).decompress(&raw).unwrap();
            let lines = bytes
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| serde_json::from_slice(l).unwrap())
                .collect();
            out.push((key, lines));
        }
    }
    out
}

fn data_of(line: &Value) -> Vec<u8> {
    match (&line["data"], &line["data_base64"], &line["rawData"]) {
        (Value::String(s), _, _) => s.as_bytes().to_vec(),
        (_, Value::String(b), _) | (_, _, Value::String(b)) => {
            base64::engine::general_purpose::STANDARD.decode(b).unwrap()
        }
        _ => panic!("no data in {line}"),
    }
}

async fn wait_until(what: &str, bound: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < bound, "{what} not within {bound:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_lands_once_in_few_objects_and_shards_checkpoint_after_them() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("archive", 8).await.unwrap();
    let n = 3_000;
    produce(&aws, "archive", |i| format!("key-{}", i % 101), n).await;
    let (dir, store) = folder("deliver");
    let sink = Sink::builder(store)
        .name("archive")
        .buffer_interval(Duration::from_secs(2))
        .format(Format::JsonLines(JsonLines::with_metadata()))
        .compression(Compression::Gzip)
        .build()
        .unwrap();
    let stats = || sink.stats();
    deliver_until(
        &aws,
        "archive-sink",
        "archive",
        "w1",
        &sink,
        "every record written",
        || stats().records_written >= n as u64,
    )
    .await;

    // Every shard checkpointed after what it wrote: a new worker delivers only what came
    // since.
    let since = 20;
    produce(&aws, "archive", |i| format!("since-{i}"), since).await;
    let (again_dir, again_store) = folder("deliver-again");
    let again = Sink::builder(again_store)
        .buffer_interval(Duration::ZERO)
        .format(Format::JsonLines(JsonLines::with_metadata()))
        .build()
        .unwrap();
    deliver_until(
        &aws,
        "archive-sink",
        "archive",
        "w2",
        &again,
        "the new records written",
        || again.stats().records_written >= since as u64,
    )
    .await;
    let again_lines: Vec<Value> = objects(&again_dir).into_iter().flat_map(|o| o.1).collect();
    assert_eq!(again_lines.len(), since, "{again_lines:?}");
    for line in &again_lines {
        let key = line["partition_key"].as_str().unwrap();
        assert!(key.starts_with("since-"), "delivered again: {line}");
    }
    let _ = std::fs::remove_dir_all(&again_dir);

    let stats = sink.stats();
    let objects = objects(&dir);
    // Every shard checkpointed past every object: no manifest is needed any more.
    wait_until("manifests deleted", Duration::from_secs(10), || {
        std::fs::read_dir(dir.join("_manifests/archive"))
            .map(|d| d.count() == 0)
            .unwrap_or(true)
    })
    .await;
    assert_eq!(stats.objects_written as usize, objects.len());
    // Buffers are per prefix, not per shard: 8 shards do not make 8 objects per interval.
    assert!(
        objects.len() <= 4,
        "{} objects for 8 shards: {:?}",
        objects.len(),
        objects.iter().map(|o| &o.0).collect::<Vec<_>>()
    );
    let mut seen: HashMap<Vec<u8>, usize> = HashMap::new();
    for (key, lines) in &objects {
        assert!(key.ends_with(".jsonl.gz"), "{key}");
        for line in lines {
            *seen.entry(data_of(line)).or_default() += 1;
            assert!(line["sequence_number"].is_string(), "{line}");
        }
    }
    for i in 0..n {
        assert_eq!(seen.get(&payload(i)), Some(&1), "record {i}");
    }
    assert_eq!(seen.len(), n);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_records_go_to_the_error_prefix_and_keys_make_prefixes() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("partitioned", 2).await.unwrap();
    let n = 600;
    produce(&aws, "partitioned", |i| format!("c{}-{i}", i % 3), n).await;
    let (dir, store) = folder("partitioned");
    // Binary records are refused; text ones are upper-cased. The customer is the partition
    // key's first part.
    let transform = |r: &Record| -> Result<Vec<Bytes>, String> {
        let text = std::str::from_utf8(&r.data).map_err(|e| e.to_string())?;
        Ok(vec![Bytes::from(text.to_uppercase())])
    };
    let partitioner = |_: &[u8], r: &Record| -> Result<Vec<(String, String)>, String> {
        let customer = r.partition_key.split('-').next().unwrap_or_default();
        Ok(vec![("customer".to_owned(), customer.to_owned())])
    };
    let sink = Sink::builder(store)
        .prefix("customer=!{partitionKeyFromQuery:customer}/")
        .buffer_interval(Duration::from_secs(1))
        .transform(transform)
        .partitioner(partitioner)
        .format(Format::JsonLines(JsonLines::with_metadata()))
        .build()
        .unwrap();
    deliver_until(
        &aws,
        "partitioned-sink",
        "partitioned",
        "w1",
        &sink,
        "every record written",
        || {
            let s = sink.stats();
            s.records_written + s.error_records_written >= n as u64
        },
    )
    .await;

    let mut written = 0;
    let mut errors = 0;
    for (key, lines) in objects(&dir) {
        for line in &lines {
            if key.starts_with("processing-failed/") {
                errors += 1;
                assert!(
                    line["errorMessage"]
                        .as_str()
                        .unwrap()
                        .contains("transformation failed")
                );
                let data = data_of(line);
                assert!(std::str::from_utf8(&data).is_err(), "{line}");
                continue;
            }
            written += 1;
            let pk = line["partition_key"].as_str().unwrap();
            let customer = pk.split('-').next().unwrap();
            assert!(
                key.starts_with(&format!("customer={customer}/")),
                "{key} holds {pk}"
            );
            let text = line["data"].as_str().unwrap();
            assert_eq!(text, text.to_uppercase());
        }
    }
    // Every third payload is binary.
    assert_eq!(errors, n / 3);
    assert_eq!(written, n - n / 3);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every row (id, text) of the Parquet objects under `dir`.
fn parquet_rows(dir: &std::path::Path) -> Vec<(i64, String)> {
    use arrow_array::{Array, Int64Array, StringArray};
    let mut rows = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "parquet") {
                continue;
            }
            let file = Bytes::from(std::fs::read(&path).unwrap());
            let reader =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                    .unwrap()
                    .build()
                    .unwrap();
            for batch in reader {
                let batch = batch.unwrap();
                let ids = batch
                    .column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap();
                let texts = batch
                    .column(1)
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .unwrap();
                for row in 0..batch.num_rows() {
                    rows.push((ids.value(row), texts.value(row).to_owned()));
                }
                assert_eq!(ids.null_count(), 0);
            }
        }
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_records_become_parquet_and_the_rest_go_to_the_error_prefix() {
    use kinesis_sink::arrow_schema::{DataType, Field};
    use kinesis_sink::{Parquet, Schema};
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("columns", 2).await.unwrap();
    let n = 900;
    let producer = Producer::builder("columns")
        .client(aws.kinesis_client().await)
        .build()
        .unwrap();
    let mut puts = Vec::new();
    for i in 0..n {
        // Every tenth record is not JSON.
        let data = if i % 10 == 9 {
            payload(i)
        } else {
            serde_json::json!({"id": i, "text": format!("line\n{i}"), "extra": true})
                .to_string()
                .into_bytes()
        };
        let record = UserRecord::new(format!("k{i}"), data);
        puts.push(producer.send(record).await.unwrap());
    }
    for put in puts {
        put.await.unwrap();
    }
    producer.shutdown().await;
    let (dir, destination) = folder("parquet");
    let schema = std::sync::Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("text", DataType::Utf8, true),
    ]));
    let sink = Sink::builder(destination)
        .buffer_interval(Duration::from_secs(1))
        .format(Format::Parquet(Parquet::new(schema)))
        .build()
        .unwrap();
    deliver_until(
        &aws,
        "columns-sink",
        "columns",
        "w1",
        &sink,
        "every record written",
        || {
            let s = sink.stats();
            s.records_written + s.error_records_written >= n as u64
        },
    )
    .await;

    let mut rows = parquet_rows(&dir);
    rows.sort();
    let expected: Vec<(i64, String)> = (0..n)
        .filter(|i| i % 10 != 9)
        .map(|i| (i as i64, format!("line\n{i}")))
        .collect();
    assert_eq!(rows, expected);
    let errors: Vec<Value> = objects(&dir)
        .into_iter()
        .filter(|(key, _)| key.starts_with("format-conversion-failed/"))
        .flat_map(|(_, lines)| lines)
        .collect();
    assert_eq!(errors.len(), n / 10);
    for line in &errors {
        let data = data_of(line);
        assert!((0..n).any(|i| i % 10 == 9 && payload(i) == data), "{line}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs worker `worker` of application `app` on `stream` with `sink`'s processors until
/// `done` (within 60 s; `what` names it), then shuts it down gracefully.
async fn deliver_until(
    aws: &LocalAws,
    app: &str,
    stream: &str,
    worker: &str,
    sink: &Sink,
    what: &str,
    done: impl FnMut() -> bool,
) {
    let worker = Worker::builder(app, stream)
        .kinesis_client(aws.kinesis_client().await)
        .dynamodb_client(aws.dynamodb_client().await)
        .worker_id(worker.to_owned())
        .idle_time_between_reads(Duration::from_millis(100))
        .deliver_empty_batches(true)
        .build(sink.factory())
        .unwrap();
    let handle = worker.handle();
    let task = tokio::spawn(worker.run());
    wait_until(what, Duration::from_secs(60), done).await;
    handle.shutdown().await;
    task.await.unwrap().unwrap();
}
