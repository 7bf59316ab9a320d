//! A map from keys to their state, split into [`SHARDS`] tables by the key's
//! hash, so that neither growing it nor sweeping it stops the stream for long.
//!
//! One hash table holding every key's state doubles in a single insert: at
//! ~57K keys of the fraud job's feature state that copy and its fresh pages
//! took 120-240 ms on one event, and every record read meanwhile waited (the
//! p99 latency through Kafka was those stalls). Split 64 ways, a table that
//! grows is 1/64 of the state, and the shards fill at slightly different
//! moments, so the copies spread over many batches.
//!
//! The shard is chosen from bits 40..46 of the key's Fx hash, the same hash
//! the tables use: a table's bucket comes from the low bits and its control
//! bytes from the top 7, which stay spread within a shard. Serialized as one
//! map (the bytes of a `HashMap` of the same entries), so checkpoints do not
//! change format.
//!
//! ```
//! use vigil_operators::shards::ShardedMap;
//! let mut m: ShardedMap<u32> = ShardedMap::default();
//! *m.get_or_insert_with("card-1", || 0) += 2;
//! *m.get_or_insert_with("card-1", || 0) += 1;
//! m.insert("card-2".into(), 7);
//! assert_eq!((m.len(), m.get_mut("card-1").copied()), (2, Some(3)));
//! m.retain(|_, v| *v > 5);
//! assert_eq!(m.keys().collect::<Vec<_>>(), vec!["card-2"]);
//! ```

use std::hash::BuildHasher;

use rustc_hash::FxBuildHasher;
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

type Table<V> = hashbrown::HashMap<String, V, FxBuildHasher>;

/// Number of shards (a power of two).
pub const SHARDS: usize = 64;

fn shard_of(key: &str) -> usize {
    ((FxBuildHasher.hash_one(key) >> 40) as usize) & (SHARDS - 1)
}

/// Keys (strings) to `V`, in [`SHARDS`] Fx hash tables.
#[derive(Clone, Debug)]
pub struct ShardedMap<V> {
    shards: Vec<Table<V>>,
    len: usize,
}

impl<V> Default for ShardedMap<V> {
    fn default() -> Self {
        ShardedMap { shards: (0..SHARDS).map(|_| Table::default()).collect(), len: 0 }
    }
}

impl<V> ShardedMap<V> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.shards[shard_of(key)].contains_key(key)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        self.shards[shard_of(key)].get_mut(key)
    }

    /// The value of `key`, inserted from `make` when absent.
    pub fn get_or_insert_with(&mut self, key: &str, make: impl FnOnce() -> V) -> &mut V {
        match self.shards[shard_of(key)].entry_ref(key) {
            hashbrown::hash_map::EntryRef::Occupied(e) => e.into_mut(),
            hashbrown::hash_map::EntryRef::Vacant(e) => {
                self.len += 1;
                e.insert(make())
            }
        }
    }

    pub fn insert(&mut self, key: String, value: V) -> Option<V> {
        let old = self.shards[shard_of(&key)].insert(key, value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Keeps the entries that `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(&String, &mut V) -> bool) {
        for table in &mut self.shards {
            table.retain(|k, v| keep(k, v));
        }
        self.len = self.shards.iter().map(|t| t.len()).sum();
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.shards.iter().flat_map(|s| s.keys())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &V)> {
        self.shards.iter().flatten()
    }
}

impl<V> IntoIterator for ShardedMap<V> {
    type Item = (String, V);
    type IntoIter = std::iter::Flatten<std::vec::IntoIter<Table<V>>>;
    fn into_iter(self) -> Self::IntoIter {
        self.shards.into_iter().flatten()
    }
}

impl<V: Serialize> Serialize for ShardedMap<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len))?;
        for (k, v) in self.iter() {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for ShardedMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for Entries<V> {
            type Value = ShardedMap<V>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map of keys to their state")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut map = ShardedMap::default();
                while let Some((k, v)) = access.next_entry::<String, V>()? {
                    map.insert(k, v);
                }
                Ok(map)
            }
        }
        deserializer.deserialize_map(Entries(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_as_the_hash_map_of_its_entries() {
        let mut m: ShardedMap<u64> = ShardedMap::default();
        let mut plain: rustc_hash::FxHashMap<String, u64> = Default::default();
        for i in 0..1000u64 {
            m.insert(format!("k{i}"), i);
            plain.insert(format!("k{i}"), i);
        }
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json, serde_json::to_value(&plain).unwrap());
        let back: ShardedMap<u64> = serde_json::from_value(json).unwrap();
        assert_eq!(back.len(), 1000);
        let mut entries: Vec<(String, u64)> = back.into_iter().collect();
        entries.sort_by_key(|e| e.1);
        assert_eq!(entries, (0..1000).map(|i| (format!("k{i}"), i)).collect::<Vec<_>>());
    }

    #[test]
    fn keys_spread_over_every_shard_and_the_count_follows_removals() {
        let mut m: ShardedMap<u64> = ShardedMap::default();
        for i in 0..64_000u64 {
            *m.get_or_insert_with(&format!("card-{i}"), || 0) += i;
        }
        let sizes: Vec<usize> = m.shards.iter().map(|s| s.len()).collect();
        assert!(sizes.iter().all(|n| (800..1200).contains(n)), "{sizes:?}");
        m.retain(|_, v| *v % 2 == 0);
        assert_eq!(m.len(), 32_000);
        assert_eq!(m.iter().count(), 32_000);
    }
}
