//! Golden vectors made by the official `aws-kinesis-agg` Python library
//! (`interop/aggregation/regenerate.sh`): our deaggregator reads its aggregates, and our
//! aggregator writes the same bytes for the same records.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use kinesis_agg::aggregation::{Aggregator, decode_aggregate};
use kinesis_agg::record::DEFAULT_MAX_RECORD_BYTES;
use kinesis_agg::{HashKey, UserRecord};
use serde_json::Value;

struct Vector {
    name: String,
    records: Vec<UserRecord>,
    aggregate_partition_key: String,
    aggregate: Bytes,
}

fn vectors() -> Vec<Vector> {
    let text = include_str!("fixtures/agg_vectors.json");
    let doc: Value = serde_json::from_str(text).expect("fixture is JSON");
    doc["vectors"]
        .as_array()
        .expect("vectors")
        .iter()
        .map(|v| Vector {
            name: v["name"].as_str().unwrap().to_owned(),
            records: v["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    let mut record = UserRecord::new(
                        r["partition_key"].as_str().unwrap(),
                        STANDARD.decode(r["data"].as_str().unwrap()).unwrap(),
                    );
                    if let Some(ehk) = r["explicit_hash_key"].as_str() {
                        record = record.with_explicit_hash_key(ehk);
                    }
                    record
                })
                .collect(),
            aggregate_partition_key: v["aggregate"]["partition_key"].as_str().unwrap().to_owned(),
            aggregate: STANDARD
                .decode(v["aggregate"]["data"].as_str().unwrap())
                .unwrap()
                .into(),
        })
        .collect()
}

#[test]
fn fixture_covers_the_interesting_cases() {
    let names: Vec<String> = vectors().into_iter().map(|v| v.name).collect();
    for expected in [
        "explicit_hash_keys",
        "unicode_partition_key",
        "many_small_records",
        "large_record",
        "single_record",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "missing vector {expected}"
        );
    }
}

#[test]
fn our_deaggregator_reads_the_official_aggregates() {
    for v in vectors() {
        let records = decode_aggregate(&v.aggregate).unwrap_or_else(|e| panic!("{}: {e}", v.name));
        assert_eq!(records.len(), v.records.len(), "{}", v.name);
        for (i, (got, want)) in records.iter().zip(&v.records).enumerate() {
            assert_eq!(got.partition_key, want.partition_key, "{} #{i}", v.name);
            assert_eq!(
                got.explicit_hash_key, want.explicit_hash_key,
                "{} #{i}",
                v.name
            );
            assert_eq!(got.data, want.data, "{} #{i}", v.name);
            assert_eq!(got.sub_sequence_number, i as u64, "{} #{i}", v.name);
        }
    }
}

#[test]
fn our_aggregator_writes_the_same_bytes() {
    for v in vectors().into_iter().filter(|v| v.records.len() > 1) {
        let mut agg = Aggregator::new(DEFAULT_MAX_RECORD_BYTES).unwrap();
        for r in &v.records {
            let hash: HashKey = r.validate(DEFAULT_MAX_RECORD_BYTES).unwrap();
            agg.try_add(r, hash).unwrap();
        }
        let ours = agg.finish().unwrap();
        assert_eq!(ours.partition_key, v.aggregate_partition_key, "{}", v.name);
        assert_eq!(
            ours.data, v.aggregate,
            "{}: bytes differ from aws-kinesis-agg",
            v.name
        );
        // Unlike aws-kinesis-agg, we always route the aggregate by the first record's hash key,
        // as the Java KPL does, so it lands on the shard its records map to.
        let first = v.records[0].validate(DEFAULT_MAX_RECORD_BYTES).unwrap();
        assert_eq!(
            ours.explicit_hash_key,
            Some(first.to_string()),
            "{}",
            v.name
        );
    }
}
