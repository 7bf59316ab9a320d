//! Exact distinct counts over a sliding window: how many different values of a
//! string field (e.g. merchants per card in the last hour) the key's window holds.
//!
//! Values arrive hashed to 64 bits (see [`tag_of`]); a key keeps each retained
//! event's tag beside its numeric fields, and one running multiset per distinct
//! feature over its window at the key's latest event time, so an in-order event
//! costs O(1) amortized (tags entering and leaving), and an out-of-order event is
//! added in place and counts its own window by one scan. Removing a tag when its
//! last occurrence leaves the window is what makes the count exact under
//! retraction, where a sketch could not forget.

use std::collections::VecDeque;

use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

/// An event without the field.
pub const ABSENT: u64 = u64::MAX;

/// A string's tag: FNV-1a, then a 64-bit finalizer (so that sketches can use
/// its bits); never [`ABSENT`].
pub fn tag_of(s: &str) -> u64 {
    let h = s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3));
    let mut z = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)).min(ABSENT - 1)
}

/// Exact distinct count of tag `tag` (an index into the event's tags) over a
/// sliding window `(t - window_ms, t]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Distinct {
    pub name: String,
    pub tag: usize,
    pub window_ms: i64,
}

/// The running multiset of one distinct feature at the key's latest time: the
/// retained events from index `start` on, all with time above `lo`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DistinctRun {
    lo: i64,
    start: usize,
    counts: FxHashMap<u64, u32>,
    /// Scratch for out-of-order events: tag count changes against `counts`.
    #[serde(skip)]
    delta: FxHashMap<u64, i64>,
}

impl Default for DistinctRun {
    fn default() -> Self {
        DistinctRun { lo: i64::MIN, start: 0, counts: FxHashMap::default(), delta: FxHashMap::default() }
    }
}

/// A key's retained event times and tags (`stride` tags per event).
pub struct Tagged<'a> {
    pub times: &'a VecDeque<i64>,
    pub tags: &'a VecDeque<u64>,
    pub stride: usize,
}

impl DistinctRun {
    /// The distinct count as of the event just inserted at `pos`; updates the run.
    pub fn observe(&mut self, d: &Distinct, r: &Tagged<'_>, pos: usize, in_order: bool, time: i64) -> u64 {
        let tag = r.tags[pos * r.stride + d.tag];
        if time <= self.lo {
            // inserted before the run's window (an out-of-order event older than it)
            self.start += 1;
        } else if tag != ABSENT {
            *self.counts.entry(tag).or_default() += 1;
        }
        if in_order {
            self.advance(time.saturating_sub(d.window_ms), d, r);
            return self.counts.len() as u64;
        }
        // Out of order: its own window `first..=pos`. The run holds `start..`, and
        // `first <= start`; when the event is in the run, its window is the run
        // less the later events plus those before the run's window: few for an
        // event a little late. Else one scan.
        let lower = time.saturating_sub(d.window_ms);
        let first = r.times.partition_point(|&t| t <= lower);
        let len = r.times.len();
        let tag_at = |e: usize| r.tags[e * r.stride + d.tag];
        if pos >= self.start && (len - 1 - pos) + (self.start - first) < pos + 1 - first {
            self.delta.clear();
            for e in (pos + 1..len).filter(|e| tag_at(*e) != ABSENT) {
                *self.delta.entry(tag_at(e)).or_default() -= 1;
            }
            for e in (first..self.start).filter(|e| tag_at(*e) != ABSENT) {
                *self.delta.entry(tag_at(e)).or_default() += 1;
            }
            let mut n = self.counts.len() as i64;
            for (tag, change) in &self.delta {
                let had = self.counts.get(tag).copied().unwrap_or(0) as i64;
                n += (had + change > 0) as i64 - (had > 0) as i64;
            }
            return n as u64;
        }
        let distinct: FxHashSet<u64> = (first..=pos).map(tag_at).filter(|t| *t != ABSENT).collect();
        distinct.len() as u64
    }

    /// Moves the window's lower bound to `lo`, forgetting the tags that leave.
    pub fn advance(&mut self, lo: i64, d: &Distinct, r: &Tagged<'_>) {
        if lo <= self.lo {
            return;
        }
        self.lo = lo;
        while self.start < r.times.len() && r.times[self.start] <= lo {
            let tag = r.tags[self.start * r.stride + d.tag];
            if let Some(n) = self.counts.get_mut(&tag) {
                *n -= 1;
                if *n == 0 {
                    self.counts.remove(&tag);
                }
            }
            self.start += 1;
        }
    }

    /// The run of a key whose retained events are `r`, as of its latest time:
    /// what the run would hold had it seen them all (a state migration adds
    /// the feature to a key that already has history).
    pub fn rebuilt(d: &Distinct, r: &Tagged<'_>) -> Self {
        let mut run = DistinctRun::default();
        for e in 0..r.times.len() {
            let tag = r.tags.get(e * r.stride + d.tag).copied().unwrap_or(ABSENT);
            if tag != ABSENT {
                *run.counts.entry(tag).or_default() += 1;
            }
        }
        if let Some(&latest) = r.times.back() {
            run.advance(latest.saturating_sub(d.window_ms), d, r);
        }
        run
    }

    /// The key dropped its first `n` retained events (all at or before `lo`).
    pub fn removed_front(&mut self, n: usize) {
        self.start -= n.min(self.start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_spread_and_never_absent() {
        assert_ne!(tag_of("a"), tag_of("b"));
        assert_ne!(tag_of(""), ABSENT);
        // the top bits (what a sketch reads) differ for near-identical strings
        assert_ne!(tag_of("m-00001") >> 54, tag_of("m-00002") >> 54);
    }
}
