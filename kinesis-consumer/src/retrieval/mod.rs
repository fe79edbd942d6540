//! Retrieval: how a shard consumer gets its records. Both modes fill the same bounded
//! channel, so the shard consumer (and the `RecordProcessor`) cannot tell them apart.
//!
//! ```text
//!  polling:  GetRecords loop (≤ 5/s, ≤ 2 MiB/s) ──┐
//!                                                 ├──▶ bounded channel (N batches) ──▶ shard consumer
//!  fan-out:  SubscribeToShard event stream ───────┘
//! ```

mod consumers;
mod fan_out;
mod polling;

use std::time::SystemTime;

use tokio::sync::mpsc;

use crate::lease::Checkpoint;

pub(crate) use consumers::StreamConsumers;
pub(crate) use fan_out::FanOutFetcher;
pub(crate) use polling::PollingFetcher;

/// One GetRecords result or SubscribeToShard event.
#[derive(Debug)]
pub(crate) struct Batch {
    pub records: Vec<aws_sdk_kinesis::types::Record>,
    pub millis_behind_latest: Option<i64>,
    /// The shard is closed and this was its last batch.
    pub shard_end: bool,
    /// With the last batch, the children the endpoint named (AWS does; some emulators do
    /// not, and then the worker finds them with ListShards).
    pub child_shards: Vec<aws_sdk_kinesis::types::ChildShard>,
}

/// Where to start reading.
#[derive(Debug, Clone)]
pub(crate) struct StartAt {
    pub checkpoint: Checkpoint,
    pub timestamp: Option<SystemTime>,
}

/// Why the fetcher stopped for good.
#[derive(Debug)]
pub(crate) enum FetchEnd {
    /// The consumer went away.
    Closed,
    /// A fatal error (stream gone, access denied), already logged.
    Fatal,
}

/// One shard's reader, in the worker's retrieval mode.
#[derive(Debug, Clone)]
pub(crate) enum Fetcher {
    /// GetRecords.
    Polling(PollingFetcher),
    /// SubscribeToShard.
    FanOut(FanOutFetcher),
}

impl Fetcher {
    /// Reads the shard into `tx` until it ends, `tx` closes, or a fatal error.
    pub(crate) async fn run(self, start: StartAt, tx: mpsc::Sender<Batch>) -> FetchEnd {
        match self {
            Fetcher::Polling(f) => f.run(start, tx).await,
            Fetcher::FanOut(f) => f.run(start, tx).await,
        }
    }
}
