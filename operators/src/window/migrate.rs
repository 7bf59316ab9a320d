//! Carrying a worker's feature state into a changed set of feature definitions
//! (a job upgraded from a savepoint): the features kept keep their state, the
//! added ones start without any of their own, the removed ones are dropped.
//!
//! Per key, what the job keeps falls in two parts:
//! - *Retained events* (times, numeric fields, tags): shared by every feature.
//!   They are carried, their columns re-laid out by field name. The state that is
//!   a function of them (sliding tails, exact distinct runs) is rebuilt from
//!   them, for kept and added features alike: the same function of the same
//!   events gives the same state. An added feature thus reads the history the
//!   job already kept (a sliding window no longer than the old longest one is
//!   whole at once; longer ones fill as events come).
//! - *Per-feature summaries of events no longer retained* (decayed sums, ratio
//!   panes, HyperLogLog panes, session bases, open on-close windows, tumbling and
//!   hopping runs): carried by feature name (runs by window plan), empty for an
//!   added feature. An added decayed feature starts from the retained events.
//!
//! ```
//! use vigil_operators::window::FeatureMigration;
//! use vigil_operators::{Agg, FeatureDef, FeatureState, WindowFeature};
//! let w = |n: &str, ms| FeatureDef::Window(WindowFeature::sliding(n, Agg::Count, None, ms));
//! let mut old = FeatureState::new(vec![w("n_1m", 60_000)], 0);
//! let mut out = Vec::new();
//! old.observe("k", 0, 0, 1_000, &[], &mut out);
//! // the new job keeps `n_1m` and adds `n_10s`
//! let new = FeatureState::new(vec![w("n_10s", 10_000), w("n_1m", 60_000)], 0);
//! let plan = FeatureMigration { fields: vec![], tags: vec![], features: vec![None, Some(0)] };
//! let mut state = old.migrate(new, &plan);
//! state.observe("k", 0, 0, 30_000, &[], &mut out);
//! assert_eq!(out, vec![Some(1.0), Some(2.0)]);
//! ```

use std::cmp::Reverse;
use std::collections::VecDeque;

use super::{Extras, FeatureDef, FeatureState, KeyHistory};
use crate::decayed::DecayRun;
use crate::distinct::{DistinctRun, Tagged, ABSENT};
use crate::kinds::{KindRun, WindowKind};
use crate::tail::TailWindow;

/// How an old feature state maps onto a new one, by position.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FeatureMigration {
    /// For each new numeric field, the old field of the same name.
    pub fields: Vec<Option<usize>>,
    /// For each new tag (hashed string field), the old tag of the same field.
    pub tags: Vec<Option<usize>>,
    /// For each new feature, the old feature whose state it keeps (same name,
    /// same definition); `None`: it starts without state of its own.
    pub features: Vec<Option<usize>>,
}

impl FeatureDef {
    /// The definition with its field and tag indices mapped (`None` where one
    /// of them has no image): to compare an old definition with a new one.
    pub fn remap_inputs(&self, field: impl Fn(usize) -> Option<usize>, tag: impl Fn(usize) -> Option<usize>) -> Option<FeatureDef> {
        let mut d = self.clone();
        match &mut d {
            FeatureDef::Window(w) => {
                if let Some(f) = w.field {
                    w.field = Some(field(f)?);
                }
            }
            FeatureDef::Decayed(x) => {
                if let Some(f) = x.field {
                    x.field = Some(field(f)?);
                }
            }
            FeatureDef::PrevValue { field: f, .. } => *f = field(*f)?,
            FeatureDef::RatioToMean(r) => r.field = field(r.field)?,
            FeatureDef::Distinct(x) => x.tag = tag(x.tag)?,
            FeatureDef::ApproxDistinct(x) => x.tag = tag(x.tag)?,
            FeatureDef::TimeSincePrev { .. } | FeatureDef::Lookup(_) => {}
        }
        Some(d)
    }
}

/// The position of each def among the defs of its own kind (`same` picks them).
fn rank(defs: &[FeatureDef], i: usize, same: impl Fn(&FeatureDef) -> bool) -> Option<usize> {
    same(&defs[i]).then(|| defs[..i].iter().filter(|d| same(d)).count())
}

