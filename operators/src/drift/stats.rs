//! Two-sample distribution distances, the ones drift reports (Evidently, NannyML)
//! use, computed exactly from samples:
//! - [`psi`]: Population Stability Index over bins (for numbers: the reference's
//!   deciles, [`quantile_edges`]); 0.1 is a moderate shift, 0.25 a large one;
//! - [`ks_statistic`] and [`ks_critical`]: the two-sample Kolmogorov-Smirnov `D` and
//!   the `D` above which `p < alpha` (asymptotic distribution with Stephens'
//!   small-sample correction);
//! - [`wasserstein`]: the earth mover's distance between the empirical
//!   distributions (reported divided by the reference's standard deviation);
//! - [`js_distance`]: the Jensen-Shannon distance (base 2, in [0, 1]) of two
//!   categorical distributions.
//!
//! The noise of each under "no drift" (what a sample of that size shows by chance)
//! is in [`noise`](super::noise); the dependence between consecutive values (autocorrelation,
//! bursts), which makes a window worth fewer independent values, in [`dependence`](super::dependence).

/// Smallest proportion a bin gets in PSI, so that an empty bin is finite.
pub const PSI_FLOOR: f64 = 1e-4;

/// Bin edges at the reference's deciles (`bins` quantiles), duplicates removed:
/// bin `i` is `(edges[i-1], edges[i]]`, with open ends. `sorted` must be sorted.
pub fn quantile_edges(sorted: &[f64], bins: usize) -> Vec<f64> {
    let mut edges: Vec<f64> = Vec::with_capacity(bins);
    if sorted.is_empty() {
        return edges;
    }
    for i in 1..bins {
        let idx = (i * sorted.len()) / bins;
        let e = sorted[idx.min(sorted.len() - 1)];
        if edges.last() != Some(&e) && e < sorted[sorted.len() - 1] {
            edges.push(e);
        }
    }
    edges
}

/// Counts of `values` per bin of `edges` (one more bin than edges).
pub fn bin_counts(values: impl IntoIterator<Item = f64>, edges: &[f64]) -> Vec<u64> {
    let mut counts = vec![0u64; edges.len() + 1];
    for v in values {
        counts[edges.partition_point(|e| *e < v)] += 1;
    }
    counts
}

/// PSI = sum over bins of (cur - ref) * ln(cur / ref), on proportions floored at
/// [`PSI_FLOOR`]. Empty inputs give 0.
pub fn psi(reference: &[u64], current: &[u64]) -> f64 {
    let (rn, cn) = (reference.iter().sum::<u64>() as f64, current.iter().sum::<u64>() as f64);
    if rn == 0.0 || cn == 0.0 {
        return 0.0;
    }
    reference
        .iter()
        .zip(current)
        .map(|(&r, &c)| {
            let (r, c) = ((r as f64 / rn).max(PSI_FLOOR), (c as f64 / cn).max(PSI_FLOOR));
            (c - r) * (c / r).ln()
        })
        .sum()
}

/// The largest distance between the two empirical CDFs (both inputs sorted).
pub fn ks_statistic(a: &[f64], b: &[f64]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j, mut d) = (0, 0, 0.0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / na - j as f64 / nb).abs());
    }
    d
}

/// The Kolmogorov distribution's survival function Q(lambda) = 2 sum (-1)^(k-1) exp(-2 k^2 lambda^2).
pub fn kolmogorov_q(lambda: f64) -> f64 {
    if lambda < 0.2 {
        return 1.0;
    }
    let mut sum = 0.0;
    for k in 1..=100 {
        let k = k as f64;
        let term = (-2.0 * k * k * lambda * lambda).exp();
        sum += if k as u64 % 2 == 1 { term } else { -term };
        if term < 1e-16 {
            break;
        }
    }
    (2.0 * sum).clamp(0.0, 1.0)
}

fn effective_n(n: f64, m: f64) -> f64 {
    let en = (n * m / (n + m)).sqrt();
    en + 0.12 + 0.11 / en
}

/// The asymptotic p-value of a two-sample KS statistic `d` for sample sizes `n`, `m`.
pub fn ks_p_value(d: f64, n: usize, m: usize) -> f64 {
    if n == 0 || m == 0 {
        return 1.0;
    }
    kolmogorov_q(effective_n(n as f64, m as f64) * d)
}

/// The statistic `D` above which `ks_p_value(D, n, m) < alpha`.
pub fn ks_critical(alpha: f64, n: usize, m: usize) -> f64 {
    ks_critical_eff(alpha, n as f64, m as f64)
}

/// [`ks_critical`] for effective sample sizes (fewer than the values when they
/// are dependent: see [`dependence`](super::dependence)).
pub fn ks_critical_eff(alpha: f64, n: f64, m: f64) -> f64 {
    if n <= 0.0 || m <= 0.0 {
        return f64::INFINITY;
    }
    // Q is decreasing in lambda: bisect Q(lambda) = alpha
    let (mut lo, mut hi) = (0.2, 10.0);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if kolmogorov_q(mid) > alpha {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi / effective_n(n, m)
}

/// The Wasserstein-1 distance between two empirical distributions (both sorted):
/// the integral of |F_a - F_b|.
pub fn wasserstein(a: &[f64], b: &[f64]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j) = (0, 0);
    let mut x = a[0].min(b[0]);
    let mut area = 0.0;
    while i < a.len() || j < b.len() {
        // advance past every value equal to x, then integrate up to the next value
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        let next = match (a.get(i), b.get(j)) {
            (Some(&p), Some(&q)) => p.min(q),
            (Some(&p), None) => p,
            (None, Some(&q)) => q,
            (None, None) => break,
        };
        area += (i as f64 / na - j as f64 / nb).abs() * (next - x);
        x = next;
    }
    area
}

