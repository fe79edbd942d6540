//! What the lease table and the coordinator-state table share: attribute values, conditional
//! writes told apart from failures, capacity accounting, and table creation.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, ConsumedCapacity, KeySchemaElement, KeyType,
    ReturnConsumedCapacity, ScalarAttributeType, TableStatus,
};
use kinesis_common::ServiceError;
use kinesis_common::backoff::{Backoff, Retries};

use super::TableOptions;
use super::capacity::CapacityMeter;

/// How long to wait for a new table to become ACTIVE.
const TABLE_ACTIVE_TIMEOUT: Duration = Duration::from_secs(120);

/// How often a table that is not ACTIVE yet is described again.
const TABLE_STATUS_POLL: Duration = Duration::from_millis(200);

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// An answer that reports the capacity it consumed.
pub(crate) trait Consumed {
    fn consumed(&self) -> Option<&ConsumedCapacity>;
}

macro_rules! consumed {
    ($($output:ty),*) => {$(
        impl Consumed for $output {
            fn consumed(&self) -> Option<&ConsumedCapacity> {
                self.consumed_capacity()
            }
        }
    )*};
}

consumed!(
    aws_sdk_dynamodb::operation::update_item::UpdateItemOutput,
    aws_sdk_dynamodb::operation::put_item::PutItemOutput,
    aws_sdk_dynamodb::operation::delete_item::DeleteItemOutput,
    aws_sdk_dynamodb::operation::get_item::GetItemOutput
);

/// A conditional write's answer: `Ok(Some)` on success, `Ok(None)` when the condition
/// failed (billed one write unit, as DynamoDB does), `Err` otherwise.
pub(crate) fn conditional<T: Consumed, E>(
    meter: &CapacityMeter,
    operation: &'static str,
    result: Result<T, SdkError<E, aws_smithy_runtime_api::http::Response>>,
) -> Result<Option<T>, ServiceError>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(v) => {
            meter.record(operation, v.consumed());
            Ok(Some(v))
        }
        Err(e) => {
            let e = ServiceError::from_sdk(operation, e);
            if e.has_code("ConditionalCheckFailedException") {
                meter.record_refused_write(operation);
                Ok(None)
            } else {
                meter.record_failure(&e);
                Err(e)
            }
        }
    }
}

/// Every item of a table, by paginated scan (`consistent`: strongly, else eventually, for
/// half the read units), each page's consumed capacity recorded.
pub(crate) async fn scan_all(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
    consistent: bool,
    meter: &CapacityMeter,
) -> Result<Vec<HashMap<String, AttributeValue>>, ServiceError> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(name)
            .consistent_read(consistent)
            .set_exclusive_start_key(start)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| {
                let e = ServiceError::from_sdk("Scan", e);
                meter.record_failure(&e);
                e
            })?;
        meter.record("Scan", page.consumed_capacity());
        start = page.last_evaluated_key;
        items.extend(page.items.unwrap_or_default());
        if start.is_none() {
            return Ok(items);
        }
    }
}

/// Creates a table (string hash key `key`, billing, protection and tags from `options`)
/// unless it exists, and waits until it is ACTIVE; a table this call created then gets
/// point-in-time recovery if `options` ask for it. An existing table is used as it is.
pub(crate) async fn ensure_table(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
    key: &str,
    options: &TableOptions,
) -> Result<(), ServiceError> {
    let request = client
        .create_table()
        .table_name(name)
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(key)
                .key_type(KeyType::Hash)
                .build()
                .map_err(|e| ServiceError::construction("CreateTable", e))?,
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(key)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| ServiceError::construction("CreateTable", e))?,
        );
    // A passing fault (a timeout from a DynamoDB still starting, a 5xx, throttling) of
    // CreateTable or DescribeTable is retried for as long as the table may take to become
    // ACTIVE, not fatal to the worker. A retry after a timed-out call that did create the
    // table finds it in use.
    let mut retries = Backoff::new(Duration::from_millis(200), Duration::from_secs(5))
        .with_deadline(TABLE_ACTIVE_TIMEOUT)
        .start();
    let created = loop {
        match options.apply(request.clone())?.send().await {
            Ok(_) => break true,
            Err(e) => {
                let e = ServiceError::from_sdk("CreateTable", e);
                if e.has_code("ResourceInUseException") {
                    break false;
                }
                retry_passing(e, name, &mut retries).await?;
            }
        }
    };
    loop {
        match client.describe_table().table_name(name).send().await {
            Ok(described) => {
                if described.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
                    if created {
                        options.enable_recovery(client, name).await?;
                    }
                    return Ok(());
                }
                if retries.elapsed() > TABLE_ACTIVE_TIMEOUT {
                    return Err(ServiceError {
                        operation: "DescribeTable",
                        kind: kinesis_common::ErrorKind::Transient,
                        code: None,
                        http_status: None,
                        message: format!("table {name} not ACTIVE after {TABLE_ACTIVE_TIMEOUT:?}"),
                        source: None,
                    });
                }
                tokio::time::sleep(TABLE_STATUS_POLL).await;
            }
            Err(e) => {
                retry_passing(
                    ServiceError::from_sdk("DescribeTable", e),
                    name,
                    &mut retries,
                )
                .await?
            }
        }
    }
}

/// Waits out a passing fault of table creation before its retry; a fatal one, or one past the
/// deadline, is the answer.
async fn retry_passing(
    e: ServiceError,
    table: &str,
    retries: &mut Retries,
) -> Result<(), ServiceError> {
    if e.kind() == kinesis_common::ErrorKind::Fatal {
        return Err(e);
    }
    tracing::warn!(table, operation = e.operation, error = %e, "table setup failed; retrying");
    if retries.wait().await { Ok(()) } else { Err(e) }
}