/// A per-kind vector of the new layout: element `k` (the `k`-th new def of the
/// kind) is the old element of the feature it keeps, else `fresh(def index)`.
fn carry<T: Clone>(
    old: &[T],
    old_defs: &[FeatureDef],
    new_defs: &[FeatureDef],
    plan: &[Option<usize>],
    same: impl Fn(&FeatureDef) -> bool + Copy,
    mut fresh: impl FnMut(usize) -> T,
) -> Vec<T> {
    (0..new_defs.len())
        .filter(|j| same(&new_defs[*j]))
        .map(|j| plan[j].and_then(|o| rank(old_defs, o, same)).and_then(|k| old.get(k).cloned()).unwrap_or_else(|| fresh(j)))
        .collect()
}

impl FeatureState {
    /// Moves every key of `self` into `new` (an empty state of the changed
    /// definitions) as `plan` says; see the module docs.
    pub fn migrate(self, mut new: FeatureState, plan: &FeatureMigration) -> FeatureState {
        debug_assert_eq!(plan.fields.len(), new.fields, "a plan field per new field");
        debug_assert_eq!(plan.features.len(), new.defs.len(), "a plan entry per new feature");
        let (old_fields, old_tags) = (self.fields, self.tags);
        let old_plans: Vec<(i64, WindowKind)> = self.plans.iter().map(|p| (p.len_ms, p.kind)).collect();
        for (key, h) in self.keys {
            let n = h.times.len();
            let times = h.times;
            let mut values = VecDeque::with_capacity(n * new.fields);
            for e in 0..n {
                values.extend(plan.fields.iter().map(|m| m.map_or(f64::NAN, |o| h.values[e * old_fields + o])));
            }
            let tails = new
                .plans
                .iter()
                .map(|p| {
                    if p.kind != WindowKind::Sliding {
                        return TailWindow::new(0);
                    }
                    let mut tail = TailWindow::new(new.fields);
                    for (e, &t) in times.iter().enumerate() {
                        let row: Vec<f64> = (0..new.fields).map(|i| values[e * new.fields + i]).collect();
                        tail.inserted(e, t, &row, p.tracked);
                    }
                    if let Some(&latest) = times.back() {
                        tail.advance(latest.saturating_sub(p.len_ms), &times, &values, new.fields, p.tracked);
                    }
                    tail
                })
                .collect();
            let x = migrate_extras(h.x.as_deref(), &times, &values, h.last_time, old_tags, &self.defs, &old_plans, &self.closing, &new, plan);
            let history = KeyHistory { partition: h.partition, times, values, last_time: h.last_time, tails, x };
            if let Some(at) = history.x.as_ref().and_then(|x| x.timer_at) {
                new.timers.entry(history.partition).or_default().push(Reverse((at, key.clone())));
            }
            new.keys.insert(key, history);
        }
        for (partition, wm) in self.watermarks {
            let mine = new.watermarks.entry(partition).or_insert(wm);
            *mine = (*mine).max(wm);
        }
        new
    }
}

