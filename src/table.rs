//! Tables for stream-table joins, each kept from a compacted topic: the record
//! key is the table key, a JSON object payload upserts the row (its numeric
//! columns), a null payload (tombstone) deletes it.
//!
//! Each table has a loader thread in every process that reads all of the topic's
//! partitions (a global table, like Kafka Streams' GlobalKTable; the Kafka
//! loader is `crate::kafka::table`): at start it reads up to the end offsets
//! seen then (bootstrap) before the job scores its first event, and then follows
//! the topic live. Workers read rows under a read
//! lock of one shard (`lookup` features, see `vigil_operators::lookup`); the
//! loader applies each poll's records under one write lock per shard touched.
//! Bad records (a key that is not UTF-8, a payload that is not a JSON object, a
//! column of the wrong type) are skipped, leaving the row as it was, and counted
//! in `vigil_table_records_total{outcome="rejected"}`. The table is not
//! checkpointed: a restart bootstraps it again from the compacted topic.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use vigil_operators::lookup::Table;

use crate::metrics::Metrics;

const SHARDS: usize = 16;

pub use crate::spec::TableSpec;

/// A table shared between its loader and the workers.
pub struct SharedTable {
    name: String,
    columns: Vec<String>,
    shards: Vec<RwLock<Table>>,
    pub(crate) ready: AtomicBool,
}

impl std::fmt::Debug for SharedTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedTable").field("name", &self.name).field("columns", &self.columns).field("rows", &self.len()).finish()
    }
}

impl SharedTable {
    pub(crate) fn new(spec: &TableSpec) -> Arc<SharedTable> {
        Arc::new(SharedTable {
            name: spec.name.clone(),
            columns: spec.columns.clone(),
            shards: (0..SHARDS).map(|_| RwLock::new(Table::default())).collect(),
            ready: AtomicBool::new(false),
        })
    }

    /// A table loaded from records in memory (tests, examples, a snapshot read
    /// elsewhere): `(key, payload)` as on its compacted topic, `None` a
    /// tombstone; later records win. Bad records are skipped and counted, as the
    /// loader does.
    pub fn from_records(spec: &TableSpec, records: &[(Option<Vec<u8>>, Option<Vec<u8>>)], metrics: &Metrics) -> Arc<SharedTable> {
        let table = SharedTable::new(spec);
        let mut changes = Vec::new();
        for (i, (key, payload)) in records.iter().enumerate() {
            match decode(key.as_deref(), payload.as_deref(), &spec.columns) {
                Ok(change) => changes.push(change),
                Err(reason) => {
                    metrics.table_records.with_label_values(&[&spec.name, "rejected"]).inc();
                    tracing::warn!(table = %spec.name, record = i, reason, "table record skipped");
                }
            }
        }
        table.apply(&mut changes, metrics);
        table.ready.store(true, Ordering::SeqCst);
        table
    }

    /// The table's name (`[[table]] name`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The index of a column, as [`SharedTable::get`] takes it.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    fn shard(key: &str) -> usize {
        crate::types::key_hash(key) as usize % SHARDS
    }

    /// A column of the row of `key`, as the table stands now.
    pub fn get(&self, key: &str, column: usize) -> Option<f64> {
        self.shards[Self::shard(key)].read().unwrap_or_else(|e| e.into_inner()).get(key, column)
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().unwrap_or_else(|e| e.into_inner()).len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What one table record does.
#[derive(Debug, PartialEq)]
pub(crate) enum Change {
    Upsert(String, Box<[f64]>),
    Delete(String),
}

/// Decodes a table record, or says why it is rejected.
pub(crate) fn decode(key: Option<&[u8]>, payload: Option<&[u8]>, columns: &[String]) -> Result<Change, &'static str> {
    let key = std::str::from_utf8(key.ok_or("no_key")?).map_err(|_| "bad_key")?.to_owned();
    if key.is_empty() {
        return Err("bad_key");
    }
    let Some(bytes) = payload else { return Ok(Change::Delete(key)) };
    if bytes.len() > 64 * 1024 {
        return Err("oversize");
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|_| "not_json")?;
    let obj = value.as_object().ok_or("not_object")?;
    let row = columns
        .iter()
        .map(|c| match obj.get(c) {
            None | Some(serde_json::Value::Null) => Ok(f64::NAN),
            Some(serde_json::Value::Number(n)) => n.as_f64().ok_or("wrong_type"),
            Some(_) => Err("wrong_type"),
        })
        .collect::<Result<Vec<f64>, _>>()?;
    Ok(Change::Upsert(key, row.into_boxed_slice()))
}

impl SharedTable {
    /// Applies (and drains) `changes` in order: one write lock per shard touched.
    pub(crate) fn apply(&self, changes: &mut Vec<Change>, metrics: &Metrics) {
        let counter = |outcome: &str| metrics.table_records.with_label_values(&[&self.name, outcome]);
        let (upserts, deletes) = (counter("upsert"), counter("delete"));
        let mut by_shard: Vec<Vec<Change>> = (0..SHARDS).map(|_| Vec::new()).collect();
        for c in changes.drain(..) {
            let key = match &c {
                Change::Upsert(k, _) | Change::Delete(k) => k,
            };
            by_shard[SharedTable::shard(key)].push(c);
        }
        for (i, changes) in by_shard.into_iter().enumerate().filter(|(_, c)| !c.is_empty()) {
            let mut shard = self.shards[i].write().unwrap_or_else(|e| e.into_inner());
            for c in changes {
                match c {
                    Change::Upsert(k, row) => {
                        shard.upsert(&k, row);
                        upserts.inc();
                    }
                    Change::Delete(k) => {
                        shard.delete(&k);
                        deletes.inc();
                    }
                }
            }
        }
        metrics.table_rows.with_label_values(&[&self.name]).set(self.len() as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_decode_to_upserts_deletes_or_rejections() {
        let cols = vec!["limit".to_string(), "age".to_string()];
        assert_eq!(
            decode(Some(b"u1"), Some(br#"{"limit": 5, "other": "x"}"#), &cols).map(|c| format!("{c:?}")),
            Ok(format!("{:?}", Change::Upsert("u1".into(), vec![5.0, f64::NAN].into())))
        );
        assert_eq!(decode(Some(b"u1"), None, &cols), Ok(Change::Delete("u1".into())));
        assert_eq!(decode(None, Some(b"{}"), &cols), Err("no_key"));
        assert_eq!(decode(Some(&[0xff]), Some(b"{}"), &cols), Err("bad_key"));
        assert_eq!(decode(Some(b"u1"), Some(b"{nope"), &cols), Err("not_json"));
        assert_eq!(decode(Some(b"u1"), Some(b"[1]"), &cols), Err("not_object"));
        assert_eq!(decode(Some(b"u1"), Some(br#"{"limit": "high"}"#), &cols), Err("wrong_type"));
    }
}
