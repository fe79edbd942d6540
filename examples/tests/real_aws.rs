//! Real-AWS mode: the producer and the consumer end to end against Amazon Kinesis and
//! DynamoDB, with credentials and region from the SDK's default chain. It costs money (a
//! two-shard stream and an on-demand table for a few minutes), so the tests are `#[ignore]`d: a
//! plain `cargo test` lists them as ignored. Asked for with `--ignored`, they need
//! `KINESIS_RS_REAL_AWS=1` and credentials that resolve, and fail saying which is missing.
//! Everything they create is named `kinesis-rs-test-…` and deleted at the end.
//!
//! `KINESIS_RS_REAL_AWS=1 AWS_PROFILE=… AWS_REGION=… cargo test -p kinesis-examples --test real_aws -- --ignored`

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_credential_types::provider::ProvideCredentials;
use kinesis_common::client::ClientOptions;
use kinesis_consumer::{
    Checkpointer, ProcessRecordsInput, ProcessorError, RecordProcessor, Worker,
};
use kinesis_producer::{ProduceError, Producer, UserRecord};
use kinesis_testkit::streams;

/// Client options for real AWS; panics with what is missing when the run is not opted in.
async fn real_aws() -> ClientOptions {
    assert_eq!(
        std::env::var("KINESIS_RS_REAL_AWS").as_deref(),
        Ok("1"),
        "set KINESIS_RS_REAL_AWS=1 (and AWS credentials) to run the real-AWS tests"
    );
    let options = ClientOptions::new();
    let config = options.sdk_config().await;
    let provider = config
        .credentials_provider()
        .expect("KINESIS_RS_REAL_AWS=1 but the SDK has no credentials provider");
    if let Err(e) = provider.provide_credentials().await {
        panic!("KINESIS_RS_REAL_AWS=1 but no AWS credentials resolve ({e})");
    }
    options
}

struct Collect(Arc<Mutex<HashSet<Vec<u8>>>>);

impl RecordProcessor for Collect {
    async fn process_records(
        &mut self,
        input: ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        self.0
            .lock()
            .unwrap()
            .extend(input.records.iter().map(|r| r.data.to_vec()));
        checkpointer.checkpoint().await?;
        Ok(())
    }
}

#[ignore = "costs money on real AWS: KINESIS_RS_REAL_AWS=1 cargo test -p kinesis-examples --test real_aws -- --ignored"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_and_consume_on_real_aws() {
    let options = real_aws().await;
    let kinesis = options.kinesis().await;
    let dynamodb = options.dynamodb().await;
    let name = format!("kinesis-rs-test-{:08x}", rand::random::<u32>());
    streams::create_stream(&kinesis, &name, 2).await.unwrap();

    let result = async {
        let producer = Producer::builder(name.as_str())
            .client(kinesis.clone())
            .build()?;
        let mut puts = Vec::new();
        for i in 0..2_000 {
            let record = UserRecord::new(format!("key-{}", i % 50), format!("real-{i:05}"));
            puts.push(producer.send(record).await?);
        }
        for put in puts {
            put.await?;
        }
        producer.shutdown().await;

        let seen = Arc::new(Mutex::new(HashSet::new()));
        let factory = {
            let seen = seen.clone();
            move |_: &str| Collect(seen.clone())
        };
        let worker = Worker::builder(name.as_str(), name.as_str())
            .kinesis_client(kinesis.clone())
            .dynamodb_client(dynamodb.clone())
            .build(factory)?;
        let handle = worker.handle();
        let run = tokio::spawn(worker.run());
        let start = Instant::now();
        while seen.lock().unwrap().len() < 2_000 && start.elapsed() < Duration::from_secs(180) {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        handle.shutdown().await;
        run.await??;
        assert_eq!(seen.lock().unwrap().len(), 2_000);
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    }
    .await;

    let _ = kinesis.delete_stream().stream_name(&name).send().await;
    let _ = dynamodb.delete_table().table_name(&name).send().await;
    result.unwrap();
}

#[ignore = "costs money on real AWS: KINESIS_RS_REAL_AWS=1 cargo test -p kinesis-examples --test real_aws -- --ignored"]
#[tokio::test]
async fn a_missing_stream_is_a_typed_error_on_real_aws() {
    let options = real_aws().await;
    let producer = Producer::builder("kinesis-rs-test-no-such-stream")
        .client(options.without_sdk_retries().kinesis().await)
        .build()
        .unwrap();
    let err = producer
        .send(UserRecord::new("k", "x"))
        .await
        .unwrap()
        .await
        .unwrap_err();
    assert!(
        matches!(err.reason(), ProduceError::Service { .. }),
        "{err}"
    );
    assert_eq!(err.record().data.as_ref(), b"x");
}
