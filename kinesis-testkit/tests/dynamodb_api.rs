//! The DynamoDB operations the lease table needs, through the real SDK over HTTP, against
//! the embedded dynoxide (behind the testkit's fault front).

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, TableStatus};
use kinesis_common::ServiceError;
use kinesis_testkit::LocalAws;

async fn lease_table(client: &aws_sdk_dynamodb::Client, name: &str) {
    kinesis_testkit::tables::create_lease_table(client, name)
        .await
        .unwrap();
    let described = client
        .describe_table()
        .table_name(name)
        .send()
        .await
        .unwrap();
    assert_eq!(
        described.table().unwrap().table_status(),
        Some(&TableStatus::Active)
    );
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

#[tokio::test]
async fn conditional_writes_fence_lease_owners() {
    let aws = LocalAws::start().await.unwrap();
    let client = aws.client_options().without_sdk_retries().dynamodb().await;
    lease_table(&client, "leases").await;

    // Create only if absent.
    let create = || {
        client
            .put_item()
            .table_name("leases")
            .item("leaseKey", s("shardId-000000000000"))
            .item("leaseCounter", n(0))
            .item("checkpoint", s("TRIM_HORIZON"))
            .item(
                "parentShardId",
                AttributeValue::Ss(vec!["shardId-parent".into()]),
            )
            .condition_expression("attribute_not_exists(leaseKey)")
    };
    create().send().await.unwrap();
    let again = create().send().await.unwrap_err();
    let again = ServiceError::from_sdk("PutItem", again);
    assert!(again.has_code("ConditionalCheckFailedException"), "{again}");
    assert!(!again.is_retryable());

    // Take the lease: counter must be what we read.
    let taken = client
        .update_item()
        .table_name("leases")
        .key("leaseKey", s("shardId-000000000000"))
        .update_expression("SET leaseOwner = :me, leaseCounter = leaseCounter + :one")
        .condition_expression("leaseCounter = :seen")
        .expression_attribute_values(":me", s("worker-a"))
        .expression_attribute_values(":one", n(1))
        .expression_attribute_values(":seen", n(0))
        .return_values(ReturnValue::AllNew)
        .send()
        .await
        .unwrap();
    assert_eq!(taken.attributes().unwrap()["leaseCounter"], n(1));

    // A second worker that read counter 0 loses the race.
    let lost = client
        .update_item()
        .table_name("leases")
        .key("leaseKey", s("shardId-000000000000"))
        .update_expression("SET leaseOwner = :me, leaseCounter = leaseCounter + :one")
        .condition_expression("leaseCounter = :seen")
        .expression_attribute_values(":me", s("worker-b"))
        .expression_attribute_values(":one", n(1))
        .expression_attribute_values(":seen", n(0))
        .send()
        .await
        .unwrap_err();
    assert!(ServiceError::from_sdk("UpdateItem", lost).has_code("ConditionalCheckFailedException"));

    let item = client
        .get_item()
        .table_name("leases")
        .key("leaseKey", s("shardId-000000000000"))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(item["leaseOwner"], s("worker-a"));
    assert_eq!(
        item["parentShardId"],
        AttributeValue::Ss(vec!["shardId-parent".into()])
    );

    // Delete only if still ours.
    let wrong_owner = client
        .delete_item()
        .table_name("leases")
        .key("leaseKey", s("shardId-000000000000"))
        .condition_expression("leaseOwner = :me")
        .expression_attribute_values(":me", s("worker-b"))
        .send()
        .await
        .unwrap_err();
    assert!(
        ServiceError::from_sdk("DeleteItem", wrong_owner)
            .has_code("ConditionalCheckFailedException")
    );
    client
        .delete_item()
        .table_name("leases")
        .key("leaseKey", s("shardId-000000000000"))
        .condition_expression("leaseOwner = :me")
        .expression_attribute_values(":me", s("worker-a"))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn scan_pages_through_every_lease() {
    let aws = LocalAws::start().await.unwrap();
    let client = aws.dynamodb_client().await;
    lease_table(&client, "many").await;
    for i in 0..57 {
        client
            .put_item()
            .table_name("many")
            .item("leaseKey", s(&format!("shardId-{i:012}")))
            .item("leaseCounter", n(i))
            .send()
            .await
            .unwrap();
    }
    let mut keys = Vec::new();
    let mut start = None;
    let mut pages = 0;
    loop {
        let page = client
            .scan()
            .table_name("many")
            .limit(10)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        pages += 1;
        keys.extend(page.items().iter().map(|i| i["leaseKey"].clone()));
        start = page.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    assert_eq!(keys.len(), 57);
    assert!(pages >= 6, "{pages} pages of at most 10");
    // The SDK's own paginator agrees.
    let all: Vec<_> = client
        .scan()
        .table_name("many")
        .limit(10)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(all.len(), 57);
}

#[tokio::test]
async fn missing_table_is_a_fatal_typed_error() {
    let aws = LocalAws::start().await.unwrap();
    let client = aws.client_options().without_sdk_retries().dynamodb().await;
    let err = client
        .get_item()
        .table_name("nope")
        .key("leaseKey", s("x"))
        .send()
        .await
        .unwrap_err();
    let err = ServiceError::from_sdk("GetItem", err);
    assert!(err.has_code("ResourceNotFoundException"), "{err}");
    assert!(!err.is_retryable());
}
