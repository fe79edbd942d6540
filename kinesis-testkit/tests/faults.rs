//! Fault injection through the real SDK: every action, on both services.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use kinesis_common::{ErrorKind, ServiceError};
use kinesis_testkit::{FaultRule, LocalAws};

fn entries(n: usize) -> Vec<PutRecordsRequestEntry> {
    (0..n)
        .map(|i| {
            PutRecordsRequestEntry::builder()
                .partition_key(format!("k{i}"))
                .data(Blob::new(format!("record {i}")))
                .build()
                .unwrap()
        })
        .collect()
}

async fn count_records(client: &aws_sdk_kinesis::Client, stream: &str) -> usize {
    kinesis_testkit::streams::read_stream(client, stream)
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn throttled_requests_are_classified_and_counted() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("throttle", 1).await.unwrap();
    let client = aws.client_options().without_sdk_retries().kinesis().await;
    aws.kinesis_faults()
        .add(FaultRule::throttle().on("PutRecords").times(2));
    for _ in 0..2 {
        let err = client
            .put_records()
            .stream_name("throttle")
            .set_records(Some(entries(3)))
            .send()
            .await
            .unwrap_err();
        let err = ServiceError::from_sdk("PutRecords", err);
        assert_eq!(err.kind(), ErrorKind::Throttling, "{err}");
        assert!(err.has_code("ProvisionedThroughputExceededException"));
    }
    client
        .put_records()
        .stream_name("throttle")
        .set_records(Some(entries(3)))
        .send()
        .await
        .unwrap();
    assert_eq!(aws.kinesis_faults().stats().throttled, 2);
    // Throttled requests wrote nothing.
    assert_eq!(count_records(&client, "throttle").await, 3);
}

#[tokio::test]
async fn partial_put_records_failures_write_only_the_successes() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("partial", 2).await.unwrap();
    let client = aws.client_options().without_sdk_retries().kinesis().await;
    aws.kinesis_faults()
        .add(FaultRule::fail_entries(0.5).times(1));
    let out = client
        .put_records()
        .stream_name("partial")
        .set_records(Some(entries(200)))
        .send()
        .await
        .unwrap();
    let failed = out
        .records()
        .iter()
        .filter(|r| r.error_code() == Some("ProvisionedThroughputExceededException"))
        .count();
    assert_eq!(out.records().len(), 200);
    assert_eq!(out.failed_record_count(), Some(failed as i32));
    assert!(
        failed > 40 && failed < 160,
        "{failed} of 200 failed at fraction 0.5"
    );
    assert!(
        out.records()
            .iter()
            .all(|r| r.error_code().is_some() != r.sequence_number().is_some())
    );
    assert_eq!(aws.kinesis_faults().stats().failed_entries, failed as u64);
    assert_eq!(count_records(&client, "partial").await, 200 - failed);

    // Every entry failing forwards nothing at all.
    aws.kinesis_faults()
        .add(FaultRule::fail_entries(1.0).times(1));
    let out = client
        .put_records()
        .stream_name("partial")
        .set_records(Some(entries(5)))
        .send()
        .await
        .unwrap();
    assert_eq!(out.failed_record_count(), Some(5));
    assert_eq!(count_records(&client, "partial").await, 200 - failed);
}

#[tokio::test]
async fn server_errors_are_transient_and_sdk_retries_get_through() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("errors", 1).await.unwrap();
    aws.kinesis_faults()
        .add(FaultRule::internal_error().on("ListShards").times(1));
    let no_retry = aws.client_options().without_sdk_retries().kinesis().await;
    let err = no_retry
        .list_shards()
        .stream_name("errors")
        .send()
        .await
        .unwrap_err();
    let err = ServiceError::from_sdk("ListShards", err);
    assert_eq!(err.kind(), ErrorKind::Transient, "{err}");
    assert_eq!(err.http_status, Some(500));

    // The SDK's default policy retries a 500 by itself.
    aws.kinesis_faults()
        .add(FaultRule::internal_error().on("ListShards").times(1));
    let retrying = aws.kinesis_client().await;
    retrying
        .list_shards()
        .stream_name("errors")
        .send()
        .await
        .unwrap();
    assert_eq!(aws.kinesis_faults().stats().errors, 2);
}

