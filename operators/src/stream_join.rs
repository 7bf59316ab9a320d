//! Interval join of two streams: pairs of a left and a right event of the same
//! key whose times are close (a transaction within 10 minutes after a login of the
//! same card, from two topics).
//!
//! A right event `r` matches a left event `l` of the same key when
//! `l.time - before <= r.time <= l.time + after`. Every matching pair is emitted
//! exactly once, when the second of the two arrives: nothing waits for a
//! watermark, and the set of pairs does not depend on the order in which the two
//! sides arrive.
//!
//! Each side has its own watermark (no later event of that side is older). A left
//! event is kept while a right event may still match it (`right watermark <=
//! l.time + after`), a right event while a left one may (`left watermark <=
//! r.time + before`); the others leave the state, so its size follows the
//! interval, not the stream. An event that arrives when nothing can match it any
//! more is not kept at all.
//!
//! ```
//! use vigil_operators::stream_join::{Pair, StreamJoin};
//! // logins (right) within 10 s before a transaction (left)
//! let mut join = StreamJoin::<&str, &str>::new(10_000, 0);
//! let mut out = Vec::new();
//! join.right("card1", 1_000, "login", &mut out);
//! join.left("card1", 5_000, "tx-a", &mut out);   // 4 s after the login: a pair
//! join.left("card1", 20_000, "tx-b", &mut out);  // 19 s after: none
//! assert_eq!(out.len(), 1);
//! assert_eq!((out[0].left, out[0].right), ("tx-a", "login"));
//! // once each side's watermark passes, nothing is kept
//! join.left_watermark(30_000);
//! join.right_watermark(30_000);
//! assert_eq!(join.buffered(), 0);
//! ```

use std::collections::BTreeMap;

use rustc_hash::FxHashMap as HashMap;
use serde::{Deserialize, Serialize};

/// A matched pair.
#[derive(Clone, Debug, PartialEq)]
pub struct Pair<L, R> {
    pub key: String,
    pub left_time: i64,
    pub right_time: i64,
    pub left: L,
    pub right: R,
    /// The `tag` given with the left and the right event (e.g. their epochs).
    pub left_tag: u64,
    pub right_tag: u64,
}

/// One side's buffered events: per key by (time, arrival), and all by the same,
/// for expiry.
struct Side<V> {
    by_key: HashMap<String, BTreeMap<(i64, u64), (u64, V)>>,
    by_time: BTreeMap<(i64, u64), String>,
    watermark: i64,
}

impl<V> Default for Side<V> {
    fn default() -> Self {
        Side { by_key: HashMap::default(), by_time: BTreeMap::new(), watermark: i64::MIN }
    }
}

impl<V> Side<V> {
    fn insert(&mut self, key: &str, time: i64, seq: u64, tag: u64, value: V) {
        let events = match self.by_key.get_mut(key) {
            Some(events) => events,
            None => self.by_key.entry(key.to_owned()).or_default(),
        };
        events.insert((time, seq), (tag, value));
        self.by_time.insert((time, seq), key.to_owned());
    }
    /// Drops the events with a time below `limit`.
    fn expire_below(&mut self, limit: i64) {
        while let Some(((time, seq), _)) = self.by_time.first_key_value() {
            if *time >= limit {
                break;
            }
            let (time, seq) = (*time, *seq);
            let Some(key) = self.by_time.remove(&(time, seq)) else { break };
            if let Some(events) = self.by_key.get_mut(&key) {
                events.remove(&(time, seq));
                if events.is_empty() {
                    self.by_key.remove(&key);
                }
            }
        }
    }
    fn in_range(&self, key: &str, from: i64, to: i64) -> impl Iterator<Item = (i64, &(u64, V))> {
        self.by_key.get(key).into_iter().flat_map(move |events| events.range((from, 0)..=(to, u64::MAX)).map(|((t, _), v)| (*t, v)))
    }
}

/// The join's state on one worker; see the module docs.
pub struct StreamJoin<L, R> {
    before: i64,
    after: i64,
    left: Side<L>,
    right: Side<R>,
    seq: u64,
}

impl<L: Clone, R: Clone> StreamJoin<L, R> {
    /// Right events from `before` ms before a left event to `after` ms after it match.
    pub fn new(before: i64, after: i64) -> Self {
        StreamJoin { before, after, left: Side::default(), right: Side::default(), seq: 0 }
    }

    /// A left event (with a `tag` returned in its pairs).
    pub fn left(&mut self, key: &str, time: i64, value: L, out: &mut Vec<Pair<L, R>>) {
        self.left_tagged(key, time, 0, value, out)
    }
    /// A right event.
    pub fn right(&mut self, key: &str, time: i64, value: R, out: &mut Vec<Pair<L, R>>) {
        self.right_tagged(key, time, 0, value, out)
    }

    pub fn left_tagged(&mut self, key: &str, time: i64, tag: u64, value: L, out: &mut Vec<Pair<L, R>>) {
        for (rt, (rtag, r)) in self.right.in_range(key, time.saturating_sub(self.before), time.saturating_add(self.after)) {
            out.push(Pair { key: key.to_owned(), left_time: time, right_time: rt, left: value.clone(), right: r.clone(), left_tag: tag, right_tag: *rtag });
        }
        // a right event still to come is at or after the right watermark
        if time.saturating_add(self.after) >= self.right.watermark {
            self.seq += 1;
            self.left.insert(key, time, self.seq, tag, value);
        }
    }