/// A key's extras in the new layout (`None` when the new job needs none).
#[allow(clippy::too_many_arguments)]
fn migrate_extras(
    old: Option<&Extras>,
    times: &VecDeque<i64>,
    values: &VecDeque<f64>,
    last_time: Option<i64>,
    old_tags: usize,
    old_defs: &[FeatureDef],
    old_plans: &[(i64, WindowKind)],
    old_closing: &[usize],
    new: &FeatureState,
    plan: &FeatureMigration,
) -> Option<Box<Extras>> {
    let empty = Extras::default();
    let x = old.unwrap_or(&empty);
    let (defs, fields, n) = (&new.defs, new.fields, times.len());
    let mut tags = VecDeque::with_capacity(n * new.tags);
    for e in 0..n {
        // a kept string the old state did not hash (past its stride) is absent
        let old_tag = |o: usize| (o < old_tags).then(|| x.tags.get(e * old_tags + o).copied()).flatten();
        tags.extend((0..new.tags).map(|t| plan.tags.get(t).copied().flatten().and_then(old_tag).unwrap_or(ABSENT)));
    }
    let last_values = if x.last_values.is_empty() {
        Vec::new()
    } else {
        plan.fields.iter().map(|m| m.and_then(|o| x.last_values.get(o).copied()).unwrap_or(f64::NAN)).collect()
    };
    let decayed = carry(
        &x.decayed,
        old_defs,
        defs,
        &plan.features,
        |d| matches!(d, FeatureDef::Decayed(_)),
        |j| match &defs[j] {
            FeatureDef::Decayed(d) => DecayRun::rebuilt(d, times, values, fields, last_time),
            _ => unreachable!("picked decayed defs"),
        },
    );
    let panes = carry(&x.panes, old_defs, defs, &plan.features, |d| matches!(d, FeatureDef::RatioToMean(_)), |_| Default::default());
    let hll = carry(&x.hll, old_defs, defs, &plan.features, |d| matches!(d, FeatureDef::ApproxDistinct(_)), |_| Default::default());
    let tagged = Tagged { times, tags: &tags, stride: new.tags };
    let distinct: Vec<DistinctRun> = defs
        .iter()
        .filter_map(|d| match d {
            FeatureDef::Distinct(d) => Some(DistinctRun::rebuilt(d, &tagged)),
            _ => None,
        })
        .collect();
    // on-close windows by feature, in `closing` order
    let open = new
        .closing
        .iter()
        .map(|&j| {
            let kept = plan.features[j].and_then(|o| old_closing.iter().position(|c| *c == o)).and_then(|k| x.open.get(k).cloned());
            let mut open = kept.unwrap_or_default();
            open.remap_fields(&plan.fields);
            open
        })
        .collect::<Vec<_>>();
    let timer_at = open
        .iter()
        .zip(&new.closing)
        .filter_map(|(o, j)| match &defs[*j] {
            FeatureDef::Window(w) => o.next_close(w.kind),
            _ => None,
        })
        .min();
    // tumbling, hopping and session runs by plan (length and kind)
    let runs: Vec<KindRun> = if new.plans.iter().any(|p| p.kind != WindowKind::Sliding) {
        new.plans
            .iter()
            .map(|p| {
                let old = old_plans.iter().position(|o| *o == (p.len_ms, p.kind)).and_then(|i| x.runs.get(i).cloned());
                let mut run = old.unwrap_or_default();
                run.remap_fields(&plan.fields);
                run
            })
            .collect()
    } else {
        Vec::new()
    };
    let out = Extras { decayed, last_values, runs, open, timer_at, panes, tags, distinct, hll };
    let needed = !(out.decayed.is_empty()
        && out.last_values.is_empty()
        && out.runs.is_empty()
        && out.open.is_empty()
        && out.panes.is_empty()
        && out.tags.is_empty()
        && out.distinct.is_empty()
        && out.hll.is_empty());
    (needed || old.is_some()).then(|| Box::new(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::Agg;
    use crate::kinds::Emit;
    use crate::window::{DecayKind, Decayed, WindowFeature};
    use crate::{ApproxDistinct, Distinct, RatioToMean};
    use proptest::prelude::*;

    fn win(name: &str, agg: Agg, field: Option<usize>, ms: i64, kind: WindowKind, emit: Emit) -> FeatureDef {
        FeatureDef::Window(WindowFeature { name: name.into(), agg, field, window_ms: ms, kind, emit })
    }

    /// Every kind of feature, over fields `a` (0) and `b` (1) and tag `s` (0).
    fn old_defs() -> Vec<FeatureDef> {
        let s = WindowKind::Sliding;
        vec![
            win("n_20", Agg::Count, None, 20, s, Emit::OnUpdate),
            win("sum_a_20", Agg::Sum, Some(0), 20, s, Emit::OnUpdate),
            win("max_b_8", Agg::Max, Some(1), 8, s, Emit::OnUpdate),
            win("gone", Agg::Mean, Some(1), 8, s, Emit::OnUpdate),
            win("tumble_a", Agg::Sum, Some(0), 10, WindowKind::Tumbling, Emit::OnClose),
            win("session_b", Agg::Max, Some(1), 0, WindowKind::Session { gap_ms: 4 }, Emit::OnUpdate),
            FeatureDef::TimeSincePrev { name: "since".into(), ttl_ms: 50 },
            FeatureDef::PrevValue { name: "prev_b".into(), field: 1, ttl_ms: 50 },
            FeatureDef::Decayed(Decayed { name: "decay_a".into(), kind: DecayKind::Sum, field: Some(0), half_life_ms: 7, ttl_ms: 1 << 30 }),
            FeatureDef::RatioToMean(RatioToMean { name: "ratio_a".into(), field: 0, window_ms: 40, pane_ms: 5 }),
            FeatureDef::Distinct(Distinct { name: "distinct_s".into(), tag: 0, window_ms: 15 }),
            FeatureDef::ApproxDistinct(ApproxDistinct { name: "hll_s".into(), tag: 0, window_ms: 40, pane_ms: 5, precision: 8 }),
        ]
    }

    /// The new job: fields `c` (new), `b`, `a`; tags `t` (new), `s`; the old
    /// features but `gone`, reordered, plus added ones (all within the old
    /// longest sliding reach, 20).
    fn upgrade() -> (Vec<FeatureDef>, FeatureMigration) {
        let old = old_defs();
        let field = |f: usize| Some(2 - f); // a -> 2, b -> 1
        let tag = |t: usize| Some(t + 1); // s -> 1
        let mut defs: Vec<FeatureDef> = old.iter().filter(|d| d.name() != "gone").rev().map(|d| d.remap_inputs(field, tag).unwrap()).collect();
        let s = WindowKind::Sliding;
        defs.insert(2, win("added_min_a_12", Agg::Min, Some(2), 12, s, Emit::OnUpdate));
        defs.push(win("added_c_5", Agg::Sum, Some(0), 5, s, Emit::OnUpdate));
        defs.push(FeatureDef::Distinct(Distinct { name: "added_distinct_s".into(), tag: 1, window_ms: 9 }));
        defs.push(FeatureDef::Distinct(Distinct { name: "added_distinct_t".into(), tag: 0, window_ms: 9 }));
        let features = defs.iter().map(|d| old.iter().position(|o| o.name() == d.name())).collect();
        (defs, FeatureMigration { fields: vec![None, Some(1), Some(0)], tags: vec![None, Some(0)], features })
    }

    /// (key, time step, a, b or absent, tag) events.
    fn events() -> impl Strategy<Value = Vec<(u8, i64, i32, Option<i32>, u8)>> {
        prop::collection::vec((0u8..4, -3i64..6, -50i32..50, prop::option::of(-50i32..50), 0u8..5), 1..160)
    }

    /// The windows `state` closes (all of them with `all`): key, bounds, count
    /// and the sum of field `a` (at index `a`).
    fn closed(state: &mut FeatureState, a: usize, into: &mut Vec<(String, i64, i64, u64, i128)>, all: bool) {
        let mut out = Vec::new();
        if all {
            state.close_all(&mut out);
        } else {
            state.close_due(&mut out);
        }
        into.extend(out.into_iter().map(|w| (w.key, w.start, w.end, w.span.count, w.span.fields[a].sum)));
    }

    fn bits(v: &[Option<f64>]) -> Vec<Option<u64>> {
        v.iter().map(|x| x.map(f64::to_bits)).collect()
    }

    proptest! {
        /// Kept features give, after the migration, exactly what an unmigrated
        /// state gives; added sliding and exact distinct features (within the old
        /// longest reach) what a state that always had them gives (the new field
        /// and tag absent before the upgrade); closed windows
        /// of the kept on-close feature are the same.
        #[test]
        fn migrated_state_continues_as_if_unchanged(evs in events(), cut in 0usize..160) {
            let (new_defs, plan) = upgrade();
            let mut reference = FeatureState::new(old_defs(), 2);
            let mut always_new = FeatureState::new(new_defs.clone(), 3);
            let mut migrating = Some(FeatureState::new(old_defs(), 2));
            let mut migrated: Option<FeatureState> = None;
            let (mut clock, mut wm) = ([0i64; 2], [0i64; 2]);
            let (mut r_out, mut m_out, mut n_out) = (Vec::new(), Vec::new(), Vec::new());
            let (mut r_closed, mut m_closed) = (Vec::new(), Vec::new());
            for (i, (key, step, a, b, tag)) in evs.into_iter().enumerate() {
                if i >= cut && migrating.is_some() {
                    let old = migrating.take().unwrap();
                    migrated = Some(old.migrate(FeatureState::new(new_defs.clone(), 3), &plan));

                }
                let p = (key % 2) as usize; // a key lives in one partition
                clock[p] += step;
                let time = clock[p].max(wm[p]);
                wm[p] = wm[p].max(clock[p] - 6);
                let key = format!("k{key}");
                let (a, b) = (a as f64, b.map_or(f64::NAN, |b| b as f64));
                let c = (tag as f64) * 3.0;
                let s_tag = crate::distinct::tag_of(&format!("s{tag}"));
                let t_tag = crate::distinct::tag_of(&format!("t{}", tag % 2));
                reference.observe_tagged(&key, p as u32, wm[p], time, &[a, b], &[s_tag], &mut r_out);
                // before the upgrade the new field and tag did not exist: absent
                let (c, t_tag) = if migrated.is_some() { (c, t_tag) } else { (f64::NAN, crate::distinct::ABSENT) };
                always_new.observe_tagged(&key, p as u32, wm[p], time, &[c, b, a], &[t_tag, s_tag], &mut n_out);
                closed(&mut reference, 0, &mut r_closed, false);
                if let Some(m) = &mut migrating {
                    m.observe_tagged(&key, p as u32, wm[p], time, &[a, b], &[s_tag], &mut m_out);
                    closed(m, 0, &mut m_closed, false);
                    continue;
                }
                let m = migrated.as_mut().unwrap();
                m.observe_tagged(&key, p as u32, wm[p], time, &[c, b, a], &[t_tag, s_tag], &mut m_out);
                closed(m, 2, &mut m_closed, false);
                for (j, d) in new_defs.iter().enumerate() {
                    let got = bits(&m_out[j..=j]);
                    match plan.features[j] {
                        Some(o) => prop_assert_eq!(got, bits(&r_out[o..=o]), "kept `{}` at event {}", d.name(), i),
                        None => prop_assert_eq!(got, bits(&n_out[j..=j]), "added `{}` at event {}", d.name(), i),
                    }
                }
            }
            closed(&mut reference, 0, &mut r_closed, true);
            match (migrated, migrating) {
                (Some(mut m), _) => closed(&mut m, 2, &mut m_closed, true),
                (_, Some(mut m)) => closed(&mut m, 0, &mut m_closed, true),
                _ => unreachable!(),
            }
            r_closed.sort();
            m_closed.sort();
            prop_assert_eq!(m_closed, r_closed);
        }
    }

    /// A kept string the old state never hashed (past its tag stride) is absent
    /// in the events before the upgrade, never another column's tag.
    #[test]
    fn a_newly_hashed_string_is_absent_before_the_upgrade() {
        let d = |name: &str, tag| FeatureDef::Distinct(Distinct { name: name.into(), tag, window_ms: 1_000 });
        let mut old = FeatureState::new(vec![d("merchants", 0)], 0);
        let mut out = Vec::new();
        for (t, m) in [(1, "a"), (2, "b")] {
            old.observe_tagged("k", 0, 0, t, &[], &[crate::distinct::tag_of(m)], &mut out);
        }
        // the old job kept [merchant, side] but hashed merchant only (stride 1)
        let new = FeatureState::new(vec![d("merchants", 0), d("sides", 1)], 0);
        let plan = FeatureMigration { fields: vec![], tags: vec![Some(0), Some(1)], features: vec![Some(0), None] };
        let mut state = old.migrate(new, &plan);
        state.observe_tagged("k", 0, 0, 3, &[], &[crate::distinct::tag_of("c"), crate::distinct::tag_of("left")], &mut out);
        assert_eq!(out, vec![Some(3.0), Some(1.0)], "the sides before the upgrade are unknown, not merchants");
    }

    #[test]
    fn remapped_definitions_compare_by_field_name() {
        let d = FeatureDef::RatioToMean(RatioToMean { name: "r".into(), field: 0, window_ms: 10, pane_ms: 5 });
        assert_eq!(d.remap_inputs(|_| Some(3), |_| None), Some(FeatureDef::RatioToMean(RatioToMean { name: "r".into(), field: 3, window_ms: 10, pane_ms: 5 })));
        assert_eq!(d.remap_inputs(|_| None, |_| None), None, "a field the new job lacks");
    }
}
