//! Many streams, one application: the streams a worker consumes ([`StreamTracker`], KCL's
//! `MultiStreamTracker`) and how each is known in the lease table.
//!
//! A multi-stream worker keys its leases `account:stream:creationEpoch:shardId` (KCL's
//! multi-stream lease keys, with `streamName` and `shardId` beside), so one table and one
//! fleet serve every stream. The leader asks the tracker for the streams at every shard
//! sync, describes each (its ARN gives the account, its creation time the epoch, so a
//! stream deleted and created again gets new leases) and creates the leases each needs
//! from its own initial position; leases of a stream no longer tracked are deleted after
//! `lease_cleanup_grace`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kinesis_common::ServiceError;
use kinesis_common::stream::StreamRef;

use crate::config::InitialPosition;
use crate::lease::key::{KeySpace, StreamIdentifier};

/// One stream of a multi-stream worker, and where its shards without a checkpoint start.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamConfig {
    /// The stream, by name (in the clients' account) or ARN.
    pub stream: StreamRef,
    /// Where its new shards start (default TRIM_HORIZON).
    pub initial_position: InitialPosition,
}

impl StreamConfig {
    /// A stream starting at TRIM_HORIZON.
    pub fn new(stream: impl Into<StreamRef>) -> Self {
        StreamConfig {
            stream: stream.into(),
            initial_position: InitialPosition::TrimHorizon,
        }
    }

    /// Where its new shards start.
    pub fn initial_position(mut self, position: InitialPosition) -> Self {
        self.initial_position = position;
        self
    }
}

/// Supplies the streams a multi-stream worker consumes; asked at every shard sync (each
/// `shard_sync_interval`, by the fleet's leader), so streams can be added and removed
/// while the fleet runs. A `Vec<StreamConfig>` is a fixed set; a closure works too.
pub trait StreamTracker: Send + Sync + 'static {
    /// The streams to consume now.
    fn streams(&self) -> Vec<StreamConfig>;
}

impl StreamTracker for Vec<StreamConfig> {
    fn streams(&self) -> Vec<StreamConfig> {
        self.clone()
    }
}

impl<F: Fn() -> Vec<StreamConfig> + Send + Sync + 'static> StreamTracker for F {
    fn streams(&self) -> Vec<StreamConfig> {
        self()
    }
}

/// A tracker as the builder and the worker hold it.
#[derive(Clone)]
pub(crate) struct SharedTracker(pub Arc<dyn StreamTracker>);

impl std::fmt::Debug for SharedTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamTracker")
    }
}

/// A tracked stream as the lease table knows it.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub space: KeySpace,
    pub stream: StreamRef,
    pub initial: InitialPosition,
}

/// Where a worker's streams come from.
#[derive(Clone)]
pub(crate) enum Source {
    /// One stream; leases keyed by shard id.
    Single {
        stream: StreamRef,
        initial: InitialPosition,
    },
    /// A tracker's streams; leases keyed by stream and shard.
    Multi {
        tracker: Arc<dyn StreamTracker>,
        /// What the last shard sync resolved: serialized stream identifier → stream.
        resolved: Arc<Mutex<HashMap<String, Resolved>>>,
    },
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Single { stream, .. } => write!(f, "{stream}"),
            Source::Multi { .. } => write!(f, "(many streams)"),
        }
    }
}

impl Source {
    pub(crate) fn is_multi(&self) -> bool {
        matches!(self, Source::Multi { .. })
    }

    /// The stream whose leases are keyed in `space`, to read from and sync: its ref and
    /// initial position. A multi-stream worker that has not resolved it (only the leader
    /// describes streams) reads it by name in the clients' account.
    pub(crate) fn stream_of(&self, space: &KeySpace) -> Option<(StreamRef, InitialPosition)> {
        match self {
            Source::Single { stream, initial } => Some((stream.clone(), *initial)),
            Source::Multi { resolved, .. } => {
                let id = space.stream()?;
                let known = resolved
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&id.to_string())
                    .map(|r| (r.stream.clone(), r.initial));
                Some(known.unwrap_or_else(|| {
                    (
                        StreamRef::Name(id.stream_name.clone()),
                        InitialPosition::TrimHorizon,
                    )
                }))
            }
        }
    }

    /// The names of the streams tracked now (multi-stream; empty otherwise).
    pub(crate) fn tracked_names(&self) -> std::collections::HashSet<String> {
        match self {
            Source::Single { .. } => Default::default(),
            Source::Multi { tracker, .. } => tracker
                .streams()
                .into_iter()
                .map(|c| match c.stream {
                    StreamRef::Name(name) => name,
                    StreamRef::Arn(arn) => arn.rsplit('/').next().unwrap_or_default().to_owned(),
                })
                .collect(),
        }
    }

    /// Resolves the streams to sync now: every tracked stream (described), or the one.
    /// Streams that cannot be described are skipped with a warning (and keep their leases
    /// until the grace period of a stream no longer tracked).
    pub(crate) async fn resolve(&self, kinesis: &aws_sdk_kinesis::Client) -> Vec<Resolved> {
        match self {
            Source::Single { stream, initial } => vec![Resolved {
                space: KeySpace::single(),
                stream: stream.clone(),
                initial: *initial,
            }],
            Source::Multi { tracker, resolved } => {
                let mut out = Vec::new();
                for config in tracker.streams() {
                    match identify(kinesis, &config.stream).await {
                        Ok(id) => out.push(Resolved {
                            space: KeySpace::of(id),
                            stream: config.stream.clone(),
                            initial: config.initial_position,
                        }),
                        Err(e) => {
                            tracing::warn!(stream = %config.stream, error = %e, "a tracked stream cannot be described; skipped")
                        }
                    }
                }
                let mut known = resolved.lock().unwrap_or_else(|e| e.into_inner());
                known.clear();
                for r in &out {
                    if let Some(id) = r.space.stream() {
                        known.insert(id.to_string(), r.clone());
                    }
                }
                out
            }
        }
    }
}

/// A stream's identifier in a multi-stream table, from DescribeStreamSummary.
async fn identify(
    kinesis: &aws_sdk_kinesis::Client,
    stream: &StreamRef,
) -> Result<StreamIdentifier, ServiceError> {
    let request = kinesis.describe_stream_summary();
    let request = match stream {
        StreamRef::Name(name) => request.stream_name(name),
        StreamRef::Arn(arn) => request.stream_arn(arn),
    };
    let out = request
        .send()
        .await
        .map_err(|e| ServiceError::from_sdk("DescribeStreamSummary", e))?;
    let Some(d) = out.stream_description_summary else {
        return Err(ServiceError::construction(
            "DescribeStreamSummary",
            "the answer has no stream description",
        ));
    };
    let (arn, name, created) = (
        d.stream_arn,
        d.stream_name,
        d.stream_creation_timestamp.secs().max(0) as u64,
    );
    // arn:aws:kinesis:REGION:ACCOUNT:stream/NAME
    let account = arn.split(':').nth(4).unwrap_or_default().to_owned();
    Ok(StreamIdentifier {
        account_id: account,
        stream_name: name,
        creation_epoch: created,
    })
}
