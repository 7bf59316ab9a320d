//! Ratio of an event's value to the mean of its key's long window (e.g. amount
//! vs the 30-day average), kept from pre-aggregated panes rather than every raw
//! event.
//!
//! The long window of an event at `t` is `[s, t]`, with `s` its start rounded up
//! to the pane grid: `s = ((t - W) div P + 1) P` (a hopping window of size `W`
//! every pane `P`, as of the event). A key keeps the raw events the job's
//! shorter windows retain anyway; an event it evicts (at or before the
//! watermark, so before every future event) is folded into the count and
//! fixed-point sum of its pane. The mean as of `e` is then the panes starting at
//! or after `s`, plus the retained events in `[s, t]` up to `e` in offset order:
//! exact, never reading an event after `e`, in `W / P` panes per key at most.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::aggregate::{to_fixed, FIXED_SCALE};

/// A long-window mean ratio: `value / mean(field over [s, t])`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RatioToMean {
    pub name: String,
    pub field: usize,
    pub window_ms: i64,
    pub pane_ms: i64,
}

impl RatioToMean {
    /// Start of the long window as of time `t`.
    pub fn start(&self, t: i64) -> i64 {
        ((t - self.window_ms).div_euclid(self.pane_ms) + 1) * self.pane_ms
    }

    /// The ratio, given the window's present-value count and fixed-point sum and
    /// the event's value; null without a value, or when the mean is zero.
    pub fn finish(&self, value: f64, present: u64, sum: i128) -> Option<f64> {
        if value.is_nan() || present == 0 || sum == 0 {
            return None;
        }
        Some(value / (sum as f64 / FIXED_SCALE / present as f64))
    }
}

/// Evicted events of one key, per pane: (pane start, values present, fixed-point sum).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Panes {
    panes: VecDeque<(i64, u64, i128)>,
}

impl Panes {
    /// Folds an evicted event (evicted in time order); drops panes that no future
    /// event's window reaches (`oldest` is the window start at the watermark).
    pub fn evicted(&mut self, r: &RatioToMean, time: i64, value: f64, oldest: i64) {
        while self.panes.front().is_some_and(|(start, _, _)| *start < oldest) {
            self.panes.pop_front();
        }
        if value.is_nan() || time < oldest {
            return;
        }
        let start = time.div_euclid(r.pane_ms) * r.pane_ms;
        match self.panes.back_mut() {
            Some((s, n, sum)) if *s == start => {
                *n += 1;
                *sum += to_fixed(value);
            }
            _ => self.panes.push_back((start, 1, to_fixed(value))),
        }
    }

    /// Count and fixed-point sum of the panes starting at or after `from`.
    pub fn since(&self, from: i64) -> (u64, i128) {
        let first = self.panes.partition_point(|(start, _, _)| *start < from);
        self.panes.range(first..).fold((0, 0), |(n, s), (_, pn, ps)| (n + pn, s + ps))
    }

    pub fn len(&self) -> usize {
        self.panes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.panes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panes_fold_evicted_events_and_age_out() {
        let r = RatioToMean { name: "r".into(), field: 0, window_ms: 30, pane_ms: 10 };
        assert_eq!(r.start(35), 10); // windows [10, 40) hold 35
        assert_eq!(r.start(39), 10);
        assert_eq!(r.start(40), 20);
        let mut p = Panes::default();
        p.evicted(&r, 3, 1.0, i64::MIN);
        p.evicted(&r, 7, 3.0, i64::MIN);
        p.evicted(&r, 12, 5.0, i64::MIN);
        p.evicted(&r, 13, f64::NAN, i64::MIN);
        assert_eq!(p.since(0), (3, to_fixed(9.0)));
        assert_eq!(p.since(10), (1, to_fixed(5.0)));
        p.evicted(&r, 25, 2.0, 10); // the pane at 0 can no longer be reached
        assert_eq!(p.len(), 2);
        assert_eq!(p.since(0), (2, to_fixed(7.0)));
        assert_eq!(r.finish(4.0, 2, to_fixed(7.0)), Some(4.0 / 3.5));
        assert_eq!(r.finish(4.0, 0, 0), None);
    }
}
