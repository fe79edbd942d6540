//! Exactly-once objects: before an object is written, a manifest says which records of which
//! shards it holds; a shard's next owner skips the records that an existing object already
//! holds, so a crash between an object's write and its shards' checkpoints writes nothing
//! twice.
//!
//! ```text
//!  write:    manifest _manifests/NAME/DIGEST.json ─▶ object ─▶ shards checkpoint ─▶ manifest deleted
//!  recovery: list manifests ─▶ ranges of my shard after my checkpoint, whose object exists
//!            ─▶ records routed to that object's prefix inside such a range are skipped
//! ```
//!
//! A record is in an object exactly when it routes to the object's prefix and lies in the
//! object's range for its shard: a buffer takes a shard's records for one prefix in shard
//! order. This holds as long as the transformation and the partitioning are deterministic.

use std::cmp::Ordering;

use md5::{Digest, Md5};
use serde_json::{Value, json};

use crate::buffer::{BufferKey, Position};

/// A shard's records in one object: the shard (`stream/shard` or `shard`) and the first and
/// last position of its records there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ShardRange {
    pub shard: String,
    pub first: Position,
    pub last: Position,
}

/// What one object holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Manifest {
    /// The object's key.
    pub object: String,
    /// Its buffer: prefix, and whether it holds error records.
    pub buffer: BufferKey,
    pub ranges: Vec<ShardRange>,
    /// When it was written, milliseconds since the epoch.
    pub written_ms: u64,
}

/// The folder of a sink's manifests.
pub(crate) fn manifest_dir(name: &str) -> String {
    format!("_manifests/{name}/")
}

/// The key of the manifest of object `object`.
pub(crate) fn manifest_key(name: &str, object: &str) -> String {
    let digest = Md5::digest(object.as_bytes());
    let mut key = manifest_dir(name);
    for byte in digest {
        key.push_str(&format!("{byte:02x}"));
    }
    key.push_str(".json");
    key
}

fn position_json(p: &Position) -> Value {
    json!([p.sequence, p.sub])
}

fn position_of(v: &Value) -> Option<Position> {
    Some(Position {
        sequence: v.get(0)?.as_str()?.to_owned(),
        sub: v.get(1)?.as_u64()?,
    })
}

impl Manifest {
    pub(crate) fn to_json(&self) -> Vec<u8> {
        let ranges: Vec<Value> = self
            .ranges
            .iter()
            .map(|r| {
                json!({"shard": r.shard, "first": position_json(&r.first), "last": position_json(&r.last)})
            })
            .collect();
        json!({
            "object": self.object,
            "prefix": self.buffer.0,
            "errors": self.buffer.1,
            "ranges": ranges,
            "written_ms": self.written_ms,
        })
        .to_string()
        .into_bytes()
    }