    pub fn right_tagged(&mut self, key: &str, time: i64, tag: u64, value: R, out: &mut Vec<Pair<L, R>>) {
        for (lt, (ltag, l)) in self.left.in_range(key, time.saturating_sub(self.after), time.saturating_add(self.before)) {
            out.push(Pair { key: key.to_owned(), left_time: lt, right_time: time, left: l.clone(), right: value.clone(), left_tag: *ltag, right_tag: tag });
        }
        if time.saturating_add(self.before) >= self.left.watermark {
            self.seq += 1;
            self.right.insert(key, time, self.seq, tag, value);
        }
    }

    /// No later left event is older than `watermark`: right events no left event
    /// can match any more leave.
    pub fn left_watermark(&mut self, watermark: i64) {
        self.left.watermark = self.left.watermark.max(watermark);
        self.right.expire_below(self.left.watermark.saturating_sub(self.before));
    }

    /// The same for the right side.
    pub fn right_watermark(&mut self, watermark: i64) {
        self.right.watermark = self.right.watermark.max(watermark);
        self.left.expire_below(self.right.watermark.saturating_sub(self.after));
    }

    /// Events kept, both sides.
    pub fn buffered(&self) -> usize {
        self.left.by_time.len() + self.right.by_time.len()
    }

    /// The state, for a checkpoint: every kept event (key, time, tag, value) of
    /// each side, and each side's watermark.
    pub fn export(&self) -> JoinSnapshot<L, R> {
        JoinSnapshot { left: self.left.entries(), right: self.right.entries(), left_watermark: self.left.watermark, right_watermark: self.right.watermark }
    }

    /// Adds the events of a snapshot (any worker's) whose key `keep` accepts.
    /// Watermarks merge by minimum: a lower one only keeps events longer.
    pub fn import(&mut self, snap: JoinSnapshot<L, R>, keep: impl Fn(&str) -> bool) {
        for (key, time, tag, v) in snap.left.into_iter().filter(|e| keep(&e.0)) {
            self.seq += 1;
            self.left.insert(&key, time, self.seq, tag, v);
        }
        for (key, time, tag, v) in snap.right.into_iter().filter(|e| keep(&e.0)) {
            self.seq += 1;
            self.right.insert(&key, time, self.seq, tag, v);
        }
        let merge = |mine: &mut i64, theirs: i64| *mine = if *mine == i64::MIN { theirs } else { (*mine).min(theirs) };
        merge(&mut self.left.watermark, snap.left_watermark);
        merge(&mut self.right.watermark, snap.right_watermark);
    }
}

/// A [`StreamJoin`]'s state, as a checkpoint keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JoinSnapshot<L, R> {
    pub left: Vec<(String, i64, u64, L)>,
    pub right: Vec<(String, i64, u64, R)>,
    pub left_watermark: i64,
    pub right_watermark: i64,
}

impl<V: Clone> Side<V> {
    /// Every kept event, in (time, arrival) order.
    fn entries(&self) -> Vec<(String, i64, u64, V)> {
        self.by_time.iter().filter_map(|((t, seq), key)| self.by_key.get(key)?.get(&(*t, *seq)).map(|(tag, v)| (key.clone(), *t, *tag, v.clone()))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Events of both sides in one arrival order: (is_left, key, time).
    fn events() -> impl Strategy<Value = Vec<(bool, u8, i64)>> {
        prop::collection::vec((any::<bool>(), 0u8..3, 0i64..60), 0..60)
    }

    proptest! {
        /// Arrival order, expiry by watermarks in between: the pairs are exactly
        /// those of the definition, once each.
        #[test]
        fn pairs_equal_the_definition(evs in events(), before in 0i64..10, after in 0i64..10, lag in 0i64..20) {
            // each side's watermark trails its own maximum by `lag`, and events
            // older than it are late (the sources drop them), as a source would
            let (mut lmax, mut rmax) = (i64::MIN, i64::MIN);
            let mut accepted = Vec::new();
            let mut join = StreamJoin::<usize, usize>::new(before, after);
            let mut out = Vec::new();
            for (i, (is_left, key, time)) in evs.into_iter().enumerate() {
                let key = format!("k{key}");
                let wm = |max: i64| max.saturating_sub(lag);
                if is_left {
                    if time < wm(lmax) { continue }
                    lmax = lmax.max(time);
                    join.left(&key, time, i, &mut out);
                    join.left_watermark(wm(lmax));
                } else {
                    if time < wm(rmax) { continue }
                    rmax = rmax.max(time);
                    join.right(&key, time, i, &mut out);
                    join.right_watermark(wm(rmax));
                }
                accepted.push((is_left, key, time, i));
            }
            let mut expected = Vec::new();
            for (l_left, lk, lt, li) in &accepted {
                for (r_left, rk, rt, ri) in &accepted {
                    if *l_left && !*r_left && lk == rk && *rt >= lt - before && *rt <= lt + after {
                        expected.push((*li, *ri));
                    }
                }
            }
            let mut got: Vec<(usize, usize)> = out.iter().map(|p| (p.left, p.right)).collect();
            expected.sort();
            got.sort();
            prop_assert_eq!(got, expected);
        }
    }
}
