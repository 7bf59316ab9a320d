//! Distribution drift of one numeric or categorical value (a feature, a raw field
//! or the model's score) between a reference and the current window
//! ([`SampleWindows`]):
//! - numeric: PSI over the reference's deciles, the Kolmogorov-Smirnov statistic
//!   `D`, and the Wasserstein distance divided by the reference's standard deviation;
//! - categorical: Jensen-Shannon distance and PSI over the categories seen.
//!
//! How a finding is judged depends on the samples' sizes, as in Evidently:
//! - **large samples** (both above `p_value_max`, 1000 values): by effect size. A
//!   p-value of thousands of values flags differences too small to matter, so each
//!   statistic is compared with a threshold on the size of the change (`psi`,
//!   `wasserstein`, `js`; `ks` for `D` is 1 by default: reported, never past it,
//!   as Evidently judges large samples by Wasserstein). The threshold is raised where chance alone
//!   could reach it: to the statistic's noise floor at `noise_alpha`
//!   ([`noise`]) given the samples' effective sizes (dependent values
//!   are worth fewer: [`dependence`](super::dependence));
//! - **small samples** (or `p_values = true`): `D` against its critical value at
//!   `ks_alpha` divided by the number of tests evaluated together (Bonferroni),
//!   with effective sizes; PSI, Wasserstein and JS as above.
//!
//! Each evaluation yields one [`Finding`] per method with the value, the threshold
//! it was compared with and whether it is past it. Cost: a sort of the current
//! window per evaluation (O(w log w)); a pinned reference is summarized once.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::dependence::{effective_sizes, BatchVariance};
use super::noise::{self, Sizes};
use super::stats;
use super::windows::{Reference, ReferenceSample, SampleWindows};

/// Thresholds; the effect sizes are those users of Evidently/NannyML know.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DriftThresholds {
    /// PSI above this is drift (0.1 is the usual "moderate" level, 0.25 "significant").
    pub psi: f64,
    /// Wasserstein distance / reference standard deviation.
    pub wasserstein: f64,
    /// The KS statistic `D` (the largest gap between the two CDFs) for large samples.
    /// Default 1 (`D` never exceeds it): above `p_value_max` values, as in Evidently,
    /// the judges are Wasserstein and PSI; `D` is reported for reference (it reacts
    /// to small reshapings of dense regions, e.g. an online model's scores near 0
    /// while its slow-warming inputs settle). Set e.g. 0.1 to let it judge too.
    pub ks: f64,
    /// Jensen-Shannon distance (base 2).
    pub js: f64,
    /// Cohen's `h` of the positive rate (`|2 asin sqrt p1 - 2 asin sqrt p0|`) for large samples.
    pub rate: f64,
    /// Significance level of the p-value tests (KS and the positive-rate z test) for
    /// small samples, divided by the number of tests evaluated together (Bonferroni).
    pub ks_alpha: f64,
    /// Level of the noise floor every effect-size threshold is raised to.
    pub noise_alpha: f64,
    /// Samples of at most this many values are judged by p-values.
    pub p_value_max: usize,
    /// Judge KS and the positive rate by p-values whatever the sizes.
    pub p_values: bool,
    /// PSI bins for numbers (the reference's quantiles).
    pub bins: usize,
}

impl Default for DriftThresholds {
    fn default() -> Self {
        DriftThresholds {
            psi: 0.25,
            wasserstein: 0.1,
            ks: 1.0,
            js: 0.1,
            rate: 0.05,
            ks_alpha: 0.001,
            noise_alpha: 1e-4,
            p_value_max: 1000,
            p_values: false,
            bins: 10,
        }
    }
}

impl DriftThresholds {
    /// True when samples of these sizes are judged by p-values.
    pub fn by_p_value(&self, reference: usize, current: usize) -> bool {
        self.p_values || reference.min(current) <= self.p_value_max
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
    pub fn new(method: &'static str, value: f64, threshold: f64) -> Finding {
        // JSON has no infinity: a distance to a constant reference is capped
        let value = if value.is_finite() { value } else { 1e6 };
        let threshold = if threshold.is_finite() { threshold } else { 1e6 };
        Finding { method, value, threshold, drift: value > threshold }
    }
}

struct NumericSummary {
    generation: u64,
    sorted: Vec<f64>,
    edges: Vec<f64>,
    counts: Vec<u64>,
    std: f64,
    /// [`stats::cdf_spread`] divided by `std`.
    spread: f64,
    median: f64,
    /// Arrival-order dependence: whether each value is above the median.
    batches: BatchVariance,
}

fn summarize(generation: u64, values: Vec<f64>, bins: usize) -> NumericSummary {
    let mut sorted = values;
    sorted.sort_by(f64::total_cmp);
    let edges = stats::quantile_edges(&sorted, bins);
    let counts = stats::bin_counts(sorted.iter().copied(), &edges);
    let std = stats::mean_std(&sorted).1;
    let spread = if std > 0.0 { stats::cdf_spread(&sorted) / std } else { 0.0 };
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
    NumericSummary { generation, sorted, edges, counts, std, spread, median, batches: BatchVariance::default() }
}

/// A summary of `values` (in arrival order) with their dependence.
fn summarize_ordered(generation: u64, values: Vec<f64>, bins: usize) -> NumericSummary {
    let ordered = values.clone();
    let mut s = summarize(generation, values, bins);
    s.batches = BatchVariance::of(ordered.iter().map(|v| *v > s.median));
    s
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

    /// Values seen since the last reset and the window's length (for [`Evidence`](super::persistence::Evidence)).
    pub fn progress(&self) -> (u64, u64) {
        (self.windows.seen(), self.windows.window() as u64)
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
                    self.cached = Some(summarize_ordered(generation, r.to_vec(), th.bins));
                }
                self.cached.as_ref().expect("cached above")
            }
            ReferenceSample::Moving(r) => {
                moving = summarize_ordered(generation, r.iter().copied().collect(), th.bins);
                &moving
            }
        };
        Some(compare(reference, samples.current.iter().copied().collect(), th, tests))
    }
}

