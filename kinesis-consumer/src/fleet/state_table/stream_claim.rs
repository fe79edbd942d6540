//! Which stream an application's tables belong to, so that two applications (or one
//! application pointed at another stream) can never stomp one lease table (KCL #1368: the
//! same application name on two streams silently mixes their leases).
//!
//! The first worker to start writes the stream's ARN into the coordinator-state table, ours
//! alone (a KCL worker sharing the lease table never reads it), under the key `Stream`, with a
//! conditional put that only succeeds if no stream is recorded; every later worker reads it
//! and refuses to start for another stream. ARNs, not names: a name is the same in every
//! account and region.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use kinesis_common::ServiceError;

use super::{KEY, StateTable};
use crate::lease::dynamo::{conditional, s};

const STREAM_KEY: &str = "Stream";
const STREAM_ARN: &str = "streamArn";

/// What the table says about the stream it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Claim {
    /// This stream: recorded now, or before.
    Ours,
    /// Another stream, by ARN.
    Other(String),
}

impl StateTable {
    /// Records `stream_arn` as the tables' stream unless one is recorded, and says whose
    /// they are.
    pub(crate) async fn claim_stream(&self, stream_arn: &str) -> Result<Claim, ServiceError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.name)
            .item(KEY, s(STREAM_KEY))
            .item(STREAM_ARN, s(stream_arn))
            .condition_expression("attribute_not_exists(#k)")
            .expression_attribute_names("#k", KEY)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        if conditional(&self.meter, "PutItem", result)?.is_some() {
            return Ok(Claim::Ours);
        }
        let out = self
            .client
            .get_item()
            .table_name(&self.name)
            .key(KEY, s(STREAM_KEY))
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| ServiceError::from_sdk("GetItem", e))?;
        self.meter.record("GetItem", out.consumed_capacity());
        let recorded = out
            .item()
            .and_then(|item| item.get(STREAM_ARN))
            .and_then(|v| match v {
                AttributeValue::S(arn) => Some(arn.clone()),
                _ => None,
            });
        Ok(match recorded {
            Some(arn) if arn != stream_arn => Claim::Other(arn),
            _ => Claim::Ours,
        })
    }
}
