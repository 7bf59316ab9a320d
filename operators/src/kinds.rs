//! Tumbling, hopping and session windows, read as of each event, and their
//! running state per key (sliding windows are `tail`).
//!
//! As of an event `e` at time `t` (the contract of [`crate::window`]: the key's
//! events up to `e` in offset order, with event time at or before `t`), a window
//! feature aggregates those events that fall in `e`'s window:
//! - tumbling (size `W`): `[floor(t / W) * W, t]`, the window so far;
//! - hopping (size `W`, hop `H`): `[s, t]` where `s` is the start of the oldest
//!   hopping window `[k H, k H + W)` containing `t` (the sliding window with its
//!   start rounded up to the hop grid, as Chronon and Tecton define them);
//! - session (gap `G`): `[s, t]` where `s` is the first event of `e`'s session,
//!   the run of events whose consecutive times (in time order) differ by less
//!   than `G`, ending at `t`.
//!
//! Each key keeps one running [`KindRun`] per (kind, size) as of its latest event
//! time, so an in-order event costs O(1) (a hopping window rescans its retained
//! events when it moves to a new hop). An out-of-order event's own value comes
//! from one scan of the retained events (it never reads an event after it in
//! time). Sessions can outlive the retention horizon: the events a key evicts are
//! folded into the summary of their last session (`base`), which a walk back
//! through the retained events joins when it reaches them, so a session stays
//! exact however long it lasts.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::aggregate::FieldSummary;

/// The shape of a window over event time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowKind {
    /// `(t - W, t]` at each event (the default).
    #[default]
    Sliding,
    /// Fixed, non-overlapping windows `[k W, (k + 1) W)`.
    Tumbling,
    /// Windows `[k H, k H + W)` every hop `H`.
    Hopping { hop_ms: i64 },
    /// Runs of events less than `gap_ms` apart.
    Session { gap_ms: i64 },
}

/// When a window feature's values are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Emit {
    /// As of every event, in its feature vector (what scoring uses; the default).
    #[default]
    OnUpdate,
    /// Also once per window, with its final value, when the watermark passes its
    /// end (tumbling, hopping and session windows).
    OnClose,
}

impl WindowKind {
    /// Tumbling and hopping windows of `size_ms`: the start of the oldest window
    /// containing `time`.
    pub fn start(self, size_ms: i64, time: i64) -> Option<i64> {
        match self {
            WindowKind::Tumbling => Some(time.div_euclid(size_ms) * size_ms),
            WindowKind::Hopping { hop_ms } => Some(((time - size_ms).div_euclid(hop_ms) + 1) * hop_ms),
            WindowKind::Sliding | WindowKind::Session { .. } => None,
        }
    }

    /// How far before the watermark a future event's window can start: what the
    /// key's retained events must cover. Sessions keep their evicted part as a
    /// summary and need nothing.
    pub fn reach(self, size_ms: i64) -> i64 {
        match self {
            WindowKind::Session { .. } => 0,
            _ => size_ms,
        }
    }

    /// How long after its last event a key can still be in an open window.
    pub fn ttl(self, size_ms: i64) -> i64 {
        match self {
            WindowKind::Session { gap_ms } => gap_ms,
            _ => size_ms,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            WindowKind::Sliding => "sliding",
            WindowKind::Tumbling => "tumbling",
            WindowKind::Hopping { .. } => "hopping",
            WindowKind::Session { .. } => "session",
        }
    }
}

/// A window's event count and per-field summaries.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Span {
    pub count: u64,
    pub fields: Vec<FieldSummary>,
}

impl Span {
    pub fn new(fields: usize) -> Self {
        Span { count: 0, fields: vec![FieldSummary::default(); fields] }
    }

    /// Adds one event (its field values; NaN = absent).
    pub fn add(&mut self, values: &[f64]) {
        self.count += 1;
        for (s, v) in self.fields.iter_mut().zip(values) {
            s.add(*v);
        }
    }

    pub fn merge(&mut self, other: &Span) {
        self.count += other.count;
        for (s, o) in self.fields.iter_mut().zip(&other.fields) {
            s.merge(o);
        }
    }

    /// The same span over a new layout of fields: field `i` is the old field
    /// `map[i]` (`None`: empty).
    pub fn remap_fields(&mut self, map: &[Option<usize>]) {
        let old = std::mem::take(&mut self.fields);
        self.fields = map.iter().map(|m| m.and_then(|o| old.get(o).copied()).unwrap_or_default()).collect();
    }

    pub fn clear(&mut self) {
        self.count = 0;
        self.fields.iter_mut().for_each(|s| *s = FieldSummary::default());
    }