/// PSI, KS and Wasserstein of `current` (in arrival order) against a summarized reference.
fn compare(reference: &NumericSummary, mut current: Vec<f64>, th: &DriftThresholds, tests: usize) -> [Finding; 3] {
    let batches = BatchVariance::of(current.iter().map(|v| *v > reference.median));
    let (r_eff, c_eff) = effective_sizes(&reference.batches, &batches);
    let sizes = Sizes { reference: r_eff, current: c_eff };
    current.sort_by(f64::total_cmp);
    let psi = stats::psi(&reference.counts, &stats::bin_counts(current.iter().copied(), &reference.edges));
    let psi_threshold = th.psi.max(noise::psi_floor(th.noise_alpha, reference.counts.len(), sizes));
    let d = stats::ks_statistic(&reference.sorted, &current);
    let d_threshold = if th.by_p_value(reference.sorted.len(), current.len()) {
        noise::ks_floor(th.ks_alpha / tests.max(1) as f64, sizes)
    } else {
        th.ks.max(noise::ks_floor(th.noise_alpha, sizes))
    };
    let w = stats::wasserstein(&reference.sorted, &current);
    let w_norm = if reference.std > 0.0 {
        w / reference.std
    } else if w > 0.0 {
        f64::INFINITY
    } else {
        0.0
    };
    let w_threshold = th.wasserstein.max(noise::wasserstein_floor(th.noise_alpha, reference.spread, sizes));
    [Finding::new("psi", psi, psi_threshold), Finding::new("ks", d, d_threshold), Finding::new("wasserstein", w_norm, w_threshold)]
}

/// PSI, KS and Wasserstein findings of two plain samples in arrival order (no
/// caching), e.g. the current model's scores of a reference and of a current window.
pub fn compare_samples(reference: Vec<f64>, current: Vec<f64>, th: &DriftThresholds, tests: usize) -> [Finding; 3] {
    let summary = summarize_ordered(0, reference.into_iter().filter(|v| v.is_finite()).collect(), th.bins);
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

    /// Values seen since the last reset and the window's length.
    pub fn progress(&self) -> (u64, u64) {
        (self.windows.seen(), self.windows.window() as u64)
    }

    /// Jensen-Shannon and PSI findings, or `None` while a sample is incomplete.
    /// Their dependence is estimated on whether each value is the reference's
    /// most common category.
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
        let top = (0..slots).max_by_key(|&c| (reference[c], std::cmp::Reverse(c))).unwrap_or(0) as u32;
        let r_batches = match samples.reference {
            ReferenceSample::Fixed(r) => BatchVariance::of(r.iter().map(|&c| c == top)),
            ReferenceSample::Moving(r) => BatchVariance::of(r.iter().map(|&c| c == top)),
        };
        let (r_eff, c_eff) = effective_sizes(&r_batches, &BatchVariance::of(samples.current.iter().map(|&c| c == top)));
        let sizes = Sizes { reference: r_eff, current: c_eff };
        // only categories seen on either side, in an order of their counts (ids
        // follow arrival order: the sums must not, to give the same bits at any speed)
        let mut pairs: Vec<(u64, u64)> = reference.into_iter().zip(current).filter(|(r, c)| r + c > 0).collect();
        pairs.sort_unstable();
        let (reference, current): (Vec<u64>, Vec<u64>) = pairs.into_iter().unzip();
        let k = reference.len();
        Some([
            Finding::new("js", stats::js_distance(&reference, &current), th.js.max(noise::js_floor(th.noise_alpha, k, sizes))),
            Finding::new("psi", stats::psi(&reference, &current), th.psi.max(noise::psi_floor(th.noise_alpha, k, sizes))),
        ])
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
        // by default the large windows are judged by PSI and Wasserstein; D is reported
        assert!(loud.iter().all(|f| f.drift == (f.method != "ks")), "{loud:?}");
        assert!(loud.iter().any(|f| f.method == "ks" && f.value > 0.1 && f.threshold == 1.0), "{loud:?}");
        // with a KS effect threshold, D judges too (and stays quiet on the same distribution)
        let with_ks = DriftThresholds { ks: 0.1, ..th };
        assert!(same.evaluate(&with_ks, 1).expect("full").iter().all(|f| !f.drift));
        let loud = scaled.evaluate(&with_ks, 1).expect("both samples full");
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
