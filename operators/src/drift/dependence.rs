//! How many independent values a window of dependent values is worth.
//!
//! Drift tests compare two samples as if their values were independent draws. A
//! stream's consecutive values often are not (a sensor's autocorrelation, a card
//! tester's burst of transactions, a rolling feature whose windows overlap): a
//! window of `n` such values varies by chance like `n / tau` independent ones,
//! where `tau = 1 + 2 * sum of the autocorrelations` is the variance inflation.
//!
//! `tau` is estimated by batch means (the variance of the means of consecutive
//! batches of `L` values, times `L`, over the per-value variance), on a 0/1 series:
//! a rate's own values, or whether a value lies above the reference's median (an
//! indicator is bounded, so heavy tails do not disturb the estimate, and it is
//! what the rank-based statistics see). The estimates of the two samples are
//! pooled (under "no drift" they share their dependence).

/// Batch-means summary of one 0/1 series.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BatchVariance {
    /// Sum over full batches of `L * (batch mean - series mean)^2`.
    sum_sq: f64,
    /// Full batches.
    batches: usize,
    /// Values in the series.
    n: usize,
    /// Share of ones.
    mean: f64,
}

/// Batch length for a series of `n` values: about `2 sqrt(n)` (long enough for
/// correlations over tens of values, leaving tens of batches), at least 10.
pub fn batch_length(n: usize) -> usize {
    ((2.0 * (n as f64).sqrt()) as usize).max(10)
}

impl BatchVariance {
    /// Summarizes a series given in arrival order.
    pub fn of(series: impl IntoIterator<Item = bool>) -> BatchVariance {
        let values: Vec<bool> = series.into_iter().collect();
        let n = values.len();
        if n == 0 {
            return BatchVariance::default();
        }
        let mean = values.iter().filter(|v| **v).count() as f64 / n as f64;
        let len = batch_length(n);
        let mut sum_sq = 0.0;
        let mut batches = 0;
        for chunk in values.chunks_exact(len) {
            let m = chunk.iter().filter(|v| **v).count() as f64 / len as f64;
            sum_sq += len as f64 * (m - mean) * (m - mean);
            batches += 1;
        }
        BatchVariance { sum_sq, batches, n, mean }
    }

    /// The share of ones.
    pub fn rate(&self) -> f64 {
        self.mean
    }

    /// The series' length.
    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
}

/// The pooled variance inflation `tau` (at least 1) of two series; 1 when there
/// are too few batches to tell or a series is constant.
pub fn inflation(a: &BatchVariance, b: &BatchVariance) -> f64 {
    let dof = a.batches.saturating_sub(1) + b.batches.saturating_sub(1);
    let var = (a.n as f64 * a.mean * (1.0 - a.mean) + b.n as f64 * b.mean * (1.0 - b.mean)) / (a.n + b.n).max(1) as f64;
    if dof < 4 || var <= 0.0 {
        return 1.0;
    }
    let tau = (a.sum_sq + b.sum_sq) / dof as f64 / var;
    if tau.is_finite() {
        tau.max(1.0)
    } else {
        1.0
    }
}

/// Effective sizes of the two samples: their lengths divided by the pooled inflation.
pub fn effective_sizes(a: &BatchVariance, b: &BatchVariance) -> (f64, f64) {
    let tau = inflation(a, b);
    (a.n as f64 / tau, b.n as f64 / tau)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn ar1(rng: &mut rand::rngs::StdRng, n: usize, phi: f64) -> Vec<bool> {
        let mut x = 0.0f64;
        (0..n)
            .map(|_| {
                let z: f64 = (0..12).map(|_| rng.gen::<f64>()).sum::<f64>() - 6.0;
                x = phi * x + (1.0 - phi * phi).sqrt() * z;
                x > 0.0
            })
            .collect()
    }

    #[test]
    fn independent_values_are_worth_themselves_and_autocorrelated_ones_fewer() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let iid = |rng: &mut rand::rngs::StdRng| BatchVariance::of((0..20_000).map(|_| rng.gen::<f64>() < 0.3).collect::<Vec<_>>());
        let (a, b) = (iid(&mut rng), iid(&mut rng));
        let tau = inflation(&a, &b);
        assert!((1.0..1.5).contains(&tau), "{tau}");
        // the sign of an AR(1) with phi 0.9: tau = 1 + 2 sum (2/pi) asin(0.9^k), about 13
        let (a, b) = (BatchVariance::of(ar1(&mut rng, 20_000, 0.9)), BatchVariance::of(ar1(&mut rng, 20_000, 0.9)));
        let tau = inflation(&a, &b);
        assert!((8.0..20.0).contains(&tau), "{tau}");
        let (na, nb) = effective_sizes(&a, &b);
        assert!(na < 2500.0 && nb < 2500.0);
        // constant or too short: no inflation
        assert_eq!(inflation(&BatchVariance::of(vec![true; 1000]), &BatchVariance::of(vec![true; 1000])), 1.0);
        assert_eq!(inflation(&BatchVariance::of(vec![true, false]), &BatchVariance::default()), 1.0);
    }
}
