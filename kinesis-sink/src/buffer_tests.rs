use std::time::Duration;

use super::*;

fn pos(n: u64) -> Position {
    Position {
        sequence: format!("{n:020}"),
        sub: 0,
    }
}

fn key(prefix: &str) -> BufferKey {
    (prefix.to_owned(), false)
}

fn put(b: &mut Buffers, prefix: &str, shard: &ShardKey, batch: u64, n: u64, now: Instant) {
    b.append(key(prefix), shard, batch, &pos(n), None, now, |out| {
        out.extend_from_slice(format!("{shard}:{n}\n").as_bytes());
        Ok::<_, ()>(())
    })
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn one_buffer_per_prefix_whatever_the_shard_count() {
    let mut b = Buffers::default();
    let now = Instant::now();
    for s in 0..1000 {
        let shard: ShardKey = format!("shard-{s}").into();
        let batch = b.begin_batch(&shard, pos(1));
        put(&mut b, "h/", &shard, batch, 1, now);
    }
    assert_eq!(b.open_count(), 1);
    let buffer = b.take(&key("h/")).unwrap();
    assert_eq!(buffer.records, 1000);
    assert_eq!(buffer.ranges.len(), 1000);
    assert_eq!(b.buffered(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_shard_checkpoints_only_after_every_buffer_of_a_batch_is_durable() {
    let mut b = Buffers::default();
    let now = Instant::now();
    let a: ShardKey = "a".into();
    let first = b.begin_batch(&a, pos(2));
    put(&mut b, "h10/", &a, first, 1, now);
    put(&mut b, "h11/", &a, first, 2, now);
    let second = b.begin_batch(&a, pos(3));
    put(&mut b, "h11/", &a, second, 3, now);
    assert_eq!(b.checkpointable(&a), None);
    let h11 = b.take(&key("h11/")).unwrap();
    assert_eq!(h11.batches, vec![(a.clone(), first), (a.clone(), second)]);
    b.durable(&h11.batches);
    // The first batch still waits for h10; the second may not pass it.
    assert_eq!(b.checkpointable(&a), None);
    assert!(!b.settled(&a));
    let h10 = b.take(&key("h10/")).unwrap();
    b.durable(&h10.batches);
    assert_eq!(b.checkpointable(&a), Some(pos(3)));
    assert_eq!(b.checkpointable(&a), None);
    assert!(b.settled(&a));
}

#[tokio::test(start_paused = true)]
async fn a_batch_that_wrote_nothing_is_checkpointable_at_once() {
    let mut b = Buffers::default();
    let a: ShardKey = "a".into();
    b.begin_batch(&a, pos(9));
    assert_eq!(b.checkpointable(&a), Some(pos(9)));
}

#[tokio::test(start_paused = true)]
async fn due_by_size_by_age_and_by_memory() {
    let mut b = Buffers::default();
    let start = Instant::now();
    let a: ShardKey = "a".into();
    let batch = b.begin_batch(&a, pos(3));
    put(&mut b, "small/", &a, batch, 1, start);
    for n in 0..100 {
        put(&mut b, "big/", &a, batch, n, start);
    }
    let size = b.open[&key("big/")].bytes;
    let interval = Duration::from_secs(300);
    assert_eq!(b.due(start, size, interval, usize::MAX), vec![key("big/")]);
    assert!(b.due(start, size + 1, interval, usize::MAX).is_empty());
    // Over the memory bound, the largest goes first.
    assert_eq!(b.due(start, usize::MAX, interval, size), vec![key("big/")]);
    let later = start + interval;
    let mut due = b.due(later, usize::MAX, interval, usize::MAX);
    due.sort();
    assert_eq!(due, vec![key("big/"), key("small/")]);
}

#[tokio::test(start_paused = true)]
async fn a_lost_shard_takes_its_records_out_and_leaves_the_others() {
    let mut b = Buffers::default();
    let now = Instant::now();
    let (a, c): (ShardKey, ShardKey) = ("a".into(), "c".into());
    let ba = b.begin_batch(&a, pos(1));
    put(&mut b, "h/", &a, ba, 1, now);
    put(&mut b, "only-a/", &a, ba, 1, now);
    let bc = b.begin_batch(&c, pos(1));
    put(&mut b, "h/", &c, bc, 1, now);
    assert_eq!(b.holding(&a).len(), 2);
    b.drop_shard(&a);
    assert_eq!(b.open_count(), 1, "the buffer of only a's records is gone");
    let h = b.take(&key("h/")).unwrap();
    assert_eq!(h.records, 1);
    assert_eq!(h.batches, vec![(c.clone(), bc)]);
    assert_eq!(h.into_bytes(), b"c:1\n");
    assert_eq!(b.buffered(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_failed_write_stops_its_shards() {
    let mut b = Buffers::default();
    let now = Instant::now();
    let a: ShardKey = "a".into();
    let batch = b.begin_batch(&a, pos(1));
    put(&mut b, "h/", &a, batch, 1, now);
    let h = b.take(&key("h/")).unwrap();
    b.failed(&h.batches, &Arc::from("disk full"));
    assert_eq!(b.failure(&a).as_deref(), Some("disk full"));
    assert_eq!(b.checkpointable(&a), None);
    assert!(b.settled(&a));
}
