//! Per-key sliding-window features "as of" each event.
//!
//! Definition (the contract every later feature keeps): for an event `e` of key `k`
//! at event time `t`, a window feature of length `W` aggregates the key's *accepted*
//! events that precede `e` in its partition's offset order, plus `e` itself, whose
//! event time lies in `(t - W, t]`. An event is scored once, on exactly that set;
//! later events never change an earlier event's features.
//!
//! State per key is its events in event-time order (ties in arrival order), plus
//! one running [`TailWindow`] per distinct window length, positioned at the key's
//! latest event time. An event at or after that time (the usual case) reads its
//! features from the running windows in O(1) amortized; an event that arrives out
//! of order is added to them in place and its own features come from one scan of
//! its window. Sums are fixed point, so both paths agree bit for bit. An entry
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
//!     FeatureDef::Window(WindowFeature::sliding("n_1m", Agg::Count, None, 60_000)),
//!     FeatureDef::Window(WindowFeature::sliding("sum_1m", Agg::Sum, Some(0), 60_000)),
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

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use rustc_hash::FxHashMap as HashMap;

use crate::shards::ShardedMap;

use serde::{Deserialize, Serialize};

use crate::aggregate::Agg;
use crate::closing::{ClosedWindow, OpenWindows};
use crate::decayed::DecayRun;
pub use crate::decayed::{DecayKind, Decayed};
use crate::distinct::{Distinct, DistinctRun, Tagged, ABSENT};
use crate::hll::{ApproxDistinct, HllPanes};
use crate::kinds::{Emit, KindRun, Retained, Span, WindowKind};
use crate::lookup::Lookup;
use crate::panes::{Panes, RatioToMean};
use crate::tail::{TailWindow, Tracked};

mod migrate;
pub use migrate::FeatureMigration;

/// An aggregate over an event-time window: sliding (ending at each event),
/// tumbling, hopping or session (see [`crate::kinds`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowFeature {
    pub name: String,
    pub agg: Agg,
    /// Index of the numeric input field (into the values passed to `observe`).
    pub field: Option<usize>,
    /// The window's size (sessions: unused, 0).
    pub window_ms: i64,
    #[serde(default)]
    pub kind: WindowKind,
    #[serde(default)]
    pub emit: Emit,
}

impl WindowFeature {
    /// A sliding window of `window_ms` ending at each event, emitted on update.
    pub fn sliding(name: &str, agg: Agg, field: Option<usize>, window_ms: i64) -> Self {
        WindowFeature { name: name.into(), agg, field, window_ms, kind: WindowKind::Sliding, emit: Emit::OnUpdate }
    }
}

/// One feature computed per event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum FeatureDef {
    Window(WindowFeature),
    /// Seconds since the key's previous accepted event (in offset order); null for a
    /// key's first event and when the previous event is more than `ttl_ms` earlier.
    TimeSincePrev {
        name: String,
        ttl_ms: i64,
    },
    /// An exponentially time-decayed aggregate with a half-life (an engagement
    /// score): see [`Decayed`].
    Decayed(Decayed),
    /// The field's value at the key's previous accepted event (in offset order);
    /// null for a key's first event, when that event lacked the field, or when it
    /// is more than `ttl_ms` earlier (the last value before this one).
    PrevValue {
        name: String,
        field: usize,
        ttl_ms: i64,
    },
    /// The field's value over its mean in the key's long window, from panes:
    /// see [`RatioToMean`].
    RatioToMean(RatioToMean),
    /// Exact count of distinct values of a string field over a sliding window:
    /// see [`Distinct`].
    Distinct(Distinct),
    /// Approximate distinct count (HyperLogLog) over a long window, from panes:
    /// see [`ApproxDistinct`].
    ApproxDistinct(ApproxDistinct),
    /// A column of a table row (a stream-table join): filled in by the engine,
    /// which holds the table; `observe` leaves it null. See [`Lookup`].
    Lookup(Lookup),
}

impl FeatureDef {
    pub fn name(&self) -> &str {
        match self {
            FeatureDef::Window(w) => &w.name,
            FeatureDef::TimeSincePrev { name, .. } => name,
            FeatureDef::Decayed(d) => &d.name,
            FeatureDef::PrevValue { name, .. } => name,
            FeatureDef::RatioToMean(r) => &r.name,
            FeatureDef::Distinct(d) => &d.name,
            FeatureDef::ApproxDistinct(d) => &d.name,
            FeatureDef::Lookup(l) => &l.name,
        }
    }
}

