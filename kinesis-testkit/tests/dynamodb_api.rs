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

#[tokio::test]
async fn capacity_units_are_counted_per_table_and_operation_as_dynamodb_bills_them() {
    let aws = LocalAws::start().await.unwrap();
    let client = aws.client_options().without_sdk_retries().dynamodb().await;
    lease_table(&client, "billed").await;
    let before = aws.dynamodb_capacity();
    // A 2 KB item: 2 write units to put, 0.5 read units to read eventually consistent, 1
    // strongly consistent.
    let put = client
        .put_item()
        .table_name("billed")
        .item("leaseKey", s("shard"))
        .item("pad", s(&"x".repeat(2000)))
        .send()
        .await
        .unwrap();
    assert!(put.consumed_capacity().is_none(), "not asked, not returned");
    for consistent in [false, true] {
        client
            .get_item()
            .table_name("billed")
            .key("leaseKey", s("shard"))
            .consistent_read(consistent)
            .send()
            .await
            .unwrap();
    }
    // A refused conditional write is billed too.
    let refused = client
        .put_item()
        .table_name("billed")
        .item("leaseKey", s("shard"))
        .condition_expression("attribute_not_exists(leaseKey)")
        .send()
        .await;
    assert!(refused.is_err());
    let used = aws.dynamodb_capacity().since(&before);
    assert_eq!(used.operation("billed", "PutItem").calls, 2);
    assert_eq!(used.operation("billed", "PutItem").write_units, 3.0);
    assert_eq!(used.operation("billed", "GetItem").read_units, 1.5);
    assert_eq!(used.table("billed"), (1.5, 3.0));

    // A client that asks gets the units as DynamoDB returns them.
    let asked = client
        .get_item()
        .table_name("billed")
        .key("leaseKey", s("shard"))
        .return_consumed_capacity(aws_sdk_dynamodb::types::ReturnConsumedCapacity::Total)
        .send()
        .await
        .unwrap();
    assert_eq!(
        asked.consumed_capacity().unwrap().capacity_units(),
        Some(0.5)
    );
}

#[tokio::test]
async fn a_black_hole_for_one_client_holds_its_calls_and_lets_the_others_through() {
    let aws = LocalAws::start().await.unwrap();
    let admin = aws.client_options().without_sdk_retries().dynamodb().await;
    lease_table(&admin, "cut").await;
    let cut_off = aws
        .client_options_for("workerA")
        .without_sdk_retries()
        .operation_timeout(std::time::Duration::from_millis(500))
        .dynamodb()
        .await;
    let rule = aws
        .dynamodb_faults()
        .add_rule(kinesis_testkit::FaultRule::black_hole().from_client("workerA"));
    let started = std::time::Instant::now();
    let held = cut_off.describe_table().table_name("cut").send().await;
    assert!(held.is_err(), "no answer while the partition lasts");
    assert!(started.elapsed() >= std::time::Duration::from_millis(500));
    // Everyone else is served.
    admin
        .describe_table()
        .table_name("cut")
        .send()
        .await
        .unwrap();
    assert_eq!(aws.dynamodb_faults().stats().black_holed, 1);
    // Healed: the same client is served again.
    assert!(aws.dynamodb_faults().remove(rule));
    cut_off
        .describe_table()
        .table_name("cut")
        .send()
        .await
        .unwrap();
}
