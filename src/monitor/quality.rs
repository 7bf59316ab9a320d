//! Window-level data-quality expectations: the arithmetic of their windows.
//!
//! Each window-level [`Expectation`] judges tumbling event-time windows of its
//! own length (aligned to the Unix epoch) over the records a source admits.
//! Workers count their share of each window ([`Counts`]: records, hits, and the
//! hashed values a `unique` check compares); one [`WindowJudge`] merges every
//! worker's counts and judges a window once the watermark passes its end, so a
//! verdict is the same at any worker count, batching or speed. Each verdict is a
//! [`Finding`]: `kind = "quality"`, the expectation's name, the check's method,
//! the measured value and the bound it is held to.
//!
//! * `not_null_rate`: records carrying the field / records; past it when below `min`.
//! * `duplicate_rate`: records repeating a value seen earlier in the window /
//!   records (a null is no value); past it when above `max_rate`.
//! * `stale_rate`: records that arrived more than `max_lag` after their event
//!   time / records; past it when above `max_rate`.
//! * `volume`: records; the threshold is `min` when below it, else `max`.
//!
//! A window without records is judged by `volume` only (a gap in the stream is
//! what it is there to catch), from the first window with records on; more than
//! [`MAX_EMPTY_WINDOWS`] empty windows in a row (a watermark thrown ahead by a
//! corrupted timestamp) are skipped with a warning. The first window of a run
//! and the last one of a bounded input are only partly seen: `volume` does not
//! hold them to `min`.
//!
//! ```
//! use std::time::Duration;
//! use vigil::monitor::quality::{Counts, WindowJudge};
//! use vigil::spec::Expectation;
//!
//! let volume = Expectation::volume("per_second", 2, 10).per(Duration::from_secs(1));
//! let mut judge = WindowJudge::new(vec![volume]);
//! // 3 records in [0, 1 s), none in [1 s, 2 s), 5 in [2 s, 3 s)
//! judge.add(0, 0, &Counts { records: 3, ..Counts::default() });
//! judge.add(0, 2000, &Counts { records: 5, ..Counts::default() });
//! let found = judge.close_before(3000);
//! let verdicts: Vec<(i64, f64, bool)> = found.iter().map(|f| (f.ts, f.value, f.failed)).collect();
//! // the first window is not held to the lower bound; the empty one is
//! assert_eq!(verdicts, vec![(1000, 3.0, false), (2000, 0.0, true), (3000, 5.0, false)]);
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::spec::{Check, Expectation};

/// Most empty windows in a row judged by `volume` before the rest of the gap is skipped.
pub const MAX_EMPTY_WINDOWS: i64 = 1000;

/// One worker's counts for one window of one expectation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub records: u64,
    /// Records carrying the field (`not_null_rate`), or stale ones (`stale_rate`).
    pub hits: u64,
    /// `duplicate_rate`: the hashes of the values seen.
    pub ids: Vec<u64>,
}

impl Counts {
    fn merge(&mut self, other: &Counts) {
        self.records += other.records;
        self.hits += other.hits;
        self.ids.extend_from_slice(&other.ids);
    }
}

/// One window's verdict.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    /// The window's end (exclusive), epoch milliseconds.
    pub ts: i64,
    /// The expectation's index in the judge's list.
    pub expectation: usize,
    pub name: String,
    pub method: &'static str,
    pub value: f64,
    pub threshold: f64,
    /// Whether the window fails the expectation.
    pub failed: bool,
}

impl Finding {
    /// As a record of the drift topic (`kind = "quality"`).
    pub fn record(&self) -> super::DriftRecord {
        super::DriftRecord::new(self.ts, "quality", &self.name, self.method, self.value, self.threshold, self.failed)
    }
}

/// The start of the window of length `len` (ms) that holds `time_ms`.
pub fn window_start(time_ms: i64, len: i64) -> i64 {
    time_ms.div_euclid(len) * len
}

/// An expectation's window length in milliseconds (at least 1).
pub fn window_ms(e: &Expectation) -> i64 {
    (e.window.as_millis() as i64).max(1)
}

/// Merges every worker's counts and judges windows; see the module docs.
pub struct WindowJudge {
    expectations: Vec<Expectation>,
    lens: Vec<i64>,
    /// Merged counts by (expectation, window start).
    open: BTreeMap<(usize, i64), Counts>,
    /// Per expectation: windows before this start are judged.
    judged_to: Vec<Option<i64>>,
    /// Counts of windows already judged (records later than the watermark allowed).
    pub dropped: u64,
}

