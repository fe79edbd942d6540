//! Fault injection between the SDK clients and the emulators.
//!
//! ```text
//!  SDK client ──HTTP──▶ [ Faults: match rule by operation → act ] ──▶ emulator
//!                              │ throttle / error status  → answer with a service error
//!                              │ latency                  → wait, then go on
//!                              │ drop connection          → close the socket, no answer
//!                              │ fail entries (PutRecords)→ forward only the others,
//!                              │                            answer the rest with an ErrorCode
//! ```
//!
//! Rules are checked in the order they were added; latency rules delay and fall through, the
//! first other matching rule decides. A rule can match one operation ([`FaultRule::on`]) and
//! one client ([`FaultRule::from_client`], by the access key id its requests are signed with),
//! so a test can cut off one worker's traffic while the others go on. A rule fires on a matching request with its probability
//! (1.0 unless set) and at most `times` times (unlimited unless set). Failed PutRecords entries
//! are never written to the stream, as on AWS, so a test can tell retries from duplicates.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;

/// Which service a set of faults sits in front of; decides error spellings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Kinesis Data Streams (awsJson 1.1).
    Kinesis,
    /// DynamoDB (awsJson 1.0).
    DynamoDb,
}

impl Service {
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Service::Kinesis => "application/x-amz-json-1.1",
            Service::DynamoDb => "application/x-amz-json-1.0",
        }
    }

    /// The full `__type` the service uses for an error code.
    pub(crate) fn error_type(self, code: &str) -> String {
        match self {
            Service::Kinesis => code.to_owned(),
            Service::DynamoDb => format!("com.amazonaws.dynamodb.v20120810#{code}"),
        }
    }

    fn throttling_code(self) -> &'static str {
        "ProvisionedThroughputExceededException"
    }

    fn internal_code(self) -> &'static str {
        match self {
            Service::Kinesis => "InternalFailure",
            Service::DynamoDb => "InternalServerError",
        }
    }
}

/// What a rule does to a request it fires on.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FaultAction {
    /// Answer with the service's throttling error (HTTP 400) instead of forwarding.
    Throttle,
    /// Answer with this HTTP status and error code instead of forwarding.
    Error {
        /// HTTP status.
        status: u16,
        /// Error code, e.g. `InternalFailure` or `ConditionalCheckFailedException`.
        code: String,
    },
    /// Wait this long before forwarding.
    Latency(Duration),
    /// Close the connection without answering.
    DropConnection,
    /// PutRecords only: fail this fraction of entries with `ProvisionedThroughputExceededException`.
    FailEntries(f64),
    /// Hold the request without answering for as long as the rule is in place (a network
    /// partition: the connection stays open, nothing comes back), then close the connection.
    /// The request never reaches the emulator.
    BlackHole,
}

/// A fault rule: which requests, what action, how often.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRule {
    operation: Option<String>,
    client: Option<String>,
    stream: Option<String>,
    action: FaultAction,
    probability: f64,
    times: Option<u64>,
}

impl FaultRule {
    /// A rule with an action, firing on every request until limited.
    pub fn new(action: FaultAction) -> Self {
        FaultRule {
            operation: None,
            client: None,
            stream: None,
            action,
            probability: 1.0,
            times: None,
        }
    }

    /// Throttle whole requests.
    pub fn throttle() -> Self {
        Self::new(FaultAction::Throttle)
    }

    /// Answer 500 with the service's internal-error code.
    pub fn internal_error() -> Self {
        Self::new(FaultAction::Error {
            status: 500,
            code: String::new(),
        })
    }

    /// Answer with any status and error code.
    pub fn error(status: u16, code: impl Into<String>) -> Self {
        Self::new(FaultAction::Error {
            status,
            code: code.into(),
        })
    }

    /// Delay requests.
    pub fn latency(delay: Duration) -> Self {
        Self::new(FaultAction::Latency(delay))
    }

    /// Close connections without an answer.
    pub fn drop_connection() -> Self {
        Self::new(FaultAction::DropConnection)
    }

