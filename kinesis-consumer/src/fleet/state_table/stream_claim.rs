//! Which application and stream an application's tables belong to, so that two
//! applications (or one application pointed at another stream) can never stomp one lease
//! table (KCL #1368: the same application name on two streams silently mixes their leases).
//!
//! The first worker to start writes the stream's ARN and its application's name into the
//! coordinator-state table, ours alone (a KCL worker sharing the lease table never reads it),
//! under the key `Stream`, with a conditional put that only succeeds if nothing is recorded;
//! every later worker reads them and refuses to start for another stream or application.
//! ARNs, not names: a stream name is the same in every account and region.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use kinesis_common::ServiceError;

use super::{KEY, StateTable};
use crate::ConsumerError;
use crate::lease::dynamo::{conditional, s};

const STREAM_KEY: &str = "Stream";
const STREAM_ARN: &str = "streamArn";
const APPLICATION: &str = "applicationName";

/// What the table says about whose it is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Claim {
    /// This application's and stream's: recorded now, or before.
    Ours,
    /// Another stream's, by ARN.
    OtherStream(String),
    /// Another application's, by name.
    OtherApplication(String),
}

impl StateTable {
    /// Records this application and stream as the tables' owners, or fails if the tables
    /// are another's.
    pub(crate) async fn ensure_ours(
        &self,
        application: &str,
        stream_arn: &str,
    ) -> Result<(), ConsumerError> {
        let table = self.name.clone();
        let claim = self.claim_stream(application, stream_arn).await;
        match claim.map_err(|source| ConsumerError::LeaseTable {
            table: table.clone(),
            source,
        })? {
            Claim::Ours => Ok(()),
            Claim::OtherStream(recorded) => Err(ConsumerError::TableOfAnotherStream {
                table,
                stream: stream_arn.to_owned(),
                recorded,
            }),
            Claim::OtherApplication(recorded) => Err(ConsumerError::TableOfAnotherApplication {
                table,
                application: application.to_owned(),
                recorded,
            }),
        }
    }

    /// Records `application` and `stream_arn` as the tables' owners unless some are
    /// recorded, and says whose they are.
    async fn claim_stream(
        &self,
        application: &str,
        stream_arn: &str,
    ) -> Result<Claim, ServiceError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.name)
            .item(KEY, s(STREAM_KEY))
            .item(STREAM_ARN, s(stream_arn))
            .item(APPLICATION, s(application))
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
        let recorded = |name: &str| {
            out.item()
                .and_then(|item| item.get(name))
                .and_then(|v| match v {
                    AttributeValue::S(text) => Some(text.clone()),
                    _ => None,
                })
        };
        Ok(match (recorded(STREAM_ARN), recorded(APPLICATION)) {
            (Some(arn), _) if arn != stream_arn => Claim::OtherStream(arn),
            (_, Some(app)) if app != application => Claim::OtherApplication(app),
            _ => Claim::Ours,
        })
    }
}
