//! The engine's shards, and which of them need a look.
//!
//! A pass of the engine closes due aggregates, collects ready entries and finds its next
//! wake; each of those needs only the shards holding an open aggregate or ready entries.
//! Every 100 ms the admission gates are set from the limiters, which needs only the shards
//! whose rate moved lately. At 10,000 shards and 20,000 records a second most shards hold
//! nothing at any moment, and the passes and gate updates that visited every shard took a
//! third of the producer's CPU (`perf`, docs/FIGURES.md). Here the shards live in a slab
//! with two lists of slots: any mutable access by id (a record routed, an answer, a retry)
//! puts its shard on both, and each list drops a shard once it has nothing more to do there.

use std::collections::HashMap;
use std::sync::Arc;

use super::shard::ShardState;

/// Slots, each listed once.
#[derive(Debug, Default)]
struct List {
    slots: Vec<usize>,
    listed: Vec<bool>,
    /// Some slot was added out of order since the last sort.
    unsorted: bool,
}

impl List {
    fn add(&mut self, slot: usize) {
        if !self.listed[slot] {
            self.listed[slot] = true;
            self.unsorted |= self.slots.last().is_some_and(|&last| last > slot);
            self.slots.push(slot);
        }
    }

    fn sort(&mut self) {
        if std::mem::take(&mut self.unsorted) {
            self.slots.sort_unstable();
        }
    }

    /// Slot `gone` is removed and slot `last` takes its place.
    fn moved(&mut self, gone: usize, last: usize) {
        self.listed.swap_remove(gone);
        self.slots.retain(|&s| s != gone);
        for s in &mut self.slots {
            if *s == last {
                *s = gone;
                self.unsorted = true;
            }
        }
    }

    /// Keeps the slots `keep` says to, in slot order.
    fn retain(&mut self, mut keep: impl FnMut(usize) -> bool) {
        let listed = &mut self.listed;
        self.slots.retain(|&slot| {
            let kept = keep(slot);
            listed[slot] = kept;
            kept
        });
        self.sort();
    }
}

/// The shards by id, with the lists of those that need a look.
#[derive(Debug, Default)]
pub(super) struct Shards {
    slots: Vec<ShardState>,
    index: HashMap<String, usize, foldhash::fast::RandomState>,
    /// Slots that may hold work.
    busy: List,
    /// Slots whose admission gate may need setting.
    gates: List,
    /// Slots by the position of their shard in the engine's shard map ([`NONE`]: not looked
    /// up yet), so routing a record needs no lookup by id (hashing and comparing ids was 4%
    /// of the CPU at 1,000 shards). Forgotten when the map changes or a slot moves.
    by_position: Vec<usize>,
}

/// No slot known for a map position.
const NONE: usize = usize::MAX;

impl Shards {
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Shard `id`, to read.
    pub fn get(&self, id: &str) -> Option<&ShardState> {
        self.index.get(id).map(|&slot| &self.slots[slot])
    }

