//! Distribution drift of one numeric or categorical value (a feature, a raw field
//! or the model's score) between a reference and the current window
//! ([`SampleWindows`]):
//! - numeric: PSI over the reference's deciles, the KS statistic against its
//!   critical value at the (corrected) significance level, and the Wasserstein
//!   distance divided by the reference's standard deviation;
//! - categorical: Jensen-Shannon distance and PSI over the categories seen.
//!
//! Each evaluation yields one [`Finding`] per method with the value, the threshold
//! and whether it is crossed. Cost: a sort of the current window per evaluation
//! (O(w log w)); a pinned reference is summarized once.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::stats;
use super::windows::{Reference, ReferenceSample, SampleWindows};

/// Thresholds as users of Evidently/NannyML know them.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DriftThresholds {
    /// PSI above this is drift (0.1 is the usual "moderate" level, 0.25 "significant").
    pub psi: f64,
    /// Wasserstein distance / reference standard deviation.
    pub wasserstein: f64,
    /// KS family-wise significance level, divided by the number of tests
    /// evaluated together (Bonferroni).
    pub ks_alpha: f64,
    /// Jensen-Shannon distance (base 2).
    pub js: f64,
    /// PSI bins for numbers (the reference's quantiles).
    pub bins: usize,
}

impl Default for DriftThresholds {
    fn default() -> Self {
        DriftThresholds { psi: 0.25, wasserstein: 0.1, ks_alpha: 0.05, js: 0.1, bins: 10 }
    }
}

/// One method's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Finding {
    pub method: &'static str,
    pub value: f64,
    pub threshold: f64,
    pub drift: bool,
}

impl Finding {
    fn new(method: &'static str, value: f64, threshold: f64) -> Finding {
        // JSON has no infinity: a distance to a constant reference is capped
        let value = if value.is_finite() { value } else { 1e6 };
        Finding { method, value, threshold, drift: value > threshold }
    }
}

struct NumericSummary {
    generation: u64,
    sorted: Vec<f64>,
    edges: Vec<f64>,
    counts: Vec<u64>,
    std: f64,
}

fn summarize(generation: u64, values: impl Iterator<Item = f64>, bins: usize) -> NumericSummary {
    let mut sorted: Vec<f64> = values.collect();
    sorted.sort_by(f64::total_cmp);
    let edges = stats::quantile_edges(&sorted, bins);
    let counts = stats::bin_counts(sorted.iter().copied(), &edges);
    let std = stats::mean_std(&sorted).1;
    NumericSummary { generation, sorted, edges, counts, std }
}

/// Drift of a numeric value; NaN and infinite values are skipped.
pub struct NumericDrift {
    windows: SampleWindows<f64>,
    cached: Option<NumericSummary>,
}

impl NumericDrift {
    pub fn new(reference: Reference, window: usize) -> NumericDrift {
        NumericDrift { windows: SampleWindows::new(reference, window), cached: None }
    }

    pub fn push(&mut self, time_ms: i64, value: f64) {
        if value.is_finite() {
            self.windows.push(time_ms, value);
        }
    }

    pub fn reset(&mut self) {
        self.windows.reset();
        self.cached = None;
    }

    /// PSI, KS and Wasserstein findings, or `None` while a sample is incomplete.
    /// `tests` is how many KS tests are evaluated together (for the correction).
    pub fn evaluate(&mut self, th: &DriftThresholds, tests: usize) -> Option<[Finding; 3]> {
        let generation = self.windows.generation();
        let samples = self.windows.samples()?;
        let moving;
        let reference = match samples.reference {
            ReferenceSample::Fixed(r) => {
                if self.cached.as_ref().is_none_or(|c| c.generation != generation) {
                    self.cached = Some(summarize(generation, r.iter().copied(), th.bins));
                }
                self.cached.as_ref().expect("cached above")
            }
            ReferenceSample::Moving(r) => {
                moving = summarize(generation, r.iter().copied(), th.bins);
                &moving
            }
        };
        Some(compare(reference, samples.current.iter().copied().collect(), th, tests))
    }
}

/// PSI, KS and Wasserstein of `current` against a summarized reference.
fn compare(reference: &NumericSummary, mut current: Vec<f64>, th: &DriftThresholds, tests: usize) -> [Finding; 3] {
    current.sort_by(f64::total_cmp);
    let psi = stats::psi(&reference.counts, &stats::bin_counts(current.iter().copied(), &reference.edges));
    let d = stats::ks_statistic(&reference.sorted, &current);
    let d_crit = stats::ks_critical(th.ks_alpha / tests.max(1) as f64, reference.sorted.len(), current.len());
    let w = stats::wasserstein(&reference.sorted, &current);
    let w_norm = if reference.std > 0.0 {
        w / reference.std
    } else if w > 0.0 {
        f64::INFINITY
    } else {
        0.0
    };
    [Finding::new("psi", psi, th.psi), Finding::new("ks", d, d_crit), Finding::new("wasserstein", w_norm, th.wasserstein)]
}

