//! Shared helpers of the producer's integration tests.

#![allow(dead_code)]

use std::collections::HashMap;

use kinesis_common::HashKey;
use kinesis_common::aggregation::deaggregate;
use kinesis_common::shard_map::{self, ShardRange};
use kinesis_common::stream::StreamRef;

/// A user record read back from the stream.
#[derive(Debug, Clone)]
pub struct ReadBack {
    pub shard_id: String,
    pub partition_key: String,
    pub explicit_hash_key: Option<String>,
    pub data: Vec<u8>,
    pub sequence_number: String,
    pub sub_sequence_number: u64,
}

impl ReadBack {
    pub fn hash_key(&self) -> HashKey {
        match &self.explicit_hash_key {
            Some(ehk) => HashKey::parse_explicit(ehk).unwrap(),
            None => HashKey::from_partition_key(&self.partition_key),
        }
    }
}

/// Reads every shard (open and closed) from TRIM_HORIZON and deaggregates, as a consumer would.
pub async fn read_stream(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
) -> (Vec<ReadBack>, HashMap<String, ShardRange>) {
    let shards = shard_map::list_shards(client, &StreamRef::parse(stream), false)
        .await
        .unwrap();
    let ranges: HashMap<String, ShardRange> = shards
        .iter()
        .map(|s| {
            let r = shard_map::shard_range(s).unwrap();
            (r.shard_id.clone(), r)
        })
        .collect();
    let mut out = Vec::new();
    for (shard_id, record) in kinesis_testkit::streams::read_stream(client, stream)
        .await
        .unwrap()
    {
        let d = deaggregate(
            record.partition_key(),
            None,
            bytes::Bytes::copy_from_slice(record.data().as_ref()),
        );
        assert_eq!(d.corrupt, None, "corrupt aggregate in the stream");
        for user in d.records {
            out.push(ReadBack {
                shard_id: shard_id.clone(),
                partition_key: user.partition_key,
                explicit_hash_key: user.explicit_hash_key,
                data: user.data.to_vec(),
                sequence_number: record.sequence_number().to_owned(),
                sub_sequence_number: user.sub_sequence_number,
            });
        }
    }
    (out, ranges)
}

/// Asserts every read-back record sits on a shard whose range holds its hash key, as KCL
/// requires of aggregated records.
pub fn assert_on_owning_shards(records: &[ReadBack], ranges: &HashMap<String, ShardRange>) {
    for r in records {
        let range = &ranges[&r.shard_id];
        assert!(
            range.contains(r.hash_key()),
            "record {:?} on {} outside its range",
            r.partition_key,
            r.shard_id
        );
    }
}

/// Counts how often each payload was read back.
pub fn counts(records: &[ReadBack]) -> HashMap<Vec<u8>, usize> {
    let mut counts = HashMap::new();
    for r in records {
        *counts.entry(r.data.clone()).or_insert(0) += 1;
    }
    counts
}

/// Sends `n` one-byte records with keys `k0`, `k1`…, and returns their futures.
pub async fn send_tiny(
    producer: &kinesis_producer::Producer,
    n: usize,
) -> Vec<kinesis_producer::PutFuture> {
    let mut puts = Vec::with_capacity(n);
    for i in 0..n {
        let record = kinesis_producer::UserRecord::new(format!("k{i}"), "x");
        puts.push(producer.send(record).await.unwrap());
    }
    puts
}
