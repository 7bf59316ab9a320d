//! The upsert sink: a view of `(key, value)` pairs written as an upsert (compacted)
//! topic: once an epoch is complete, one record per key whose value changed in it,
//! and a tombstone (no value) for a key that left the view.
//!
//! A view may briefly hold two values for one key (a retraction and an addition
//! of the same epoch are netted out first, so this happens only when the view
//! itself is not a function of its key). The sink then writes the greatest value
//! and warns once, naming the sink: it is the graph's mistake, not the data's.
//!
//! Keys are written as text: a string key as itself, any other as its JSON.
//!
//! ```
//! use vigil::graph::{LocalRun, Source};
//! let ev = |k: &str, i: i64| format!(r#"{{"key":"{k}","ts":{}}}"#, 1_700_000_000_000 + i).into_bytes();
//! let out = LocalRun::new(1)
//!     .epoch_records(2)
//!     .topic("events", vec![vec![ev("a", 0), ev("b", 1), ev("a", 2)]])
//!     .run(|g| {
//!         g.source(Source::json("events")).view("events", |r| r.key.clone()).count().sink_upsert("counts");
//!         Ok(())
//!     })
//!     .unwrap();
//! let records: Vec<(u64, &str, Option<&str>)> = out.sink("counts").iter().map(|r| (r.epoch, r.key.as_str(), r.value.as_deref())).collect();
//! assert_eq!(records, vec![(0, "a", Some("1")), (0, "b", Some("1")), (1, "a", Some("2"))]);
//! ```

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;

use super::epochs::{EpochGate, Step};
use super::run::{Collector, SinkRecord};
use super::stream::StateLink;
use super::view::{hash_of, View, ViewData};

impl<'s, K: ViewData + Serialize, V: ViewData + Serialize> View<'s, (K, V)> {
    /// Writes the view's changes to the output named `name`; see the module docs.
    /// With checkpoints, what was last written per key is kept under `name`.
    pub fn sink_upsert(&self, name: &str) {
        self.shared.claim(name, 1);
        let link = StateLink::new(&self.shared, name);
        let start = self.shared.start_epoch();
        let collector = self.shared.collector.clone();
        let sink = name.to_owned();
        let pact = Exchange::new(|((k, _), _, _): &((K, V), u64, isize)| hash_of(k));
        // what the topic holds per key (after a restore: as of the checkpoint)
        let mut written: HashMap<K, V> = HashMap::new();
        let shared = self.shared.clone();
        self.shared.restore_each(name, "upsert sink", |rows: Vec<(K, V)>| written.extend(rows.into_iter().filter(|(k, _)| shared.owns(hash_of(k)))));
        let mut gate = EpochGate::complete_epochs(start);
        let mut current: HashMap<K, BTreeMap<V, isize>> = HashMap::new();
        let progress = self.shared.sink_progress();
        self.inner.inner.clone().sink(pact, &format!("UpsertSink({name})"), move |(input, frontier)| {
            input.for_each(|_cap, data| {
                // an update's own time may be later than its message's
                for (d, t, r) in data.drain(..) {
                    gate.push(t, || (), [(d, r)]);
                }
            });
            let mut out = Vec::new();
            gate.release(
                frontier.frontier().as_option().copied(),
                |e| link.is_checkpoint(e),
                |step| match step {
                    Step::Records(epoch, _, updates) => write_epoch(&collector, &sink, epoch, updates, &mut current, &mut written, &mut out),
                    Step::Snapshot(epoch) => link.report(epoch, || bincode::serialize(&written.iter().collect::<Vec<_>>()).map_err(Into::into)),
                    Step::Ended(epoch) => link.report_last(epoch, || bincode::serialize(&written.iter().collect::<Vec<_>>()).map_err(Into::into)),
                },
            );
            if !out.is_empty() {
                collector.write(&sink, &mut out);
            }
            progress.passed(frontier.frontier().as_option().copied());
        });
    }
}

/// Applies one complete epoch's updates and writes each key whose value changed.
fn write_epoch<K: ViewData + Serialize, V: ViewData + Serialize>(
    collector: &Collector,
    sink: &str,
    epoch: u64,
    updates: impl IntoIterator<Item = ((K, V), isize)>,
    current: &mut HashMap<K, BTreeMap<V, isize>>,
    written: &mut HashMap<K, V>,
    out: &mut Vec<SinkRecord>,
) {
    let mut touched = BTreeSet::new();
    for ((k, v), r) in updates {
        let values = current.entry(k.clone()).or_default();
        let n = values.entry(v.clone()).or_default();
        *n += r;
        if *n == 0 {
            values.remove(&v);
        }
        if values.is_empty() {
            current.remove(&k);
        }
        touched.insert(k);
    }
    for k in touched {
        let now = current.get(&k).and_then(|values| {
            if values.len() > 1 {
                collector.warn(format!(
                    "upsert sink `{sink}`: the view holds {} values for one key; writing the greatest (is the view a function of its key?)",
                    values.len()
                ));
            }
            values.iter().filter(|(_, n)| **n > 0).map(|(v, _)| v).next_back().cloned()
        });
        if now.as_ref() == written.get(&k) {
            continue;
        }
        let value = now.as_ref().map(|v| serde_json::to_string(v).unwrap_or_default());
        out.push(SinkRecord { epoch, key: key_text(&k), time_ms: 0, value });
        match now {
            Some(v) => written.insert(k, v),
            None => written.remove(&k),
        };
    }
}

/// A key as the record key: a string as itself, anything else as JSON.
fn key_text<K: Serialize>(k: &K) -> String {
    match serde_json::to_value(k) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(v) => v.to_string(),
        Err(e) => format!("<unserializable key: {e}>"),
    }
}