    /// Hold requests unanswered while the rule is in place (see [`FaultAction::BlackHole`]);
    /// [`Faults::clear`] or [`Faults::remove`] heals the partition.
    pub fn black_hole() -> Self {
        Self::new(FaultAction::BlackHole)
    }

    /// Fail a fraction (0.0–1.0) of PutRecords entries; implies `on("PutRecords")`.
    pub fn fail_entries(fraction: f64) -> Self {
        Self::new(FaultAction::FailEntries(fraction.clamp(0.0, 1.0))).on("PutRecords")
    }

    /// Only requests for this operation (the part of `X-Amz-Target` after the dot).
    pub fn on(mut self, operation: impl Into<String>) -> Self {
        self.operation = Some(operation.into());
        self
    }

    /// Only requests signed with this access key id: one client's traffic, as made by
    /// [`crate::LocalAws::client_options_for`].
    pub fn from_client(mut self, access_key_id: impl Into<String>) -> Self {
        self.client = Some(access_key_id.into());
        self
    }

    /// Only Kinesis requests for this stream (its `StreamName`, or the name in its
    /// `StreamARN`): one stream's traffic among several.
    pub fn for_stream(mut self, stream: impl Into<String>) -> Self {
        self.stream = Some(stream.into());
        self
    }

    /// Fire on a matching request with this probability (0.0–1.0).
    pub fn probability(mut self, probability: f64) -> Self {
        self.probability = probability.clamp(0.0, 1.0);
        self
    }

    /// Fire at most this many times.
    pub fn times(mut self, times: u64) -> Self {
        self.times = Some(times);
        self
    }

    fn matches(&self, request: &RequestInfo<'_>) -> bool {
        self.operation
            .as_deref()
            .is_none_or(|op| op == request.operation)
            && self
                .client
                .as_deref()
                .is_none_or(|c| Some(c) == request.client)
            && self
                .stream
                .as_deref()
                .is_none_or(|s| Some(s) == request.stream)
    }
}

/// What a rule can match a request on.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RequestInfo<'a> {
    /// The operation (the part of `X-Amz-Target` after the dot).
    pub operation: &'a str,
    /// The access key id the request is signed with.
    pub client: Option<&'a str>,
    /// The Kinesis stream it names, if read (only when a rule asks for a stream).
    pub stream: Option<&'a str>,
}

impl RequestInfo<'_> {
    /// The stream a Kinesis request body names, by `StreamName` or `StreamARN`.
    pub(crate) fn stream_of(body: &[u8]) -> Option<String> {
        let value: serde_json::Value = serde_json::from_slice(body).ok()?;
        if let Some(name) = value.get("StreamName").and_then(|v| v.as_str()) {
            return Some(name.to_owned());
        }
        let arn = value.get("StreamARN").and_then(|v| v.as_str())?;
        arn.rsplit('/').next().map(str::to_owned)
    }
}

/// Counts of what the faults did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Requests seen.
    pub requests: u64,
    /// Requests answered with a throttling error.
    pub throttled: u64,
    /// Requests answered with another injected error.
    pub errors: u64,
    /// Requests delayed.
    pub delayed: u64,
    /// Connections dropped.
    pub dropped: u64,
    /// PutRecords entries failed.
    pub failed_entries: u64,
    /// Requests held unanswered by a black hole.
    pub black_holed: u64,
}

#[derive(Debug)]
struct RuleState {
    id: u64,
    rule: FaultRule,
    fired: u64,
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<RuleState>,
    stats: FaultStats,
    next_id: u64,
}

/// Names a rule added with [`Faults::add_rule`], to remove it later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RuleId(u64);

/// The fault rules in front of one service. Cheap to clone; clones share the rules.
#[derive(Debug, Clone)]
pub struct Faults {
    service: Service,
    state: Arc<Mutex<State>>,
}

/// What to do with one request, decided up front.
#[derive(Debug, Clone, Default)]
pub(crate) struct Decision {
    pub delay: Duration,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Default)]
pub(crate) enum Outcome {
    #[default]
    Forward,
    Respond {
        status: u16,
        error_type: String,
    },
    Drop,
    FailEntries(f64),
    /// Hold while the rule with this id is in place, then drop.
    Hold(RuleId),
}