/// The integral of sqrt(F (1 - F)) over x for the empirical CDF F of `sorted`:
/// the scale of the Wasserstein distance between two samples of one distribution
/// (its expectation is about 0.8 times this times sqrt(1/n + 1/m)).
pub fn cdf_spread(sorted: &[f64]) -> f64 {
    let n = sorted.len() as f64;
    let mut total = 0.0;
    for (i, pair) in sorted.windows(2).enumerate() {
        let f = (i + 1) as f64 / n;
        total += (f * (1.0 - f)).sqrt() * (pair[1] - pair[0]);
    }
    total
}

/// Mean and standard deviation (population) of a sample.
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// The Jensen-Shannon distance (square root of the divergence, base 2) between two
/// count vectors over the same categories; 0 for identical, 1 for disjoint.
pub fn js_distance(p: &[u64], q: &[u64]) -> f64 {
    let (pn, qn) = (p.iter().sum::<u64>() as f64, q.iter().sum::<u64>() as f64);
    if pn == 0.0 || qn == 0.0 {
        return 0.0;
    }
    let mut div = 0.0;
    for (&a, &b) in p.iter().zip(q) {
        let (a, b) = (a as f64 / pn, b as f64 / qn);
        let m = 0.5 * (a + b);
        if a > 0.0 {
            div += 0.5 * a * (a / m).log2();
        }
        if b > 0.0 {
            div += 0.5 * b * (b / m).log2();
        }
    }
    div.max(0.0).sqrt().min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// sup |F_a - F_b| evaluated at every sample point, by counting.
    fn naive_ks(a: &[f64], b: &[f64]) -> f64 {
        let cdf = |s: &[f64], x: f64| s.iter().filter(|v| **v <= x).count() as f64 / s.len() as f64;
        a.iter().chain(b).map(|&x| (cdf(a, x) - cdf(b, x)).abs()).fold(0.0, f64::max)
    }

    /// For equal sizes, W1 is the mean distance between matched order statistics.
    fn naive_wasserstein_equal(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f64>() / a.len() as f64
    }

    fn sorted(mut v: Vec<f64>) -> Vec<f64> {
        v.sort_by(f64::total_cmp);
        v
    }

    proptest! {
        #[test]
        fn ks_matches_counting(a in prop::collection::vec(0i32..20, 1..60), b in prop::collection::vec(0i32..25, 1..60)) {
            let a = sorted(a.into_iter().map(f64::from).collect());
            let b = sorted(b.into_iter().map(f64::from).collect());
            prop_assert!((ks_statistic(&a, &b) - naive_ks(&a, &b)).abs() < 1e-12);
        }

        #[test]
        fn wasserstein_matches_order_statistics(pairs in prop::collection::vec((-50i32..50, -50i32..80), 1..80)) {
            let a = sorted(pairs.iter().map(|p| f64::from(p.0)).collect());
            let b = sorted(pairs.iter().map(|p| f64::from(p.1)).collect());
            prop_assert!((wasserstein(&a, &b) - naive_wasserstein_equal(&a, &b)).abs() < 1e-9);
            prop_assert!((wasserstein(&a, &b) - wasserstein(&b, &a)).abs() < 1e-9);
        }

        #[test]
        fn psi_and_js_are_zero_on_equal_and_symmetric_js(c in prop::collection::vec(0u64..100, 2..12), d in prop::collection::vec(0u64..100, 2..12)) {
            prop_assert!(psi(&c, &c).abs() < 1e-12);
            let n = c.len().min(d.len());
            let (c, d) = (&c[..n], &d[..n]);
            prop_assert!(psi(c, d) >= -1e-12);
            prop_assert!((js_distance(c, d) - js_distance(d, c)).abs() < 1e-12);
            prop_assert!((0.0..=1.0).contains(&js_distance(c, d)));
        }
    }

    #[test]
    fn known_values() {
        // scipy.stats.ks_2samp([1,2,3,4,5],[3,4,5,6,7,8]).statistic = 0.5
        let d = ks_statistic(&[1., 2., 3., 4., 5.], &[3., 4., 5., 6., 7., 8.]);
        assert!((d - 0.5).abs() < 1e-12);
        // scipy.stats.wasserstein_distance([0,1,3],[5,6,8]) = 5
        assert!((wasserstein(&[0., 1., 3.], &[5., 6., 8.]) - 5.0).abs() < 1e-12);
        // scipy.spatial.distance.jensenshannon([1,0],[0,1], base=2) = 1
        assert!((js_distance(&[1, 0], &[0, 1]) - 1.0).abs() < 1e-12);
        // scipy: jensenshannon([.5,.5],[.9,.1], base=2) = 0.38313...
        assert!((js_distance(&[5, 5], &[9, 1]) - 0.383135).abs() < 1e-5);
        // Q(1.36) ~ 0.049 (the familiar 5% critical value)
        assert!((kolmogorov_q(1.358) - 0.05).abs() < 1e-3);
        let crit = ks_critical(0.05, 10_000, 10_000);
        assert!((ks_p_value(crit, 10_000, 10_000) - 0.05).abs() < 1e-6);
        // decile edges of 1..=100 and the bins they make
        let s: Vec<f64> = (1..=100).map(f64::from).collect();
        let e = quantile_edges(&s, 10);
        assert_eq!(e.len(), 9);
        assert_eq!(bin_counts(s.iter().copied(), &e), vec![11, 10, 10, 10, 10, 10, 10, 10, 10, 9]);
    }
}
