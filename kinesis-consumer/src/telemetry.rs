//! What the worker reports through the `metrics` facade, at the granularity asked for.
//!
//! The metrics and their labels are listed in the crate README (its *Metrics* section);
//! [`MetricsGranularity`] decides the labels. A per-shard gauge keeps its last value after
//! the lease moves away.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kinesis_common::{ErrorKind, ServiceError};

/// How finely metrics are broken down, as KCL's metrics dimensions and KPL's
/// `metricsGranularity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum MetricsGranularity {
    /// An `application` label only.
    Worker,
    /// `application` and `stream` labels (the default).
    #[default]
    Stream,
    /// `application` and `stream`, and `shard` on the per-shard metrics.
    Shard,
}

type Labels = Vec<(&'static str, String)>;

/// A gauge shared by several shards below `Shard` granularity: it shows their largest value.
/// An update costs O(log shards) (values kept in an ordered multiset), so thousands of
/// shards updating it per batch stay cheap.
#[derive(Clone)]
struct MaxGauge {
    gauge: metrics::Gauge,
    values: Arc<Mutex<MaxOf>>,
}

/// Each shard's value and the multiset of all values (keyed by the bit pattern of a
/// non-negative f64, which orders as the number does).
#[derive(Default)]
struct MaxOf {
    by_shard: HashMap<String, u64>,
    counts: std::collections::BTreeMap<u64, usize>,
}

impl MaxOf {
    /// Sets (or with `None` removes) a shard's value; returns the largest.
    fn set(&mut self, shard: &str, value: Option<f64>) -> f64 {
        let old = match value {
            Some(v) => self.by_shard.insert(shard.to_owned(), v.max(0.0).to_bits()),
            None => self.by_shard.remove(shard),
        };
        if let Some(old) = old
            && let Some(n) = self.counts.get_mut(&old)
        {
            *n -= 1;
            if *n == 0 {
                self.counts.remove(&old);
            }
        }
        if let Some(v) = value {
            *self.counts.entry(v.max(0.0).to_bits()).or_default() += 1;
        }
        self.counts
            .last_key_value()
            .map_or(0.0, |(bits, _)| f64::from_bits(*bits))
    }
}

impl MaxGauge {
    fn new(gauge: metrics::Gauge) -> Self {
        MaxGauge {
            gauge,
            values: Arc::default(),
        }
    }

    fn update(&self, shard: &str, value: Option<f64>) {
        let max = self
            .values
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set(shard, value);
        self.gauge.set(max);
    }
}

/// One shard consumer's handles.
#[derive(Clone)]
pub(crate) struct ShardMetrics {
    shard_id: String,
    pub records_processed: metrics::Counter,
    pub bytes_processed: metrics::Counter,
    pub processing_seconds: metrics::Histogram,
    pub processor_failures: metrics::Counter,
    pub corrupt_aggregates: metrics::Counter,
    /// Its own gauges at `Shard` granularity; shared maxima otherwise.
    lag: Lag,
}

#[derive(Clone)]
enum Lag {
    Own {
        millis_behind: metrics::Gauge,
        newest_age: metrics::Gauge,
    },
    Shared {
        millis_behind: MaxGauge,
        newest_age: MaxGauge,
    },
}

impl ShardMetrics {
    /// A batch was read: how far behind the stream's tip it is, and how old its newest
    /// record is (when it has records).
    pub(crate) fn observe_lag(&self, millis_behind: Option<i64>, newest_age: Option<Duration>) {
        let millis = millis_behind.map(|m| m as f64);
        let age = newest_age.map(|a| a.as_secs_f64());
        match &self.lag {
            Lag::Own {
                millis_behind,
                newest_age,
            } => {
                if let Some(m) = millis {
                    millis_behind.set(m);
                }
                if let Some(a) = age {
                    newest_age.set(a);
                }
            }
            Lag::Shared {
                millis_behind,
                newest_age,
            } => {
                if millis.is_some() {
                    millis_behind.update(&self.shard_id, millis);
                }
                if age.is_some() {
                    newest_age.update(&self.shard_id, age);
                }
            }
        }
    }

    /// The consumer ended: its shard no longer counts in the shared maxima.
    pub(crate) fn ended(&self) {
        if let Lag::Shared {
            millis_behind,
            newest_age,
        } = &self.lag
        {
            millis_behind.update(&self.shard_id, None);
            newest_age.update(&self.shard_id, None);
        }
    }
}

/// The worker's metric handles, registered once; install a `metrics` recorder before
/// building the worker to receive them.
pub(crate) struct Telemetry {
    granularity: MetricsGranularity,
    labels: Labels,
    /// Below `Shard` granularity: the lag gauges every shard shares.
    shared_lag: Option<(MaxGauge, MaxGauge)>,
    pub leases_held: metrics::Gauge,
    pub throughput_kbps: metrics::Gauge,
    pub leases_taken: metrics::Counter,
    pub leases_stolen: metrics::Counter,
    pub leases_lost: metrics::Counter,
    pub leases_expired: metrics::Counter,
    pub leases_given: metrics::Counter,
    pub lease_renewals: metrics::Counter,
    pub lease_renewal_failures: metrics::Counter,
    pub lease_renewal_seconds: metrics::Histogram,
    pub leader: metrics::Gauge,
    pub worker_fenced: metrics::Counter,
    pub workers_fenced: metrics::Counter,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("granularity", &self.granularity)
            .field("labels", &self.labels)
            .finish_non_exhaustive()
    }
}

