//! Stream helpers for tests and demos: create and wait, reshard and wait.
//!
//! They speak to the emulator through the real SDK client, like any user would, and wait for
//! the stream to be ACTIVE again before returning, polling DescribeStreamSummary.

use std::time::Duration;

use aws_sdk_kinesis::types::{ScalingType, StreamStatus};
use kinesis_common::ServiceError;
use kinesis_common::hash_key::HashKey;
use kinesis_common::shard_map::{self, ShardRange};
use kinesis_common::stream::StreamRef;

use crate::local::{LocalAws, TestkitError};

/// How long helpers wait for a stream to become ACTIVE.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Creates a stream with `shards` shards and waits until it is ACTIVE.
pub async fn create_stream(
    client: &aws_sdk_kinesis::Client,
    name: &str,
    shards: u32,
) -> Result<(), TestkitError> {
    client
        .create_stream()
        .stream_name(name)
        .shard_count(shards as i32)
        .send()
        .await
        .map_err(|e| ServiceError::from_sdk("CreateStream", e))?;
    wait_for_active(client, name).await
}

/// Waits until the stream is ACTIVE (30 s at most).
pub async fn wait_for_active(
    client: &aws_sdk_kinesis::Client,
    name: &str,
) -> Result<(), TestkitError> {
    let start = std::time::Instant::now();
    loop {
        let summary = client
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .map_err(|e| ServiceError::from_sdk("DescribeStreamSummary", e))?;
        if summary
            .stream_description_summary()
            .is_some_and(|s| s.stream_status() == &StreamStatus::Active)
        {
            return Ok(());
        }
        if start.elapsed() > ACTIVE_TIMEOUT {
            return Err(TestkitError::Timeout {
                what: format!("stream {name} to become ACTIVE"),
                waited: start.elapsed(),
            });
        }
        // Real time, not tokio's: the emulator's clock does not pause with the test's, and a
        // blocking task also keeps a paused clock from jumping ahead meanwhile.
        let _ = tokio::task::spawn_blocking(|| std::thread::sleep(POLL_INTERVAL)).await;
    }
}

/// The stream's open shards, sorted by hash range.
pub async fn open_shards(
    client: &aws_sdk_kinesis::Client,
    name: &str,
) -> Result<Vec<ShardRange>, TestkitError> {
    let shards = shard_map::list_shards(client, &StreamRef::parse(name), true).await?;
    let mut ranges: Vec<ShardRange> = shards
        .iter()
        .filter_map(|s| shard_map::shard_range(s).ok())
        .collect();
    ranges.sort_by_key(|r| r.starting_hash_key);
    Ok(ranges)
}

/// Splits an open shard at the middle of its hash range; waits until the stream is ACTIVE.
/// Returns the parent's range.
pub async fn split_shard(
    client: &aws_sdk_kinesis::Client,
    name: &str,
    shard_id: &str,
) -> Result<ShardRange, TestkitError> {
    let parent = open_shards(client, name)
        .await?
        .into_iter()
        .find(|s| s.shard_id == shard_id)
        .ok_or_else(|| TestkitError::Timeout {
            what: format!("open shard {shard_id} in {name}"),
            waited: Duration::ZERO,
        })?;
    let new_start = HashKey(parent.starting_hash_key.midpoint(parent.ending_hash_key).0 + 1);
    client
        .split_shard()
        .stream_name(name)
        .shard_to_split(shard_id)
        .new_starting_hash_key(new_start.to_string())
        .send()
        .await
        .map_err(|e| ServiceError::from_sdk("SplitShard", e))?;
    wait_for_active(client, name).await?;
    Ok(parent)
}

/// Merges two adjacent open shards; waits until the stream is ACTIVE.
pub async fn merge_shards(
    client: &aws_sdk_kinesis::Client,
    name: &str,
    shard: &str,
    adjacent: &str,
) -> Result<(), TestkitError> {
    client
        .merge_shards()
        .stream_name(name)
        .shard_to_merge(shard)
        .adjacent_shard_to_merge(adjacent)
        .send()
        .await
        .map_err(|e| ServiceError::from_sdk("MergeShards", e))?;
    wait_for_active(client, name).await
}