impl Faults {
    pub(crate) fn new(service: Service) -> Self {
        Faults {
            service,
            state: Arc::default(),
        }
    }

    /// The service these faults are in front of.
    pub fn service(&self) -> Service {
        self.service
    }

    /// Adds a rule after the existing ones.
    pub fn add(&self, rule: FaultRule) -> &Self {
        self.add_rule(rule);
        self
    }

    /// Adds a rule after the existing ones and returns its id, for [`Faults::remove`].
    pub fn add_rule(&self, rule: FaultRule) -> RuleId {
        let mut state = self.lock();
        state.next_id += 1;
        let id = state.next_id;
        state.rules.push(RuleState { id, rule, fired: 0 });
        RuleId(id)
    }

    /// Removes one rule; requests a black hole holds are then let go (their connections
    /// closed). Returns whether the rule was there.
    pub fn remove(&self, id: RuleId) -> bool {
        let mut state = self.lock();
        let before = state.rules.len();
        state.rules.retain(|r| r.id != id.0);
        state.rules.len() != before
    }

    /// Removes every rule (the stats stay).
    pub fn clear(&self) {
        self.lock().rules.clear();
    }

    /// Whether a rule is still in place.
    pub(crate) fn is_active(&self, id: RuleId) -> bool {
        self.lock().rules.iter().any(|r| r.id == id.0)
    }

