//! What each drift statistic shows by chance when nothing drifted: the value a
//! sample of the given (effective) sizes exceeds with probability `alpha`. A
//! finding counts only above both its effect-size threshold (large enough to
//! matter) and this floor (distinguishable from chance, given the dependence
//! between values: [`dependence`](super::dependence)).
//!
//! With `inv = 1/n + 1/m` (effective sizes), under "no drift":
//! - KS `D`: the Kolmogorov distribution (exact asymptotics, [`ks_critical_eff`]);
//! - PSI over `k` bins: about `inv * chi2(k - 1)` (PSI is, to second order, a
//!   chi-square statistic of the bin shares);
//! - Jensen-Shannon divergence (nats): about `inv * chi2(k - 1) / 8`;
//! - Wasserstein-1: about the integral of a Brownian bridge's absolute value
//!   along the CDF, scaled by `sqrt(inv)`; mean `0.8 * S * sqrt(inv)` and standard
//!   deviation below `0.6 * S * sqrt(inv)`, `S` the reference's
//!   [`cdf_spread`](super::stats::cdf_spread): the floor is `z(alpha) * S * sqrt(inv)`
//!   (a conservative normal bound);
//! - Cohen's `h` of two rates (`2 asin sqrt p`): normal with standard deviation `sqrt(inv)`.

use super::rate::two_sided_critical_z;
use super::stats::ks_critical_eff;

/// Effective sizes of the reference and the current sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sizes {
    pub reference: f64,
    pub current: f64,
}

impl Sizes {
    fn inv(&self) -> f64 {
        if self.reference <= 0.0 || self.current <= 0.0 {
            return f64::INFINITY;
        }
        1.0 / self.reference + 1.0 / self.current
    }
}

/// The upper `alpha` quantile of chi-square with `df` degrees of freedom
/// (Wilson-Hilferty; within 2% for df >= 1 at the levels used here, slightly above in the far tail).
pub fn chi2_quantile(alpha: f64, df: f64) -> f64 {
    let df = df.max(1.0);
    let z = two_sided_critical_z(2.0 * alpha);
    let c = 2.0 / (9.0 * df);
    (df * (1.0 - c + z * c.sqrt()).powi(3)).max(0.0)
}

pub fn ks_floor(alpha: f64, s: Sizes) -> f64 {
    ks_critical_eff(alpha, s.reference, s.current)
}

pub fn psi_floor(alpha: f64, bins: usize, s: Sizes) -> f64 {
    chi2_quantile(alpha, bins.saturating_sub(1) as f64) * s.inv()
}

pub fn js_floor(alpha: f64, categories: usize, s: Sizes) -> f64 {
    (chi2_quantile(alpha, categories.saturating_sub(1) as f64) * s.inv() / (8.0 * std::f64::consts::LN_2)).sqrt().min(1.0)
}

/// `spread`: the reference's CDF spread divided by its standard deviation (the
/// statistic is reported divided by it too).
pub fn wasserstein_floor(alpha: f64, spread: f64, s: Sizes) -> f64 {
    two_sided_critical_z(alpha) * spread * s.inv().sqrt()
}

pub fn rate_floor(alpha: f64, s: Sizes) -> f64 {
    two_sided_critical_z(alpha) * s.inv().sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chi_square_quantiles_match_tables() {
        // scipy.stats.chi2.isf(0.05, 9) = 16.919, isf(1e-4, 9) = 33.72, isf(0.01, 1) = 6.635
        assert!((chi2_quantile(0.05, 9.0) - 16.919).abs() < 0.1);
        assert!((chi2_quantile(1e-4, 9.0) - 33.72).abs() < 0.6);
        assert!((chi2_quantile(0.01, 1.0) - 6.635).abs() < 0.15);
    }

    #[test]
    fn floors_shrink_with_sample_size() {
        let small = Sizes { reference: 1000.0, current: 1000.0 };
        let large = Sizes { reference: 20_000.0, current: 20_000.0 };
        for f in [|s| ks_floor(1e-4, s), |s| psi_floor(1e-4, 10, s), |s| js_floor(1e-4, 5, s), |s| rate_floor(1e-4, s)] {
            assert!(f(large) < f(small) / 4.0);
        }
        assert!(rate_floor(1e-4, Sizes { reference: 0.0, current: 10.0 }).is_infinite());
    }
}