/// A distinct window (kind and length) and what its features read.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct WindowPlan {
    len_ms: i64,
    kind: WindowKind,
    tracked: Tracked,
}

/// One key's retained events, in event-time order.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct KeyHistory {
    partition: u32,
    times: VecDeque<i64>,
    /// `fields` values per entry, flattened; NaN marks an absent value.
    values: VecDeque<f64>,
    /// Time of the key's previous event in offset order.
    last_time: Option<i64>,
    /// One running window per plan, at the latest time in `times`.
    tails: Vec<TailWindow>,
    /// The state of the less common features, boxed so that a key of a job
    /// without them (and the key table's buckets) stays small.
    x: Option<Box<Extras>>,
}

/// Per-key state of the features beyond sliding windows.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Extras {
    /// One running sum per decayed feature (in `defs` order of those).
    decayed: Vec<DecayRun>,
    /// The fields of the key's previous event in offset order (NaN = absent).
    last_values: Vec<f64>,
    /// One running window per tumbling, hopping or session plan (by plan index).
    runs: Vec<KindRun>,
    /// Open windows per on-close feature (in `FeatureState::closing` order).
    open: Vec<OpenWindows>,
    /// The time of the key's pending close timer.
    timer_at: Option<i64>,
    /// Evicted events per ratio-to-mean feature (in `defs` order of those).
    panes: Vec<Panes>,
    /// Tags per retained entry (`FeatureState::tags` each), for distinct counts.
    tags: VecDeque<u64>,
    /// One running multiset per distinct feature (in `defs` order of those).
    distinct: Vec<DistinctRun>,
    /// Pane sketches per approximate distinct feature (in `defs` order of those).
    hll: Vec<HllPanes>,
}

/// Feature state of all keys seen by one worker.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FeatureState {
    defs: Vec<FeatureDef>,
    /// For each def: the plan index of a window feature.
    plan_of: Vec<Option<usize>>,
    plans: Vec<WindowPlan>,
    fields: usize,
    /// Tags (hashed string fields) passed with each event, for distinct counts.
    tags: usize,
    max_window_ms: i64,
    ttl_ms: i64,
    /// Histories inline (boxing them all cost ~15% of the throughput, measured),
    /// kept small: under churn the table's deleted slots are reused only at a
    /// rehash, so it doubles once, and every bucket counts. In shards, so that
    /// it grows a 64th at a time (`shards.rs`).
    keys: ShardedMap<KeyHistory>,
    /// Latest watermark seen per partition (from the records themselves).
    watermarks: HashMap<u32, i64>,
    observed_since_sweep: u64,
    /// Keys dropped by sweeps since the last `take_expired`, each with its
    /// partition's watermark then (when it left: past its last event).
    #[serde(skip)]
    expired: Vec<(String, i64)>,
    /// The definitions (indices) of the on-close features.
    closing: Vec<usize>,
    /// Close timers per partition: (time, key), earliest first; one per key with open windows.
    timers: HashMap<u32, BinaryHeap<Reverse<(i64, String)>>>,
    /// Windows closed by a sweep, waiting for `close_due`.
    #[serde(skip)]
    closed: Vec<ClosedWindow>,
    /// Scratch: per plan, the current event's window.
    #[serde(skip)]
    scratch: Vec<Span>,
}

/// How many observations between two sweeps of idle keys. (A sweep of one shard
/// at a time was tried: the keys of a shard swept early, while the stream's
/// watermark still lagged a partition's, left with an end time before their
/// last event's.)
const SWEEP_EVERY: u64 = 1 << 16;

