//! Stream-stream interval join: pairs of events of the same key, one from each
//! side, whose event times are at most a bounded interval apart (a click within
//! 10 minutes of an impression of the same video).
//!
//! Definition: a join has two sides, each the events whose kept string field
//! equals a value (or every event). A right event `r` matches a left event `l` of
//! the same key when `lower <= r.time - l.time <= upper` and, if the join has an
//! `on` field, both carry the same value of it. Every matching pair is emitted
//! exactly once, as soon as the later of the two (in the key's offset order) has
//! been observed: nothing waits for the watermark. With `emit_unmatched` (a left
//! outer join) a left event that no right event can match any more is emitted once
//! without a partner; that is decided by the watermark, so it is final. A left
//! event without the `on` value can match nothing (SQL's NULL); a right one without
//! it is ignored.
//!
//! State: each key buffers its left and right events by event time. Every future
//! accepted event of a partition has a time at or after the partition's watermark
//! `wm` (lateness is decided once, at the source), so a left event can no longer
//! match once `wm > l.time + upper`, and a right event once `wm > r.time - lower`.
//! Such events leave the state through per-partition timers (one live timer per
//! key: its earliest expiry), so the state holds only events that can still
//! match: its size follows the interval, not the stream. As for windows, a key's
//! events are judged by their partition's watermark (Kafka's keyed partitioning
//! puts a key in one partition).
//!
//! ```
//! use vigil_operators::interval_join::{IntervalJoin, JoinInput, JoinState, SideFilter};
//! let join = IntervalJoin {
//!     name: "click_after_view".into(),
//!     left: Some(SideFilter { field: 0, value: "view".into() }),
//!     right: Some(SideFilter { field: 0, value: "click".into() }),
//!     lower_ms: 0,
//!     upper_ms: 600_000, // within 10 minutes
//!     on: None,
//!     emit_unmatched: true,
//! };
//! let mut state = JoinState::new(vec![join]);
//! let mut out = Vec::new();
//! let event = |time, offset, action: &str| (time, offset, vec![Some(action.to_string())]);
//! for (time, offset, strings) in [event(0, 0, "view"), event(30_000, 1, "view"), event(60_000, 2, "click")] {
//!     let input = JoinInput { time, partition: 0, offset, event_id: None, values: &[], strings: &strings };
//!     state.observe("u1", 0, time, &input, &mut out);
//! }
//! assert_eq!(out.len(), 2, "the click pairs with both views");
//! assert_eq!((out[0].left.offset, out[1].left.offset), (0, 1));
//! // once the watermark passes 10 minutes after them, the views leave the state
//! let late = vec![Some("scroll".to_string())];
//! let input = JoinInput { time: 700_000, partition: 0, offset: 3, event_id: None, values: &[], strings: &late };
//! state.observe("u2", 0, 700_000, &input, &mut out);
//! state.expire_due(&mut out);
//! assert_eq!(state.buffered(), 0);
//! assert_eq!(out.len(), 2, "both views were matched: no unmatched record");
//! ```

use std::collections::BTreeMap;

use rustc_hash::FxHashMap as HashMap;
use serde::{Deserialize, Serialize};

/// The events of one side: those whose kept string field `field` is `value`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SideFilter {
    /// Index into the event's kept string fields.
    pub field: usize,
    pub value: String,
}

impl SideFilter {
    pub fn selects(&self, strings: &[Option<String>]) -> bool {
        strings.get(self.field).and_then(|s| s.as_deref()) == Some(self.value.as_str())
    }
}

/// One interval join of a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntervalJoin {
    pub name: String,
    /// The left side's events; `None`: every event.
    pub left: Option<SideFilter>,
    /// The right side's events; `None`: every event.
    pub right: Option<SideFilter>,
    /// A right event matches a left one when `lower_ms <= right - left <= upper_ms`
    /// (event times).
    pub lower_ms: i64,
    pub upper_ms: i64,
    /// A kept string field whose value must be present and equal on both sides.
    pub on: Option<usize>,
    /// Left outer join: a left event that can no longer match is emitted alone.
    pub emit_unmatched: bool,
}

