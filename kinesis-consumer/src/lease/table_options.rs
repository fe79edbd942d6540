//! How the worker creates its tables (the lease table and the coordinator-state table) when
//! they do not exist: billing mode, point-in-time recovery, deletion protection and tags, as
//! KCL's `billingMode`, `initialLeaseTableRead/WriteCapacity`, `leaseTablePitrEnabled`,
//! `leaseTableDeletionProtectionEnabled` and `tags`. A table that exists is used as it is.

use aws_sdk_dynamodb::operation::create_table::builders::CreateTableFluentBuilder;
use aws_sdk_dynamodb::types::{
    BillingMode, PointInTimeRecoverySpecification, ProvisionedThroughput, Tag,
};
use kinesis_common::ServiceError;

/// How a table is billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Billing {
    /// On-demand (`PAY_PER_REQUEST`): billed per request, no capacity to plan (the default,
    /// as KCL).
    #[default]
    OnDemand,
    /// Provisioned capacity (`PROVISIONED`): read and write capacity units per second; calls
    /// beyond them are throttled (and retried by the SDK).
    Provisioned {
        /// Read capacity units (at least 1; KCL's default is 10).
        read_units: i64,
        /// Write capacity units (at least 1; KCL's default is 10).
        write_units: i64,
    },
}

/// Settings of the tables the worker creates; see [`crate::WorkerBuilder::lease_table_options`].
///
/// ```
/// use kinesis_consumer::{Billing, TableOptions};
///
/// let options = TableOptions::default()
///     .billing(Billing::Provisioned { read_units: 10, write_units: 10 })
///     .point_in_time_recovery(true)
///     .deletion_protection(true)
///     .tag("team", "payments");
/// assert_eq!(options.tags().len(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableOptions {
    billing: Billing,
    point_in_time_recovery: bool,
    deletion_protection: bool,
    tags: Vec<(String, String)>,
}

impl TableOptions {
    /// On-demand or provisioned (default on-demand).
    pub fn billing(mut self, billing: Billing) -> Self {
        self.billing = billing;
        self
    }

    /// Turns on point-in-time recovery once the new table is active (default off).
    pub fn point_in_time_recovery(mut self, enabled: bool) -> Self {
        self.point_in_time_recovery = enabled;
        self
    }

    /// Creates the table with deletion protection, so `DeleteTable` is refused until it is
    /// turned off (default off).
    pub fn deletion_protection(mut self, enabled: bool) -> Self {
        self.deletion_protection = enabled;
        self
    }

    /// Adds a tag to the new table (default none).
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.push((key.into(), value.into()));
        self
    }

    /// The billing mode.
    pub fn billing_mode(&self) -> Billing {
        self.billing
    }

    /// Whether point-in-time recovery is turned on for a new table.
    pub fn point_in_time_recovery_enabled(&self) -> bool {
        self.point_in_time_recovery
    }

    /// Whether a new table has deletion protection.
    pub fn deletion_protection_enabled(&self) -> bool {
        self.deletion_protection
    }

    /// The tags of a new table.
    pub fn tags(&self) -> &[(String, String)] {
        &self.tags
    }

    /// What DynamoDB refuses, found before any call: units below 1, tags outside DynamoDB's
    /// limits (1–128 characters of key, at most 256 of value, at most 50 tags).
    pub(crate) fn invalid(&self) -> Option<&'static str> {
        if let Billing::Provisioned {
            read_units,
            write_units,
        } = self.billing
            && (read_units < 1 || write_units < 1)
        {
            return Some("provisioned read and write units must be at least 1");
        }
        if self.tags.len() > 50 {
            return Some("a table has at most 50 tags");
        }
        if self
            .tags
            .iter()
            .any(|(k, v)| k.is_empty() || k.chars().count() > 128 || v.chars().count() > 256)
        {
            return Some("tag keys have 1 to 128 characters and values at most 256");
        }
        None
    }

    /// Adds the billing mode, deletion protection and tags to a CreateTable call.
    pub(crate) fn apply(
        &self,
        request: CreateTableFluentBuilder,
    ) -> Result<CreateTableFluentBuilder, ServiceError> {
        let construction = |e| ServiceError::construction("CreateTable", e);
        let request = match self.billing {
            Billing::OnDemand => request.billing_mode(BillingMode::PayPerRequest),
            Billing::Provisioned {
                read_units,
                write_units,
            } => request
                .billing_mode(BillingMode::Provisioned)
                .provisioned_throughput(
                    ProvisionedThroughput::builder()
                        .read_capacity_units(read_units)
                        .write_capacity_units(write_units)
                        .build()
                        .map_err(construction)?,
                ),
        };
        let mut request = request.deletion_protection_enabled(self.deletion_protection);
        for (key, value) in &self.tags {
            request = request.tags(
                Tag::builder()
                    .key(key)
                    .value(value)
                    .build()
                    .map_err(construction)?,
            );
        }
        Ok(request)
    }

    /// Turns on point-in-time recovery of the new, active table `name`, if asked for.
    pub(crate) async fn enable_recovery(
        &self,
        client: &aws_sdk_dynamodb::Client,
        name: &str,
    ) -> Result<(), ServiceError> {
        if !self.point_in_time_recovery {
            return Ok(());
        }
        let specification = PointInTimeRecoverySpecification::builder()
            .point_in_time_recovery_enabled(true)
            .build()
            .map_err(|e| ServiceError::construction("UpdateContinuousBackups", e))?;
        client
            .update_continuous_backups()
            .table_name(name)
            .point_in_time_recovery_specification(specification)
            .send()
            .await
            .map_err(|e| ServiceError::from_sdk("UpdateContinuousBackups", e))?;
        tracing::info!(table = %name, "point-in-time recovery enabled");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kcls() {
        let options = TableOptions::default();
        assert_eq!(options.billing_mode(), Billing::OnDemand);
        assert!(!options.point_in_time_recovery_enabled());
        assert!(!options.deletion_protection_enabled());
        assert!(options.tags().is_empty());
        assert_eq!(options.invalid(), None);
    }

    #[test]
    fn what_dynamodb_refuses_is_found_before_any_call() {
        let zero = TableOptions::default().billing(Billing::Provisioned {
            read_units: 0,
            write_units: 5,
        });
        assert!(zero.invalid().is_some());
        assert!(TableOptions::default().tag("", "v").invalid().is_some());
        assert!(
            TableOptions::default()
                .tag("k", "v".repeat(257))
                .invalid()
                .is_some()
        );
        let many = (0..51).fold(TableOptions::default(), |o, i| o.tag(format!("k{i}"), "v"));
        assert!(many.invalid().is_some());
        let fine = TableOptions::default()
            .billing(Billing::Provisioned {
                read_units: 1,
                write_units: 1,
            })
            .tag("k".repeat(128), "v".repeat(256));
        assert_eq!(fine.invalid(), None);
    }
}