impl WindowJudge {
    /// A judge of the window-level expectations among `expectations` (others are ignored).
    pub fn new(expectations: Vec<Expectation>) -> WindowJudge {
        let expectations: Vec<Expectation> = expectations.into_iter().filter(|e| e.check.is_window()).collect();
        let lens = expectations.iter().map(window_ms).collect();
        let judged_to = vec![None; expectations.len()];
        WindowJudge { expectations, lens, open: BTreeMap::new(), judged_to, dropped: 0 }
    }

    pub fn expectations(&self) -> &[Expectation] {
        &self.expectations
    }

    /// Adds a worker's counts of expectation `e`'s window starting at `start`.
    pub fn add(&mut self, e: usize, start: i64, counts: &Counts) {
        if self.judged_to.get(e).copied().flatten().is_some_and(|to| start < to) {
            self.dropped += counts.records;
            return;
        }
        self.open.entry((e, start)).or_default().merge(counts);
    }

    /// Judges every window that ends at or before `watermark`, in (end,
    /// expectation) order. The largest watermark (`i64::MAX`) is the end of the
    /// input: [`WindowJudge::finish`].
    pub fn close_before(&mut self, watermark: i64) -> Vec<Finding> {
        if watermark == i64::MAX {
            return self.finish();
        }
        let mut out = Vec::new();
        for e in 0..self.expectations.len() {
            self.judge(e, watermark, false, &mut out);
        }
        out.sort_by_key(|f| (f.ts, f.expectation));
        out
    }

    /// The end of the input: every window with records is judged (the last one
    /// of each expectation not held to `volume`'s `min`).
    pub fn finish(&mut self) -> Vec<Finding> {
        let mut out = Vec::new();
        for e in 0..self.expectations.len() {
            let Some(last) = self.open.range((e, i64::MIN)..=(e, i64::MAX)).next_back().map(|((_, s), _)| *s) else { continue };
            self.judge(e, last.saturating_add(self.lens[e]), true, &mut out);
        }
        out.sort_by_key(|f| (f.ts, f.expectation));
        out
    }

    /// Judges expectation `e`'s windows ending at or before `to`.
    fn judge(&mut self, e: usize, to: i64, at_end: bool, out: &mut Vec<Finding>) {
        let len = self.lens[e];
        let first_open = self.open.range((e, i64::MIN)..=(e, i64::MAX)).next().map(|((_, s), _)| *s);
        let first_of_run = self.judged_to[e].is_none();
        let Some(mut start) = self.judged_to[e].or(first_open) else { return };
        let initial = start;
        let volume = matches!(self.expectations[e].check, Check::Volume { .. });
        let mut empty_run = 0i64;
        while start.checked_add(len).is_some_and(|end| end <= to) {
            let counts = self.open.remove(&(e, start));
            match counts {
                Some(c) => {
                    empty_run = 0;
                    let last_of_input = at_end && start.saturating_add(len) == to;
                    let partial = (first_of_run && Some(start) == first_open) || last_of_input;
                    out.push(self.verdict(e, start + len, &c, partial));
                }
                None if volume && empty_run < MAX_EMPTY_WINDOWS => {
                    empty_run += 1;
                    out.push(self.verdict(e, start + len, &Counts::default(), false));
                }
                None => {
                    // past the cap (or no volume check): on to the next window with records
                    let next = self.open.range((e, start)..=(e, i64::MAX)).next().map(|((_, s), _)| *s);
                    let resume = next.unwrap_or_else(|| window_start(to, len)).min(window_start(to, len));
                    if volume && resume > start {
                        tracing::warn!(expectation = %self.expectations[e].name, from = start, to = resume, "volume: a gap of more than {MAX_EMPTY_WINDOWS} empty windows; the rest is not judged");
                    }
                    empty_run = 0;
                    if resume <= start {
                        start += len;
                    } else {
                        start = resume;
                    }
                    continue;
                }
            }
            start += len;
        }
        // only once a window is judged: before, records of an earlier window
        // (from another worker) may still come, and the first window is not known
        if start > initial {
            self.judged_to[e] = Some(start);
        }
    }

