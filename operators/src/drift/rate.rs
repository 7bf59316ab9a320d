//! Shift of a rate (the share of positive decisions) between a reference and the
//! current window, judged like the distribution tests ([`feature`](super::feature)):
//! - large samples: Cohen's `h = |2 asin sqrt p1 - 2 asin sqrt p0|` (method
//!   `rate_h`) against `thresholds.rate`, raised to its noise floor at
//!   `noise_alpha` for the samples' effective sizes (decisions come in bursts:
//!   [`dependence`](super::dependence));
//! - small samples (or `p_values`): the two-proportion z statistic (method
//!   `rate_z`) with effective sizes, against the two-sided critical value at
//!   `ks_alpha`.

use super::dependence::{effective_sizes, BatchVariance};
use super::feature::{DriftThresholds, Finding};
use super::noise::{self, Sizes};
use super::windows::{Reference, ReferenceSample, SampleWindows};

/// The standard normal survival function (Abramowitz-Stegun 7.1.26 erfc, |error| < 1.5e-7).
pub fn normal_sf(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.3275911 * x);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let erfc = poly * (-x * x).exp();
    if z >= 0.0 {
        0.5 * erfc
    } else {
        1.0 - 0.5 * erfc
    }
}

/// |z| above which a two-sided test rejects at `alpha`.
pub fn two_sided_critical_z(alpha: f64) -> f64 {
    let (mut lo, mut hi) = (0.0, 40.0);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if 2.0 * normal_sf(mid) > alpha {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// Positive-rate drift.
pub struct RateShift {
    windows: SampleWindows<bool>,
}

impl RateShift {
    pub fn new(reference: Reference, window: usize) -> RateShift {
        RateShift { windows: SampleWindows::new(reference, window) }
    }

    pub fn push(&mut self, time_ms: i64, positive: bool) {
        self.windows.push(time_ms, positive);
    }

    pub fn reset(&mut self) {
        self.windows.reset();
    }

    /// Values seen since the last reset and the window's length.
    pub fn progress(&self) -> (u64, u64) {
        (self.windows.seen(), self.windows.window() as u64)
    }

    /// The finding and the current rate, or `None` while incomplete.
    pub fn evaluate(&mut self, th: &DriftThresholds) -> Option<(Finding, f64)> {
        let s = self.windows.samples()?;
        let reference = match s.reference {
            ReferenceSample::Fixed(r) => BatchVariance::of(r.iter().copied()),
            ReferenceSample::Moving(r) => BatchVariance::of(r.iter().copied()),
        };
        Some(rate_shift(&reference, &BatchVariance::of(s.current.iter().copied()), th))
    }
}

/// The finding (`rate_h` or `rate_z`) of the current 0/1 series against the
/// reference's (both summarized in arrival order), and the current rate.
pub fn rate_shift(reference: &BatchVariance, current: &BatchVariance, th: &DriftThresholds) -> (Finding, f64) {
    let (r_eff, c_eff) = effective_sizes(reference, current);
    let sizes = Sizes { reference: r_eff, current: c_eff };
    let (p1, p2) = (reference.rate(), current.rate());
    if th.by_p_value(reference.len(), current.len()) {
        let pooled = (p1 * r_eff + p2 * c_eff) / (r_eff + c_eff).max(f64::MIN_POSITIVE);
        let se = (pooled * (1.0 - pooled) * (1.0 / r_eff.max(1.0) + 1.0 / c_eff.max(1.0))).sqrt();
        let z = if se > 0.0 { (p2 - p1).abs() / se } else { 0.0 };
        (Finding::new("rate_z", z, two_sided_critical_z(th.ks_alpha)), p2)
    } else {
        let h = (2.0 * p2.sqrt().asin() - 2.0 * p1.sqrt().asin()).abs();
        (Finding::new("rate_h", h, th.rate.max(noise::rate_floor(th.noise_alpha, sizes))), p2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_tail_and_critical_values() {
        assert!((normal_sf(1.959964) - 0.025).abs() < 1e-6);
        assert!((two_sided_critical_z(0.05) - 1.959964).abs() < 1e-4);
        assert!((two_sided_critical_z(0.001) - 3.290527).abs() < 1e-4);
    }

    #[test]
    fn doubled_rate_is_flagged() {
        let mut r = RateShift::new(Reference::First { skip: 0, events: 10_000 }, 10_000);
        for i in 0..10_000 {
            r.push(i, i % 100 == 0);
        }
        for i in 0..10_000 {
            r.push(i, i % 50 == 0);
        }
        // by effect size (10,000 values) and by the z test
        let (f, rate) = r.evaluate(&DriftThresholds::default()).expect("full");
        assert!(f.drift && f.method == "rate_h" && (rate - 0.02).abs() < 1e-12, "{f:?}");
        let (f, _) = r.evaluate(&DriftThresholds { p_values: true, ..DriftThresholds::default() }).expect("full");
        assert!(f.drift && f.method == "rate_z", "{f:?}");
    }
}
