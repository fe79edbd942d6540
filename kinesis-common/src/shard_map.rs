//! Which shard owns a hash key: the stream's open shards sorted by their hash ranges.
//!
//! ```text
//!  0 ─────────────── shard-0 ──────────────┤├──── shard-1 ────┤├──── shard-2 ──── 2^128−1
//!                                     ending_hash_key (sorted) → binary search
//! ```
//!
//! A map is built from ListShards output, keeps only open shards, and refuses to exist unless
//! they cover the key space from 0 to 2^128 − 1 without gaps or overlaps: a map with a hole
//! would route records nowhere. [`load`] pages through ListShards with `ExclusiveStartShardId`,
//! which AWS documents and every emulator we test against honours.

use aws_sdk_kinesis::types::{Shard, ShardFilter, ShardFilterType};

use crate::error::ServiceError;
use crate::hash_key::HashKey;
use crate::stream::StreamRef;

/// One open shard and the hash keys it owns, both ends inclusive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardRange {
    /// The shard id, e.g. `shardId-000000000003`.
    pub shard_id: String,
    /// First hash key of the shard.
    pub starting_hash_key: HashKey,
    /// Last hash key of the shard.
    pub ending_hash_key: HashKey,
}

impl ShardRange {
    /// The shard `shard_id` owning the hash keys from `start` to `end`, both inclusive.
    pub fn new(shard_id: impl Into<String>, start: HashKey, end: HashKey) -> Self {
        ShardRange {
            shard_id: shard_id.into(),
            starting_hash_key: start,
            ending_hash_key: end,
        }
    }

    /// Whether the shard owns `key`.
    pub fn contains(&self, key: HashKey) -> bool {
        self.starting_hash_key <= key && key <= self.ending_hash_key
    }

    /// Whether the two shards share a hash key (a parent and its child do).
    pub fn overlaps(&self, other: &ShardRange) -> bool {
        self.starting_hash_key <= other.ending_hash_key
            && other.starting_hash_key <= self.ending_hash_key
    }
}

/// Why a shard map could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShardMapError {
    /// The stream has no open shards.
    #[error("the stream has no open shards")]
    NoOpenShards,
    /// A shard's hash range is not a pair of decimal hash keys.
    #[error("shard {shard_id} has an invalid hash key range: {reason}")]
    InvalidRange {
        /// The shard.
        shard_id: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Some hash keys belong to no open shard.
    #[error("no open shard owns hash keys {from}..={to}")]
    Gap {
        /// First uncovered key.
        from: HashKey,
        /// Last uncovered key.
        to: HashKey,
    },
    /// Two open shards claim the same hash keys.
    #[error("shards {first} and {second} overlap")]
    Overlap {
        /// The shard with the lower range.
        first: String,
        /// The shard whose range starts inside it.
        second: String,
    },
    /// ListShards failed.
    #[error("could not list shards: {source}")]
    ListShards {
        /// The service error.
        #[source]
        source: ServiceError,
    },
}

/// The open shards of a stream, for O(log n) hash key → shard lookups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardMap {
    shards: Vec<ShardRange>,
}

impl ShardMap {
    /// Builds a map from open shards, checking that they cover the whole key space exactly.
    pub fn new(mut shards: Vec<ShardRange>) -> Result<Self, ShardMapError> {
        if shards.is_empty() {
            return Err(ShardMapError::NoOpenShards);
        }
        shards.sort_by_key(|s| s.ending_hash_key);
        let mut next = Some(HashKey::MIN);
        let mut previous: Option<&ShardRange> = None;
        for shard in &shards {
            if shard.starting_hash_key > shard.ending_hash_key {
                return Err(ShardMapError::InvalidRange {
                    shard_id: shard.shard_id.clone(),
                    reason: "starting hash key is above ending hash key".into(),
                });
            }
            match next {
                None => {
                    return Err(ShardMapError::Overlap {
                        first: previous.map(|p| p.shard_id.clone()).unwrap_or_default(),
                        second: shard.shard_id.clone(),
                    });
                }
                Some(expected) if shard.starting_hash_key > expected => {
                    return Err(ShardMapError::Gap {
                        from: expected,
                        to: HashKey(shard.starting_hash_key.0 - 1),
                    });
                }
                Some(expected) if shard.starting_hash_key < expected => {
                    return Err(ShardMapError::Overlap {
                        first: previous.map(|p| p.shard_id.clone()).unwrap_or_default(),
                        second: shard.shard_id.clone(),
                    });
                }
                Some(_) => {}
            }
            next = shard.ending_hash_key.0.checked_add(1).map(HashKey);
            previous = Some(shard);
        }
        if let Some(from) = next {
            return Err(ShardMapError::Gap {
                from,
                to: HashKey::MAX,
            });
        }
        Ok(ShardMap { shards })
    }

