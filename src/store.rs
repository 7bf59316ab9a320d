//! The online feature store: the latest feature vector of every live key, as of
//! the key's latest scored event, for `GET /features/{key}` and `POST /features`.
//!
//! Workers publish into it at the end of each scoring activation (one batch, a
//! write lock per shard touched); lookups read a shard under a read lock and never
//! go through the dataflow. A key leaves the store when its feature state expires
//! (the TTL sweep), so the store is as bounded as the state.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde::Serialize;

const SHARDS: usize = 64;

/// One key's latest features.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredFeatures {
    pub event_time_ms: i64,
    pub values: Vec<Option<f64>>,
}

pub struct FeatureStore {
    names: Vec<String>,
    shards: Vec<RwLock<HashMap<String, Arc<StoredFeatures>>>>,
}

/// The JSON of one lookup: the `features` contract of DESIGN.md.
#[derive(Serialize)]
pub struct FeatureRecord<'a> {
    pub key: &'a str,
    pub event_time: i64,
    pub features: serde_json::Map<String, serde_json::Value>,
}

impl FeatureStore {
    pub fn new(names: Vec<String>) -> Arc<FeatureStore> {
        Arc::new(FeatureStore { names, shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect() })
    }

    fn shard(&self, key: &str) -> &RwLock<HashMap<String, Arc<StoredFeatures>>> {
        &self.shards[(crate::types::key_hash(key) as usize) % SHARDS]
    }

    /// Publishes a batch of latest vectors and removes expired keys.
    pub fn publish(&self, latest: &mut HashMap<String, StoredFeatures>, expired: &[String]) {
        // expired first: a key that left state and came back in the same batch stays
        for k in expired {
            self.shard(k).write().unwrap_or_else(|e| e.into_inner()).remove(k);
        }
        let mut by_shard: Vec<Vec<(String, StoredFeatures)>> = (0..SHARDS).map(|_| Vec::new()).collect();
        for (k, v) in latest.drain() {
            by_shard[(crate::types::key_hash(&k) as usize) % SHARDS].push((k, v));
        }
        for (i, batch) in by_shard.into_iter().enumerate() {
            if batch.is_empty() {
                continue;
            }
            let mut shard = self.shards[i].write().unwrap_or_else(|e| e.into_inner());
            for (k, v) in batch {
                shard.insert(k, Arc::new(v));
            }
        }
    }

    pub fn get(&self, key: &str) -> Option<Arc<StoredFeatures>> {
        self.shard(key).read().unwrap_or_else(|e| e.into_inner()).get(key).cloned()
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().unwrap_or_else(|e| e.into_inner()).len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The lookup's JSON, or `None` for an unknown key.
    pub fn record(&self, key: &str) -> Option<serde_json::Value> {
        let f = self.get(key)?;
        let features = self
            .names
            .iter()
            .zip(&f.values)
            .map(|(n, v)| (n.clone(), v.filter(|v| v.is_finite()).map_or(serde_json::Value::Null, serde_json::Value::from)))
            .collect();
        serde_json::to_value(FeatureRecord { key, event_time: f.event_time_ms, features }).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishes_replace_and_expire() {
        let store = FeatureStore::new(vec!["a".into(), "b".into()]);
        let mut batch = HashMap::from([("k".to_string(), StoredFeatures { event_time_ms: 5, values: vec![Some(1.0), None] })]);
        store.publish(&mut batch, &[]);
        assert!(batch.is_empty());
        assert_eq!(store.record("k").unwrap(), serde_json::json!({"key": "k", "event_time": 5, "features": {"a": 1.0, "b": null}}));
        let mut batch = HashMap::from([("k".to_string(), StoredFeatures { event_time_ms: 9, values: vec![Some(2.0), Some(3.0)] })]);
        store.publish(&mut batch, &[]);
        assert_eq!(store.get("k").unwrap().event_time_ms, 9);
        store.publish(&mut HashMap::new(), &["k".to_string()]);
        assert!(store.get("k").is_none() && store.is_empty());
    }
}
