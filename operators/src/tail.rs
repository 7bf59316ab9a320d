//! A running sliding window over one key's events at the key's latest event time:
//! count, fixed-point sums and monotonic queues for max and min, updated in O(1)
//! amortized per in-order event. Events that arrive out of order are added in
//! place (the queues keep their invariant); the window is always the set of
//! retained events with time in `(lo, latest]`.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::aggregate::{square_fixed, to_fixed, FieldSummary};

/// A monotonic queue: times increasing, values strictly decreasing from the front,
/// so the front is the maximum of the events still in the window.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MaxQueue {
    entries: VecDeque<(i64, f64)>,
}

impl MaxQueue {
    /// Adds an event at time `t` (anywhere in time order).
    pub fn push(&mut self, t: i64, v: f64) {
        let i = self.entries.partition_point(|(et, _)| *et <= t);
        // A value at or above `v` that leaves the window after `t` dominates it.
        if self.entries.get(i).is_some_and(|(_, ev)| *ev >= v) {
            return;
        }
        // Earlier entries with values at or below `v` leave before it: never the max again.
        let j = self.entries.range(..i).position(|(_, ev)| *ev <= v).unwrap_or(i);
        self.entries.drain(j..i);
        self.entries.insert(j, (t, v));
    }
    /// Drops entries with time at or before `lo`.
    pub fn evict(&mut self, lo: i64) {
        while self.entries.front().is_some_and(|(t, _)| *t <= lo) {
            self.entries.pop_front();
        }
    }
    pub fn max(&self) -> Option<f64> {
        self.entries.front().map(|(_, v)| *v)
    }
}

/// One field's running aggregates.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct FieldRun {
    present: u64,
    sum: i128,
    #[serde(default)]
    sum_sq: i128,
    max: MaxQueue,
    /// Negated values: the minimum is `-neg_min.max()`.
    neg_min: MaxQueue,
}

/// What a tail window tracks beyond its event count: for each field its
/// features read (one bit each; fields past the 64th always), the present count
/// and the sum; the sum of squares, maxima and minima only where a feature
/// reads them. Untracked summaries stay at zero (a count-only window computed
/// every field's fixed-point sums and squares at each insertion and eviction).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tracked {
    pub fields: u64,
    pub sum_sq: bool,
    pub max: bool,
    pub min: bool,
}

impl Tracked {
    /// Whether field `i` is tracked.
    pub fn uses(&self, i: usize) -> bool {
        i >= 64 || self.fields & (1 << i) != 0
    }
}

/// The running window of length `len_ms` ending at the key's latest event time.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TailWindow {
    /// Exclusive lower bound of the window's times.
    lo: i64,
    /// Index (in the key's time-ordered entries) of the first entry in the window.
    start: usize,
    count: u64,
    fields: Vec<FieldRun>,
}

impl TailWindow {
    pub fn new(fields: usize) -> Self {
        TailWindow { lo: i64::MIN, start: 0, count: 0, fields: vec![FieldRun::default(); fields] }
    }

    /// Accounts for an entry inserted at index `pos` with time `t` and `values`.
    pub fn inserted(&mut self, pos: usize, t: i64, values: &[f64], ext: Tracked) {
        if t <= self.lo {
            debug_assert!(pos <= self.start);
            self.start += 1;
            return;
        }
        debug_assert!(pos >= self.start);
        self.count += 1;
        for (i, (f, v)) in self.fields.iter_mut().zip(values).enumerate() {
            if !v.is_nan() && ext.uses(i) {
                f.present += 1;
                f.sum += to_fixed(*v);
                if ext.sum_sq {
                    f.sum_sq = f.sum_sq.wrapping_add(square_fixed(*v));
                }
                if ext.max {
                    f.max.push(t, *v);
                }
                if ext.min {
                    f.neg_min.push(t, -*v);
                }
            }
        }
    }

    /// Raises the lower bound to `lo`, removing entries at or before it.
    /// `times`/`values` are the key's entries (values flattened, `stride` per entry).
    pub fn advance(&mut self, lo: i64, times: &VecDeque<i64>, values: &VecDeque<f64>, stride: usize, ext: Tracked) {
        if lo <= self.lo {
            return;
        }
        self.lo = lo;
        while self.start < times.len() && times[self.start] <= lo {
            self.count -= 1;
            for (i, f) in self.fields.iter_mut().enumerate() {
                let v = values[self.start * stride + i];
                if !v.is_nan() && ext.uses(i) {
                    f.present -= 1;
                    f.sum -= to_fixed(v);
                    if ext.sum_sq {
                        f.sum_sq = f.sum_sq.wrapping_sub(square_fixed(v));
                    }
                }
            }
            self.start += 1;
        }
        for f in &mut self.fields {
            f.max.evict(lo);
            f.neg_min.evict(lo);
        }
    }

    /// `n` entries were removed from the front of the key's entries (all before `lo`).
    pub fn removed_front(&mut self, n: usize) {
        debug_assert!(self.start >= n);
        self.start -= n;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// Index of the first entry in the window.
    pub fn start(&self) -> usize {
        self.start
    }

    /// The summary of field `i` over the window.
    pub fn summary(&self, i: usize) -> FieldSummary {
        let f = &self.fields[i];
        FieldSummary {
            present: f.present,
            sum: f.sum,
            sum_sq: f.sum_sq,
            max: f.max.max().unwrap_or(f64::NEG_INFINITY),
            min: f.neg_min.max().map_or(f64::INFINITY, |m| -m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The queue's front is the max over entries newer than the eviction bound,
        /// for pushes in any time order.
        #[test]
        fn max_queue_matches_a_scan(ops in prop::collection::vec((0i64..50, -20i32..20, any::<bool>()), 0..200)) {
            let mut q = MaxQueue::default();
            let mut all: Vec<(i64, f64)> = Vec::new();
            let mut lo = i64::MIN;
            for (t, v, evict) in ops {
                if evict {
                    lo = lo.max(t - 10);
                    q.evict(lo);
                } else if t > lo {
                    q.push(t, v as f64);
                    all.push((t, v as f64));
                }
                let want = all.iter().filter(|(et, _)| *et > lo).map(|(_, v)| *v).reduce(f64::max);
                prop_assert_eq!(q.max(), want);
            }
        }
    }
}