/// Scales the stream uniformly to `target` open shards; waits until the stream is ACTIVE.
pub async fn update_shard_count(
    client: &aws_sdk_kinesis::Client,
    name: &str,
    target: u32,
) -> Result<(), TestkitError> {
    client
        .update_shard_count()
        .stream_name(name)
        .target_shard_count(target as i32)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await
        .map_err(|e| ServiceError::from_sdk("UpdateShardCount", e))?;
    wait_for_active(client, name).await
}

impl LocalAws {
    /// Creates a stream and waits until it is ACTIVE.
    pub async fn create_stream(&self, name: &str, shards: u32) -> Result<(), TestkitError> {
        create_stream(&self.kinesis_client().await, name, shards).await
    }

    /// Splits a shard at its middle and waits until the stream is ACTIVE.
    pub async fn split_shard(
        &self,
        name: &str,
        shard_id: &str,
    ) -> Result<ShardRange, TestkitError> {
        split_shard(&self.kinesis_client().await, name, shard_id).await
    }

    /// Merges two adjacent shards and waits until the stream is ACTIVE.
    pub async fn merge_shards(
        &self,
        name: &str,
        shard: &str,
        adjacent: &str,
    ) -> Result<(), TestkitError> {
        merge_shards(&self.kinesis_client().await, name, shard, adjacent).await
    }

    /// Scales the stream to `target` shards and waits until it is ACTIVE.
    pub async fn update_shard_count(&self, name: &str, target: u32) -> Result<(), TestkitError> {
        update_shard_count(&self.kinesis_client().await, name, target).await
    }
}

/// Creates the stream with `shards` shards unless it exists; waits until it is ACTIVE.
/// Returns whether it was created.
pub async fn ensure_stream(
    client: &aws_sdk_kinesis::Client,
    name: &str,
    shards: u32,
) -> Result<bool, TestkitError> {
    match client
        .describe_stream_summary()
        .stream_name(name)
        .send()
        .await
    {
        Ok(_) => {
            wait_for_active(client, name).await?;
            Ok(false)
        }
        Err(e) => {
            let e = ServiceError::from_sdk("DescribeStreamSummary", e);
            if e.has_code("ResourceNotFoundException") {
                create_stream(client, name, shards).await?;
                Ok(true)
            } else {
                Err(e.into())
            }
        }
    }
}

/// Every record of one shard from TRIM_HORIZON, until a read comes back empty or the shard ends.
pub async fn read_shard(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    shard_id: &str,
) -> Result<Vec<aws_sdk_kinesis::types::Record>, TestkitError> {
    let mut iterator = client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard_id)
        .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
        .send()
        .await
        .map_err(|e| ServiceError::from_sdk("GetShardIterator", e))?
        .shard_iterator;
    let mut out = Vec::new();
    while let Some(current) = iterator {
        let page = client
            .get_records()
            .shard_iterator(current)
            .limit(10_000)
            .send()
            .await
            .map_err(|e| ServiceError::from_sdk("GetRecords", e))?;
        let empty = page.records().is_empty();
        iterator = if empty {
            None
        } else {
            page.next_shard_iterator
        };
        out.extend(page.records);
    }
    Ok(out)
}

/// Every record of every shard, open and closed, with its shard id.
pub async fn read_stream(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
) -> Result<Vec<(String, aws_sdk_kinesis::types::Record)>, TestkitError> {
    let shards = shard_map::list_shards(client, &StreamRef::parse(stream), false).await?;
    let mut out = Vec::new();
    for shard in shards {
        let records = read_shard(client, stream, shard.shard_id()).await?;
        out.extend(
            records
                .into_iter()
                .map(|r| (shard.shard_id().to_owned(), r)),
        );
    }
    Ok(out)
}
