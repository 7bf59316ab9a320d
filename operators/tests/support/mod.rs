//! Shared by the operator property tests: random keyed streams with ties,
//! out-of-order and late events, and the source's lateness rule.
#![allow(dead_code)]

use proptest::prelude::*;

/// Events `(key of 3, time, value)`: time steps forward by `0..max_step` per
/// event (ties are common), and one event in five lies `0..max_back` back
/// (out of order, sometimes past the lateness: late).
pub fn stream<V: Strategy>(values: V, max_step: i64, max_back: i64, max_len: usize) -> impl Strategy<Value = Vec<(u8, i64, V::Value)>> {
    prop::collection::vec((0u8..3, 0..max_step, prop::bool::weighted(0.2), 0..max_back, values), 1..max_len).prop_map(|steps| {
        let mut t = 1_000;
        steps
            .into_iter()
            .map(|(k, dt, back, jump, v)| {
                t += dt;
                (k, if back { t - jump } else { t }, v)
            })
            .collect()
    })
}

/// The source's rule: an event older than the watermark (largest time seen minus
/// the lateness) is late and never reaches the operator.
pub struct Source {
    lateness: i64,
    max_t: i64,
    watermark: i64,
}

impl Source {
    pub fn new(lateness: i64) -> Self {
        Source { lateness, max_t: i64::MIN, watermark: i64::MIN }
    }

    /// The watermark after an accepted event at `t`, or `None` if it is late.
    pub fn admit(&mut self, t: i64) -> Option<i64> {
        if t < self.watermark {
            return None;
        }
        self.max_t = self.max_t.max(t);
        self.watermark = self.watermark.max(self.max_t - self.lateness);
        Some(self.watermark)
    }
}