/// An event as a join sees it.
#[derive(Clone, Copy, Debug)]
pub struct JoinInput<'a> {
    pub time: i64,
    pub partition: u32,
    pub offset: i64,
    pub event_id: Option<&'a str>,
    /// The event's numeric fields (NaN: absent), emitted with it.
    pub values: &'a [f64],
    /// The event's kept string fields (side filters and `on` read them).
    pub strings: &'a [Option<String>],
}

/// One side's event as a join keeps and emits it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JoinRecord {
    pub time: i64,
    pub partition: u32,
    pub offset: i64,
    pub event_id: Option<String>,
    pub values: Vec<f64>,
}

impl JoinRecord {
    fn of(input: &JoinInput<'_>) -> Self {
        JoinRecord {
            time: input.time,
            partition: input.partition,
            offset: input.offset,
            event_id: input.event_id.map(str::to_owned),
            values: input.values.to_vec(),
        }
    }
}

/// A join's output: a matched pair, or (outer join) a left event with no match.
#[derive(Clone, Debug, PartialEq)]
pub struct Joined {
    /// Index of the join in the job's joins.
    pub join: usize,
    pub key: String,
    pub left: JoinRecord,
    pub right: Option<JoinRecord>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Buffered {
    record: JoinRecord,
    on: Option<String>,
    matched: bool,
}

/// A key's buffered events of one join, each side in event-time order.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct KeyBuffers {
    partition: u32,
    lefts: Vec<Buffered>,
    rights: Vec<Buffered>,
    /// The key's live timer: the earliest expiry when it was scheduled.
    timer_at: Option<i64>,
}

impl KeyBuffers {
    fn is_empty(&self) -> bool {
        self.lefts.is_empty() && self.rights.is_empty()
    }

    fn next_expiry(&self, def: &IntervalJoin) -> Option<i64> {
        let left = self.lefts.iter().map(|b| left_expiry(def, b.record.time)).min();
        let right = self.rights.iter().map(|b| right_expiry(def, b.record.time)).min();
        left.into_iter().chain(right).min()
    }
}

/// The watermark at which a left event at `time` can no longer match.
fn left_expiry(def: &IntervalJoin, time: i64) -> i64 {
    time.saturating_add(def.upper_ms).saturating_add(1)
}

/// The watermark at which a right event at `time` can no longer match.
fn right_expiry(def: &IntervalJoin, time: i64) -> i64 {
    time.saturating_sub(def.lower_ms).saturating_add(1)
}

/// One join's keys and timers.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct OneJoin {
    keys: HashMap<String, KeyBuffers>,
    /// Per partition: (expiry, key); stale entries are skipped.
    timers: Timers,
    buffered: usize,
}

/// The state of every interval join of a job, on one worker.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct JoinState {
    defs: Vec<IntervalJoin>,
    joins: Vec<OneJoin>,
    /// Latest watermark seen per partition.
    watermarks: HashMap<u32, i64>,
}

fn insert_by_time(side: &mut Vec<Buffered>, b: Buffered) {
    // after the events at the same time: ties stay in arrival order
    let at = side.partition_point(|x| x.record.time <= b.record.time);
    side.insert(at, b);
}

/// Width of a timer bucket, ms of event time.
const BUCKET_MS: i64 = 64;

/// One partition's expiry timers, in buckets of event time: adding one costs a
/// lookup among the buckets and no comparison of keys (a heap of `(time, key)`
/// compared keys on every tie and cost ~40% of the join's time, measured), and a
/// watermark releases whole buckets. Entries superseded by an earlier timer of
/// their key stay until their bucket is released, then are skipped.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct TimerWheel {
    buckets: BTreeMap<i64, Vec<(i64, String)>>,
}

impl TimerWheel {
    fn push(&mut self, at: i64, key: String) {
        self.buckets.entry(at.div_euclid(BUCKET_MS)).or_default().push((at, key));
    }