    /// What the faults did so far.
    pub fn stats(&self) -> FaultStats {
        self.lock().stats
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain counters behind: still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn count_failed_entries(&self, n: u64) {
        self.lock().stats.failed_entries += n;
    }

    /// Decides the fate of a request for `operation` from `client` (its access key id).
    #[cfg(test)]
    pub(crate) fn decide(&self, operation: &str, client: Option<&str>) -> Decision {
        self.decide_for(&RequestInfo {
            operation,
            client,
            stream: None,
        })
    }

    /// Whether some rule matches on the stream, so requests' bodies must be read first.
    pub(crate) fn needs_stream(&self) -> bool {
        self.lock().rules.iter().any(|r| r.rule.stream.is_some())
    }

    /// Decides the fate of a request.
    pub(crate) fn decide_for(&self, request: &RequestInfo<'_>) -> Decision {
        let mut rng = rand::rng();
        let service = self.service;
        let mut state = self.lock();
        state.stats.requests += 1;
        let mut decision = Decision::default();
        let mut delayed = false;
        for rule in state.rules.iter_mut() {
            if !rule.rule.matches(request) || rule.rule.times.is_some_and(|t| rule.fired >= t) {
                continue;
            }
            if rule.rule.probability < 1.0 && !rng.random_bool(rule.rule.probability) {
                continue;
            }
            rule.fired += 1;
            match &rule.rule.action {
                FaultAction::Latency(d) => {
                    decision.delay += *d;
                    delayed = true;
                    continue;
                }
                FaultAction::Throttle => {
                    decision.outcome = Outcome::Respond {
                        status: 400,
                        error_type: service.error_type(service.throttling_code()),
                    };
                }
                FaultAction::Error { status, code } => {
                    let code = if code.is_empty() {
                        service.internal_code()
                    } else {
                        code
                    };
                    decision.outcome = Outcome::Respond {
                        status: *status,
                        error_type: service.error_type(code),
                    };
                }
                FaultAction::DropConnection => decision.outcome = Outcome::Drop,
                FaultAction::FailEntries(f) => decision.outcome = Outcome::FailEntries(*f),
                FaultAction::BlackHole => decision.outcome = Outcome::Hold(RuleId(rule.id)),
            }
            break;
        }
        let stats = &mut state.stats;
        if delayed {
            stats.delayed += 1;
        }
        match &decision.outcome {
            Outcome::Respond {
                status: 400,
                error_type,
            } if error_type.ends_with(service.throttling_code()) => stats.throttled += 1,
            Outcome::Respond { .. } => stats.errors += 1,
            Outcome::Drop => stats.dropped += 1,
            Outcome::Hold(_) => stats.black_holed += 1,
            Outcome::Forward | Outcome::FailEntries(_) => {}
        }
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_for_one_stream_leaves_the_others_alone() {
        let faults = Faults::new(Service::Kinesis);
        faults.add(FaultRule::throttle().on("PutRecords").for_stream("hot"));
        assert!(faults.needs_stream());
        let on = |stream| {
            faults.decide_for(&RequestInfo {
                operation: "PutRecords",
                client: None,
                stream,
            })
        };
        assert!(matches!(on(Some("hot")).outcome, Outcome::Respond { .. }));
        assert!(matches!(on(Some("cold")).outcome, Outcome::Forward));
        assert!(matches!(on(None).outcome, Outcome::Forward));
        assert_eq!(
            RequestInfo::stream_of(br#"{"StreamName":"hot","Records":[]}"#).as_deref(),
            Some("hot")
        );
        assert_eq!(
            RequestInfo::stream_of(br#"{"StreamARN":"arn:aws:kinesis:us-east-1:1:stream/hot"}"#)
                .as_deref(),
            Some("hot")
        );
    }

    #[test]
    fn rules_fire_in_order_with_counts() {
        let faults = Faults::new(Service::Kinesis);
        faults.add(FaultRule::throttle().on("PutRecords").times(2));
        faults.add(FaultRule::internal_error().times(1));
        assert!(matches!(
            faults.decide("PutRecords", None).outcome,
            Outcome::Respond { status: 400, .. }
        ));
        assert!(matches!(
            faults.decide("PutRecords", None).outcome,
            Outcome::Respond { status: 400, .. }
        ));
        assert!(matches!(
            faults.decide("PutRecords", None).outcome,
            Outcome::Respond { status: 500, .. }
        ));
        assert!(matches!(
            faults.decide("PutRecords", None).outcome,
            Outcome::Forward
        ));
        let stats = faults.stats();
        assert_eq!((stats.requests, stats.throttled, stats.errors), (4, 2, 1));
    }

    #[test]
    fn latency_falls_through_to_the_next_rule() {
        let faults = Faults::new(Service::DynamoDb);
        faults.add(FaultRule::latency(Duration::from_millis(5)));
        faults.add(FaultRule::drop_connection().on("GetItem"));
        let d = faults.decide("GetItem", None);
        assert_eq!(d.delay, Duration::from_millis(5));
        assert!(matches!(d.outcome, Outcome::Drop));
        let d = faults.decide("PutItem", None);
        assert!(matches!(d.outcome, Outcome::Forward));
        assert_eq!(faults.stats().delayed, 2);
    }

    #[test]
    fn dynamodb_errors_carry_the_namespace() {
        let faults = Faults::new(Service::DynamoDb);
        faults.add(FaultRule::throttle());
        match faults.decide("PutItem", None).outcome {
            Outcome::Respond { error_type, .. } => assert_eq!(
                error_type,
                "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"
            ),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn client_rules_match_only_that_client_and_black_holes_hold_until_removed() {
        let faults = Faults::new(Service::DynamoDb);
        let id = faults.add_rule(FaultRule::black_hole().from_client("worker-a"));
        assert!(matches!(
            faults.decide("UpdateItem", Some("worker-a")).outcome,
            Outcome::Hold(held) if held == id
        ));
        assert!(matches!(
            faults.decide("UpdateItem", Some("worker-b")).outcome,
            Outcome::Forward
        ));
        assert!(matches!(
            faults.decide("UpdateItem", None).outcome,
            Outcome::Forward
        ));
        assert!(faults.is_active(id));
        assert!(faults.remove(id));
        assert!(!faults.is_active(id));
        assert_eq!(faults.stats().black_holed, 1);
    }

    #[test]
    fn probability_zero_never_fires() {
        let faults = Faults::new(Service::Kinesis);
        faults.add(FaultRule::throttle().probability(0.0));
        for _ in 0..100 {
            assert!(matches!(
                faults.decide("PutRecords", None).outcome,
                Outcome::Forward
            ));
        }
    }
}