impl FeatureState {
    /// `fields` is the number of numeric values passed with each event.
    pub fn new(defs: Vec<FeatureDef>, fields: usize) -> Self {
        let mut plans: Vec<WindowPlan> = Vec::new();
        let mut plan_of = Vec::new();
        for d in &defs {
            plan_of.push(match d {
                FeatureDef::Window(w) => {
                    let i = match plans.iter().position(|p| p.len_ms == w.window_ms && p.kind == w.kind) {
                        Some(i) => i,
                        None => {
                            plans.push(WindowPlan { len_ms: w.window_ms, kind: w.kind, tracked: Tracked::default() });
                            plans.len() - 1
                        }
                    };
                    plans[i].tracked.max |= w.agg == Agg::Max;
                    plans[i].tracked.min |= w.agg == Agg::Min;
                    plans[i].tracked.sum_sq |= matches!(w.agg, Agg::Variance | Agg::Std);
                    if let Some(f) = w.field {
                        plans[i].tracked.fields |= 1u64.checked_shl(f as u32).unwrap_or(0);
                    }
                    Some(i)
                }
                FeatureDef::TimeSincePrev { .. }
                | FeatureDef::Decayed(_)
                | FeatureDef::PrevValue { .. }
                | FeatureDef::RatioToMean(_)
                | FeatureDef::Distinct(_)
                | FeatureDef::ApproxDistinct(_)
                | FeatureDef::Lookup(_) => None,
            });
        }
        let distinct_reach = defs.iter().filter_map(|d| if let FeatureDef::Distinct(d) = d { Some(d.window_ms) } else { None });
        let max_window_ms = plans.iter().map(|p| p.kind.reach(p.len_ms)).chain(distinct_reach).max().unwrap_or(0);
        let tags = defs
            .iter()
            .filter_map(|d| match d {
                FeatureDef::Distinct(d) => Some(d.tag + 1),
                FeatureDef::ApproxDistinct(d) => Some(d.tag + 1),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        let closing = defs.iter().enumerate().filter(|(_, d)| matches!(d, FeatureDef::Window(w) if w.emit == Emit::OnClose)).map(|(i, _)| i).collect();
        let ttl_ms = defs
            .iter()
            .map(|d| match d {
                FeatureDef::Window(w) => w.kind.ttl(w.window_ms),
                FeatureDef::TimeSincePrev { ttl_ms, .. } => *ttl_ms,
                FeatureDef::Decayed(d) => d.ttl_ms,
                FeatureDef::PrevValue { ttl_ms, .. } => *ttl_ms,
                FeatureDef::RatioToMean(r) => r.window_ms,
                FeatureDef::Distinct(d) => d.window_ms,
                FeatureDef::ApproxDistinct(d) => d.window_ms,
                FeatureDef::Lookup(_) => 0,
            })
            .max()
            .unwrap_or(0);
        FeatureState {
            defs,
            plan_of,
            plans,
            fields,
            tags,
            max_window_ms,
            ttl_ms,
            keys: ShardedMap::default(),
            watermarks: HashMap::default(),
            observed_since_sweep: 0,
            expired: Vec::new(),
            closing,
            timers: HashMap::default(),
            closed: Vec::new(),
            scratch: Vec::new(),
        }
    }

    pub fn defs(&self) -> &[FeatureDef] {
        &self.defs
    }

    /// Whether `key` holds state.
    pub fn is_live(&self, key: &str) -> bool {
        self.keys.contains_key(key)
    }

    /// Number of keys currently holding state.
    pub fn live_keys(&self) -> usize {
        self.keys.len()
    }

    /// Moves into `self` the keys of `other` that `keep` accepts: restoring a
    /// checkpoint taken with a different number of workers. Both must compute the
    /// same features from the same fields.
    pub fn absorb(&mut self, other: FeatureState, keep: impl Fn(&str) -> bool) -> Result<(), String> {
        if self.defs != other.defs || self.fields != other.fields {
            return Err("the checkpointed feature definitions differ from the job's".into());
        }
        for (key, history) in other.keys {
            if keep(&key) {
                // timers are rebuilt for the keys kept
                if let Some(at) = history.x.as_ref().and_then(|x| x.timer_at) {
                    self.timers.entry(history.partition).or_default().push(Reverse((at, key.clone())));
                }
                self.keys.insert(key, history);
            }
        }
        for (partition, wm) in other.watermarks {
            let mine = self.watermarks.entry(partition).or_insert(wm);
            *mine = (*mine).max(wm);
        }
        Ok(())
    }

    /// Adds an accepted event and writes its features (in `defs` order) into `out`.
    ///
    /// `watermark` is the event's partition watermark when it was read; the caller
    /// guarantees `time >= watermark` (late events never get here) and that events of
    /// one key arrive in partition offset order.
    pub fn observe(&mut self, key: &str, partition: u32, watermark: i64, time: i64, values: &[f64], out: &mut Vec<Option<f64>>) {
        self.observe_tagged(key, partition, watermark, time, values, &[], out)
    }

    /// How many tags (hashed string fields, see [`crate::distinct::tag_of`]) the
    /// distinct features read from each event.
    pub fn tags(&self) -> usize {
        self.tags
    }

    /// [`FeatureState::observe`] with the event's tags (missing ones are absent).
    #[allow(clippy::too_many_arguments)]
    pub fn observe_tagged(&mut self, key: &str, partition: u32, watermark: i64, time: i64, values: &[f64], tags: &[u64], out: &mut Vec<Option<f64>>) {
        debug_assert_eq!(values.len(), self.fields);
        let wm = self.watermarks.entry(partition).or_insert(watermark);
        *wm = (*wm).max(watermark);
        let horizon = wm.saturating_sub(self.max_window_ms);
        let fields = self.fields;

        let plans = &self.plans;
        let history = self.keys.get_or_insert_with(key, || KeyHistory {
            partition,
            times: VecDeque::new(),
            values: VecDeque::new(),
            last_time: None,
            // a tail per plan; other kinds keep a `KindRun` instead (an empty tail allocates nothing)
            tails: plans.iter().map(|p| if p.kind == WindowKind::Sliding { TailWindow::new(fields) } else { TailWindow::new(0) }).collect(),
            x: None,
        });
        history.partition = partition;
        history.evict(horizon, fields, self.tags, &self.defs, &self.plans);
        let previous = history.last_time.replace(time);
        // the previous event's fields, kept only for jobs with a prev_value feature
        let previous_values = match self.defs.iter().any(|d| matches!(d, FeatureDef::PrevValue { .. })) {
            true => std::mem::replace(&mut history.x.get_or_insert_with(Default::default).last_values, values.to_vec()),
            false => Vec::new(),
        };

        // Insert after every entry with time <= `time` (ties keep arrival order).
        let pos = match history.times.back() {
            Some(&last) if last > time => history.times.partition_point(|&t| t <= time),
            _ => history.times.len(),
        };
        let in_order = pos == history.times.len();
        history.times.insert(pos, time);
        for (i, v) in values.iter().enumerate() {
            history.values.insert(pos * fields + i, *v);
        }
        if self.tags > 0 {
            let x = history.x.get_or_insert_with(Default::default);
            for i in 0..self.tags {
                x.tags.insert(pos * self.tags + i, tags.get(i).copied().unwrap_or(ABSENT));
            }
        }
        self.scratch.resize_with(self.plans.len(), || Span::new(fields));
        if self.plans.iter().any(|p| p.kind != WindowKind::Sliding) {
            let x = history.x.get_or_insert_with(Default::default);
            if x.runs.len() < self.plans.len() {
                x.runs.resize_with(self.plans.len(), KindRun::default);
            }
        }
        for (i, ((plan, tail), scratch)) in self.plans.iter().zip(&mut history.tails).zip(&mut self.scratch).enumerate() {
            if plan.kind != WindowKind::Sliding {
                let retained = Retained { times: &history.times, values: &history.values, fields };
                let x = history.x.as_mut().expect("kind runs exist");
                x.runs[i].observe(plan.kind, plan.len_ms, &retained, pos, in_order, time, values, scratch);
                continue;
            }
            tail.inserted(pos, time, values, plan.tracked);
            if in_order {
                tail.advance(time.saturating_sub(plan.len_ms), &history.times, &history.values, fields, plan.tracked);
                scratch.count = tail.count();
                for (i, s) in scratch.fields.iter_mut().enumerate() {
                    *s = tail.summary(i);
                }
            } else {
                // Out of order: this event's window is not the tail. Without
                // extremes, the tail less its later events plus its window's events
                // before the tail's, when that is less work (an event a little late
                // on a busy key); else a scan of its window. Sums are exact both ways.
                let lower = time.saturating_sub(plan.len_ms);
                let first = history.times.partition_point(|&t| t <= lower);
                let (len, start) = (history.times.len(), tail.start());
                if !plan.tracked.max && !plan.tracked.min && pos >= start && (len - 1 - pos) + (start - first) < pos + 1 - first {
                    scratch.count = tail.count() - (len - 1 - pos) as u64 + (start - first) as u64;
                    for (i, s) in scratch.fields.iter_mut().enumerate().filter(|(i, _)| plan.tracked.uses(*i)) {
                        *s = tail.summary(i);
                        for e in pos + 1..len {
                            s.remove_counted(history.values[e * fields + i]);
                        }
                        for e in first..start {
                            s.add(history.values[e * fields + i]);
                        }
                    }
                    continue;
                }
                scratch.count = (pos + 1 - first) as u64;
                for (i, s) in scratch.fields.iter_mut().enumerate() {
                    *s = Default::default();
                    for e in first..=pos {
                        s.add(history.values[e * fields + i]);
                    }
                }
            }
        }
        if !self.closing.is_empty() {
            let x = history.x.get_or_insert_with(Default::default);
            x.open.resize_with(self.closing.len(), OpenWindows::default);
            let mut next = None::<i64>;
            for (open, d) in x.open.iter_mut().zip(&self.closing) {
                let FeatureDef::Window(w) = &self.defs[*d] else { unreachable!("on-close features are windows") };
                open.add(w.kind, w.window_ms, time, values);
                if let Some(c) = open.next_close(w.kind) {
                    next = Some(next.map_or(c, |n| n.min(c)));
                }
            }
            if let Some(at) = next.filter(|at| x.timer_at.is_none_or(|t| *at < t)) {
                x.timer_at = Some(at);
                self.timers.entry(partition).or_default().push(Reverse((at, key.to_owned())));
            }
        }

        out.clear();
        let mut decayed_index = 0;
        let mut ratio_index = 0;
        let mut distinct_index = 0;
        let mut hll_index = 0;
        for (def, plan) in self.defs.iter().zip(&self.plan_of) {
            out.push(match def {
                FeatureDef::Window(w) => {
                    let span = &self.scratch[plan.expect("window features have a plan")];
                    w.agg.finish(span.count, w.field.map(|f| &span.fields[f]))
                }
                FeatureDef::TimeSincePrev { ttl_ms, .. } => previous.filter(|&p| time - p <= *ttl_ms).map(|p| (time - p) as f64 / 1000.0),
                FeatureDef::Decayed(d) => {
                    decayed_index += 1;
                    history.decayed_value(decayed_index - 1, d, pos, in_order, time, values, fields)
                }
                FeatureDef::PrevValue { field, ttl_ms, .. } => {
                    previous.filter(|&p| time - p <= *ttl_ms).and_then(|_| previous_values.get(*field).copied()).filter(|v| !v.is_nan())
                }
                FeatureDef::RatioToMean(r) => {
                    ratio_index += 1;
                    history.ratio_value(ratio_index - 1, r, pos, time, values[r.field], fields)
                }
                FeatureDef::Distinct(d) => {
                    distinct_index += 1;
                    let x = history.x.get_or_insert_with(Default::default);
                    if x.distinct.len() < distinct_index {
                        x.distinct.push(DistinctRun::default());
                    }
                    let tagged = Tagged { times: &history.times, tags: &x.tags, stride: self.tags };
                    Some(x.distinct[distinct_index - 1].observe(d, &tagged, pos, in_order, time) as f64)
                }
                FeatureDef::ApproxDistinct(d) => {
                    hll_index += 1;
                    let x = history.x.get_or_insert_with(Default::default);
                    if x.hll.len() < hll_index {
                        x.hll.push(HllPanes::default());
                    }
                    let from = d.start(time);
                    let first = history.times.partition_point(|&t| t < from);
                    let Extras { tags, hll, .. } = &mut **x;
                    let stride = self.tags;
                    let tag = tags[pos * stride + d.tag];
                    Some(hll[hll_index - 1].observe(d, from, time, tag, in_order, (first..=pos).map(|e| tags[e * stride + d.tag])))
                }
                FeatureDef::Lookup(_) => None,
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
        let (watermarks, defs, plans, closing, stride) = (&self.watermarks, &self.defs, &self.plans, &self.closing, self.tags);
        let (expired, closed) = (&mut self.expired, &mut self.closed);
        self.keys.retain(|key, h| {
            let wm = watermarks.get(&h.partition).copied().unwrap_or(i64::MIN);
            h.evict(wm.saturating_sub(max_window), fields, stride, defs, plans);
            // A future event at t >= wm has t - last > ttl: the key's state is dead.
            let stale = h.last_time.is_none_or(|last| last < wm.saturating_sub(ttl));
            let dead = h.times.is_empty() && stale;
            if dead {
                // its windows are all past their ends (the TTL covers every window)
                h.close(key, i64::MAX, defs, closing, closed);
                expired.push((key.clone(), wm));
            }
            !dead
        });
    }

    /// Moves every window that its partition's watermark has closed to `out`
    /// (on-close features), in the order of their ends per partition.
    pub fn close_due(&mut self, out: &mut Vec<ClosedWindow>) {
        out.append(&mut self.closed);
        let FeatureState { timers, keys, watermarks, defs, closing, .. } = self;
        for (partition, heap) in timers.iter_mut() {
            let wm = watermarks.get(partition).copied().unwrap_or(i64::MIN);
            while heap.peek().is_some_and(|Reverse((at, _))| *at <= wm) {
                let Some(Reverse((at, key))) = heap.pop() else { break };
                let Some(h) = keys.get_mut(&key) else { continue };
                if h.x.as_ref().and_then(|x| x.timer_at) != Some(at) {
                    continue; // superseded by an earlier timer
                }
                if let Some(next) = h.close(&key, wm, defs, closing, out) {
                    if let Some(x) = h.x.as_mut() {
                        x.timer_at = Some(next);
                    }
                    heap.push(Reverse((next, key)));
                }
            }
        }
    }

    /// Closes every open window (the input ended: no later event can come).
    pub fn close_all(&mut self, out: &mut Vec<ClosedWindow>) {
        out.append(&mut self.closed);
        let mut keys: Vec<&String> = self.keys.keys().collect();
        keys.sort();
        let keys: Vec<String> = keys.into_iter().cloned().collect();
        for key in keys {
            if let Some(h) = self.keys.get_mut(&key) {
                h.close(&key, i64::MAX, &self.defs, &self.closing, out);
            }
        }
        self.timers.clear();
    }

    /// Keys whose state the sweeps dropped since the last call, each with the
    /// event time it left at: its partition's watermark at the sweep, which is
    /// past its last event by more than the longest feature's reach.
    pub fn take_expired(&mut self) -> Vec<(String, i64)> {
        std::mem::take(&mut self.expired)
    }
}

impl KeyHistory {
    /// Ratio feature `j` as of the event just inserted at `pos`: its evicted panes
    /// in the long window, plus the retained events in it up to `pos`.
    fn ratio_value(&mut self, j: usize, r: &RatioToMean, pos: usize, time: i64, value: f64, fields: usize) -> Option<f64> {
        let x = self.x.get_or_insert_with(Default::default);
        if x.panes.len() <= j {
            x.panes.resize_with(j + 1, Panes::default);
        }
        let from = r.start(time);
        let (mut present, mut sum) = x.panes[j].since(from);
        let first = self.times.partition_point(|&t| t < from);
        for e in first..=pos {
            let v = self.values[e * fields + r.field];
            if !v.is_nan() {
                present += 1;
                sum += crate::aggregate::to_fixed(v);
            }
        }
        r.finish(value, present, sum)
    }

    /// Closes this key's windows that `wm` closes; returns when the next one closes.
    fn close(&mut self, key: &str, wm: i64, defs: &[FeatureDef], closing: &[usize], out: &mut Vec<ClosedWindow>) -> Option<i64> {
        let Some(x) = self.x.as_mut() else { return None };
        x.timer_at = None;
        let mut next = None::<i64>;
        for (open, d) in x.open.iter_mut().zip(closing) {
            let FeatureDef::Window(w) = &defs[*d] else { continue };
            open.close(w.kind, wm, key, *d, out);
            if let Some(c) = open.next_close(w.kind) {
                next = Some(next.map_or(c, |n| n.min(c)));
            }
        }
        next
    }

    /// Decayed feature `j`'s value as of the event just inserted at `pos`.
    #[allow(clippy::too_many_arguments)]
    fn decayed_value(&mut self, j: usize, d: &Decayed, pos: usize, in_order: bool, time: i64, values: &[f64], fields: usize) -> Option<f64> {
        let x = self.x.get_or_insert_with(Default::default);
        if x.decayed.len() <= j {
            x.decayed.push(DecayRun::starting_at(time));
        }
        x.decayed[j].observe(d, &self.times, &self.values, fields, pos, in_order, time, values)
    }

    /// Removes entries at or before `horizon`: no future event's window reaches them
    /// (decayed features keep their sum as the base).
    fn evict(&mut self, horizon: i64, fields: usize, stride: usize, defs: &[FeatureDef], plans: &[WindowPlan]) {
        if self.times.front().is_none_or(|&t| t > horizon) {
            return;
        }
        let n = self.times.partition_point(|&t| t <= horizon);
        if n == 0 {
            return;
        }
        for (plan, tail) in plans.iter().zip(&mut self.tails) {
            if plan.kind == WindowKind::Sliding {
                tail.advance(horizon, &self.times, &self.values, fields, plan.tracked);
                tail.removed_front(n);
            }
        }
        if let Some(x) = self.x.as_mut() {
            let (times, values) = (&self.times, &self.values);
            let decayed = defs.iter().filter_map(|d| if let FeatureDef::Decayed(d) = d { Some(d) } else { None });
            for (d, run) in decayed.zip(&mut x.decayed) {
                for e in 0..n {
                    run.evicted(d, times[e], d.field.map(|f| values[e * fields + f]));
                }
            }
            let ratios = defs.iter().filter_map(|d| if let FeatureDef::RatioToMean(r) = d { Some(r) } else { None });
            for (r, panes) in ratios.zip(&mut x.panes) {
                // every future event is at or after the watermark, which is past `horizon`
                let oldest = r.start(horizon);
                for e in 0..n {
                    panes.evicted(r, times[e], values[e * fields + r.field], oldest);
                }
            }
            for (plan, run) in plans.iter().zip(&mut x.runs) {
                if let WindowKind::Session { gap_ms } = plan.kind {
                    for e in 0..n {
                        run.evicted(gap_ms, times[e], values, e, fields);
                    }
                }
            }
            let approx = defs.iter().filter_map(|d| if let FeatureDef::ApproxDistinct(d) = d { Some(d) } else { None });
            for (d, panes) in approx.zip(&mut x.hll) {
                let oldest = d.start(horizon);
                for e in 0..n {
                    panes.evicted(d, times[e], x.tags[e * stride + d.tag], oldest);
                }
            }
            let distinct = defs.iter().filter_map(|d| if let FeatureDef::Distinct(d) = d { Some(d) } else { None });
            for (d, run) in distinct.zip(&mut x.distinct) {
                run.advance(horizon, d, &Tagged { times, tags: &x.tags, stride });
                run.removed_front(n);
            }
            x.tags.drain(..(n * stride).min(x.tags.len()));
        }
        self.times.drain(..n);
        self.values.drain(..n * fields);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decayed(name: &str, kind: DecayKind, field: Option<usize>, half_life_ms: i64) -> FeatureDef {
        FeatureDef::Decayed(Decayed { name: name.into(), kind, field, half_life_ms, ttl_ms: 1 << 40 })
    }

    fn defs() -> Vec<FeatureDef> {
        let w = |name: &str, agg, field, window_ms| FeatureDef::Window(WindowFeature::sliding(name, agg, field, window_ms));
        vec![
            w("c5", Agg::Count, None, 5),
            w("s5", Agg::Sum, Some(0), 5),
            w("x5", Agg::Max, Some(1), 5),
            w("n20", Agg::Min, Some(0), 20),
            w("m20", Agg::Mean, Some(1), 20),
            w("x20", Agg::Max, Some(0), 20),
            FeatureDef::TimeSincePrev { name: "p".into(), ttl_ms: 7 },
            w("v5", Agg::Variance, Some(0), 5),
            w("d20", Agg::Std, Some(1), 20),
            decayed("dc3", DecayKind::Count, None, 3),
            decayed("ds5", DecayKind::Sum, Some(0), 5),
            decayed("da2", DecayKind::Avg, Some(1), 2),
            FeatureDef::PrevValue { name: "pv".into(), field: 1, ttl_ms: 6 },
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
        /// Long streams over few keys (deep windows, eviction, sweeps): the running
        /// windows and the scan path equal a recomputation from all accepted events.
        #[test]
        fn running_windows_equal_recomputation(
            steps in prop::collection::vec((0u8..3, 0i64..4, 0i64..6, prop::option::of(-50i32..50), prop::option::of(0i32..9)), 1..600),
            lateness in 0i64..8,
        ) {
            let mut state = FeatureState::new(defs(), 2);
            let mut clock = 0i64;
            let mut max_seen: Vec<Option<i64>> = vec![None; 3];
            let mut history: Vec<(u8, i64, f64, f64)> = Vec::new();
            let mut out = Vec::new();
            for (i, (key, step, back, a, b)) in steps.into_iter().enumerate() {
                clock += step;
                let t = clock - back;
                let p = key as usize; // one partition per key
                let wm = max_seen[p].map(|m| m - lateness);
                if wm.is_some_and(|wm| t < wm) {
                    continue; // late: never reaches the operator
                }
                max_seen[p] = Some(max_seen[p].map_or(t, |m| m.max(t)));
                let wm_after = max_seen[p].unwrap() - lateness;
                let (a, b) = (a.map_or(f64::NAN, f64::from), b.map_or(f64::NAN, f64::from));
                let prev = history.iter().rev().find(|h| h.0 == key).map(|h| h.1);
                let prev_b = history.iter().rev().find(|h| h.0 == key).filter(|h| t - h.1 <= 6).map(|h| h.3).filter(|v| !v.is_nan());
                history.push((key, t, a, b));
                state.observe(&format!("k{key}"), key as u32, wm_after, t, &[a, b], &mut out);
                if i % 97 == 0 {
                    state.sweep();
                }
                let window = |w: i64| history.iter().filter(move |h| h.0 == key && h.1 > t - w && h.1 <= t);
                let present = |w: i64, f: usize| window(w).map(move |h| if f == 0 { h.2 } else { h.3 }).filter(|v| !v.is_nan()).collect::<Vec<f64>>();
                let want = vec![
                    Some(window(5).count() as f64),
                    Some(present(5, 0).iter().sum::<f64>() + 0.0),
                    present(5, 1).into_iter().reduce(f64::max),
                    present(20, 0).into_iter().reduce(f64::min),
                    { let v = present(20, 1); (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64) },
                    present(20, 0).into_iter().reduce(f64::max),
                    prev.filter(|pt| t - pt <= 7).map(|pt| (t - pt) as f64 / 1000.0),
                ];
                prop_assert_eq!(&out[..7], &want[..], "event {} (key {}, t {})", i, key, t);
                // variance and standard deviation by the two-pass definition
                let var = |v: Vec<f64>| (v.len() >= 2).then(|| {
                    let m = v.iter().sum::<f64>() / v.len() as f64;
                    v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() - 1) as f64
                });
                let close = |a: Option<f64>, b: Option<f64>| match (a, b) {
                    (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * (1.0 + b.abs()),
                    (a, b) => a == b,
                };
                let (v5, d20) = (var(present(5, 0)), var(present(20, 1)).map(f64::sqrt));
                prop_assert!(close(out[7], v5), "variance {:?} vs {:?} at event {}", out[7], v5, i);
                prop_assert!(close(out[8], d20), "std {:?} vs {:?} at event {}", out[8], d20, i);
                // decayed aggregates by their definition: every earlier event of the key
                // (offset order) at or before t, weighted 2^(-age / half-life)
                let upto = || history.iter().filter(move |h| h.0 == key && h.1 <= t);
                let weighted = |hl: f64, f: Option<usize>| upto().fold((0.0, 0.0), |(s, w), h| {
                    let k = (-((t - h.1) as f64) / hl).exp2();
                    match f.map(|f| if f == 0 { h.2 } else { h.3 }) {
                        None => (s + k, w + k),
                        Some(v) if !v.is_nan() => (s + k * v, w + k),
                        Some(_) => (s, w),
                    }
                });
                let dc3 = Some(weighted(3.0, None).0);
                let ds5 = Some(weighted(5.0, Some(0)).0);
                let (s2, w2) = weighted(2.0, Some(1));
                let da2 = (w2 > 0.0).then(|| s2 / w2);
                let near = |a: Option<f64>, b: Option<f64>| match (a, b) {
                    (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * (1.0 + b.abs()),
                    (a, b) => a == b,
                };
                prop_assert!(near(out[9], dc3), "decayed count {:?} vs {:?} at event {}", out[9], dc3, i);
                prop_assert!(near(out[10], ds5), "decayed sum {:?} vs {:?} at event {}", out[10], ds5, i);
                prop_assert!(near(out[11], da2), "decayed avg {:?} vs {:?} at event {}", out[11], da2, i);
                prop_assert_eq!(out[12], prev_b, "previous value at event {}", i);
            }
        }
    }
}
