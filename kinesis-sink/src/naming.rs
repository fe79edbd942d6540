//! Object names: `{prefix}{name}-{yyyy-MM-dd-HH-mm-ss}-{digest}{extensions}`, the time being
//! the oldest record's arrival (in the sink's time zone) and the digest that of the shards and
//! sequence ranges inside, so the same records make the same name.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use md5::{Digest, Md5};

use crate::buffer::{Buffer, shard_of};
use crate::config::Config;

/// The key of the object `buffer` becomes.
pub(crate) fn object_key(buffer: &Buffer, cfg: &Config) -> String {
    let (prefix, errors) = &buffer.key;
    let arrival: DateTime<Utc> = buffer
        .oldest_arrival
        .map_or_else(Utc::now, DateTime::<Utc>::from);
    let at = cfg.time_zone.local(arrival);
    // The shards without the processors' numbers: the same records make the same name in
    // any process.
    let mut ranges: Vec<_> = buffer
        .ranges
        .iter()
        .map(|(shard, first, last)| (shard_of(shard), first, last))
        .collect();
    ranges.sort_by(|a, b| a.0.cmp(b.0));
    let mut digest = Md5::new();
    digest.update([u8::from(*errors)]);
    for (shard, first, last) in &ranges {
        for part in [
            shard.as_bytes(),
            first.sequence.as_bytes(),
            last.sequence.as_bytes(),
        ] {
            digest.update((part.len() as u32).to_be_bytes());
            digest.update(part);
        }
        digest.update(first.sub.to_be_bytes());
        digest.update(last.sub.to_be_bytes());
    }
    let mut key = format!("{prefix}{}-{}-", cfg.name, at.format("%Y-%m-%d-%H-%M-%S"));
    for byte in &digest.finalize()[..8] {
        let _ = write!(key, "{byte:02x}");
    }
    key.push_str(if *errors {
        ".jsonl"
    } else {
        cfg.format.extension()
    });
    key.push_str(cfg.compression.extension());
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::{Buffers, Position};
    use crate::compression::Compression;

    fn buffer(shards: &[&str], errors: bool) -> Buffer {
        let mut b = Buffers::default();
        let now = tokio::time::Instant::now();
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_764_900_000);
        for shard in shards {
            let shard: crate::buffer::ShardKey = (*shard).into();
            let p = Position {
                sequence: "49".into(),
                sub: 0,
            };
            let batch = b.begin_batch(&shard, p.clone());
            b.append(
                ("p/".into(), errors),
                &shard,
                batch,
                &p,
                Some(at),
                now,
                |o| {
                    o.push(b'x');
                    Ok::<_, ()>(())
                },
            )
            .unwrap();
        }
        b.take(&("p/".into(), errors)).unwrap()
    }

    #[test]
    fn the_same_records_make_the_same_name_whatever_their_order() {
        let cfg = Config {
            compression: Compression::Gzip,
            ..Config::default()
        };
        let a = object_key(&buffer(&["s1#0", "s2#1"], false), &cfg);
        assert_eq!(a, object_key(&buffer(&["s2#7", "s1#3"], false), &cfg));
        assert!(a.starts_with("p/kinesis-sink-2025-12-05-02-00-00-"), "{a}");
        assert!(a.ends_with(".jsonl.gz"), "{a}");
        assert_ne!(a, object_key(&buffer(&["s1"], false), &cfg));
        let e = object_key(&buffer(&["s1", "s2"], true), &cfg);
        assert_ne!(a, e);
    }
}
