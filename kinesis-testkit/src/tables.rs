//! DynamoDB helpers for tests: a table shaped like KCL's lease table.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use kinesis_common::ServiceError;

use crate::local::TestkitError;

/// Creates a PAY_PER_REQUEST table keyed by the string `leaseKey`, as KCL's lease table is.
pub async fn create_lease_table(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
) -> Result<(), TestkitError> {
    let build =
        |e: aws_sdk_dynamodb::error::BuildError| ServiceError::construction("CreateTable", e);
    client
        .create_table()
        .table_name(name)
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("leaseKey")
                .key_type(KeyType::Hash)
                .build()
                .map_err(build)?,
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("leaseKey")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build)?,
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .map_err(|e| ServiceError::from_sdk("CreateTable", e))?;
    Ok(())
}