    /// The verdict on one window of expectation `e` (`partial`: only partly seen).
    fn verdict(&self, e: usize, end: i64, c: &Counts, partial: bool) -> Finding {
        let x = &self.expectations[e];
        let rate = |n: u64| if c.records == 0 { 0.0 } else { n as f64 / c.records as f64 };
        let (value, threshold, failed) = match &x.check {
            Check::NotNullRate { min } => (rate(c.hits), *min, rate(c.hits) < *min),
            Check::Freshness { max_rate, .. } => (rate(c.hits), *max_rate, rate(c.hits) > *max_rate),
            Check::Unique { max_rate } => {
                let dups = duplicates(&c.ids);
                (rate(dups), *max_rate, rate(dups) > *max_rate)
            }
            Check::Volume { min, max } => {
                let below = c.records < *min && !partial;
                (c.records as f64, if c.records < *min { *min } else { *max } as f64, below || c.records > *max)
            }
            _ => (0.0, 0.0, false),
        };
        Finding { ts: end, expectation: e, name: x.name.clone(), method: x.check.method(), value, threshold, failed }
    }
}

/// How many of `ids` repeat an earlier one.
fn duplicates(ids: &[u64]) -> u64 {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    sorted.windows(2).filter(|w| w[0] == w[1]).count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rates_gaps_and_partial_windows() {
        let s = Duration::from_secs(1);
        let mut j = WindowJudge::new(vec![
            Expectation::not_null_rate("present", "f", 0.5).per(s),
            Expectation::unique("ids", "id", 0.0).per(s),
            Expectation::volume("v", 1, 3).per(s),
        ]);
        j.add(0, 1000, &Counts { records: 4, hits: 1, ids: vec![] });
        j.add(1, 1000, &Counts { records: 4, hits: 0, ids: vec![7, 8, 7, 7] });
        j.add(2, 1000, &Counts { records: 4, ..Counts::default() });
        j.add(2, 5000, &Counts { records: 1, ..Counts::default() });
        let f = j.close_before(1999);
        assert!(f.is_empty(), "the window [1000, 2000) is open until the watermark reaches 2000");
        let f = j.close_before(4000);
        let got: Vec<(i64, &str, f64, bool)> = f.iter().map(|f| (f.ts, f.method, f.value, f.failed)).collect();
        assert_eq!(
            got,
            vec![
                (2000, "not_null_rate", 0.25, true),
                (2000, "duplicate_rate", 0.5, true),
                (2000, "volume", 4.0, true),
                (3000, "volume", 0.0, true),
                (4000, "volume", 0.0, true)
            ]
        );
        // the largest watermark is the end of the input
        let mut k = WindowJudge::new(vec![Expectation::volume("v", 1, 3).per(s)]);
        k.add(0, 1000, &Counts { records: 1, ..Counts::default() });
        k.add(0, 3000, &Counts { records: 1, ..Counts::default() });
        assert_eq!(k.close_before(i64::MAX).iter().map(|f| (f.ts, f.failed)).collect::<Vec<_>>(), vec![(2000, false), (3000, true), (4000, false)]);
        assert!(k.finish().is_empty());
        // records of a judged window are dropped, not judged again
        j.add(2, 3000, &Counts { records: 2, ..Counts::default() });
        assert_eq!(j.dropped, 2);
        // the end of the input: the last window is partial (not held to min)
        let f = j.finish();
        assert_eq!(f.iter().map(|f| (f.ts, f.value, f.failed)).collect::<Vec<_>>(), vec![(5000, 0.0, true), (6000, 1.0, false)]);
    }

    #[test]
    fn the_first_window_is_the_earliest_even_when_a_later_one_came_first() {
        let mut j = WindowJudge::new(vec![Expectation::volume("v", 5, 10).per(Duration::from_secs(1))]);
        // one worker's counts of [2 s, 3 s) come before another's of [1 s, 2 s)
        j.add(0, 2000, &Counts { records: 6, ..Counts::default() });
        assert!(j.close_before(1500).is_empty());
        j.add(0, 1000, &Counts { records: 2, ..Counts::default() });
        let f = j.close_before(3000);
        // [1 s, 2 s) is the run's first window: partial, not held to min; nothing dropped
        assert_eq!(f.iter().map(|f| (f.ts, f.value, f.failed)).collect::<Vec<_>>(), vec![(2000, 2.0, false), (3000, 6.0, false)]);
        assert_eq!(j.dropped, 0);
    }

    #[test]
    fn a_long_gap_is_skipped_after_the_cap() {
        let mut j = WindowJudge::new(vec![Expectation::volume("v", 1, 10).per(Duration::from_millis(1))]);
        j.add(0, 0, &Counts { records: 1, ..Counts::default() });
        j.add(0, 5000, &Counts { records: 1, ..Counts::default() });
        let f = j.close_before(5001);
        assert_eq!(f.len(), 1 + MAX_EMPTY_WINDOWS as usize + 1);
        assert_eq!(f.last().map(|f| (f.ts, f.failed)), Some((5001, false)));
    }
}
