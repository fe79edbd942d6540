//! Point-in-time recovery, which neither DynamoDB emulator has: dynoxide and DynamoDB Local
//! both answer `UpdateContinuousBackups` with `UnknownOperationException`. The DynamoDB
//! front answers `UpdateContinuousBackups` and `DescribeContinuousBackups` itself, keeping
//! each table's status, after asking the emulator (`DescribeTable`) whether the table
//! exists; a deleted table forgets its status, as on AWS (the front calls
//! [`Backups::forget`] when `DeleteTable` succeeds). Nothing is backed up: only the
//! status a caller set is kept, which is what a test of the caller needs.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};

use crate::fault::Service;
use crate::front::{Upstream, error_response, json_response};

const UPDATE: &str = "UpdateContinuousBackups";
const DESCRIBE: &str = "DescribeContinuousBackups";

/// Tables with point-in-time recovery turned on, by name.
#[derive(Debug, Clone, Default)]
pub(crate) struct Backups {
    enabled: Arc<Mutex<HashSet<String>>>,
}

/// The table a request names (`TableName`, a name or an ARN `…:table/NAME`).
fn table_of(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let name = value.get("TableName")?.as_str()?;
    Some(name.rsplit("table/").next().unwrap_or(name).to_owned())
}

impl Backups {
    /// Whether the front answers `operation` here.
    pub(crate) fn handles(operation: &str) -> bool {
        matches!(operation, UPDATE | DESCRIBE)
    }

    /// A deleted table's status goes with it (`table`: a name or an ARN).
    pub(crate) fn forget(&self, table: &str) {
        self.set()
            .remove(table.rsplit("table/").next().unwrap_or(table));
    }

    fn set(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.enabled.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Answers one of the operations [`Backups::handles`].
    pub(crate) async fn answer(
        &self,
        operation: &str,
        request: Request<Body>,
        upstream: &Upstream,
    ) -> Response<Body> {
        let (parts, body) = request.into_parts();
        let Ok(bytes) = body.collect().await.map(|c| c.to_bytes()) else {
            return error_response(Service::DynamoDb, 400, "SerializationException", "body");
        };
        let Some(table) = table_of(&bytes) else {
            return error_response(
                Service::DynamoDb,
                400,
                "ValidationException",
                "TableName is required",
            );
        };
        // Does the table exist? Ask the emulator, with the caller's headers.
        let mut describe =
            Request::from_parts(parts, Body::from(json!({ "TableName": table }).to_string()));
        describe.headers_mut().remove(header::CONTENT_LENGTH);
        describe.headers_mut().insert(
            "x-amz-target",
            HeaderValue::from_static("DynamoDB_20120810.DescribeTable"),
        );
        if !upstream.call(describe).await.status().is_success() {
            return error_response(
                Service::DynamoDb,
                400,
                "com.amazonaws.dynamodb.v20120810#TableNotFoundException",
                &format!("Table not found: {table}"),
            );
        }
        if operation == UPDATE {
            let enable = serde_json::from_slice::<Value>(&bytes).ok().and_then(|v| {
                v.pointer("/PointInTimeRecoverySpecification/PointInTimeRecoveryEnabled")
                    .and_then(Value::as_bool)
            });
            match enable {
                Some(true) => self.set().insert(table.clone()),
                Some(false) => self.set().remove(&table),
                None => {
                    return error_response(
                        Service::DynamoDb,
                        400,
                        "ValidationException",
                        "PointInTimeRecoverySpecification.PointInTimeRecoveryEnabled is required",
                    );
                }
            };
        }
        let status = if self.set().contains(&table) {
            "ENABLED"
        } else {
            "DISABLED"
        };
        json_response(
            Service::DynamoDb,
            StatusCode::OK,
            &json!({ "ContinuousBackupsDescription": {
                "ContinuousBackupsStatus": "ENABLED",
                "PointInTimeRecoveryDescription": { "PointInTimeRecoveryStatus": status },
            }}),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_named_by_name_or_arn() {
        assert_eq!(
            table_of(br#"{"TableName":"leases"}"#).as_deref(),
            Some("leases")
        );
        assert_eq!(
            table_of(br#"{"TableName":"arn:aws:dynamodb:us-east-1:000000000000:table/leases"}"#)
                .as_deref(),
            Some("leases")
        );
        assert_eq!(table_of(b"{}"), None);
    }
}
