//! Every Kinesis operation the producer and consumer need, through the real SDK over HTTP,
//! against the embedded ferrokinesis, and in CI also against kinesis-mock
//! (`interop/emulators/check.sh`). Where an emulator differs from AWS the test says so.

use aws_sdk_kinesis::primitives::{Blob, DateTime};
use aws_sdk_kinesis::types::{
    PutRecordsRequestEntry, ShardFilter, ShardFilterType, ShardIteratorType,
};
use kinesis_common::shard_map::{self, ShardMap};
use kinesis_common::stream::StreamRef;
use kinesis_common::{HashKey, ServiceError};
use kinesis_testkit::{KinesisEmulator, LocalAws};

fn entry(pk: &str, data: &[u8]) -> PutRecordsRequestEntry {
    PutRecordsRequestEntry::builder()
        .partition_key(pk)
        .data(Blob::new(data))
        .build()
        .unwrap()
}

async fn iterator(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    shard: &str,
    kind: ShardIteratorType,
    seq: Option<&str>,
) -> String {
    let mut req = client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard)
        .shard_iterator_type(kind);
    if let Some(seq) = seq {
        req = req.starting_sequence_number(seq);
    }
    req.send().await.unwrap().shard_iterator.unwrap()
}

/// Reads a shard from an iterator until a read comes back empty (or the shard ends).
async fn read_all(
    client: &aws_sdk_kinesis::Client,
    mut it: String,
) -> Vec<aws_sdk_kinesis::types::Record> {
    let mut out = Vec::new();
    loop {
        let page = client
            .get_records()
            .shard_iterator(&it)
            .limit(10_000)
            .send()
            .await
            .unwrap();
        let n = page.records().len();
        out.extend(page.records().iter().cloned());
        match page.next_shard_iterator {
            Some(next) if n > 0 => it = next,
            _ => return out,
        }
    }
}

