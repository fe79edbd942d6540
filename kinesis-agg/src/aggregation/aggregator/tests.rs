//! The aggregator's unit tests: encoding against prost, size accounting, sharing, buffers.

use super::super::{AggregatedRecord, Record};
use super::*;
use prost::Message;

fn add(agg: &mut Aggregator, r: &UserRecord) -> Result<(), AggregationError> {
    let hk = r.validate(DEFAULT_MAX_RECORD_BYTES).unwrap();
    agg.try_add(r, hk)
}

#[test]
fn one_record_is_emitted_plain() {
    let mut agg = Aggregator::default();
    let r = UserRecord::new("pk", "hello").with_explicit_hash_key("12");
    add(&mut agg, &r).unwrap();
    assert_eq!(agg.size(), 7);
    let out = agg.finish().unwrap();
    assert_eq!(out, KinesisRecord::from(r));
    assert!(agg.is_empty());
    assert!(agg.finish().is_none());
}

#[test]
fn encoding_matches_prost_and_tracked_size() {
    let mut agg = Aggregator::default();
    let records = [
        UserRecord::new("a", "one"),
        UserRecord::new("b", "two").with_explicit_hash_key("99"),
        UserRecord::new("a", "three"),
        UserRecord::new("c", vec![7u8; 300]).with_explicit_hash_key("99"),
    ];
    for r in &records {
        let predicted = agg.size_with(r);
        add(&mut agg, r).unwrap();
        if agg.len() > 1 {
            assert_eq!(agg.size(), predicted);
        }
    }
    let size = agg.size();
    let out = agg.finish().unwrap();
    assert_eq!(out.size(), size);
    assert_eq!(out.partition_key, "a");
    assert_eq!(
        out.explicit_hash_key,
        Some(HashKey::from_partition_key("a").to_string())
    );
    let expected = AggregatedRecord {
        partition_key_table: vec!["a".into(), "b".into(), "c".into()],
        explicit_hash_key_table: vec!["99".into()],
        records: vec![
            Record {
                partition_key_index: 0,
                explicit_hash_key_index: None,
                data: "one".into(),
                tags: vec![],
            },
            Record {
                partition_key_index: 1,
                explicit_hash_key_index: Some(0),
                data: "two".into(),
                tags: vec![],
            },
            Record {
                partition_key_index: 0,
                explicit_hash_key_index: None,
                data: "three".into(),
                tags: vec![],
            },
            Record {
                partition_key_index: 2,
                explicit_hash_key_index: Some(0),
                data: vec![7u8; 300].into(),
                tags: vec![],
            },
        ],
    };
    let body = expected.encode_to_vec();
    assert_eq!(&out.data[..4], &MAGIC);
    assert_eq!(&out.data[4..out.data.len() - 16], &body[..]);
    assert_eq!(&out.data[out.data.len() - 16..], &Md5::digest(&body)[..]);
}

#[test]
fn refuses_a_record_past_the_limit_and_stays_unchanged() {
    let mut agg = Aggregator::new(200).unwrap();
    add(&mut agg, &UserRecord::new("k", vec![1u8; 100])).unwrap();
    let before = agg.size();
    let err = add(&mut agg, &UserRecord::new("k", vec![1u8; 100])).unwrap_err();
    assert!(matches!(
        err,
        AggregationError::AggregateFull { limit: 200, .. }
    ));
    assert_eq!(agg.size(), before);
    assert_eq!(agg.len(), 1);
}

#[test]
fn first_record_is_taken_even_when_larger_than_the_limit() {
    let mut agg = Aggregator::new(100).unwrap();
    add(&mut agg, &UserRecord::new("k", vec![1u8; 500])).unwrap();
    assert!(add(&mut agg, &UserRecord::new("k", "x")).is_err());
    assert_eq!(agg.finish().unwrap().data.len(), 500);
}

#[test]
fn limits_outside_kinesis_bounds_are_rejected() {
    assert!(matches!(
        Aggregator::new(10),
        Err(AggregationError::InvalidLimit { .. })
    ));
    assert!(matches!(
        Aggregator::new(DEFAULT_MAX_RECORD_BYTES + 1),
        Err(AggregationError::InvalidLimit { .. })
    ));
    assert!(Aggregator::new(DEFAULT_MAX_RECORD_BYTES).is_ok());
}

#[test]
fn finish_sharing_hands_out_each_data_as_a_slice_of_the_aggregate() {
    let mut agg = Aggregator::default();
    let records = [
        UserRecord::new("a", "one"),
        UserRecord::new("b", vec![0u8, b'\n', 255]).with_explicit_hash_key("7"),
        UserRecord::new("a", vec![9u8; 300]),
    ];
    for r in &records {
        add(&mut agg, r).unwrap();
    }
    let mut shared = Vec::new();
    let out = agg.finish_sharing(|data| shared.push(data)).unwrap();
    let datas: Vec<_> = records.iter().map(|r| r.data.clone()).collect();
    assert_eq!(shared, datas);
    let within = out.data.as_ptr_range();
    assert!(
        shared.iter().all(|d| within.contains(&d.as_ptr())),
        "no copies"
    );

    add(&mut agg, &records[0]).unwrap();
    let mut alone = Vec::new();
    let plain = agg.finish_sharing(|data| alone.push(data)).unwrap();
    assert_eq!(alone, vec![plain.data]);
    assert!(
        agg.finish_sharing(|_| panic!("nothing collected"))
            .is_none()
    );
}

#[test]
fn an_emptied_aggregator_holds_no_buffers_and_the_next_aggregate_does_not_regrow() {
    let mut agg = Aggregator::default();
    let fill = |agg: &mut Aggregator| {
        for n in 0..300 {
            add(agg, &UserRecord::new(format!("pk-{n}"), vec![7u8; 100])).unwrap();
        }
    };
    fill(&mut agg);
    let first = agg.finish().unwrap();
    assert_eq!(agg.records.capacity(), 0);
    assert_eq!(agg.data_spans.capacity(), 0);
    assert_eq!(
        agg.partition_keys.held_bytes() + agg.explicit_hash_keys.held_bytes(),
        0
    );
    fill(&mut agg);
    // Reserved at the first record from the last aggregate's size: no regrowth.
    assert_eq!(agg.records.capacity(), agg.records.len());
    assert_eq!(agg.data_spans.capacity(), 300);
    assert_eq!(agg.finish().unwrap(), first);
    // Small aggregates keep their small buffers: no allocation per aggregate. (The first
    // one after a large one still reserves the large one's size, and frees it.)
    let small = |agg: &mut Aggregator| {
        add(agg, &UserRecord::new("pk", "data")).unwrap();
        add(agg, &UserRecord::new("pk2", "data")).unwrap();
    };
    small(&mut agg);
    agg.finish().unwrap();
    assert_eq!(agg.records.capacity(), 0);
    small(&mut agg);
    agg.finish().unwrap();
    let kept = agg.records.capacity();
    assert!(kept > 0 && kept <= KEPT_BYTES, "{kept}");
    small(&mut agg);
    assert_eq!(agg.records.capacity(), kept);
}