    /// Moves the timers at or before `wm` to `due`.
    fn take_due(&mut self, wm: i64, due: &mut Vec<(i64, String)>) {
        let last = wm.div_euclid(BUCKET_MS);
        while let Some(mut bucket) = self.buckets.first_entry() {
            if *bucket.key() < last {
                due.append(bucket.get_mut());
                bucket.remove();
                continue;
            }
            if *bucket.key() == last {
                // the bucket the watermark is in: only its due part
                let timers = bucket.get_mut();
                let mut i = 0;
                while i < timers.len() {
                    if timers[i].0 <= wm {
                        due.push(timers.swap_remove(i));
                    } else {
                        i += 1;
                    }
                }
                if timers.is_empty() {
                    bucket.remove();
                }
            }
            break;
        }
    }
}

type Timers = HashMap<u32, TimerWheel>;

/// Makes `at` the key's timer if it is earlier than the live one.
fn schedule(timers: &mut Timers, key: &str, partition: u32, kb_timer: &mut Option<i64>, at: i64) {
    if kb_timer.is_none_or(|t| at < t) {
        *kb_timer = Some(at);
        timers.entry(partition).or_default().push(at, key.to_owned());
    }
}

/// An event of a key, with what a join made of it.
struct Sided<'a> {
    key: &'a str,
    partition: u32,
    wm: i64,
    input: &'a JoinInput<'a>,
    on: Option<&'a str>,
    is_left: bool,
    is_right: bool,
}

/// Adds an event to its key's buffers of join `j` and appends the pairs it completes.
fn add(def: &IntervalJoin, j: usize, ev: &Sided<'_>, kb: &mut KeyBuffers, timers: &mut Timers, buffered: &mut usize, out: &mut Vec<Joined>) {
    if kb.partition != ev.partition {
        // a key that moved partitions: its timer follows it
        kb.partition = ev.partition;
        kb.timer_at = None;
    }
    let t = ev.input.time;
    if ev.is_left {
        let record = JoinRecord::of(ev.input);
        let mut matched = false;
        for r in &kb.rights {
            let d = r.record.time - t;
            if d >= def.lower_ms && d <= def.upper_ms && r.on.as_deref() == ev.on {
                out.push(Joined { join: j, key: ev.key.to_owned(), left: record.clone(), right: Some(r.record.clone()) });
                matched = true;
            }
        }
        let expiry = left_expiry(def, t);
        if expiry > ev.wm {
            insert_by_time(&mut kb.lefts, Buffered { record, on: ev.on.map(str::to_owned), matched });
            *buffered += 1;
            schedule(timers, ev.key, ev.partition, &mut kb.timer_at, expiry);
        } else if !matched && def.emit_unmatched {
            out.push(Joined { join: j, key: ev.key.to_owned(), left: record, right: None });
        }
    }
    if ev.is_right {
        let record = JoinRecord::of(ev.input);
        for l in kb.lefts.iter_mut() {
            let d = t - l.record.time;
            if d >= def.lower_ms && d <= def.upper_ms && l.on.as_deref() == ev.on {
                out.push(Joined { join: j, key: ev.key.to_owned(), left: l.record.clone(), right: Some(record.clone()) });
                l.matched = true;
            }
        }
        let expiry = right_expiry(def, t);
        if expiry > ev.wm {
            insert_by_time(&mut kb.rights, Buffered { record, on: ev.on.map(str::to_owned), matched: false });
            *buffered += 1;
            schedule(timers, ev.key, ev.partition, &mut kb.timer_at, expiry);
        }
    }
}

impl JoinState {
    pub fn new(defs: Vec<IntervalJoin>) -> Self {
        let joins = defs.iter().map(|_| OneJoin::default()).collect();
        JoinState { defs, joins, watermarks: HashMap::default() }
    }

    /// Moves the state into `new` (an empty state of a changed job's joins):
    /// new join `j` keeps old join `plan[j]`'s buffered events (same name, same
    /// definition, same event layout), or starts empty (`None`); the others are
    /// dropped.
    pub fn migrate(self, mut new: JoinState, plan: &[Option<usize>]) -> JoinState {
        let mut old: Vec<Option<OneJoin>> = self.joins.into_iter().map(Some).collect();
        for (j, mine) in new.joins.iter_mut().enumerate() {
            if let Some(kept) = plan.get(j).copied().flatten().and_then(|o| old.get_mut(o)).and_then(Option::take) {
                *mine = kept;
            }
        }
        new.watermarks = self.watermarks;
        new
    }

