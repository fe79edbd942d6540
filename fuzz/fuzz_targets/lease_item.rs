//! Fuzzes the lease-item decoder: any DynamoDB item, with KCL's attribute names or others and
//! values of any type, is either a lease or a typed error, never a panic; and a decoded lease
//! survives a round trip through the item our worker writes.

#![no_main]

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use kinesis_consumer::Lease;
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 18] = [
    "leaseKey",
    "leaseOwner",
    "leaseCounter",
    "checkpoint",
    "checkpointSubSequenceNumber",
    "pendingCheckpoint",
    "pendingCheckpointSubSequenceNumber",
    "pendingCheckpointState",
    "ownerSwitchesSinceCheckpoint",
    "parentShardId",
    "childShardIds",
    "startingHashKey",
    "endingHashKey",
    "throughputKBps",
    "checkpointOwner",
    "streamName",
    "shardId",
    "somethingElse",
];

fuzz_target!(|attributes: Vec<(u8, u8, String, Vec<String>)>| {
    let mut item = HashMap::new();
    for (name, kind, text, list) in attributes {
        let value = match kind % 7 {
            0 => AttributeValue::S(text),
            1 => AttributeValue::N(text),
            2 => AttributeValue::Ss(list),
            3 => AttributeValue::Ns(list),
            4 => AttributeValue::B(Blob::new(text.into_bytes())),
            5 => AttributeValue::Bool(text.is_empty()),
            _ => AttributeValue::Null(true),
        };
        item.insert(NAMES[usize::from(name) % NAMES.len()].to_owned(), value);
    }
    if let Ok(lease) = Lease::from_item(&item) {
        let again = Lease::from_item(&lease.to_item()).expect("our own item decodes");
        assert_eq!(again, lease);
    }
});
