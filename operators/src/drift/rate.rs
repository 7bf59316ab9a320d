//! Shift of a rate (the share of positive decisions) between a reference and the
//! current window: the two-proportion z statistic, against the two-sided critical
//! value at the configured significance level.

use super::feature::Finding;
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

    /// The z finding (method `rate_z`) and the current rate, or `None` while incomplete.
    pub fn evaluate(&mut self, alpha: f64) -> Option<(Finding, f64)> {
        let s = self.windows.samples()?;
        let (r_pos, r_n) = match s.reference {
            ReferenceSample::Fixed(r) => (r.iter().filter(|p| **p).count(), r.len()),
            ReferenceSample::Moving(r) => (r.iter().filter(|p| **p).count(), r.len()),
        };
        let (c_pos, c_n) = (s.current.iter().filter(|p| **p).count(), s.current.len());
        Some(rate_shift(r_pos, r_n, c_pos, c_n, alpha))
    }
}

/// The two-proportion z finding (method `rate_z`) of `c_pos` positives in `c_n`
/// against `r_pos` in `r_n`, and the current rate.
pub fn rate_shift(r_pos: usize, r_n: usize, c_pos: usize, c_n: usize, alpha: f64) -> (Finding, f64) {
    let (p1, p2) = (r_pos as f64 / r_n.max(1) as f64, c_pos as f64 / c_n.max(1) as f64);
    let pooled = (r_pos + c_pos) as f64 / (r_n + c_n).max(1) as f64;
    let se = (pooled * (1.0 - pooled) * (1.0 / r_n.max(1) as f64 + 1.0 / c_n.max(1) as f64)).sqrt();
    let z = if se > 0.0 { (p2 - p1).abs() / se } else { 0.0 };
    let threshold = two_sided_critical_z(alpha);
    (Finding { method: "rate_z", value: z, threshold, drift: z > threshold }, p2)
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
        let (f, rate) = r.evaluate(0.05).expect("full");
        assert!(f.drift && (rate - 0.02).abs() < 1e-12, "{f:?}");
    }
}
