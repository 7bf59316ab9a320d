//! Hyperparameter search inside the stream: the initial population drawn from a
//! search space, and population-based training rounds (the worst half of the
//! variants replaced by perturbed copies of the best half, weights included).

use serde::{Deserialize, Serialize};

use super::{Hyper, OptimizerKind, SplitMix};

/// The values each hyperparameter may start from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchSpace {
    pub lr: Vec<f32>,
    pub l2: Vec<f32>,
    pub pos_weight: Vec<f32>,
    /// Hidden sizes (MLP); ignored by logistic regression.
    pub hidden: Vec<u32>,
    pub optimizer: OptimizerKind,
    pub momentum: f32,
}

impl SearchSpace {
    fn hyper(&self, lr: f32, l2: f32, pos_weight: f32, hidden: u32) -> Hyper {
        let h = match self.optimizer {
            OptimizerKind::Sgd => Hyper::sgd(lr, self.momentum, l2, pos_weight),
            OptimizerKind::Adam => Hyper::adam(lr, l2, pos_weight),
        };
        h.with_hidden(hidden)
    }

    /// Every combination of the grid, in a fixed order.
    pub fn grid(&self) -> Vec<Hyper> {
        let hidden = if self.hidden.is_empty() { vec![0] } else { self.hidden.clone() };
        let mut out = Vec::new();
        for &lr in &self.lr {
            for &l2 in &self.l2 {
                for &pw in &self.pos_weight {
                    for &h in &hidden {
                        out.push(self.hyper(lr, l2, pw, h));
                    }
                }
            }
        }
        out
    }

    /// `k` starting variants: the whole grid when it has at most `k` points (then
    /// perturbed copies of it), else `k` distinct points drawn with `seed`.
    pub fn initial(&self, k: usize, seed: u64) -> Vec<Hyper> {
        let mut grid = self.grid();
        let mut rng = SplitMix(seed);
        if grid.len() > k {
            // Fisher-Yates, first k
            for i in 0..k {
                let j = i + (rng.next_u64() % (grid.len() - i) as u64) as usize;
                grid.swap(i, j);
            }
            grid.truncate(k);
            return grid;
        }
        let base = grid.len();
        let mut i = 0;
        while grid.len() < k {
            let h = self.perturb(&grid[i % base], &mut rng);
            grid.push(h);
            i += 1;
        }
        grid
    }

    /// A neighbour of `h`: learning rate, L2 and positive weight scaled by 0.8 or
    /// 1.25 (L2 by 0.5 or 2), the hidden size moved to an adjacent grid value.
    pub fn perturb(&self, h: &Hyper, rng: &mut SplitMix) -> Hyper {
        let mut pick = |a: f32, b: f32| if rng.next_u64() % 2 == 0 { a } else { b };
        let mut out = *h;
        out.lr = (h.lr * pick(0.8, 1.25)).clamp(1e-6, 10.0);
        out.l2 = if h.l2 == 0.0 { pick(0.0, 1e-5) } else { h.l2 * pick(0.5, 2.0) };
        out.pos_weight = (h.pos_weight * pick(0.8, 1.25)).clamp(1.0, 1000.0);
        if let Some(pos) = self.hidden.iter().position(|x| *x == h.hidden) {
            let step = pick(0.0, 1.0) as usize;
            let next = if step == 1 { (pos + 1).min(self.hidden.len() - 1) } else { pos.saturating_sub(1) };
            out.hidden = self.hidden[next];
        }
        out
    }
}

/// One exploit step: `(from, to)` pairs replacing the worst half of the ranked
/// variants with the best half (best replaces worst). Variants without a score yet
/// take no part. Higher scores are better; ties go to the lower index.
pub fn exploit(scores: &[Option<f64>]) -> Vec<(usize, usize)> {
    let mut ranked: Vec<(usize, f64)> = scores.iter().enumerate().filter_map(|(i, s)| s.map(|s| (i, s))).collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let half = ranked.len() / 2;
    (0..half).map(|i| (ranked[i].0, ranked[ranked.len() - 1 - i].0)).collect()
}

/// A deterministic random source for perturbations.
pub fn rng(seed: u64) -> SplitMix {
    SplitMix(seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space() -> SearchSpace {
        SearchSpace { lr: vec![0.01, 0.1], l2: vec![0.0], pos_weight: vec![1.0, 5.0], hidden: vec![], optimizer: OptimizerKind::Adam, momentum: 0.9 }
    }

    #[test]
    fn initial_population_covers_the_grid_then_perturbs() {
        let s = space();
        let k4 = s.initial(4, 1);
        assert_eq!(k4, s.grid());
        let k6 = s.initial(6, 1);
        assert_eq!(&k6[..4], &s.grid()[..]);
        assert_eq!(k6.len(), 6);
        let k2 = s.initial(2, 1);
        assert_eq!(k2.len(), 2);
        assert_ne!(k2[0], k2[1]);
    }

    #[test]
    fn exploit_replaces_the_worst_half_by_the_best() {
        let pairs = exploit(&[Some(0.7), Some(0.9), None, Some(0.6), Some(0.8)]);
        assert_eq!(pairs, vec![(1, 3), (4, 0)]);
        assert!(exploit(&[Some(0.5)]).is_empty());
    }
}