    /// Shard `id`, to change: listed as possibly holding work and having a gate to set.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut ShardState> {
        let slot = *self.index.get(id)?;
        Some(self.at_mut(slot))
    }

    /// The shard of an entry that went out from `slot`, to change: found there without a
    /// lookup by id unless the slot has moved since.
    pub fn of_entry_mut(&mut self, slot: usize, id: &Arc<str>) -> Option<&mut ShardState> {
        if self.slots.get(slot).is_some_and(|s| Arc::ptr_eq(&s.id, id)) {
            return Some(self.at_mut(slot));
        }
        self.get_mut(id)
    }

    /// The shard of an entry that went out from `slot`, to read.
    pub fn of_entry(&self, slot: usize, id: &Arc<str>) -> Option<&ShardState> {
        match self.slots.get(slot) {
            Some(shard) if Arc::ptr_eq(&shard.id, id) => Some(shard),
            _ => self.get(id),
        }
    }

    /// The slot of shard `id`.
    pub fn slot(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// The slot of shard `id`, at `position` in the current shard map.
    pub fn slot_at(&mut self, position: usize, id: &str) -> Option<usize> {
        if let Some(&slot) = self.by_position.get(position)
            && slot != NONE
        {
            debug_assert_eq!(self.slots[slot].range.shard_id, id);
            return Some(slot);
        }
        let slot = self.slot(id)?;
        if self.by_position.len() <= position {
            self.by_position.resize(position + 1, NONE);
        }
        self.by_position[position] = slot;
        Some(slot)
    }

    /// The shard map changed: positions in it mean other shards now.
    pub fn forget_positions(&mut self) {
        self.by_position.clear();
    }

    /// The shard in `slot`, to change, listed as [`Shards::get_mut`] lists it.
    pub fn at_mut(&mut self, slot: usize) -> &mut ShardState {
        self.busy.add(slot);
        self.gates.add(slot);
        &mut self.slots[slot]
    }

    /// Adds a shard (replacing one with the same id), and returns its slot.
    pub fn insert(&mut self, id: String, state: ShardState) -> usize {
        if let Some(&slot) = self.index.get(&id) {
            self.slots[slot] = state;
            return slot;
        }
        let slot = self.slots.len();
        self.index.insert(id, slot);
        self.slots.push(state);
        self.busy.listed.push(false);
        self.gates.listed.push(false);
        slot
    }

    /// Removes shard `id`; the last slot moves into its place.
    pub fn remove(&mut self, id: &str) -> Option<ShardState> {
        let slot = self.index.remove(id)?;
        self.by_position.clear();
        let last = self.slots.len() - 1;
        let state = self.slots.swap_remove(slot);
        self.busy.moved(slot, last);
        self.gates.moved(slot, last);
        if slot != last {
            let moved = &self.slots[slot].range.shard_id;
            *self.index.get_mut(moved).expect("every slot is indexed") = slot;
        }
        Some(state)
    }

    /// Every shard's id.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.index.keys()
    }

    /// Every shard, to change in ways that add no work (reports, draining).
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut ShardState> {
        self.slots.iter_mut()
    }

    /// Drops the shards found holding no work from the list (once a pass: walking the list
    /// on every look cost 3.6% of the CPU at 10,000 shards).
    pub fn prune_idle(&mut self) {
        let slots = &self.slots;
        self.busy.retain(|slot| slots[slot].holds_work());
    }

    /// The shards that may hold work (all that do, and those emptied since the last
    /// [`Shards::prune_idle`]), in slot order, with their slots.
    pub fn busy_mut(&mut self) -> Vec<(usize, &mut ShardState)> {
        self.busy.sort();
        pick(&mut self.slots, &self.busy.slots)
    }

    /// The shards holding work, to read (the list is not pruned).
    pub fn busy(&self) -> impl Iterator<Item = &ShardState> {
        self.busy
            .slots
            .iter()
            .map(|&slot| &self.slots[slot])
            .filter(|s| s.holds_work())
    }

    /// Calls `set` on each shard whose gate may need setting; a shard leaves the list when
    /// `set` returns `true` (its gate is settled: at its floor, not full) and it holds no
    /// work.
    pub fn set_gates(&mut self, mut set: impl FnMut(&mut ShardState) -> bool) {
        let slots = &mut self.slots;
        self.gates.retain(|slot| {
            let shard = &mut slots[slot];
            !set(shard) || shard.holds_work()
        });
    }
}

