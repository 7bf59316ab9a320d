//! Exponentially time-decayed counts, sums and averages with a half-life (an
//! engagement score), as of each event, per key.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// What a decayed feature sums.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecayKind {
    /// Sum of 2^(-(t - t_i) / half_life) over the key's events up to t.
    Count,
    /// The same weights times the field's value (absent values add nothing).
    Sum,
    /// `Sum` divided by the decayed count of the events that have the field; null before the first.
    Avg,
}

/// A decayed aggregate as of each event: the key's accepted events that precede it
/// in offset order, plus itself, with event time at or before its own, each
/// weighted by 2^(-age / half_life). The key keeps its sums as of its latest event
/// time (an in-order event reads them in O(1); going forward the exponent is never
/// positive, so nothing overflows), and the sums of its evicted events as of the
/// newest of them: an out-of-order event adds those, decayed to its own time, to a
/// scan of the retained events at or before it, without subtracting anything. A
/// key idle for `ttl_ms` is dropped (its weight is then 2^(-ttl / half_life)).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decayed {
    pub name: String,
    pub kind: DecayKind,
    pub field: Option<usize>,
    pub half_life_ms: i64,
    pub ttl_ms: i64,
}

/// Running decayed sums of one key and one decayed feature: of all its events as
/// of `at` (its latest time), and of its evicted events as of `base_at`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct DecayRun {
    at: i64,
    /// Decayed sum of the values (or of 1 per event for `Count`).
    sum: f64,
    /// Decayed count of the events that have the field.
    weight: f64,
    base_at: i64,
    base_sum: f64,
    base_weight: f64,
}

/// 2^(-age / half_life).
fn decay(age_ms: i64, half_life_ms: i64) -> f64 {
    (-(age_ms as f64) / half_life_ms.max(1) as f64).exp2()
}

impl Decayed {
    /// An event's contribution (value, weight) before decay; `values` are its fields.
    fn contribution(&self, values: &[f64]) -> (f64, f64) {
        self.contribution_of(self.field.map(|f| values[f]))
    }

    fn contribution_of(&self, value: Option<f64>) -> (f64, f64) {
        match (self.kind, value) {
            (DecayKind::Count, _) => (1.0, 1.0),
            (_, Some(v)) if !v.is_nan() => (v, 1.0),
            _ => (0.0, 0.0),
        }
    }

    fn finish(&self, sum: f64, weight: f64) -> Option<f64> {
        match self.kind {
            DecayKind::Avg => (weight > 0.0).then(|| sum / weight),
            _ => Some(sum),
        }
    }
}

impl DecayRun {
    /// The run of a key whose first event is at `time`.
    pub(crate) fn starting_at(time: i64) -> Self {
        DecayRun { at: time, base_at: time, ..DecayRun::default() }
    }

    /// The run of a key whose retained events are `times`/`values`, as if it had
    /// seen exactly those (a state migration adds the feature to a key that
    /// already has history; its evicted events are gone and count for nothing).
    pub(crate) fn rebuilt(d: &Decayed, times: &VecDeque<i64>, values: &VecDeque<f64>, fields: usize, last_time: Option<i64>) -> Self {
        let Some(&first) = times.front() else { return DecayRun::starting_at(last_time.unwrap_or(0)) };
        let mut run = DecayRun::starting_at(first);
        for (e, &t) in times.iter().enumerate() {
            let (x, w) = d.contribution_of(d.field.map(|f| values[e * fields + f]));
            let f = decay(t - run.at, d.half_life_ms);
            run.sum = run.sum * f + x;
            run.weight = run.weight * f + w;
            run.at = t;
        }
        run
    }

    /// The value as of the event just inserted at retained index `pos` (its
    /// fields `event`), from the key's retained `times` and `values`; updates the
    /// running sums (kept as of the key's latest time).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn observe(
        &mut self,
        d: &Decayed,
        times: &VecDeque<i64>,
        values: &VecDeque<f64>,
        fields: usize,
        pos: usize,
        in_order: bool,
        time: i64,
        event: &[f64],
    ) -> Option<f64> {
        let (x, w) = d.contribution(event);
        if in_order {
            let f = decay(time - self.at, d.half_life_ms);
            self.sum = self.sum * f + x;
            self.weight = self.weight * f + w;
            self.at = time;
            return d.finish(self.sum, self.weight);
        }
        // the evicted events (all before this one), then the retained ones up to it
        let f = decay(time - self.base_at, d.half_life_ms);
        let (mut s, mut sw) = (self.base_sum * f, self.base_weight * f);
        for e in 0..=pos {
            let (ex, ew) = d.contribution_of(d.field.map(|f| values[e * fields + f]));
            let f = decay(time - times[e], d.half_life_ms);
            s += ex * f;
            sw += ew * f;
        }
        let f = decay(self.at - time, d.half_life_ms);
        self.sum += x * f;
        self.weight += w * f;
        d.finish(s, sw)
    }

    /// Folds an evicted event (evicted in time order) into the base sums.
    pub(crate) fn evicted(&mut self, d: &Decayed, time: i64, value: Option<f64>) {
        let (v, w) = d.contribution_of(value);
        let f = decay(time - self.base_at, d.half_life_ms);
        self.base_sum = self.base_sum * f + v;
        self.base_weight = self.base_weight * f + w;
        self.base_at = time;
    }
}
