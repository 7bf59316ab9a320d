//! A logistic-regression scorer with fixed weights.
//!
//! The weights come from the job spec or a file; each input is a feature (or raw
//! event field) by position, optionally transformed (`log1p` tames heavy-tailed
//! amounts and counts). A missing input contributes nothing (mean imputation at 0
//! after the transform). Online training replaces the weights, not this scorer.

use serde::{Deserialize, Serialize};

/// How an input value is transformed before it is weighted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    /// The value as it is.
    #[default]
    Identity,
    /// `sign(x) * ln(1 + |x|)`.
    Log1p,
}

impl Transform {
    /// The transformed value.
    pub fn apply(self, x: f64) -> f64 {
        match self {
            Transform::Identity => x,
            Transform::Log1p => x.signum() * x.abs().ln_1p(),
        }
    }
}

/// `p = sigmoid(bias + sum_i w_i * transform_i(x_i))`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogisticModel {
    pub bias: f64,
    pub weights: Vec<f64>,
    pub transforms: Vec<Transform>,
}

impl LogisticModel {
    /// Scores one input vector (`None` = missing input) in input order.
    pub fn score(&self, inputs: &[Option<f64>]) -> f64 {
        debug_assert_eq!(inputs.len(), self.weights.len());
        let mut z = self.bias;
        for ((x, w), t) in inputs.iter().zip(&self.weights).zip(&self.transforms) {
            if let Some(x) = x {
                if x.is_finite() {
                    z += w * t.apply(*x);
                }
            }
        }
        sigmoid(z)
    }
}

/// A numerically stable logistic function.
pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_match_hand_computation() {
        let m = LogisticModel { bias: -1.0, weights: vec![0.5, 2.0], transforms: vec![Transform::Identity, Transform::Log1p] };
        let p = m.score(&[Some(2.0), Some(std::f64::consts::E - 1.0)]);
        assert!((p - sigmoid(-1.0 + 1.0 + 2.0)).abs() < 1e-12);
        // a missing input contributes nothing
        assert!((m.score(&[None, None]) - sigmoid(-1.0)).abs() < 1e-12);
        assert!(sigmoid(-1000.0) >= 0.0 && sigmoid(1000.0) <= 1.0);
    }
}