/// The shards in `chosen` (ascending, distinct), each with its slot.
fn pick<'a>(all: &'a mut [ShardState], chosen: &[usize]) -> Vec<(usize, &'a mut ShardState)> {
    let mut out = Vec::with_capacity(chosen.len());
    let mut rest: &mut [ShardState] = all;
    let mut offset = 0;
    for &slot in chosen {
        let (_, tail) = std::mem::take(&mut rest).split_at_mut(slot - offset);
        let Some((shard, tail)) = tail.split_first_mut() else {
            break;
        };
        out.push((slot, shard));
        rest = tail;
        offset = slot + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use tokio::time::Instant;

    use super::super::shard::tests::{shard_named, ticket};
    use super::*;
    use crate::config::Config;

    fn ids(shards: &mut Shards) -> Vec<String> {
        shards.prune_idle();
        shards
            .busy_mut()
            .into_iter()
            .map(|(_, s)| s.range.shard_id.clone())
            .collect()
    }

    #[tokio::test]
    async fn only_shards_given_work_are_busy_and_removal_keeps_the_rest() {
        let (cfg, now) = (Config::default(), Instant::now());
        let mut shards = Shards::default();
        for id in ["a", "b", "c", "d"] {
            shards.insert(id.into(), shard_named(id, &cfg, now));
        }
        assert!(ids(&mut shards).is_empty(), "nothing holds work yet");
        // Looked at mutably without work: listed, then dropped when walked.
        shards.get_mut("a");
        assert!(ids(&mut shards).is_empty());
        for id in ["d", "b"] {
            shards
                .get_mut(id)
                .expect("shard")
                .add(ticket("data", now), now);
        }
        assert_eq!(ids(&mut shards), ["b", "d"], "in slot order");
        // "b" leaves: "d" moves into its slot and stays busy.
        let gone = shards.remove("b").expect("removed");
        assert!(gone.holds_work());
        assert_eq!(ids(&mut shards), ["d"]);
        assert_eq!(shards.keys().count(), 3);
        assert!(shards.get("d").is_some_and(ShardState::holds_work));
        assert_eq!(shards.busy().count(), 1);
        assert!(shards.slot("c").is_some() && shards.slot("b").is_none());
        // Emptied: dropped from the list on the next walk.
        shards.get_mut("d").expect("shard").drain();
        assert!(ids(&mut shards).is_empty());
    }

    #[tokio::test]
    async fn map_positions_find_slots_until_a_slot_moves_or_the_map_changes() {
        let (cfg, now) = (Config::default(), Instant::now());
        let mut shards = Shards::default();
        for id in ["a", "b", "c"] {
            shards.insert(id.into(), shard_named(id, &cfg, now));
        }
        let id_at = |shards: &mut Shards, position: usize, id: &str| {
            let slot = shards.slot_at(position, id)?;
            Some(shards.at_mut(slot).range.shard_id.clone())
        };
        // The map lists them c, a, b; "d" is in the map but has no state yet.
        assert_eq!(id_at(&mut shards, 1, "a").as_deref(), Some("a"));
        assert_eq!(id_at(&mut shards, 0, "c").as_deref(), Some("c"));
        assert_eq!(id_at(&mut shards, 3, "d"), None);
        assert_eq!(
            id_at(&mut shards, 1, "a").as_deref(),
            Some("a"),
            "remembered"
        );
        // "a" leaves and "c" moves into its slot: positions are looked up afresh.
        shards.remove("a");
        assert_eq!(id_at(&mut shards, 0, "c").as_deref(), Some("c"));
        assert_eq!(id_at(&mut shards, 2, "b").as_deref(), Some("b"));
        // A new map puts "b" first.
        shards.forget_positions();
        assert_eq!(id_at(&mut shards, 0, "b").as_deref(), Some("b"));
        assert_eq!(id_at(&mut shards, 1, "c").as_deref(), Some("c"));
    }

    #[tokio::test]
    async fn an_entry_finds_its_shard_by_slot_or_after_a_move_by_id() {
        let (cfg, now) = (Config::default(), Instant::now());
        let mut shards = Shards::default();
        for id in ["a", "b", "c"] {
            shards.insert(id.into(), shard_named(id, &cfg, now));
        }
        let c = shards.get("c").expect("shard").id.clone();
        let slot = shards.slot("c").expect("slot");
        assert!(shards.of_entry(slot, &c).is_some_and(|s| s.id == c));
        // "a" leaves and "c" moves into its slot: the old slot now holds nothing or another.
        shards.remove("a");
        assert_ne!(shards.slot("c"), Some(slot));
        let found = shards.of_entry_mut(slot, &c).expect("found by id");
        assert_eq!(&*found.id, "c");
        // A slot holding a shard of the same name made afresh is not taken for it.
        shards.insert("c".into(), shard_named("c", &cfg, now));
        let now_c = shards.slot("c").expect("slot");
        assert!(
            shards
                .of_entry(now_c, &c)
                .is_some_and(|s| s.range.shard_id == "c")
        );
        assert!(shards.of_entry(usize::MAX, &c).is_some(), "no slot: by id");
    }

    #[tokio::test]
    async fn gates_are_set_for_shards_touched_until_they_settle() {
        let (cfg, now) = (Config::default(), Instant::now());
        let mut shards = Shards::default();
        for id in ["a", "b", "c"] {
            shards.insert(id.into(), shard_named(id, &cfg, now));
        }
        let visits = |shards: &mut Shards, settled: bool| {
            let mut seen = Vec::new();
            shards.set_gates(|s| {
                seen.push(s.range.shard_id.clone());
                settled
            });
            seen.sort();
            seen
        };
        assert!(visits(&mut shards, true).is_empty(), "none touched yet");
        shards.get_mut("c");
        shards
            .get_mut("a")
            .expect("shard")
            .add(ticket("data", now), now);
        assert_eq!(visits(&mut shards, false), ["a", "c"]);
        // Settled: "c" leaves; "a" holds work and stays until it is sent.
        assert_eq!(visits(&mut shards, true), ["a", "c"]);
        assert_eq!(visits(&mut shards, true), ["a"]);
        shards.get_mut("a").expect("shard").drain();
        assert_eq!(visits(&mut shards, true), ["a"]);
        assert!(visits(&mut shards, true).is_empty());
    }
}