    /// Builds a map from ListShards output, ignoring closed shards (those with an ending
    /// sequence number), so it works whether or not the server honoured `ShardFilter`.
    pub fn from_sdk_shards(shards: &[Shard]) -> Result<Self, ShardMapError> {
        let open = shards
            .iter()
            .filter(|s| is_open(s))
            .map(shard_range)
            .collect::<Result<Vec<_>, _>>()?;
        ShardMap::new(open)
    }

    /// The shard that owns `key`. The map covers every key, so there always is one.
    pub fn shard_for(&self, key: HashKey) -> &ShardRange {
        &self.shards[self.position_for(key)]
    }

    /// The position in [`ShardMap::shards`] of the shard that owns `key`: an index a caller
    /// can keep per-shard state by, for as long as it holds this map.
    pub fn position_for(&self, key: HashKey) -> usize {
        let i = self.shards.partition_point(|s| s.ending_hash_key < key);
        i.min(self.shards.len() - 1)
    }

    /// The open shards, sorted by hash range.
    pub fn shards(&self) -> &[ShardRange] {
        &self.shards
    }

    /// Number of open shards.
    pub fn len(&self) -> usize {
        self.shards.len()
    }

    /// Always false: a map has at least one shard.
    pub fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }
}

/// Whether ListShards reported the shard as open (no ending sequence number).
pub fn is_open(shard: &Shard) -> bool {
    shard
        .sequence_number_range()
        .is_none_or(|r| r.ending_sequence_number().is_none())
}

/// The hash range of an SDK shard.
pub fn shard_range(shard: &Shard) -> Result<ShardRange, ShardMapError> {
    let range = shard
        .hash_key_range()
        .ok_or_else(|| ShardMapError::InvalidRange {
            shard_id: shard.shard_id().to_owned(),
            reason: "no hash key range".into(),
        })?;
    let parse = |value: &str| {
        value
            .parse::<u128>()
            .map(HashKey)
            .map_err(|e| ShardMapError::InvalidRange {
                shard_id: shard.shard_id().to_owned(),
                reason: format!("{value:?}: {e}"),
            })
    };
    Ok(ShardRange {
        shard_id: shard.shard_id().to_owned(),
        starting_hash_key: parse(range.starting_hash_key())?,
        ending_hash_key: parse(range.ending_hash_key())?,
    })
}

/// Lists a stream's shards with ListShards, paging with `ExclusiveStartShardId`.
///
/// With `open_only`, asks for `ShardFilter=AT_LATEST` and also drops closed shards itself,
/// for servers that ignore the filter.
pub async fn list_shards(
    client: &aws_sdk_kinesis::Client,
    stream: &StreamRef,
    open_only: bool,
) -> Result<Vec<Shard>, ServiceError> {
    let mut shards: Vec<Shard> = Vec::new();
    loop {
        let mut request = stream
            .apply_list_shards(client.list_shards())
            .max_results(1000);
        if open_only {
            request = request.shard_filter(
                ShardFilter::builder()
                    .r#type(ShardFilterType::AtLatest)
                    .build()
                    .map_err(|e| ServiceError::construction("ListShards", e))?,
            );
        }
        if let Some(last) = shards.last() {
            request = request.exclusive_start_shard_id(last.shard_id());
        }
        let page = request
            .send()
            .await
            .map_err(|e| ServiceError::from_sdk("ListShards", e))?;
        let items = page.shards.unwrap_or_default();
        let before = shards.len();
        for shard in items {
            // Guard against servers that repeat the start shard or ignore the cursor.
            if !shards.iter().any(|s| s.shard_id() == shard.shard_id()) {
                shards.push(shard);
            }
        }
        if shards.len() == before || page.next_token.is_none() {
            break;
        }
    }
    if open_only {
        shards.retain(is_open);
    }
    Ok(shards)
}

