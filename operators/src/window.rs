//! Per-key sliding-window features "as of" each event.
//!
//! Definition (the contract every later feature keeps): for an event `e` of key `k`
//! at event time `t`, a window feature of length `W` aggregates the key's *accepted*
//! events that precede `e` in its partition's offset order, plus `e` itself, whose
//! event time lies in `(t - W, t]`. An event is scored once, on exactly that set;
//! later events never change an earlier event's features.
//!
//! State per key is its events in event-time order (ties in arrival order). An entry
//! is dropped once no future query can reach it: every future event of a partition
//! has a time at or after the partition's watermark `wm`, so entries at or before
//! `wm - W_max` are dead. Keys whose last event is more than the TTL behind their
//! partition's watermark are dropped whole by [`FeatureState::sweep`]. Both rules
//! depend only on the partition's own records, so results are identical for any
//! number of workers.
//!
//! ```
//! use vigil_operators::{Agg, FeatureDef, FeatureState, WindowFeature};
//! let defs = vec![
//!     FeatureDef::Window(WindowFeature { name: "n_1m".into(), agg: Agg::Count, field: None, window_ms: 60_000 }),
//!     FeatureDef::Window(WindowFeature { name: "sum_1m".into(), agg: Agg::Sum, field: Some(0), window_ms: 60_000 }),
//!     FeatureDef::TimeSincePrev { name: "since_prev".into(), ttl_ms: 86_400_000 },
//! ];
//! let mut state = FeatureState::new(defs, 1);
//! let mut out = Vec::new();
//! state.observe("card-1", 0, 0, 1_000, &[5.0], &mut out);
//! state.observe("card-1", 0, 0, 30_000, &[7.0], &mut out);
//! assert_eq!(out, vec![Some(2.0), Some(12.0), Some(29.0)]);
//! state.observe("card-1", 0, 0, 61_000, &[1.0], &mut out); // 1_000 left the window
//! assert_eq!(out, vec![Some(2.0), Some(8.0), Some(31.0)]);
//! ```

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::aggregate::Agg;

/// An aggregate over a sliding event-time window ending at each event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowFeature {
    pub name: String,
    pub agg: Agg,
    /// Index of the numeric input field (into the values passed to `observe`).
    pub field: Option<usize>,
    pub window_ms: i64,
}

/// One feature computed per event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum FeatureDef {
    Window(WindowFeature),
    /// Seconds since the key's previous accepted event (in offset order); null for a
    /// key's first event and when the previous event is more than `ttl_ms` earlier.
    TimeSincePrev { name: String, ttl_ms: i64 },
}

impl FeatureDef {
    pub fn name(&self) -> &str {
        match self {
            FeatureDef::Window(w) => &w.name,
            FeatureDef::TimeSincePrev { name, .. } => name,
        }
    }
}

/// One key's retained events, in event-time order.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct KeyHistory {
    partition: u32,
    times: VecDeque<i64>,
    /// `fields` values per entry, flattened; NaN marks an absent value.
    values: VecDeque<f64>,
    last_time: Option<i64>,
}

/// Feature state of all keys seen by one worker.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FeatureState {
    defs: Vec<FeatureDef>,
    fields: usize,
    max_window_ms: i64,
    ttl_ms: i64,
    keys: HashMap<String, KeyHistory>,
    /// Latest watermark seen per partition (from the records themselves).
    watermarks: HashMap<u32, i64>,
    observed_since_sweep: u64,
}

/// How many observations between two sweeps of idle keys.
const SWEEP_EVERY: u64 = 1 << 16;

