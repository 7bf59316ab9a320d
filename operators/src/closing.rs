//! Emit on close: the final value of every tumbling, hopping or session window,
//! once, when its partition's watermark passes its end.
//!
//! Each key keeps its open windows per on-close feature: tumbling and hopping
//! windows by start (an event adds to each window containing it), sessions as
//! disjoint runs that an event extends or merges (an out-of-order event between
//! two sessions less than a gap from both joins them into one, whatever batch
//! either came in). A window `[s, s + W)` closes when the watermark reaches
//! `s + W`; a session whose last event is at `l` closes at `l + G`: every later
//! accepted event has a time at or after the watermark and can no longer fall in
//! it. Lateness is decided at the source, so a closed window never changes and
//! is never reopened. Windows close in the order of their ends.

use serde::{Deserialize, Serialize};

use crate::kinds::{Span, WindowKind};

/// One window's final aggregate.
#[derive(Clone, Debug, PartialEq)]
pub struct ClosedWindow {
    pub key: String,
    /// Index of the feature in the job's definitions.
    pub feature: usize,
    pub start: i64,
    /// Exclusive end (session: last event + gap).
    pub end: i64,
    pub span: Span,
}

/// An open window: `[start, end)`; for sessions `end` is the last event's time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Open {
    start: i64,
    end: i64,
    span: Span,
}

/// A key's open windows for one on-close feature, by start.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OpenWindows {
    open: Vec<Open>,
}

impl OpenWindows {
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Adds an accepted event.
    pub fn add(&mut self, kind: WindowKind, size_ms: i64, time: i64, values: &[f64]) {
        match kind {
            WindowKind::Session { gap_ms } => {
                // the sessions within a gap of `time` merge into one with it
                let first = self.open.partition_point(|o| o.end <= time - gap_ms);
                let mut last = first;
                while last < self.open.len() && self.open[last].start - time < gap_ms {
                    last += 1;
                }
                let mut merged = Open { start: time, end: time, span: Span::new(values.len()) };
                merged.span.add(values);
                for o in self.open.drain(first..last) {
                    merged.start = merged.start.min(o.start);
                    merged.end = merged.end.max(o.end);
                    merged.span.merge(&o.span);
                }
                self.open.insert(first, merged);
            }
            _ => {
                let hop = match kind {
                    WindowKind::Hopping { hop_ms } => hop_ms,
                    _ => size_ms,
                };
                let mut start = kind.start(size_ms, time).expect("tumbling or hopping");
                while start <= time {
                    let i = self.open.partition_point(|o| o.start < start);
                    if self.open.get(i).is_none_or(|o| o.start != start) {
                        self.open.insert(i, Open { start, end: start + size_ms, span: Span::new(values.len()) });
                    }
                    self.open[i].span.add(values);
                    start += hop;
                }
            }
        }
    }

    /// The same windows over a new layout of fields (see [`Span::remap_fields`]).
    pub fn remap_fields(&mut self, map: &[Option<usize>]) {
        for o in &mut self.open {
            o.span.remap_fields(map);
        }
    }

    /// When the next window closes (a watermark at or past it closes it).
    pub fn next_close(&self, kind: WindowKind) -> Option<i64> {
        self.open.iter().map(|o| close_at(kind, o)).min()
    }

    /// Moves the windows that a watermark `wm` closes to `out`.
    pub fn close(&mut self, kind: WindowKind, wm: i64, key: &str, feature: usize, out: &mut Vec<ClosedWindow>) {
        let mut i = 0;
        while i < self.open.len() {
            if close_at(kind, &self.open[i]) <= wm {
                let o = self.open.remove(i);
                out.push(ClosedWindow { key: key.to_owned(), feature, start: o.start, end: close_at(kind, &o), span: o.span });
            } else {
                i += 1;
            }
        }
    }
}

fn close_at(kind: WindowKind, o: &Open) -> i64 {
    match kind {
        WindowKind::Session { gap_ms } => o.end.saturating_add(gap_ms),
        _ => o.end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closed(w: &mut OpenWindows, kind: WindowKind, wm: i64) -> Vec<(i64, i64, u64)> {
        let mut out = Vec::new();
        w.close(kind, wm, "k", 0, &mut out);
        out.into_iter().map(|c| (c.start, c.end, c.span.count)).collect()
    }

    #[test]
    fn tumbling_and_hopping_windows_close_at_their_ends() {
        let mut w = OpenWindows::default();
        for t in [0, 9, 10, 25] {
            w.add(WindowKind::Tumbling, 10, t, &[]);
        }
        assert_eq!(closed(&mut w, WindowKind::Tumbling, 9), vec![]);
        assert_eq!(closed(&mut w, WindowKind::Tumbling, 10), vec![(0, 10, 2)]);
        assert_eq!(closed(&mut w, WindowKind::Tumbling, 30), vec![(10, 20, 1), (20, 30, 1)]);
        let hop = WindowKind::Hopping { hop_ms: 5 };
        let mut w = OpenWindows::default();
        w.add(hop, 10, 7, &[]); // in [0, 10) and [5, 15)
        w.add(hop, 10, 5, &[]); // the same two
        assert_eq!(closed(&mut w, hop, 100), vec![(0, 10, 2), (5, 15, 2)]);
    }

    #[test]
    fn an_event_between_two_sessions_merges_them() {
        let s = WindowKind::Session { gap_ms: 10 };
        let mut w = OpenWindows::default();
        w.add(s, 0, 0, &[1.0]);
        w.add(s, 0, 18, &[2.0]);
        assert_eq!(w.open.len(), 2, "18 - 0 >= gap: two sessions");
        w.add(s, 0, 9, &[3.0]); // within 10 of both
        assert_eq!(w.open.len(), 1);
        assert_eq!(w.next_close(s), Some(28));
        assert_eq!(closed(&mut w, s, 27), vec![]);
        assert_eq!(closed(&mut w, s, 28), vec![(0, 28, 3)]);
        assert_eq!(w.open.len(), 0);
    }
}