    /// Events buffered by every join (those that can still match).
    pub fn buffered(&self) -> usize {
        self.joins.iter().map(|j| j.buffered).sum()
    }

    /// Events buffered by join `j`.
    pub fn buffered_of(&self, j: usize) -> usize {
        self.joins.get(j).map_or(0, |o| o.buffered)
    }

    /// Adds an accepted event of `key` and appends the pairs it completes to `out`.
    ///
    /// As for features: `watermark` is the event's partition watermark after it
    /// (the event's time is at or after the watermark before it), and the events
    /// of a key arrive in partition offset order.
    pub fn observe(&mut self, key: &str, partition: u32, watermark: i64, input: &JoinInput<'_>, out: &mut Vec<Joined>) {
        if self.defs.is_empty() {
            return;
        }
        let wm = self.watermarks.entry(partition).or_insert(watermark);
        *wm = (*wm).max(watermark);
        let wm = *wm;
        for (j, def) in self.defs.iter().enumerate() {
            let is_left = def.left.as_ref().is_none_or(|f| f.selects(input.strings));
            let is_right = def.right.as_ref().is_none_or(|f| f.selects(input.strings));
            if !is_left && !is_right {
                continue;
            }
            let on = match def.on {
                None => None,
                Some(field) => match input.strings.get(field).and_then(|s| s.as_deref()) {
                    Some(v) => Some(v),
                    None => {
                        // can match nothing: an outer join emits such a left at once
                        if is_left && def.emit_unmatched {
                            out.push(Joined { join: j, key: key.to_owned(), left: JoinRecord::of(input), right: None });
                        }
                        continue;
                    }
                },
            };
            let OneJoin { keys, timers, buffered } = &mut self.joins[j];
            let event = Sided { key, partition, wm, input, on, is_left, is_right };
            match keys.get_mut(key) {
                Some(kb) => {
                    add(def, j, &event, kb, timers, buffered, out);
                    if kb.is_empty() {
                        keys.remove(key);
                    }
                }
                None => {
                    // a new key: kept only if the event stays buffered
                    let mut kb = KeyBuffers { partition, ..Default::default() };
                    add(def, j, &event, &mut kb, timers, buffered, out);
                    if !kb.is_empty() {
                        keys.insert(key.to_owned(), kb);
                    }
                }
            }
        }
    }

    /// Releases every buffered event that its partition's watermark has expired,
    /// appending the unmatched left ones to `out` (outer joins), per key in
    /// event-time order.
    pub fn expire_due(&mut self, out: &mut Vec<Joined>) {
        let JoinState { defs, joins, watermarks } = self;
        let mut due = Vec::new();
        for (j, (def, one)) in defs.iter().zip(joins.iter_mut()).enumerate() {
            let OneJoin { keys, timers, buffered } = one;
            for (partition, wheel) in timers.iter_mut() {
                let wm = watermarks.get(partition).copied().unwrap_or(i64::MIN);
                wheel.take_due(wm, &mut due);
                for (at, key) in due.drain(..) {
                    let Some(kb) = keys.get_mut(&key) else { continue };
                    if kb.timer_at != Some(at) || kb.partition != *partition {
                        continue; // superseded by an earlier timer
                    }
                    let before = kb.lefts.len() + kb.rights.len();
                    for b in kb.lefts.iter().filter(|b| left_expiry(def, b.record.time) <= wm) {
                        if !b.matched && def.emit_unmatched {
                            out.push(Joined { join: j, key: key.clone(), left: b.record.clone(), right: None });
                        }
                    }
                    kb.lefts.retain(|b| left_expiry(def, b.record.time) > wm);
                    kb.rights.retain(|b| right_expiry(def, b.record.time) > wm);
                    *buffered -= before - kb.lefts.len() - kb.rights.len();
                    kb.timer_at = kb.next_expiry(def);
                    match kb.timer_at {
                        Some(next) => wheel.push(next, key),
                        None => {
                            keys.remove(&key);
                        }
                    }
                }
            }
        }
    }

