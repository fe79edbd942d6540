//! The pipelines of one producer: one per stream, started on the stream's first use, all
//! sharing the producer's outstanding bounds, configuration and Kinesis client.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use kinesis_common::stream::StreamRef;
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::admission::Admission;
use crate::arena::Arena;
use crate::bounds::Bounds;
use crate::completion::Completions;
use crate::config::Config;
use crate::engine::{Command, Engine};
use crate::inbox::Inbox;
use crate::stats::Stats;

/// One stream's pipeline, as the handles see it: where its records go, its gates, its counters.
#[derive(Debug)]
pub(crate) struct Pipeline {
    pub stream: StreamRef,
    pub stats: Arc<Stats>,
    pub admission: Arc<Admission>,
    /// Its records, for the engine to take in batches.
    pub inbox: Arc<Inbox>,
    /// Flush and shutdown commands (and, by closing, that every handle is gone).
    pub tx: mpsc::UnboundedSender<Command>,
    /// Where `send` copies small records' data.
    pub arena: Arena,
    /// Where each record's outcome is left for its future.
    pub completions: Completions,
}

/// What every pipeline of a producer shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: Arc<Config>,
    pub client: aws_sdk_kinesis::Client,
    pub runtime: tokio::runtime::Handle,
    /// Unresolved records and their bytes (data + partition key), over all streams.
    pub bounds: Arc<Bounds>,
    /// Shut down: every send fails.
    pub closed: AtomicBool,
    /// Every stream's pipeline, by the name or ARN it was asked for with.
    pipelines: Mutex<HashMap<String, Arc<Pipeline>>>,
}

impl Shared {
    pub(crate) fn new(
        config: Config,
        client: aws_sdk_kinesis::Client,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        Shared {
            bounds: Arc::new(Bounds::new(
                config.max_outstanding_records,
                config.max_outstanding_bytes,
            )),
            config: Arc::new(config),
            client,
            runtime,
            closed: AtomicBool::new(false),
            pipelines: Mutex::new(HashMap::new()),
        }
    }

    /// The pipeline of `stream`, started now if this is its first use.
    pub(crate) fn pipeline(&self, stream: &StreamRef) -> Arc<Pipeline> {
        let mut pipelines = self.pipelines.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pipeline) = pipelines.get(&stream.to_string()) {
            return pipeline.clone();
        }
        let stats = Arc::new(Stats::new());
        let admission = Arc::new(Admission::default());
        let inbox = Arc::new(Inbox::default());
        let (tx, rx) = mpsc::unbounded_channel();
        let engine = Engine::new(
            self.config.clone(),
            self.client.clone(),
            stream.clone(),
            stats.clone(),
            admission.clone(),
            (inbox.clone(), rx),
        );
        let span = tracing::debug_span!("kinesis_producer", stream = %stream);
        self.runtime.spawn(engine.run().instrument(span));
        let pipeline = Arc::new(Pipeline {
            stream: stream.clone(),
            stats,
            admission,
            inbox,
            tx,
            completions: Completions::default(),
            arena: Arena::new(if self.config.aggregation {
                self.config.max_aggregate_bytes
            } else {
                0
            }),
        });
        pipelines.insert(stream.to_string(), pipeline.clone());
        pipeline
    }

    /// Every pipeline started so far.
    pub(crate) fn all(&self) -> Vec<Arc<Pipeline>> {
        let pipelines = self.pipelines.lock().unwrap_or_else(|e| e.into_inner());
        pipelines.values().cloned().collect()
    }
}