    /// Sets `self` to the retained events `first..=last`.
    fn scan(&mut self, values: &VecDeque<f64>, fields: usize, first: usize, last: usize) {
        self.clear();
        for e in first..=last {
            self.count += 1;
            for (i, s) in self.fields.iter_mut().enumerate() {
                s.add(values[e * fields + i]);
            }
        }
    }
}

/// The running window of one (kind, size) for one key, as of `at`, the key's
/// latest event time.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct KindRun {
    started: bool,
    at: i64,
    /// Start of the window at `at` (session: its first event's time).
    start: i64,
    span: Span,
    /// Sessions: the last session among the evicted events (its last time, summary).
    base: Option<(i64, Span)>,
}

/// The retained events of a key: times in order, and their fields, flattened.
pub struct Retained<'a> {
    pub times: &'a VecDeque<i64>,
    pub values: &'a VecDeque<f64>,
    pub fields: usize,
}

impl KindRun {
    /// The window of the event just inserted at `pos` (time `time`, fields
    /// `event`), written to `out`; updates the running window. `in_order`: the
    /// event is at or after every retained one.
    #[allow(clippy::too_many_arguments)]
    pub fn observe(&mut self, kind: WindowKind, size_ms: i64, r: &Retained<'_>, pos: usize, in_order: bool, time: i64, event: &[f64], out: &mut Span) {
        if self.span.fields.len() != r.fields {
            self.span = Span::new(r.fields);
        }
        match kind {
            WindowKind::Session { gap_ms } => self.session(gap_ms, r, pos, in_order, time, event, out),
            _ => {
                let start = kind.start(size_ms, time).expect("tumbling or hopping");
                let first = r.times.partition_point(|&t| t < start);
                if in_order {
                    if self.started && start == self.start {
                        self.span.add(event);
                    } else {
                        self.span.scan(r.values, r.fields, first, pos);
                        self.start = start;
                    }
                    self.started = true;
                    self.at = time;
                    out.clone_from(&self.span);
                } else {
                    if time >= self.start {
                        // it falls in the running window too
                        self.span.add(event);
                    }
                    out.scan(r.values, r.fields, first, pos);
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn session(&mut self, gap: i64, r: &Retained<'_>, pos: usize, in_order: bool, time: i64, event: &[f64], out: &mut Span) {
        if in_order && self.started {
            // every retained or evicted event is at or before `at`
            if time - self.at < gap {
                self.span.add(event);
            } else {
                self.span.clear();
                self.span.add(event);
                self.start = time;
            }
            self.at = time;
            out.clone_from(&self.span);
            return;
        }
        // Out of order, or the key's first run: walk back from the event.
        let start = self.walk_back(gap, r, pos, out);
        let last = r.times.len() - 1;
        if in_order {
            self.span.clone_from(out);
            self.start = start;
        } else {
            // the event may have bridged two sessions: rebuild the latest one
            let mut latest = Span::new(r.fields);
            self.start = self.walk_back(gap, r, last, &mut latest);
            self.span = latest;
        }
        self.at = r.times[last];
        self.started = true;
    }

    /// The session ending at retained event `i`, into `out`; returns its start.
    fn walk_back(&self, gap: i64, r: &Retained<'_>, i: usize, out: &mut Span) -> i64 {
        let mut j = i;
        while j > 0 && r.times[j] - r.times[j - 1] < gap {
            j -= 1;
        }
        out.scan(r.values, r.fields, j, i);
        match &self.base {
            Some((last, base)) if j == 0 && r.times[0] - last < gap => {
                out.merge(base);
                i64::MIN // the start is among the evicted events
            }
            _ => r.times[j],
        }
    }

    /// The same run over a new layout of fields: field `i` of the result is the
    /// old field `map[i]` (`None`: a field the run never saw, empty).
    pub fn remap_fields(&mut self, map: &[Option<usize>]) {
        self.span.remap_fields(map);
        if let Some((_, base)) = &mut self.base {
            base.remap_fields(map);
        }
    }

    /// Folds the retained event `e` (evicted, in time order) into the sessions' base.
    pub fn evicted(&mut self, gap: i64, time: i64, values: &VecDeque<f64>, e: usize, fields: usize) {
        let base = match &mut self.base {
            Some((last, span)) => {
                if time - *last >= gap {
                    span.clear(); // a new session among the evicted events
                }
                *last = time;
                span
            }
            None => &mut self.base.insert((time, Span::new(fields))).1,
        };
        base.count += 1;
        for (i, s) in base.fields.iter_mut().enumerate() {
            s.add(values[e * fields + i]);
        }
    }
}
