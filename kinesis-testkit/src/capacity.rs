//! DynamoDB capacity accounting: the read and write units every call consumed, per table
//! and operation, as DynamoDB would bill them.
//!
//! ```text
//!  SDK client ──▶ front: add ReturnConsumedCapacity=TOTAL if absent ──▶ emulator
//!            ◀── strip ConsumedCapacity again if the client did not ask ◀── (units counted)
//! ```
//!
//! The emulator computes the units from item sizes (dynoxide and DynamoDB Local both do, with
//! 4 KB strongly consistent and 8 KB eventually consistent read units and 1 KB write units),
//! so the figures are what the same calls would cost on AWS. A write refused by its condition
//! answers with an error that carries no units; DynamoDB still bills it (one write unit for
//! a lease-sized item), so each is counted as one.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// Units one operation on one table consumed.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OperationCapacity {
    /// Calls answered (including refused conditional writes).
    pub calls: u64,
    /// Read capacity units.
    pub read_units: f64,
    /// Write capacity units.
    pub write_units: f64,
}

/// What the DynamoDB calls made so far consumed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CapacityReport {
    /// By (table, operation).
    pub by_operation: BTreeMap<(String, String), OperationCapacity>,
}

impl CapacityReport {
    /// Read units over every table and operation.
    pub fn read_units(&self) -> f64 {
        self.by_operation.values().map(|c| c.read_units).sum()
    }

    /// Write units over every table and operation.
    pub fn write_units(&self) -> f64 {
        self.by_operation.values().map(|c| c.write_units).sum()
    }

    /// Units of one table: (read, write).
    pub fn table(&self, table: &str) -> (f64, f64) {
        self.by_operation
            .iter()
            .filter(|((t, _), _)| t == table)
            .fold((0.0, 0.0), |(r, w), (_, c)| {
                (r + c.read_units, w + c.write_units)
            })
    }

    /// One operation on one table.
    pub fn operation(&self, table: &str, operation: &str) -> OperationCapacity {
        self.by_operation
            .get(&(table.to_owned(), operation.to_owned()))
            .copied()
            .unwrap_or_default()
    }

    /// What was consumed since `earlier` (a report taken before this one).
    pub fn since(&self, earlier: &CapacityReport) -> CapacityReport {
        let mut by_operation = self.by_operation.clone();
        for (key, before) in &earlier.by_operation {
            if let Some(now) = by_operation.get_mut(key) {
                now.calls -= before.calls.min(now.calls);
                now.read_units -= before.read_units;
                now.write_units -= before.write_units;
            }
        }
        by_operation.retain(|_, c| c.calls > 0);
        CapacityReport { by_operation }
    }
}

/// The running count, shared by the DynamoDB front and [`crate::LocalAws::dynamodb_capacity`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Capacity {
    report: Arc<Mutex<CapacityReport>>,
}

fn is_write(operation: &str) -> bool {
    matches!(
        operation,
        "PutItem" | "UpdateItem" | "DeleteItem" | "BatchWriteItem" | "TransactWriteItems"
    )
}

fn number(value: &Value, field: &str) -> Option<f64> {
    value.get(field).and_then(Value::as_f64)
}

impl Capacity {
    pub(crate) fn report(&self) -> CapacityReport {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CapacityReport> {
        self.report.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks for the units in a request body; returns the new body and whether the client
    /// had not asked itself (then the answer's units are removed again).
    pub(crate) fn prepare(body: &[u8]) -> Option<(Vec<u8>, bool)> {
        let mut document: Value = serde_json::from_slice(body).ok()?;
        let object = document.as_object_mut()?;
        let asked = object
            .get("ReturnConsumedCapacity")
            .and_then(Value::as_str)
            .is_some_and(|v| v != "NONE");
        if asked {
            return None;
        }
        object.insert("ReturnConsumedCapacity".into(), "TOTAL".into());
        Some((serde_json::to_vec(&document).ok()?, true))
    }

    /// Counts the units of an answer; returns the body to send back (units removed when the
    /// client did not ask), or `None` to send the answer as it is.
    pub(crate) fn count(
        &self,
        operation: &str,
        table: Option<&str>,
        status: u16,
        body: &[u8],
        strip: bool,
    ) -> Option<Vec<u8>> {
        let mut document: Value = serde_json::from_slice(body).ok()?;
        if status != 200 {
            let refused = document
                .get("__type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.ends_with("ConditionalCheckFailedException"));
            if refused && is_write(operation) {
                self.add(table.unwrap_or(""), operation, 0.0, 1.0);
            }
            return None;
        }
        let consumed = document.get("ConsumedCapacity").cloned();
        let entries: Vec<Value> = match consumed {
            Some(Value::Array(entries)) => entries,
            Some(entry @ Value::Object(_)) => vec![entry],
            _ => Vec::new(),
        };
        if entries.is_empty() {
            self.add(table.unwrap_or(""), operation, 0.0, 0.0);
        }
        for entry in &entries {
            let name = entry
                .get("TableName")
                .and_then(Value::as_str)
                .or(table)
                .unwrap_or("");
            let total = number(entry, "CapacityUnits").unwrap_or(0.0);
            let (read, write) = match (
                number(entry, "ReadCapacityUnits"),
                number(entry, "WriteCapacityUnits"),
            ) {
                (None, None) if is_write(operation) => (0.0, total),
                (None, None) => (total, 0.0),
                (r, w) => (r.unwrap_or(0.0), w.unwrap_or(0.0)),
            };
            self.add(name, operation, read, write);
        }
        if !strip {
            return None;
        }
        document.as_object_mut()?.remove("ConsumedCapacity");
        serde_json::to_vec(&document).ok()
    }

    fn add(&self, table: &str, operation: &str, read: f64, write: f64) {
        let mut report = self.lock();
        let entry = report
            .by_operation
            .entry((table.to_owned(), operation.to_owned()))
            .or_default();
        entry.calls += 1;
        entry.read_units += read;
        entry.write_units += write;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_asked_for_counted_and_stripped_again() {
        let (body, strip) = Capacity::prepare(br#"{"TableName":"t","Key":{}}"#).unwrap();
        assert!(strip);
        assert!(String::from_utf8(body).unwrap().contains("\"TOTAL\""));
        assert!(Capacity::prepare(br#"{"ReturnConsumedCapacity":"TOTAL"}"#).is_none());

        let capacity = Capacity::default();
        let answer = br#"{"Items":[],"ConsumedCapacity":{"TableName":"t","CapacityUnits":2.5}}"#;
        let stripped = capacity
            .count("Scan", Some("t"), 200, answer, true)
            .unwrap();
        assert!(!String::from_utf8(stripped).unwrap().contains("Consumed"));
        let refused =
            br#"{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException"}"#;
        assert!(
            capacity
                .count("UpdateItem", Some("t"), 400, refused, true)
                .is_none()
        );
        let report = capacity.report();
        assert_eq!(report.operation("t", "Scan").read_units, 2.5);
        assert_eq!(report.operation("t", "UpdateItem").write_units, 1.0);
        assert_eq!(report.table("t"), (2.5, 1.0));
        assert_eq!(report.since(&report).by_operation.len(), 0);
    }
}
