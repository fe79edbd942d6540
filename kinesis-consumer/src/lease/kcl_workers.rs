//! Workers of the real KCL 3.x sharing the lease table: each reports its metrics every 30 s
//! (by default), with `lut` = the wall-clock second of its last report. KCL 3.5+ keeps the
//! report in the lease table (a `WORKER_METRIC_STATS` entry, `leaseKey` = its worker id);
//! KCL 3.0–3.4 (and 3.5 until an application migrates) in a table of its own,
//! `<lease table>-WorkerMetricStats`, hash key `wid`. The leader counts the fresh ones as
//! members of the fleet, so a mixed fleet shares the leases instead of the first side up
//! keeping them all.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;

use super::item::{ENTITY_TYPE, LEASE_KEY};

const WORKER_METRIC_STATS: &str = "WORKER_METRIC_STATS";
const LAST_UPDATE: &str = "lut";
const LEGACY_WORKER_ID: &str = "wid";

/// The table where KCL 3.0–3.4 workers report.
pub(crate) fn legacy_table(lease_table: &str) -> String {
    format!("{lease_table}-WorkerMetricStats")
}

/// How old a KCL worker's report may be: KCL's own leader drops a worker whose metrics are
/// older than two reporting intervals (2 × 30 s by default).
pub(crate) const KCL_WORKER_EXPIRY: Duration = Duration::from_secs(60);

/// A KCL worker's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KclWorker {
    pub worker_id: String,
    /// When it last reported.
    pub last_update: SystemTime,
}

impl KclWorker {
    /// The entry, if the item of the lease table is a KCL worker's.
    pub(crate) fn from_item(item: &HashMap<String, AttributeValue>) -> Option<KclWorker> {
        if item.get(ENTITY_TYPE)?.as_s().ok()? != WORKER_METRIC_STATS {
            return None;
        }
        Self::read(item, LEASE_KEY)
    }

    /// The entry, from an item of the legacy worker-metrics table.
    pub(crate) fn from_legacy_item(item: &HashMap<String, AttributeValue>) -> Option<KclWorker> {
        Self::read(item, LEGACY_WORKER_ID)
    }

    fn read(item: &HashMap<String, AttributeValue>, key: &str) -> Option<KclWorker> {
        let worker_id = item.get(key)?.as_s().ok()?.clone();
        let seconds: u64 = item.get(LAST_UPDATE)?.as_n().ok()?.parse().ok()?;
        Some(KclWorker {
            worker_id,
            last_update: UNIX_EPOCH + Duration::from_secs(seconds),
        })
    }

    /// Whether it reported recently enough, by the wall clock (as KCL's leader decides).
    pub(crate) fn is_live(&self, now: SystemTime) -> bool {
        now.duration_since(self.last_update)
            .is_ok_and(|age| age <= KCL_WORKER_EXPIRY)
            || self.last_update > now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(entity: &str, lut: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([
            ("leaseKey".to_owned(), AttributeValue::S("kcl-1".into())),
            ("entityType".to_owned(), AttributeValue::S(entity.into())),
            ("lut".to_owned(), AttributeValue::N(lut.into())),
            ("sts".to_owned(), AttributeValue::M(HashMap::new())),
        ])
    }

    #[test]
    fn a_kcl_worker_entry_is_read_and_ages_out() {
        let worker = KclWorker::from_item(&item("WORKER_METRIC_STATS", "1796180463")).unwrap();
        assert_eq!(worker.worker_id, "kcl-1");
        let at = UNIX_EPOCH + Duration::from_secs(1_796_180_463);
        assert!(worker.is_live(at + Duration::from_secs(60)));
        assert!(worker.is_live(at - Duration::from_secs(5)));
        assert!(!worker.is_live(at + Duration::from_secs(61)));
        assert_eq!(KclWorker::from_item(&item("LEASE", "1")), None);
        assert_eq!(
            KclWorker::from_item(&item("WORKER_METRIC_STATS", "x")),
            None
        );
    }
}
