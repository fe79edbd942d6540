//! What this worker's lease-table calls cost: DynamoDB read and write capacity units, as
//! DynamoDB reports them (`ReturnConsumedCapacity=TOTAL` on every call).
//!
//! Every call adds to a running total that [`crate::WorkerHandle::lease_table_capacity`]
//! (and [`crate::WorkerHandle::coordinator_table_capacity`] for the coordinator table)
//! returns, and to the metrics `kinesis_consumer_lease_table_read_units` and
//! `kinesis_consumer_lease_table_write_units` (gauges that only grow, labelled by `table`,
//! `lease` or `coordinator`, and by operation; units are fractional, which counters cannot
//! hold).

use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::types::ConsumedCapacity;

/// Capacity units consumed so far.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LeaseTableCapacity {
    /// Calls made (answered, including refused conditional writes).
    pub calls: u64,
    /// Read capacity units.
    pub read_units: f64,
    /// Write capacity units.
    pub write_units: f64,
}

/// A shared running total, for one of the worker's tables.
#[derive(Debug, Clone)]
pub(crate) struct CapacityMeter {
    total: Arc<Mutex<LeaseTableCapacity>>,
    /// The `table` label of its metrics: `lease` or `coordinator`.
    table: &'static str,
}

impl Default for CapacityMeter {
    fn default() -> Self {
        CapacityMeter::new("lease")
    }
}

fn is_write(operation: &str) -> bool {
    matches!(operation, "PutItem" | "UpdateItem" | "DeleteItem")
}

impl CapacityMeter {
    pub(crate) fn new(table: &'static str) -> Self {
        CapacityMeter {
            total: Arc::default(),
            table,
        }
    }

    pub(crate) fn total(&self) -> LeaseTableCapacity {
        *self.total.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds what one answered call consumed.
    pub(crate) fn record(&self, operation: &'static str, consumed: Option<&ConsumedCapacity>) {
        let units = consumed.and_then(|c| c.capacity_units()).unwrap_or(0.0);
        let (read, write) = match consumed {
            Some(c) if c.read_capacity_units().is_some() || c.write_capacity_units().is_some() => (
                c.read_capacity_units().unwrap_or(0.0),
                c.write_capacity_units().unwrap_or(0.0),
            ),
            _ if is_write(operation) => (0.0, units),
            _ => (units, 0.0),
        };
        self.add(operation, read, write);
    }

    /// A call that failed: one refused for capacity (after the SDK's own retries) is
    /// counted in `kinesis_consumer_dynamodb_throttles`.
    pub(crate) fn record_failure(&self, error: &kinesis_common::ServiceError) {
        if error.kind == kinesis_common::ErrorKind::Throttling {
            metrics::counter!("kinesis_consumer_dynamodb_throttles", "table" => self.table, "operation" => error.operation)
                .increment(1);
        }
    }

    /// A conditional write refused by its condition: no units in the answer, but DynamoDB
    /// bills one write unit (for an item of up to 1 KB, as leases are).
    pub(crate) fn record_refused_write(&self, operation: &'static str) {
        self.add(operation, 0.0, 1.0);
    }

    fn add(&self, operation: &'static str, read: f64, write: f64) {
        {
            let mut total = self.total.lock().unwrap_or_else(|e| e.into_inner());
            total.calls += 1;
            total.read_units += read;
            total.write_units += write;
        }
        if read > 0.0 {
            metrics::gauge!("kinesis_consumer_lease_table_read_units", "table" => self.table, "operation" => operation)
                .increment(read);
        }
        if write > 0.0 {
            metrics::gauge!("kinesis_consumer_lease_table_write_units", "table" => self.table, "operation" => operation)
                .increment(write);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_are_told_apart_by_operation() {
        let meter = CapacityMeter::default();
        let scan = ConsumedCapacity::builder().capacity_units(4.5).build();
        meter.record("Scan", Some(&scan));
        let update = ConsumedCapacity::builder().capacity_units(1.0).build();
        meter.record("UpdateItem", Some(&update));
        meter.record_refused_write("UpdateItem");
        meter.record("GetItem", None);
        let total = meter.total();
        assert_eq!(total.calls, 4);
        assert_eq!(total.read_units, 4.5);
        assert_eq!(total.write_units, 2.0);
    }
}