#[tokio::test]
async fn dropped_connections_are_transient() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("dropped", 1).await.unwrap();
    aws.kinesis_faults()
        .add(FaultRule::drop_connection().on("PutRecords").times(1));
    let client = aws.client_options().without_sdk_retries().kinesis().await;
    let err = client
        .put_records()
        .stream_name("dropped")
        .set_records(Some(entries(2)))
        .send()
        .await
        .unwrap_err();
    let err = ServiceError::from_sdk("PutRecords", err);
    assert_eq!(err.kind(), ErrorKind::Transient, "{err}");
    assert_eq!(aws.kinesis_faults().stats().dropped, 1);
    // Nothing was written, and the next call goes through.
    client
        .put_records()
        .stream_name("dropped")
        .set_records(Some(entries(2)))
        .send()
        .await
        .unwrap();
    assert_eq!(count_records(&client, "dropped").await, 2);
}

#[tokio::test]
async fn latency_delays_matching_requests_only() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("slow", 1).await.unwrap();
    let client = aws.kinesis_client().await;
    aws.kinesis_faults()
        .add(FaultRule::latency(Duration::from_millis(300)).on("ListShards"));
    let start = Instant::now();
    client
        .list_shards()
        .stream_name("slow")
        .send()
        .await
        .unwrap();
    assert!(start.elapsed() >= Duration::from_millis(300));
    // Other operations are not delayed (generous bound: no machine needs 300 ms here).
    let start = Instant::now();
    client
        .describe_stream_summary()
        .stream_name("slow")
        .send()
        .await
        .unwrap();
    assert!(start.elapsed() < Duration::from_millis(300));
    assert_eq!(aws.kinesis_faults().stats().delayed, 1);
}

#[tokio::test]
async fn dynamodb_faults_throttle_fail_and_drop() {
    let aws = LocalAws::start().await.unwrap();
    let client = aws.client_options().without_sdk_retries().dynamodb().await;
    kinesis_testkit::tables::create_lease_table(&client, "leases")
        .await
        .unwrap();
    let faults = aws.dynamodb_faults();
    faults.add(FaultRule::throttle().on("GetItem").times(1));
    faults.add(FaultRule::internal_error().on("GetItem").times(1));
    faults.add(FaultRule::drop_connection().on("GetItem").times(1));
    faults.add(
        FaultRule::error(400, "ConditionalCheckFailedException")
            .on("UpdateItem")
            .times(1),
    );

    let get = || {
        client
            .get_item()
            .table_name("leases")
            .key("leaseKey", AttributeValue::S("x".into()))
            .send()
    };
    let kinds: Vec<ErrorKind> = [get().await, get().await, get().await]
        .into_iter()
        .map(|r| ServiceError::from_sdk("GetItem", r.unwrap_err()).kind())
        .collect();
    assert_eq!(
        kinds,
        [
            ErrorKind::Throttling,
            ErrorKind::Transient,
            ErrorKind::Transient
        ]
    );
    get().await.unwrap();

    // A lost conditional-write race, injected.
    let err = client
        .update_item()
        .table_name("leases")
        .key("leaseKey", AttributeValue::S("x".into()))
        .update_expression("SET leaseOwner = :me")
        .expression_attribute_values(":me", AttributeValue::S("w".into()))
        .send()
        .await
        .unwrap_err();
    assert!(ServiceError::from_sdk("UpdateItem", err).has_code("ConditionalCheckFailedException"));
    let stats = faults.stats();
    assert_eq!((stats.throttled, stats.errors, stats.dropped), (1, 2, 1));
}

#[tokio::test]
async fn cleared_rules_stop_firing() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("cleared", 1).await.unwrap();
    let client = aws.client_options().without_sdk_retries().kinesis().await;
    aws.kinesis_faults().add(FaultRule::throttle());
    assert!(
        client
            .list_shards()
            .stream_name("cleared")
            .send()
            .await
            .is_err()
    );
    aws.kinesis_faults().clear();
    client
        .list_shards()
        .stream_name("cleared")
        .send()
        .await
        .unwrap();
}