#[tokio::test]
async fn put_and_read_back_with_every_iterator_type() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("iterators", 1).await.unwrap();
    let client = aws.kinesis_client().await;
    let before = DateTime::from(std::time::SystemTime::now() - std::time::Duration::from_secs(60));

    let out = client
        .put_records()
        .stream_name("iterators")
        .set_records(Some(
            (0..10)
                .map(|i| entry(&format!("pk{i}"), format!("r{i}").as_bytes()))
                .collect(),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(out.failed_record_count(), Some(0));
    let seqs: Vec<String> = out
        .records()
        .iter()
        .map(|r| r.sequence_number().unwrap().to_owned())
        .collect();
    let shard = out.records()[0].shard_id().unwrap().to_owned();

    let all = read_all(
        &client,
        iterator(
            &client,
            "iterators",
            &shard,
            ShardIteratorType::TrimHorizon,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(all.len(), 10);
    assert_eq!(all[3].data().as_ref(), b"r3");

    let at = read_all(
        &client,
        iterator(
            &client,
            "iterators",
            &shard,
            ShardIteratorType::AtSequenceNumber,
            Some(&seqs[4]),
        )
        .await,
    )
    .await;
    assert_eq!(at.first().unwrap().sequence_number(), seqs[4]);
    assert_eq!(at.len(), 6);

    let after = read_all(
        &client,
        iterator(
            &client,
            "iterators",
            &shard,
            ShardIteratorType::AfterSequenceNumber,
            Some(&seqs[4]),
        )
        .await,
    )
    .await;
    assert_eq!(after.first().unwrap().sequence_number(), seqs[5]);

    let latest = iterator(
        &client,
        "iterators",
        &shard,
        ShardIteratorType::Latest,
        None,
    )
    .await;
    client
        .put_records()
        .stream_name("iterators")
        .records(entry("late", b"late"))
        .send()
        .await
        .unwrap();
    let newest = read_all(&client, latest).await;
    assert_eq!(newest.len(), 1);
    assert_eq!(newest[0].data().as_ref(), b"late");

    let by_time = client
        .get_shard_iterator()
        .stream_name("iterators")
        .shard_id(&shard)
        .shard_iterator_type(ShardIteratorType::AtTimestamp)
        .timestamp(before)
        .send()
        .await
        .unwrap()
        .shard_iterator
        .unwrap();
    assert_eq!(read_all(&client, by_time).await.len(), 11);
}

#[tokio::test]
async fn records_land_on_the_shard_their_hash_key_predicts() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("routing", 4).await.unwrap();
    let client = aws.kinesis_client().await;
    let map = shard_map::load(&client, &StreamRef::parse("routing"))
        .await
        .unwrap();
    assert_eq!(map.len(), 4);
    let entries: Vec<_> = (0..200).map(|i| entry(&format!("key-{i}"), b"x")).collect();
    let out = client
        .put_records()
        .stream_name("routing")
        .set_records(Some(entries))
        .send()
        .await
        .unwrap();
    for (i, result) in out.records().iter().enumerate() {
        let predicted = map.shard_for(HashKey::from_partition_key(&format!("key-{i}")));
        assert_eq!(result.shard_id(), Some(predicted.shard_id.as_str()));
    }
    // An explicit hash key overrides the partition key.
    let out = client
        .put_records()
        .stream_name("routing")
        .records(
            PutRecordsRequestEntry::builder()
                .partition_key("any")
                .explicit_hash_key(HashKey::MAX.to_string())
                .data(Blob::new("x"))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.records()[0].shard_id(),
        Some(map.shard_for(HashKey::MAX).shard_id.as_str())
    );
}

#[tokio::test]
async fn full_size_put_records_is_accepted() {
    // 5 entries of ~1 MiB: a 5 MiB request, ~6.7 MiB as JSON.
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("big", 1).await.unwrap();
    let client = aws.kinesis_client().await;
    let data = vec![7u8; 1024 * 1024 - 10];
    let out = client
        .put_records()
        .stream_name("big")
        .set_records(Some(
            (0..5).map(|i| entry(&format!("k{i}"), &data)).collect(),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(out.failed_record_count(), Some(0));
}

#[tokio::test]
async fn list_shards_pages_and_filters() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("paging", 7).await.unwrap();
    let client = aws.kinesis_client().await;

    // Paging with ExclusiveStartShardId, two shards a page.
    let mut seen = Vec::new();
    loop {
        let mut req = client.list_shards().stream_name("paging").max_results(2);
        if let Some(last) = seen.last() {
            req = req.exclusive_start_shard_id(last);
        }
        let page = req.send().await.unwrap();
        if page.shards().is_empty() {
            break;
        }
        assert!(page.shards().len() <= 2);
        seen.extend(page.shards().iter().map(|s| s.shard_id().to_owned()));
    }
    assert_eq!(seen.len(), 7);

    // The library's own lister gives the same.
    let listed = shard_map::list_shards(&client, &StreamRef::parse("paging"), false)
        .await
        .unwrap();
    assert_eq!(listed.len(), 7);

    // NextToken paging: AWS returns a token to continue with. ferrokinesis hands one out,
    // but following it fails; the library pages with ExclusiveStartShardId instead, which
    // works on both. kinesis-mock follows the token, as AWS does.
    let first = client
        .list_shards()
        .stream_name("paging")
        .max_results(2)
        .send()
        .await
        .unwrap();
    let token = first
        .next_token()
        .expect("a partial page carries a NextToken");
    let next = client
        .list_shards()
        .next_token(token)
        .max_results(2)
        .send()
        .await;
    match aws.kinesis_emulator() {
        KinesisEmulator::Ferrokinesis => assert!(
            next.is_err(),
            "ferrokinesis now follows NextToken: update the README's list of deviations"
        ),
        _ => assert_eq!(next.unwrap().shards().len(), 2, "the next page follows"),
    }

    // ShardFilter AT_LATEST: after a split, AWS lists only the open shards; ferrokinesis ignores
    // the filter and lists the closed parent too, which the library drops on its own.
    // kinesis-mock honours the filter.
    aws.split_shard("paging", &seen[0]).await.unwrap();
    let filtered = client
        .list_shards()
        .stream_name("paging")
        .shard_filter(
            ShardFilter::builder()
                .r#type(ShardFilterType::AtLatest)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let expected = match aws.kinesis_emulator() {
        KinesisEmulator::Ferrokinesis => 9,
        _ => 8,
    };
    assert_eq!(
        filtered.shards().len(),
        expected,
        "ShardFilter handling changed: update the README's list of deviations"
    );
    let open = shard_map::list_shards(&client, &StreamRef::parse("paging"), true)
        .await
        .unwrap();
    assert_eq!(open.len(), 8);
    ShardMap::from_sdk_shards(&open).unwrap();
}

#[tokio::test]
async fn split_merge_and_scale_keep_the_key_space_covered() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("api-reshard", 2).await.unwrap();
    let client = aws.kinesis_client().await;
    let stream = StreamRef::parse("api-reshard");
    let before = shard_map::load(&client, &stream).await.unwrap();

    let parent = aws
        .split_shard("api-reshard", &before.shards()[0].shard_id)
        .await
        .unwrap();
    let after_split = shard_map::load(&client, &stream).await.unwrap();
    assert_eq!(after_split.len(), 3);
    let all = shard_map::list_shards(&client, &stream, false)
        .await
        .unwrap();
    let children: Vec<_> = all
        .iter()
        .filter(|s| s.parent_shard_id() == Some(parent.shard_id.as_str()))
        .collect();
    assert_eq!(children.len(), 2, "split makes two children of the parent");

    let (a, b) = (
        children[0].shard_id().to_owned(),
        children[1].shard_id().to_owned(),
    );
    let (lo, hi) = if shard_map::shard_range(children[0])
        .unwrap()
        .starting_hash_key
        < shard_map::shard_range(children[1])
            .unwrap()
            .starting_hash_key
    {
        (a, b)
    } else {
        (b, a)
    };
    aws.merge_shards("api-reshard", &lo, &hi).await.unwrap();
    let after_merge = shard_map::load(&client, &stream).await.unwrap();
    assert_eq!(after_merge.len(), 2);
    let all = shard_map::list_shards(&client, &stream, false)
        .await
        .unwrap();
    let merged = all
        .iter()
        .find(|s| s.adjacent_parent_shard_id().is_some())
        .expect("a merged child names both parents");
    assert_eq!(merged.parent_shard_id(), Some(lo.as_str()));
    assert_eq!(merged.adjacent_parent_shard_id(), Some(hi.as_str()));

    aws.update_shard_count("api-reshard", 4).await.unwrap();
    assert_eq!(shard_map::load(&client, &stream).await.unwrap().len(), 4);
}

#[tokio::test]
async fn a_closed_shard_ends_with_no_next_iterator() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("ending", 1).await.unwrap();
    let client = aws.kinesis_client().await;
    client
        .put_records()
        .stream_name("ending")
        .records(entry("k", b"before split"))
        .send()
        .await
        .unwrap();
    let parent = shard_map::load(&client, &StreamRef::parse("ending"))
        .await
        .unwrap()
        .shards()[0]
        .shard_id
        .clone();
    aws.split_shard("ending", &parent).await.unwrap();

    let mut it = iterator(
        &client,
        "ending",
        &parent,
        ShardIteratorType::TrimHorizon,
        None,
    )
    .await;
    let mut records = 0;
    let mut child_shards = None;
    for _ in 0..10 {
        let page = client
            .get_records()
            .shard_iterator(&it)
            .send()
            .await
            .unwrap();
        records += page.records().len();
        child_shards = page.child_shards.clone();
        match page.next_shard_iterator {
            Some(next) => it = next,
            None => break,
        }
    }
    assert_eq!(records, 1, "a closed shard's records stay readable");
    // AWS returns ChildShards with the last page of a closed shard; ferrokinesis does not, so
    // consumers find children through ListShards parent ids, which works on both. kinesis-mock
    // returns them, as AWS does.
    let child_shards = child_shards.unwrap_or_default();
    match aws.kinesis_emulator() {
        KinesisEmulator::Ferrokinesis => assert!(
            child_shards.is_empty(),
            "ferrokinesis now returns ChildShards: update the README's list of deviations"
        ),
        _ => assert_eq!(child_shards.len(), 2, "a split names its two children"),
    }
}

#[tokio::test]
async fn missing_stream_is_a_fatal_typed_error() {
    let aws = LocalAws::start().await.unwrap();
    let client = aws.client_options().without_sdk_retries().kinesis().await;
    let err = client
        .put_records()
        .stream_name("no-such-stream")
        .records(entry("k", b"x"))
        .send()
        .await
        .unwrap_err();
    let err = ServiceError::from_sdk("PutRecords", err);
    assert!(err.has_code("ResourceNotFoundException"), "{err}");
    assert!(!err.is_retryable());
    let err = shard_map::load(&client, &StreamRef::parse("no-such-stream"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, shard_map::ShardMapError::ListShards { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn shard_write_limits_are_enforced_where_the_emulator_can() {
    let aws = LocalAws::builder()
        .enforce_limits(true)
        .start()
        .await
        .unwrap();
    aws.create_stream("api-limited", 1).await.unwrap();
    let client = aws.client_options().without_sdk_retries().kinesis().await;
    // 3 × 500 records at once: well over 1000 records/s on one shard.
    let mut throttled = 0;
    for round in 0..3 {
        let out = client
            .put_records()
            .stream_name("api-limited")
            .set_records(Some(
                (0..500)
                    .map(|i| entry(&format!("k{round}-{i}"), b"x"))
                    .collect(),
            ))
            .send()
            .await;
        match out {
            Ok(out) => {
                throttled += out
                    .records()
                    .iter()
                    .filter(|r| r.error_code() == Some("ProvisionedThroughputExceededException"))
                    .count()
            }
            Err(e) => {
                let e = ServiceError::from_sdk("PutRecords", e);
                assert_eq!(e.kind(), kinesis_common::ErrorKind::Throttling, "{e}");
                throttled += 500;
            }
        }
    }
    // kinesis-mock never throttles: there the producer's own per-shard limiter is all that
    // keeps a stream within its limits, and the throttling paths are exercised only embedded.
    if aws.limits_enforced() {
        assert!(
            throttled > 0,
            "1500 records in a burst on one shard were all accepted"
        );
    } else {
        assert_eq!(
            throttled, 0,
            "the external emulator now throttles: update README"
        );
    }
}

#[tokio::test]
async fn documents_read_side_deviations() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("reads", 1).await.unwrap();
    let client = aws.kinesis_client().await;
    let entries: Vec<_> = (0..100).map(|i| entry(&format!("k{i}"), b"x")).collect();
    let out = client
        .put_records()
        .stream_name("reads")
        .set_records(Some(entries))
        .send()
        .await
        .unwrap();
    let shard = out.records()[0].shard_id().unwrap().to_owned();

    // AWS allows 5 GetRecords calls per second per shard and throttles the rest, and reports
    // how far behind the tip a read is. ferrokinesis never throttles reads and always says 0;
    // so does kinesis-mock.
    let mut it = iterator(
        &client,
        "reads",
        &shard,
        ShardIteratorType::TrimHorizon,
        None,
    )
    .await;
    for _ in 0..20 {
        let page = client
            .get_records()
            .shard_iterator(&it)
            .limit(1)
            .send()
            .await
            .unwrap();
        assert_eq!(page.millis_behind_latest(), Some(0));
        it = page.next_shard_iterator.unwrap();
    }
}

/// The first records event of a subscription (skipping empty ones), within a few seconds.
async fn first_records(
    client: &aws_sdk_kinesis::Client,
    consumer_arn: &str,
    shard: &str,
    position: aws_sdk_kinesis::types::StartingPosition,
) -> Vec<aws_sdk_kinesis::types::Record> {
    let mut events = client
        .subscribe_to_shard()
        .consumer_arn(consumer_arn)
        .shard_id(shard)
        .starting_position(position)
        .send()
        .await
        .unwrap()
        .event_stream;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        match events.recv().await.unwrap() {
            Some(aws_sdk_kinesis::types::SubscribeToShardEventStream::SubscribeToShardEvent(e))
                if !e.records.is_empty() =>
            {
                return e.records;
            }
            Some(_) => {}
            None => break,
        }
    }
    Vec::new()
}

#[tokio::test]
async fn subscribe_to_shard_after_a_sequence_number() {
    use aws_sdk_kinesis::types::{ConsumerStatus, StartingPosition};
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("subscribed", 1).await.unwrap();
    let client = aws.kinesis_client().await;
    let entries: Vec<_> = (0..3)
        .map(|i| entry("k", format!("r{i}").as_bytes()))
        .collect();
    let out = client
        .put_records()
        .stream_name("subscribed")
        .set_records(Some(entries))
        .send()
        .await
        .unwrap();
    let shard = out.records()[0].shard_id().unwrap().to_owned();
    let first = out.records()[0].sequence_number().unwrap().to_owned();
    let stream_arn = client
        .describe_stream_summary()
        .stream_name("subscribed")
        .send()
        .await
        .unwrap()
        .stream_description_summary
        .unwrap()
        .stream_arn;
    let consumer = client
        .register_stream_consumer()
        .stream_arn(&stream_arn)
        .consumer_name("pin")
        .send()
        .await
        .unwrap()
        .consumer
        .unwrap();
    loop {
        let d = client
            .describe_stream_consumer()
            .consumer_arn(&consumer.consumer_arn)
            .send()
            .await
            .unwrap()
            .consumer_description
            .unwrap();
        if d.consumer_status == ConsumerStatus::Active {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let after = StartingPosition::builder()
        .r#type(ShardIteratorType::AfterSequenceNumber)
        .sequence_number(&first)
        .build()
        .unwrap();
    let records = first_records(&client, &consumer.consumer_arn, &shard, after).await;
    let data: Vec<_> = records.iter().map(|r| r.data().as_ref().to_vec()).collect();
    // AWS starts right after the record named; ferrokinesis sends that record again, so the
    // consumer drops records at or before the last one it delivered.
    match aws.kinesis_emulator() {
        KinesisEmulator::Ferrokinesis => assert_eq!(
            data,
            [b"r0".to_vec(), b"r1".to_vec(), b"r2".to_vec()],
            "ferrokinesis now starts after the sequence number: update the README"
        ),
        _ => assert_eq!(data, [b"r1".to_vec(), b"r2".to_vec()]),
    }
}