impl Telemetry {
    pub(crate) fn new(application: &str, stream: &str, granularity: MetricsGranularity) -> Self {
        let mut labels: Labels = vec![("application", application.to_owned())];
        if granularity != MetricsGranularity::Worker {
            labels.push(("stream", stream.to_owned()));
        }
        let l = &labels;
        Telemetry {
            shared_lag: (granularity != MetricsGranularity::Shard).then(|| {
                (
                    MaxGauge::new(metrics::gauge!("kinesis_consumer_millis_behind_latest", l)),
                    MaxGauge::new(metrics::gauge!(
                        "kinesis_consumer_newest_record_age_seconds",
                        l
                    )),
                )
            }),
            leases_held: metrics::gauge!("kinesis_consumer_leases_held", l),
            throughput_kbps: metrics::gauge!("kinesis_consumer_throughput_kbps", l),
            leases_taken: metrics::counter!("kinesis_consumer_leases_taken", l),
            leases_stolen: metrics::counter!("kinesis_consumer_leases_stolen", l),
            leases_lost: metrics::counter!("kinesis_consumer_leases_lost", l),
            leases_expired: metrics::counter!("kinesis_consumer_leases_expired", l),
            leases_given: metrics::counter!("kinesis_consumer_leases_given", l),
            lease_renewals: metrics::counter!("kinesis_consumer_lease_renewals", l),
            lease_renewal_failures: metrics::counter!("kinesis_consumer_lease_renewal_failures", l),
            lease_renewal_seconds: metrics::histogram!("kinesis_consumer_lease_renewal_seconds", l),
            leader: metrics::gauge!("kinesis_consumer_leader", l),
            worker_fenced: metrics::counter!("kinesis_consumer_worker_fenced", l),
            workers_fenced: metrics::counter!("kinesis_consumer_workers_fenced", l),
            granularity,
            labels,
        }
    }

    /// A failed Kinesis call, by operation and error code (its kind when the service gave
    /// none: a timeout or a dropped connection); throttles are counted apart too.
    pub(crate) fn kinesis_failure(&self, error: &ServiceError) {
        let mut labels = self.labels.clone();
        labels.push(("operation", error.operation.to_owned()));
        if error.kind == ErrorKind::Throttling {
            metrics::counter!("kinesis_consumer_kinesis_throttles", &labels).increment(1);
        }
        let code = match &error.code {
            Some(code) => code.clone(),
            None => format!("{:?}", error.kind),
        };
        labels.push(("code", code));
        metrics::counter!("kinesis_consumer_kinesis_errors", &labels).increment(1);
    }

    /// The handles of one shard's consumer.
    /// A shard's handles; `stream` (a multi-stream worker's lease's stream name) replaces
    /// the worker's stream label.
    pub(crate) fn shard(
        &self,
        stream: Option<&str>,
        shard_id: &str,
        lease_key: &str,
    ) -> ShardMetrics {
        let mut labels = self.labels.clone();
        if let Some(name) = stream {
            for (label, value) in labels.iter_mut() {
                if *label == "stream" {
                    *value = name.to_owned();
                }
            }
        }
        let lag = match &self.shared_lag {
            Some((millis_behind, newest_age)) => Lag::Shared {
                millis_behind: millis_behind.clone(),
                newest_age: newest_age.clone(),
            },
            None => {
                labels.push(("shard", shard_id.to_owned()));
                Lag::Own {
                    millis_behind: metrics::gauge!(
                        "kinesis_consumer_millis_behind_latest",
                        &labels
                    ),
                    newest_age: metrics::gauge!(
                        "kinesis_consumer_newest_record_age_seconds",
                        &labels
                    ),
                }
            }
        };
        let l = &labels;
        ShardMetrics {
            // The shared maxima are keyed by lease (shard ids repeat across streams).
            shard_id: lease_key.to_owned(),
            records_processed: metrics::counter!("kinesis_consumer_records_processed", l),
            bytes_processed: metrics::counter!("kinesis_consumer_bytes_processed", l),
            processing_seconds: metrics::histogram!("kinesis_consumer_processing_seconds", l),
            processor_failures: metrics::counter!("kinesis_consumer_processor_failures", l),
            corrupt_aggregates: metrics::counter!("kinesis_consumer_corrupt_aggregates", l),
            lag,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    #[test]
    fn below_shard_granularity_lag_is_the_largest_of_the_shards_still_held() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            let telemetry = Telemetry::new("app", "s", MetricsGranularity::Stream);
            let (a, b) = (
                telemetry.shard(None, "a", "a"),
                telemetry.shard(None, "b", "b"),
            );
            a.observe_lag(Some(500), None);
            b.observe_lag(Some(2_000), Some(Duration::from_secs(3)));
            a.observe_lag(Some(100), None);
            let lag = || {
                snapshotter
                    .snapshot()
                    .into_vec()
                    .into_iter()
                    .find(|(k, ..)| k.key().name() == "kinesis_consumer_millis_behind_latest")
                    .and_then(|(.., v)| match v {
                        DebugValue::Gauge(v) => Some(v.into_inner()),
                        _ => None,
                    })
            };
            assert_eq!(lag(), Some(2_000.0));
            b.ended();
            assert_eq!(lag(), Some(100.0));
        });
    }
}
