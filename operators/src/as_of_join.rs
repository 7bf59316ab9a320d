//! Stream-table join "as of" event time (Flink's temporal join against a
//! versioned table): each stream event is paired with its key's table value as of
//! the event's time: the latest table update of the key with a time at or before
//! it (`None` if there is none, or it was a delete).
//!
//! The answer is final only once no table update at or before the event's time
//! can still come: when the table's watermark is above the event's time. So an
//! event waits until then (events leave in time order), and the output does not
//! depend on how the two inputs interleave. The table keeps, per key, only the
//! versions a waiting or future event can still need: every version after the
//! stream's watermark, and the last one at or before it.
//!
//! ```
//! use vigil_operators::as_of_join::AsOfJoin;
//! let mut join = AsOfJoin::<&str, &str>::new();
//! let mut out = Vec::new();
//! join.table("card1", 1_000, Some("FR"));
//! join.table("card1", 5_000, Some("DE"));
//! join.event("card1", 3_000, "tx-a", &mut out);   // waits: the table may still change before 3 s
//! assert!(out.is_empty());
//! join.table_watermark(4_000, &mut out);         // nothing at or before 3 s can come now
//! assert_eq!(out, vec![("card1".to_string(), 3_000, "tx-a", Some("FR"))]);
//! ```

use std::collections::BTreeMap;

use rustc_hash::FxHashMap as HashMap;
use serde::{Deserialize, Serialize};

/// An event with its key's value as of its time: (key, time, event, value).
pub type Joined<E, V> = (String, i64, E, Option<V>);

/// The join's state on one worker; see the module docs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AsOfJoin<E, V> {
    /// Per key: the table's versions by (time, arrival); `None` is a delete.
    versions: HashMap<String, BTreeMap<(i64, u64), Option<V>>>,
    /// Events waiting for the table's watermark, by (time, arrival).
    waiting: BTreeMap<(i64, u64), (String, E)>,
    table_watermark: i64,
    stream_watermark: i64,
    seq: u64,
}

impl<E, V: Clone> AsOfJoin<E, V> {
    pub fn new() -> Self {
        AsOfJoin { versions: HashMap::default(), waiting: BTreeMap::new(), table_watermark: i64::MIN, stream_watermark: i64::MIN, seq: 0 }
    }

    /// A table update of `key` at `time` (`None`: the key is deleted).
    pub fn table(&mut self, key: &str, time: i64, value: Option<V>) {
        self.seq += 1;
        match self.versions.get_mut(key) {
            Some(v) => v,
            None => self.versions.entry(key.to_owned()).or_default(),
        }
        .insert((time, self.seq), value);
    }

    /// A stream event: answered now if the table's watermark is above its time,
    /// else when it gets there.
    pub fn event(&mut self, key: &str, time: i64, event: E, out: &mut Vec<Joined<E, V>>) {
        if time < self.table_watermark {
            let value = self.value_as_of(key, time);
            out.push((key.to_owned(), time, event, value));
        } else {
            self.seq += 1;
            self.waiting.insert((time, self.seq), (key.to_owned(), event));
        }
    }

    /// No later table update is older than `watermark`: the events before it are answered.
    pub fn table_watermark(&mut self, watermark: i64, out: &mut Vec<Joined<E, V>>) {
        self.table_watermark = self.table_watermark.max(watermark);
        while let Some(entry) = self.waiting.first_entry() {
            if entry.key().0 >= self.table_watermark {
                break;
            }
            let ((time, _), (key, event)) = entry.remove_entry();
            let value = self.value_as_of(&key, time);
            out.push((key, time, event, value));
        }
    }

    /// No later stream event is older than `watermark`: table versions no event
    /// can need any more leave.
    pub fn stream_watermark(&mut self, watermark: i64) {
        self.stream_watermark = self.stream_watermark.max(watermark);
        // the oldest waiting event bounds what is still needed too
        let needed_from = self.waiting.first_key_value().map_or(self.stream_watermark, |((t, _), _)| (*t).min(self.stream_watermark));
        let table_watermark = self.table_watermark;
        self.versions.retain(|_, versions| {
            // keep the last version at or before `needed_from`, and all after it
            // (an update older than the kept one may still come, but it never
            // beats the kept one for an event at or after `needed_from`)
            let keep_from = versions.range(..=(needed_from, u64::MAX)).next_back().map(|(k, _)| *k);
            if let Some(k) = keep_from {
                *versions = versions.split_off(&k);
            }
            // a key whose only version is a delete is gone, once no update older
            // than the delete can come (it would be shadowed by the delete)
            let lone_delete = versions.len() == 1 && versions.iter().next().is_some_and(|((t, _), v)| v.is_none() && *t < table_watermark);
            !(lone_delete && keep_from.is_some())
        });
    }