    /// A manifest read back; `None` when it is not one (a foreign file is ignored).
    pub(crate) fn parse(bytes: &[u8]) -> Option<Manifest> {
        let v: Value = serde_json::from_slice(bytes).ok()?;
        let ranges = v
            .get("ranges")?
            .as_array()?
            .iter()
            .map(|r| {
                Some(ShardRange {
                    shard: r.get("shard")?.as_str()?.to_owned(),
                    first: position_of(r.get("first")?)?,
                    last: position_of(r.get("last")?)?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Manifest {
            object: v.get("object")?.as_str()?.to_owned(),
            buffer: (
                v.get("prefix")?.as_str()?.to_owned(),
                v.get("errors")?.as_bool()?,
            ),
            ranges,
            written_ms: v.get("written_ms")?.as_u64()?,
        })
    }
}

/// Orders positions in a shard: sequence numbers as numbers, then sub-sequence numbers.
pub(crate) fn cmp_position(a: &Position, b: &Position) -> Ordering {
    a.sequence
        .len()
        .cmp(&b.sequence.len())
        .then_with(|| a.sequence.cmp(&b.sequence))
        .then(a.sub.cmp(&b.sub))
}

/// The records of one shard that objects already hold: skipped when delivered again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AlreadyWritten {
    ranges: Vec<(BufferKey, Position, Position)>,
}

impl AlreadyWritten {
    /// The ranges of `shard` in `manifests` (whose objects exist) after `checkpoint`
    /// (`None`: from the shard's start).
    pub(crate) fn of(
        shard: &str,
        checkpoint: Option<&Position>,
        manifests: &[Manifest],
    ) -> AlreadyWritten {
        let ranges = manifests
            .iter()
            .flat_map(|m| m.ranges.iter().map(move |r| (m, r)))
            .filter(|(_, r)| r.shard == shard)
            .filter(|(_, r)| checkpoint.is_none_or(|c| cmp_position(&r.last, c).is_gt()))
            .map(|(m, r)| (m.buffer.clone(), r.first.clone(), r.last.clone()))
            .collect();
        AlreadyWritten { ranges }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Whether the record at `position`, routed to buffer `key`, is in an existing object.
    pub(crate) fn covers(&self, key: &BufferKey, position: &Position) -> bool {
        self.ranges.iter().any(|(k, first, last)| {
            k == key
                && cmp_position(first, position).is_le()
                && cmp_position(position, last).is_le()
        })
    }

    /// The shard checkpointed at `position`: ranges up to it can no longer be delivered.
    pub(crate) fn forget_through(&mut self, position: &Position) {
        self.ranges
            .retain(|(_, _, last)| cmp_position(last, position).is_gt());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(seq: &str, sub: u64) -> Position {
        Position {
            sequence: seq.into(),
            sub,
        }
    }

    fn manifest(prefix: &str, shard: &str, first: u64, last: u64) -> Manifest {
        Manifest {
            object: format!("{prefix}obj"),
            buffer: (prefix.into(), false),
            ranges: vec![ShardRange {
                shard: shard.into(),
                first: pos(&first.to_string(), 0),
                last: pos(&last.to_string(), 0),
            }],
            written_ms: 1,
        }
    }

    #[test]
    fn manifests_round_trip_and_foreign_files_are_ignored() {
        let m = manifest("a/", "shardId-1", 10, 20);
        assert_eq!(Manifest::parse(&m.to_json()), Some(m));
        assert_eq!(Manifest::parse(b"{\"object\": 1}"), None);
        assert_eq!(Manifest::parse(b"not json"), None);
        let key = manifest_key("sink", "2026/12/05/10/x.jsonl");
        assert!(
            key.starts_with("_manifests/sink/") && key.ends_with(".json"),
            "{key}"
        );
    }

    #[test]
    fn positions_order_as_numbers() {
        assert!(cmp_position(&pos("9", 5), &pos("10", 0)).is_lt());
        assert!(cmp_position(&pos("10", 1), &pos("10", 0)).is_gt());
    }

    #[test]
    fn only_the_same_prefix_inside_the_range_after_the_checkpoint_is_covered() {
        let manifests = [
            manifest("a/", "s1", 10, 20),
            manifest("b/", "s1", 12, 30),
            manifest("a/", "s2", 1, 100),
        ];
        let written = AlreadyWritten::of("s1", Some(&pos("15", 0)), &manifests);
        let a = ("a/".to_owned(), false);
        let b = ("b/".to_owned(), false);
        assert!(written.covers(&a, &pos("16", 0)));
        assert!(!written.covers(&a, &pos("21", 0)), "after the range");
        assert!(
            !written.covers(&("a/".to_owned(), true), &pos("16", 0)),
            "errors"
        );
        assert!(written.covers(&b, &pos("12", 0)));
        let mut written = written;
        written.forget_through(&pos("20", 0));
        assert!(!written.covers(&a, &pos("16", 0)));
        assert!(written.covers(&b, &pos("25", 0)));
        // A range wholly at or before the checkpoint is not even taken.
        let old = AlreadyWritten::of("s1", Some(&pos("30", 0)), &manifests);
        assert!(old.is_empty());
    }
}
