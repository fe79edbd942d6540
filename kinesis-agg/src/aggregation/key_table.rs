//! An aggregate's key table: each distinct key once, in the order first seen, with its index.

use std::hash::BuildHasher;

use hashbrown::HashTable;

/// The table's hasher: much faster than SipHash on short keys, seeded per process.
type KeyHasher = foldhash::fast::RandomState;

/// Keys in one buffer, found by hash. [`KeyTable::release`] frees the buffers and remembers
/// how much they held: the next aggregate's first key reserves that much at once, so adding
/// a key allocates nothing in the common case, and a released table holds no memory (a
/// producer keeps an aggregator per shard, and thousands of shards are common). (A map of
/// `String`s cost two allocations and two frees per new key, and most keys are new: a
/// partition key per user record is common.)
#[derive(Debug, Clone, Default)]
pub(super) struct KeyTable {
    /// Every key, one after the other.
    text: String,
    /// Where each key starts in `text`, and its length, by index.
    spans: Vec<(u32, u32)>,
    /// Indexes into `spans`, by the hash of their key.
    index: HashTable<u32>,
    hasher: KeyHasher,
    /// Bytes of text and keys the table held when last released.
    last: (usize, usize),
}

impl KeyTable {
    fn key_at<'a>(text: &'a str, spans: &[(u32, u32)], i: u32) -> &'a str {
        let (at, len) = spans[i as usize];
        &text[at as usize..(at + len) as usize]
    }

    /// The index of `key`, if it is in the table.
    pub(super) fn get(&self, key: &str) -> Option<u64> {
        let hash = self.hasher.hash_one(key);
        self.index
            .find(hash, |&i| Self::key_at(&self.text, &self.spans, i) == key)
            .map(|&i| u64::from(i))
    }

    /// Adds `key`, which must not be in the table, at the next index.
    pub(super) fn push(&mut self, key: &str) {
        if self.spans.capacity() == 0 {
            self.reserve_last();
        }
        let i = self.spans.len() as u32;
        // An aggregate is at most 1 MiB, so offsets and lengths fit a u32.
        self.spans.push((self.text.len() as u32, key.len() as u32));
        self.text.push_str(key);
        let hash = self.hasher.hash_one(key);
        let (text, spans, hasher) = (&self.text, &self.spans, &self.hasher);
        self.index
            .insert_unique(hash, i, |&j| hasher.hash_one(Self::key_at(text, spans, j)));
    }

    /// How many keys.
    pub(super) fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether the table has no key.
    pub(super) fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The key at index `i`.
    pub(super) fn key(&self, i: usize) -> &str {
        Self::key_at(&self.text, &self.spans, i as u32)
    }

    /// Every key, by index.
    pub(super) fn iter(&self) -> impl Iterator<Item = &str> {
        (0..self.spans.len() as u32).map(|i| Self::key_at(&self.text, &self.spans, i))
    }

    /// Empties the table, keeping its buffers.
    pub(super) fn clear(&mut self) {
        self.text.clear();
        self.spans.clear();
        self.index.clear();
    }

    /// Empties the table and frees its buffers, remembering their size for the next time.
    pub(super) fn release(&mut self) {
        if self.spans.capacity() == 0 {
            return;
        }
        self.last = (self.text.len(), self.spans.len());
        self.text = String::new();
        self.spans = Vec::new();
        self.index = HashTable::new();
    }

    /// Reserves what the table held when last released.
    fn reserve_last(&mut self) {
        let (text, keys) = self.last;
        self.text.reserve_exact(text);
        self.spans.reserve_exact(keys.max(1));
        let (text, spans, hasher) = (&self.text, &self.spans, &self.hasher);
        self.index
            .reserve(keys, |&j| hasher.hash_one(Self::key_at(text, spans, j)));
    }

    /// Bytes its buffers hold (their capacity), for tests of what an idle table keeps.
    #[cfg(test)]
    pub(super) fn held_bytes(&self) -> usize {
        self.text.capacity()
            + self.spans.capacity() * std::mem::size_of::<(u32, u32)>()
            + self.index.capacity() * std::mem::size_of::<u32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_their_first_index_and_order() {
        let mut table = KeyTable::default();
        for key in ["b", "a", "", "long key ü"] {
            assert_eq!(table.get(key), None);
            table.push(key);
        }
        assert_eq!(table.get("a"), Some(1));
        assert_eq!(table.get(""), Some(2));
        assert_eq!(table.get("long key ü"), Some(3));
        assert_eq!(table.get("c"), None);
        assert_eq!(table.len(), 4);
        assert_eq!(table.key(0), "b");
        assert_eq!(
            table.iter().collect::<Vec<_>>(),
            ["b", "a", "", "long key ü"]
        );
    }

    #[test]
    fn many_keys_survive_the_index_growing_and_clear_empties_it() {
        let mut table = KeyTable::default();
        for n in 0..5_000 {
            table.push(&format!("pk-{n}"));
        }
        assert!((0..5_000).all(|n| table.get(&format!("pk-{n}")) == Some(n)));
        table.clear();
        assert_eq!(table.len(), 0);
        assert_eq!(table.get("pk-1"), None);
        table.push("pk-1");
        assert_eq!(table.get("pk-1"), Some(0));
    }

    #[test]
    fn a_released_table_holds_nothing_and_reserves_its_last_size_on_the_next_key() {
        let mut table = KeyTable::default();
        for n in 0..1_000 {
            table.push(&format!("pk-{n:04}"));
        }
        table.release();
        assert_eq!(table.held_bytes(), 0);
        table.release();
        assert_eq!(table.held_bytes(), 0);
        table.push("pk-0000");
        assert!(table.text.capacity() >= 7_000, "{}", table.text.capacity());
        assert!(table.spans.capacity() >= 1_000);
        assert!(table.index.capacity() >= 1_000);
        // The rest of an aggregate like the last one fits without regrowing.
        let (text, spans) = (table.text.capacity(), table.spans.capacity());
        for n in 1..1_000 {
            table.push(&format!("pk-{n:04}"));
        }
        assert_eq!(
            (table.text.capacity(), table.spans.capacity()),
            (text, spans)
        );
        assert!((0..1_000).all(|n| table.get(&format!("pk-{n:04}")) == Some(n)));
    }
}