/// Loads the shard map of a stream from ListShards.
pub async fn load(
    client: &aws_sdk_kinesis::Client,
    stream: &StreamRef,
) -> Result<ShardMap, ShardMapError> {
    let shards = list_shards(client, stream, true)
        .await
        .map_err(|source| ShardMapError::ListShards { source })?;
    ShardMap::from_sdk_shards(&shards)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(id: &str, start: u128, end: u128) -> ShardRange {
        ShardRange::new(id, HashKey(start), HashKey(end))
    }

    /// `n` shards splitting the key space evenly, as CreateStream does.
    fn even(n: u128) -> Vec<ShardRange> {
        let width = u128::MAX / n;
        (0..n)
            .map(|i| {
                let end = if i == n - 1 {
                    u128::MAX
                } else {
                    (i + 1) * width - 1
                };
                range(&format!("shard-{i}"), i * width, end)
            })
            .collect()
    }

    #[test]
    fn lookup_finds_the_owning_shard() {
        let map = ShardMap::new(even(4)).unwrap();
        let width = u128::MAX / 4;
        assert_eq!(map.shard_for(HashKey(0)).shard_id, "shard-0");
        assert_eq!(map.shard_for(HashKey(width - 1)).shard_id, "shard-0");
        assert_eq!(map.shard_for(HashKey(width)).shard_id, "shard-1");
        assert_eq!(map.shard_for(HashKey::MAX).shard_id, "shard-3");
        for key in [0u128, 1, width * 2 + 17, u128::MAX - 3] {
            assert!(map.shard_for(HashKey(key)).contains(HashKey(key)));
        }
    }

    #[test]
    fn order_of_input_does_not_matter() {
        let mut shards = even(5);
        shards.reverse();
        let map = ShardMap::new(shards).unwrap();
        assert_eq!(map.shards()[0].shard_id, "shard-0");
        assert_eq!(map.len(), 5);
    }

    #[test]
    fn ranges_overlap_when_they_share_a_hash_key() {
        let parent = range("p", 0, 99);
        assert!(parent.overlaps(&range("l", 0, 49)));
        assert!(range("r", 50, 99).overlaps(&parent));
        assert!(
            range("e", 99, 150).overlaps(&parent),
            "one shared key is enough"
        );
        assert!(!range("o", 100, 199).overlaps(&parent));
    }

    #[test]
    fn gaps_and_overlaps_are_refused() {
        assert!(matches!(
            ShardMap::new(vec![]),
            Err(ShardMapError::NoOpenShards)
        ));
        assert!(matches!(
            ShardMap::new(vec![range("a", 0, 10), range("b", 12, u128::MAX)]),
            Err(ShardMapError::Gap {
                from: HashKey(11),
                to: HashKey(11)
            })
        ));
        assert!(matches!(
            ShardMap::new(vec![range("a", 1, u128::MAX)]),
            Err(ShardMapError::Gap {
                from: HashKey(0),
                to: HashKey(0)
            })
        ));
        assert!(matches!(
            ShardMap::new(vec![range("a", 0, 10)]),
            Err(ShardMapError::Gap {
                from: HashKey(11),
                ..
            })
        ));
        assert!(matches!(
            ShardMap::new(vec![range("a", 0, 10), range("b", 10, u128::MAX)]),
            Err(ShardMapError::Overlap { .. })
        ));
        assert!(matches!(
            ShardMap::new(vec![range("a", 0, u128::MAX), range("b", 0, u128::MAX)]),
            Err(ShardMapError::Overlap { .. })
        ));
    }

    #[test]
    fn sdk_shards_keep_only_open_ones() {
        use aws_sdk_kinesis::types::{HashKeyRange, SequenceNumberRange};
        let shard = |id: &str, start: u128, end: u128, closed: bool| {
            let mut seq = SequenceNumberRange::builder().starting_sequence_number("1");
            if closed {
                seq = seq.ending_sequence_number("9");
            }
            Shard::builder()
                .shard_id(id)
                .hash_key_range(
                    HashKeyRange::builder()
                        .starting_hash_key(start.to_string())
                        .ending_hash_key(end.to_string())
                        .build()
                        .unwrap(),
                )
                .sequence_number_range(seq.build().unwrap())
                .build()
                .unwrap()
        };
        let half = u128::MAX / 2;
        let shards = [
            shard("parent", 0, u128::MAX, true),
            shard("left", 0, half, false),
            shard("right", half + 1, u128::MAX, false),
        ];
        let map = ShardMap::from_sdk_shards(&shards).unwrap();
        assert_eq!(map.len(), 2);
        assert_eq!(map.shard_for(HashKey(half + 1)).shard_id, "right");
    }
}