    /// The input ended: no event can come, so every buffered left event without a
    /// match is emitted (outer joins) and the state is emptied. Keys in order.
    pub fn flush_all(&mut self, out: &mut Vec<Joined>) {
        for (j, (def, one)) in self.defs.iter().zip(self.joins.iter_mut()).enumerate() {
            let mut keys: Vec<(String, KeyBuffers)> = one.keys.drain().collect();
            keys.sort_by(|a, b| a.0.cmp(&b.0));
            for (key, kb) in keys {
                for b in kb.lefts.into_iter().filter(|b| !b.matched && def.emit_unmatched) {
                    out.push(Joined { join: j, key: key.clone(), left: b.record, right: None });
                }
            }
            one.timers.clear();
            one.buffered = 0;
        }
    }

    /// Moves into `self` the keys of `other` that `keep` accepts (restoring a
    /// checkpoint taken with another number of workers).
    pub fn absorb(&mut self, other: JoinState, keep: impl Fn(&str) -> bool) -> Result<(), String> {
        if self.defs != other.defs {
            return Err("the checkpointed joins differ from the job's".into());
        }
        for (mine, theirs) in self.joins.iter_mut().zip(other.joins) {
            for (key, kb) in theirs.keys {
                if keep(&key) {
                    if let Some(at) = kb.timer_at {
                        mine.timers.entry(kb.partition).or_default().push(at, key.clone());
                    }
                    mine.buffered += kb.lefts.len() + kb.rights.len();
                    mine.keys.insert(key, kb);
                }
            }
        }
        for (partition, wm) in other.watermarks {
            let mine = self.watermarks.entry(partition).or_insert(wm);
            *mine = (*mine).max(wm);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(lower: i64, upper: i64, on: Option<usize>) -> IntervalJoin {
        IntervalJoin {
            name: "j".into(),
            left: Some(SideFilter { field: 0, value: "L".into() }),
            right: Some(SideFilter { field: 0, value: "R".into() }),
            lower_ms: lower,
            upper_ms: upper,
            on,
            emit_unmatched: true,
        }
    }

    fn feed(state: &mut JoinState, events: &[(&str, i64, i64, &str, Option<&str>)]) -> Vec<(i64, Option<i64>)> {
        let mut out = Vec::new();
        for (offset, (key, time, wm, side, on)) in events.iter().enumerate() {
            let strings = vec![Some(side.to_string()), on.map(str::to_owned)];
            let input = JoinInput { time: *time, partition: 0, offset: offset as i64, event_id: None, values: &[], strings: &strings };
            state.observe(key, 0, *wm, &input, &mut out);
            state.expire_due(&mut out);
        }
        out.iter().map(|j| (j.left.offset, j.right.as_ref().map(|r| r.offset))).collect()
    }

    /// A job upgraded from `[a, b]` to `[b, c]`: `b` goes on as if nothing
    /// happened, `c` starts empty, `a` is gone.
    #[test]
    fn a_migrated_join_keeps_its_buffers_and_an_added_one_starts_empty() {
        let named = |name: &str, upper: i64| IntervalJoin { name: name.into(), ..join(0, upper, None) };
        let (a, b, c) = (named("a", 10), named("b", 50), named("c", 30));
        let first: Vec<(&str, i64, i64, &str, Option<&str>)> = vec![("k", 100, 0, "L", None), ("m", 101, 0, "L", None), ("k", 105, 0, "R", None)];
        let second: Vec<(&str, i64, i64, &str, Option<&str>)> =
            vec![("k", 130, 100, "R", None), ("m", 140, 100, "R", None), ("m", 141, 100, "L", None), ("m", 160, 100, "R", None), ("k", 400, 300, "X", None)];
        let run = |state: &mut JoinState, events: &[(&str, i64, i64, &str, Option<&str>)], from: usize| {
            let mut out = Vec::new();
            for (i, (key, time, wm, side, on)) in events.iter().enumerate() {
                let strings = vec![Some(side.to_string()), on.map(str::to_owned)];
                let input = JoinInput { time: *time, partition: 0, offset: (from + i) as i64, event_id: None, values: &[], strings: &strings };
                state.observe(key, 0, *wm, &input, &mut out);
                state.expire_due(&mut out);
            }
            out.into_iter().map(|j| (j.join, j.left.offset, j.right.map(|r| r.offset))).collect::<Vec<_>>()
        };
        let mut unchanged = JoinState::new(vec![a.clone(), b.clone()]);
        let mut old = JoinState::new(vec![a, b.clone()]);
        run(&mut unchanged, &first, 0);
        run(&mut old, &first, 0);
        let mut migrated = old.migrate(JoinState::new(vec![b, c.clone()]), &[Some(1), None]);
        let want_b: Vec<_> = run(&mut unchanged, &second, 3).into_iter().filter(|j| j.0 == 1).map(|j| (0, j.1, j.2)).collect();
        let mut only_c = JoinState::new(vec![c]);
        let want_c: Vec<_> = run(&mut only_c, &second, 3).into_iter().map(|j| (1, j.1, j.2)).collect();
        let got = run(&mut migrated, &second, 3);
        assert!(want_b.iter().any(|j| j.1 < 3), "b pairs events from before the upgrade: {want_b:?}");
        assert_eq!(got.iter().filter(|j| j.0 == 0).copied().collect::<Vec<_>>(), want_b);
        assert_eq!(got.iter().filter(|j| j.0 == 1).copied().collect::<Vec<_>>(), want_c);
    }

    #[test]
    fn bounds_are_inclusive_and_unmatched_lefts_wait_for_the_watermark() {
        let mut s = JoinState::new(vec![join(0, 10, None)]);
        let got =
            feed(&mut s, &[("k", 100, 0, "L", None), ("k", 110, 0, "R", None), ("k", 111, 0, "R", None), ("k", 200, 0, "L", None), ("k", 300, 210, "X", None)]);
        // 110 - 100 = 10 matches, 11 does not; the left at 200 expires once wm > 210
        assert_eq!(got, vec![(0, Some(1))]);
        let got = feed(&mut s, &[("k", 400, 211, "X", None)]);
        assert_eq!(got, vec![(3, None)]);
        assert_eq!(s.buffered(), 0);
    }

    #[test]
    fn state_split_across_workers_by_key_gives_the_same_output() {
        let events: Vec<(&str, i64, i64, &str, Option<&str>)> =
            vec![("a", 100, 0, "L", None), ("b", 101, 0, "L", None), ("a", 104, 0, "R", None), ("b", 150, 90, "X", None), ("b", 108, 90, "R", None)];
        let mut whole = JoinState::new(vec![join(0, 10, None)]);
        let first = feed(&mut whole, &events[..3]);
        assert_eq!(first, vec![(0, Some(2))]);
        // a checkpoint taken now, restored on two workers (one key each)
        let mut a = JoinState::new(vec![join(0, 10, None)]);
        let mut b = JoinState::new(vec![join(0, 10, None)]);
        a.absorb(whole.clone(), |k| k == "a").unwrap();
        b.absorb(whole.clone(), |k| k == "b").unwrap();
        assert_eq!((a.buffered(), b.buffered()), (2, 1));
        let rest_whole = feed(&mut whole, &events[3..]);
        let rest_b = feed(&mut b, &events[3..]);
        assert_eq!(rest_whole, rest_b);
        assert_eq!(rest_b, vec![(1, Some(1))], "b's right at 108 pairs with its restored left at 101");
        assert!(JoinState::new(vec![join(0, 11, None)]).absorb(whole, |_| true).is_err(), "another join's state is refused");
    }

    #[test]
    fn a_right_before_its_left_in_offset_order_still_matches_and_on_must_agree() {
        let mut s = JoinState::new(vec![join(-5, 10, Some(1))]);
        let got = feed(&mut s, &[("k", 100, 0, "R", Some("a")), ("k", 103, 0, "L", Some("a")), ("k", 101, 0, "L", Some("b")), ("k", 102, 0, "L", None)]);
        // right 100 - left 103 = -3 in [-5, 10]; `b` differs; a left without `on` is unmatched at once
        assert_eq!(got, vec![(1, Some(0)), (3, None)]);
        let mut out = Vec::new();
        s.flush_all(&mut out);
        assert_eq!(out.iter().map(|j| j.left.offset).collect::<Vec<_>>(), vec![2]);
        assert_eq!(s.buffered(), 0);
    }
}