impl FeatureState {
    /// `fields` is the number of numeric values passed with each event.
    pub fn new(defs: Vec<FeatureDef>, fields: usize) -> Self {
        let max_window_ms = defs
            .iter()
            .filter_map(|d| match d {
                FeatureDef::Window(w) => Some(w.window_ms),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        let ttl_ms = defs
            .iter()
            .map(|d| match d {
                FeatureDef::Window(w) => w.window_ms,
                FeatureDef::TimeSincePrev { ttl_ms, .. } => *ttl_ms,
            })
            .max()
            .unwrap_or(0);
        FeatureState {
            defs,
            fields,
            max_window_ms,
            ttl_ms,
            keys: HashMap::new(),
            watermarks: HashMap::new(),
            observed_since_sweep: 0,
        }
    }

    pub fn defs(&self) -> &[FeatureDef] {
        &self.defs
    }

    /// Number of keys currently holding state.
    pub fn live_keys(&self) -> usize {
        self.keys.len()
    }

    /// Number of retained window entries over all keys.
    pub fn retained_events(&self) -> usize {
        self.keys.values().map(|h| h.times.len()).sum()
    }

    /// Adds an accepted event and writes its features (in `defs` order) into `out`.
    ///
    /// `watermark` is the event's partition watermark when it was read; the caller
    /// guarantees `time >= watermark` (late events never get here) and that events of
    /// one key arrive in partition offset order.
    pub fn observe(
        &mut self,
        key: &str,
        partition: u32,
        watermark: i64,
        time: i64,
        values: &[f64],
        out: &mut Vec<Option<f64>>,
    ) {
        debug_assert_eq!(values.len(), self.fields);
        let wm = self.watermarks.entry(partition).or_insert(watermark);
        *wm = (*wm).max(watermark);
        let horizon = wm.saturating_sub(self.max_window_ms);

        let history = match self.keys.get_mut(key) {
            Some(h) => h,
            None => self.keys.entry(key.to_owned()).or_default(),
        };
        history.partition = partition;
        while history.times.front().is_some_and(|&t| t <= horizon) {
            history.times.pop_front();
            history.values.drain(..self.fields);
        }
        let previous = history.last_time.replace(time);

        // Insert after every entry with time <= `time` (ties keep arrival order).
        let pos = history.times.partition_point(|&t| t <= time);
        history.times.insert(pos, time);
        for (i, v) in values.iter().enumerate() {
            history.values.insert(pos * self.fields + i, *v);
        }
        let end = pos + 1; // entries [.., end) have time <= `time`

        out.clear();
        for def in &self.defs {
            out.push(match def {
                FeatureDef::Window(w) => {
                    let lower = time.saturating_sub(w.window_ms);
                    let start = history.times.partition_point(|&t| t <= lower);
                    let fields = self.fields;
                    let values = &history.values;
                    match w.field {
                        Some(f) => w.agg.evaluate((start..end).map(|i| values[i * fields + f])),
                        None => w.agg.evaluate((start..end).map(|_| 0.0)),
                    }
                }
                FeatureDef::TimeSincePrev { ttl_ms, .. } => previous
                    .filter(|&p| time - p <= *ttl_ms)
                    .map(|p| (time - p) as f64 / 1000.0),
            });
        }

        self.observed_since_sweep += 1;
        if self.observed_since_sweep >= SWEEP_EVERY {
            self.sweep();
        }
    }

    /// Drops dead window entries and keys idle for longer than the TTL, judged by
    /// each key's partition watermark.
    pub fn sweep(&mut self) {
        self.observed_since_sweep = 0;
        let (fields, max_window, ttl) = (self.fields, self.max_window_ms, self.ttl_ms);
        let watermarks = &self.watermarks;
        self.keys.retain(|_, h| {
            let wm = watermarks.get(&h.partition).copied().unwrap_or(i64::MIN);
            let horizon = wm.saturating_sub(max_window);
            while h.times.front().is_some_and(|&t| t <= horizon) {
                h.times.pop_front();
                h.values.drain(..fields);
            }
            // A future event at t >= wm has t - last > ttl: the key's state is dead.
            let stale = h.last_time.is_none_or(|last| last < wm.saturating_sub(ttl));
            !(h.times.is_empty() && stale)
        });
    }
}
