//! Enrichment from a table: a feature whose value is a column of the row that a
//! table (kept from a compacted topic: upserts, and deletes as tombstones) holds
//! for the event's key, or for the value of one of the event's string fields.
//!
//! The join is a lookup at the event, triggered by the stream side only (the
//! semantics of Kafka Streams' stream-table join and Flink's lookup join): the
//! event reads the row as the table stands when the event is scored; a later
//! update or delete of the row never changes a score already written, and a
//! deleted or unknown key gives null. The table itself lives in the engine (it
//! is fed by a Kafka consumer); [`Table`] is its engine-agnostic state.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

/// A feature read from a table row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lookup {
    pub name: String,
    /// Index of the table in the job's tables.
    pub table: usize,
    /// Index of the numeric column in the table's columns.
    pub column: usize,
    /// The kept string field holding the table key; `None`: the event's key.
    pub on: Option<usize>,
}

/// A table's current rows: key to numeric columns (NaN = absent).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Table {
    rows: FxHashMap<String, Box<[f64]>>,
}

impl Table {
    /// Inserts or replaces a row.
    pub fn upsert(&mut self, key: &str, columns: Box<[f64]>) {
        match self.rows.get_mut(key) {
            Some(row) => *row = columns,
            None => {
                self.rows.insert(key.to_owned(), columns);
            }
        }
    }

    /// Removes a row (a tombstone); unknown keys are fine.
    pub fn delete(&mut self, key: &str) {
        self.rows.remove(key);
    }

    /// A column of a key's row; `None` for an unknown key or an absent value.
    pub fn get(&self, key: &str, column: usize) -> Option<f64> {
        self.rows.get(key).and_then(|r| r.get(column).copied()).filter(|v| !v.is_nan())
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The table after any sequence of upserts and deletes is the last write
        /// per key, deletes removing it.
        #[test]
        fn a_table_is_the_last_write_per_key(ops in prop::collection::vec((0u8..8, prop::option::of(prop::option::of(0i32..100))), 0..200)) {
            let mut t = Table::default();
            let mut naive: Vec<(u8, Option<Option<i32>>)> = Vec::new();
            for (k, op) in &ops {
                let key = format!("k{k}");
                match op {
                    None => t.delete(&key),
                    Some(v) => t.upsert(&key, vec![v.map_or(f64::NAN, |v| v as f64)].into_boxed_slice()),
                }
                naive.push((*k, *op));
            }
            for k in 0u8..8 {
                let last = naive.iter().rev().find(|(kk, _)| *kk == k).and_then(|(_, op)| *op);
                prop_assert_eq!(t.get(&format!("k{k}"), 0), last.flatten().map(|v| v as f64));
            }
            prop_assert_eq!(t.len(), (0u8..8).filter(|k| naive.iter().rev().find(|(kk, _)| kk == k).is_some_and(|(_, op)| op.is_some())).count());
        }
    }
}