/// PSI, KS and Wasserstein findings of two plain samples (no caching), e.g. the
/// current model's scores of a reference and of a current window.
pub fn compare_samples(reference: Vec<f64>, current: Vec<f64>, th: &DriftThresholds, tests: usize) -> [Finding; 3] {
    let summary = summarize(0, reference.into_iter().filter(|v| v.is_finite()), th.bins);
    compare(&summary, current.into_iter().filter(|v| v.is_finite()).collect(), th, tests)
}

/// Most distinct categories tracked per value; the rest count as one `_other`.
pub const MAX_CATEGORIES: usize = 256;

/// Drift of a categorical value.
pub struct CategoricalDrift {
    windows: SampleWindows<u32>,
    ids: HashMap<String, u32>,
}

impl CategoricalDrift {
    pub fn new(reference: Reference, window: usize) -> CategoricalDrift {
        CategoricalDrift { windows: SampleWindows::new(reference, window), ids: HashMap::new() }
    }

    /// Adds one category by id (an id the caller interned, below [`MAX_CATEGORIES`];
    /// larger ids count as `_other`).
    pub fn push_id(&mut self, time_ms: i64, id: u32) {
        self.windows.push(time_ms, id.min(MAX_CATEGORIES as u32));
    }

    /// Adds one value (`None`: the field was absent, counted as its own category).
    pub fn push(&mut self, time_ms: i64, value: Option<&str>) {
        let name = value.unwrap_or("_absent");
        let id = match self.ids.get(name) {
            Some(id) => *id,
            None if self.ids.len() < MAX_CATEGORIES => {
                let id = self.ids.len() as u32;
                self.ids.insert(name.to_owned(), id);
                id
            }
            None => *self.ids.entry("_other".to_owned()).or_insert(MAX_CATEGORIES as u32),
        };
        self.windows.push(time_ms, id);
    }

    pub fn reset(&mut self) {
        self.windows.reset();
    }

    /// Jensen-Shannon and PSI findings, or `None` while a sample is incomplete.
    pub fn evaluate(&mut self, th: &DriftThresholds) -> Option<[Finding; 2]> {
        let slots = MAX_CATEGORIES + 1;
        let samples = self.windows.samples()?;
        let mut reference = vec![0u64; slots];
        match samples.reference {
            ReferenceSample::Fixed(r) => r.iter().for_each(|&c| reference[c as usize] += 1),
            ReferenceSample::Moving(r) => r.iter().for_each(|&c| reference[c as usize] += 1),
        }
        let mut current = vec![0u64; slots];
        samples.current.iter().for_each(|&c| current[c as usize] += 1);
        // only categories seen on either side
        let (reference, current): (Vec<u64>, Vec<u64>) = reference.into_iter().zip(current).filter(|(r, c)| r + c > 0).unzip();
        Some([Finding::new("js", stats::js_distance(&reference, &current), th.js), Finding::new("psi", stats::psi(&reference, &current), th.psi)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn lognormal(rng: &mut rand::rngs::StdRng, scale: f64) -> f64 {
        let z: f64 = (0..12).map(|_| rng.gen::<f64>()).sum::<f64>() - 6.0;
        scale * (3.0 + 0.8 * z).exp()
    }

    #[test]
    fn numeric_drift_flags_a_scaled_distribution_and_not_the_same_one() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let th = DriftThresholds::default();
        let mut same = NumericDrift::new(Reference::First { skip: 0, events: 20_000 }, 20_000);
        let mut scaled = NumericDrift::new(Reference::First { skip: 0, events: 20_000 }, 20_000);
        for i in 0..40_000 {
            let v = lognormal(&mut rng, 1.0);
            same.push(i, v);
            scaled.push(i, if i < 20_000 { v } else { v * 1.5 });
        }
        let quiet = same.evaluate(&th, 1).expect("both samples full");
        assert!(quiet.iter().all(|f| !f.drift), "{quiet:?}");
        let loud = scaled.evaluate(&th, 1).expect("both samples full");
        assert!(loud.iter().all(|f| f.drift), "{loud:?}");
    }

    #[test]
    fn categorical_drift_flags_a_new_mix() {
        let th = DriftThresholds::default();
        let mut d = CategoricalDrift::new(Reference::First { skip: 0, events: 1000 }, 1000);
        for i in 0..1000 {
            d.push(i, Some(["a", "b", "c"][i as usize % 3]));
        }
        for i in 0..1000 {
            d.push(i, Some(if i % 10 == 0 { "a" } else { "new" }));
        }
        let f = d.evaluate(&th).expect("full");
        assert!(f.iter().all(|f| f.drift), "{f:?}");
        assert!(f[0].value > 0.7);
    }
}
