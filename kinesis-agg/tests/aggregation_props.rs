//! Property tests of the aggregation codec: round trips, and no aggregate over its limit.

use bytes::Bytes;
use kinesis_agg::aggregation::{Aggregator, deaggregate};
use kinesis_agg::record::DEFAULT_MAX_RECORD_BYTES;
use kinesis_agg::{KinesisRecord, UserRecord};
use proptest::prelude::*;

fn user_record() -> impl Strategy<Value = UserRecord> {
    (
        // Few distinct keys so the key tables de-duplicate; sometimes long and non-ASCII.
        prop_oneof![
            (0u8..8).prop_map(|i| format!("key-{i}")),
            "\\PC{1,64}",
            "[a-z]{200,256}",
        ],
        prop::option::weighted(0.3, any::<u128>().prop_map(|k| k.to_string())),
        prop::collection::vec(any::<u8>(), 0..3000),
    )
        .prop_map(|(pk, ehk, data)| {
            let mut r = UserRecord::new(pk, Bytes::from(data));
            r.explicit_hash_key = ehk;
            r
        })
}

/// Aggregates `records` the way a producer does: emit when full, then start over.
fn aggregate_all(records: &[UserRecord], limit: usize) -> Vec<(KinesisRecord, usize, usize)> {
    let mut agg = Aggregator::new(limit).unwrap();
    let mut out = Vec::new();
    let flush = |agg: &mut Aggregator, out: &mut Vec<_>| {
        let (count, tracked) = (agg.len(), agg.size());
        if let Some(r) = agg.finish() {
            out.push((r, count, tracked));
        }
    };
    for r in records {
        let hash = r.validate(DEFAULT_MAX_RECORD_BYTES).unwrap();
        if agg.try_add(r, hash).is_err() {
            flush(&mut agg, &mut out);
            agg.try_add(r, hash).unwrap();
        }
    }
    flush(&mut agg, &mut out);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn aggregates_round_trip_in_order(
        records in prop::collection::vec(user_record(), 1..60),
        limit in 64usize..60_000,
    ) {
        let emitted = aggregate_all(&records, limit);
        let mut back = Vec::new();
        for (kinesis, count, _) in &emitted {
            let d = deaggregate(&kinesis.partition_key, kinesis.explicit_hash_key.as_deref(), kinesis.data.clone());
            prop_assert_eq!(d.corrupt, None);
            prop_assert_eq!(d.records.len(), *count);
            prop_assert_eq!(d.aggregated, *count > 1);
            for (i, r) in d.records.into_iter().enumerate() {
                prop_assert_eq!(r.sub_sequence_number, if *count > 1 { i as u64 } else { 0 });
                back.push(r);
            }
        }
        prop_assert_eq!(back.len(), records.len());
        for (got, want) in back.iter().zip(&records) {
            prop_assert_eq!(&got.partition_key, &want.partition_key);
            prop_assert_eq!(&got.explicit_hash_key, &want.explicit_hash_key);
            prop_assert_eq!(&got.data, &want.data);
        }
    }

    #[test]
    fn no_aggregate_exceeds_its_limit_and_sizes_are_exact(
        records in prop::collection::vec(user_record(), 1..60),
        limit in 64usize..60_000,
    ) {
        for (kinesis, count, tracked) in aggregate_all(&records, limit) {
            prop_assert_eq!(kinesis.size(), tracked);
            if count > 1 {
                prop_assert!(kinesis.size() <= limit, "{} > {}", kinesis.size(), limit);
            }
        }
    }

    #[test]
    fn deaggregating_arbitrary_bytes_never_loses_the_record(
        data in prop::collection::vec(any::<u8>(), 0..200),
        with_magic in any::<bool>(),
    ) {
        let mut bytes = data.clone();
        if with_magic {
            bytes.splice(0..0, kinesis_agg::aggregation::MAGIC);
        }
        let d = deaggregate("pk", None, Bytes::from(bytes.clone()));
        // Either a valid aggregate, or the very same bytes passed through once.
        if !d.aggregated {
            prop_assert_eq!(d.records.len(), 1);
            prop_assert_eq!(&d.records[0].data[..], &bytes[..]);
        }
    }
}