    fn value_as_of(&self, key: &str, time: i64) -> Option<V> {
        self.versions.get(key)?.range(..=(time, u64::MAX)).next_back()?.1.clone()
    }

    /// Table versions kept, and events waiting.
    pub fn sizes(&self) -> (usize, usize) {
        (self.versions.values().map(BTreeMap::len).sum(), self.waiting.len())
    }

    /// Adds a snapshot's keys that `keep` accepts (restore into another worker
    /// count); watermarks merge by minimum.
    pub fn absorb(&mut self, other: AsOfJoin<E, V>, keep: impl Fn(&str) -> bool) {
        for (key, versions) in other.versions.into_iter().filter(|(k, _)| keep(k)) {
            for ((t, _), v) in versions {
                self.table(&key, t, v);
            }
        }
        for ((t, _), (key, e)) in other.waiting.into_iter().filter(|(_, (k, _))| keep(k)) {
            self.seq += 1;
            self.waiting.insert((t, self.seq), (key, e));
        }
        let merge = |mine: &mut i64, theirs: i64| *mine = if *mine == i64::MIN { theirs } else { (*mine).min(theirs) };
        merge(&mut self.table_watermark, other.table_watermark);
        merge(&mut self.stream_watermark, other.stream_watermark);
    }
}

impl<E, V: Clone> Default for AsOfJoin<E, V> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Input {
        Table(u8, i64, Option<u8>),
        Event(u8, i64),
    }

    fn inputs() -> impl Strategy<Value = Vec<Input>> {
        let one = prop_oneof![
            (0u8..3, 0i64..40, prop::option::weighted(0.8, 0u8..5)).prop_map(|(k, t, v)| Input::Table(k, t, v)),
            (0u8..3, 0i64..40).prop_map(|(k, t)| Input::Event(k, t)),
        ];
        prop::collection::vec(one, 0..60)
    }

    proptest! {
        /// Each side in time order up to a lag (as sources admit them), the two
        /// interleaved at random, watermarks after each input: every event is
        /// answered once, with the table's value as of its time among all
        /// table updates, and the state stays bounded by the watermarks.
        #[test]
        fn each_event_gets_its_keys_value_as_of_its_time(ins in inputs(), lag in 0i64..8) {
            let (mut tmax, mut smax) = (i64::MIN, i64::MIN);
            let mut join = AsOfJoin::<usize, u8>::new();
            let mut out = Vec::new();
            let (mut table, mut events) = (Vec::new(), Vec::new());
            for (i, input) in ins.iter().enumerate() {
                match *input {
                    Input::Table(k, t, v) => {
                        if t < tmax.saturating_sub(lag) { continue }
                        tmax = tmax.max(t);
                        table.push((k, t, i, v));
                        join.table(&format!("k{k}"), t, v);
                        join.table_watermark(tmax.saturating_sub(lag), &mut out);
                    }
                    Input::Event(k, t) => {
                        if t < smax.saturating_sub(lag) { continue }
                        smax = smax.max(t);
                        events.push((k, t, i));
                        join.event(&format!("k{k}"), t, i, &mut out);
                        join.stream_watermark(smax.saturating_sub(lag));
                    }
                }
            }
            join.table_watermark(i64::MAX, &mut out);
            let mut expected: Vec<(usize, Option<u8>)> = events
                .iter()
                .map(|(k, t, i)| {
                    // the latest update at or before t, ties by arrival
                    let v = table.iter().filter(|(tk, tt, _, _)| tk == k && tt <= t).max_by_key(|(_, tt, ti, _)| (*tt, *ti)).and_then(|u| u.3);
                    (*i, v)
                })
                .collect();
            let mut got: Vec<(usize, Option<u8>)> = out.iter().map(|(_, _, i, v)| (*i, *v)).collect();
            expected.sort();
            got.sort();
            prop_assert_eq!(got, expected);
        }
    }
}
