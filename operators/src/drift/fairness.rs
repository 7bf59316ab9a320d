//! Group fairness of a decision (score >= threshold) over a sliding window of
//! labeled outcomes, updated in O(1) per outcome:
//! - per group: positive rate, true-positive rate, false-positive rate;
//! - demographic-parity difference: the largest minus the smallest positive rate;
//! - equalized-odds gap: the larger of the TPR range and the FPR range.
//!
//! These are Fairlearn's `demographic_parity_difference` and
//! `equalized_odds_difference` over the window. A group enters a rate only with
//! enough support (`min_group` outcomes; `min_class` positives for TPR, negatives
//! for FPR), so that a handful of labels cannot make a gap.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FairnessConfig {
    /// Labeled outcomes in the window.
    pub window: usize,
    pub min_group: u64,
    pub min_class: u64,
    /// A gap above this is flagged.
    pub max_gap: f64,
}

impl Default for FairnessConfig {
    fn default() -> Self {
        FairnessConfig { window: 50_000, min_group: 500, min_class: 50, max_gap: 0.1 }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Counts {
    n: u64,
    predicted: u64,
    positives: u64,
    true_positives: u64,
    false_positives: u64,
}

impl Counts {
    fn add(&mut self, decision: bool, label: bool, sign: i64) {
        let step = |c: &mut u64, on: bool| {
            if on {
                *c = c.wrapping_add_signed(sign);
            }
        };
        step(&mut self.n, true);
        step(&mut self.predicted, decision);
        step(&mut self.positives, label);
        step(&mut self.true_positives, decision && label);
        step(&mut self.false_positives, decision && !label);
    }
}

/// Rates of one group (`None` without enough support).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupRates {
    pub group: u32,
    pub outcomes: u64,
    pub positive_rate: Option<f64>,
    pub tpr: Option<f64>,
    pub fpr: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FairnessReport {
    pub groups: Vec<GroupRates>,
    /// `None` with fewer than two supported groups.
    pub demographic_parity_difference: Option<f64>,
    pub equalized_odds_gap: Option<f64>,
}

/// The sliding window and its per-group counts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FairnessWindow {
    cfg: FairnessConfig,
    items: VecDeque<(u32, bool, bool)>,
    counts: Vec<Counts>,
}

impl FairnessWindow {
    pub fn new(cfg: FairnessConfig) -> FairnessWindow {
        FairnessWindow { cfg, items: VecDeque::new(), counts: Vec::new() }
    }

    /// Adds a labeled decision of group `group` (a small dense id).
    pub fn push(&mut self, group: u32, decision: bool, label: bool) {
        if self.counts.len() <= group as usize {
            self.counts.resize(group as usize + 1, Counts::default());
        }
        self.counts[group as usize].add(decision, label, 1);
        self.items.push_back((group, decision, label));
        if self.items.len() > self.cfg.window.max(1) {
            let (g, d, l) = self.items.pop_front().expect("non-empty");
            self.counts[g as usize].add(d, l, -1);
        }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn report(&self) -> FairnessReport {
        let ratio = |num: u64, den: u64, min: u64| (den >= min.max(1)).then(|| num as f64 / den as f64);
        let groups: Vec<GroupRates> = self
            .counts
            .iter()
            .enumerate()
            .filter(|(_, c)| c.n > 0)
            .map(|(g, c)| {
                let supported = c.n >= self.cfg.min_group;
                GroupRates {
                    group: g as u32,
                    outcomes: c.n,
                    positive_rate: ratio(c.predicted, c.n, self.cfg.min_group),
                    tpr: supported.then(|| ratio(c.true_positives, c.positives, self.cfg.min_class)).flatten(),
                    fpr: supported.then(|| ratio(c.false_positives, c.n - c.positives, self.cfg.min_class)).flatten(),
                }
            })
            .collect();
        let range = |f: &dyn Fn(&GroupRates) -> Option<f64>| {
            let v: Vec<f64> = groups.iter().filter_map(f).collect();
            (v.len() >= 2).then(|| v.iter().copied().fold(f64::MIN, f64::max) - v.iter().copied().fold(f64::MAX, f64::min))
        };
        let dp = range(&|g| g.positive_rate);
        let (tpr_gap, fpr_gap) = (range(&|g| g.tpr), range(&|g| g.fpr));
        let eo = match (tpr_gap, fpr_gap) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        FairnessReport { groups, demographic_parity_difference: dp, equalized_odds_gap: eo }
    }

    pub fn max_gap(&self) -> f64 {
        self.cfg.max_gap
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The incremental window equals a recomputation over its last `window` items.
        #[test]
        fn window_matches_recomputation(items in prop::collection::vec((0u32..4, any::<bool>(), any::<bool>()), 0..300), window in 1usize..120) {
            let cfg = FairnessConfig { window, min_group: 3, min_class: 2, max_gap: 0.1 };
            let mut w = FairnessWindow::new(cfg);
            for &(g, d, l) in &items {
                w.push(g, d, l);
            }
            let tail = &items[items.len().saturating_sub(window)..];
            let mut naive = FairnessWindow::new(FairnessConfig { window: usize::MAX, ..cfg });
            for &(g, d, l) in tail {
                naive.push(g, d, l);
            }
            let (a, b) = (w.report(), naive.report());
            // groups that left the window entirely are absent from both
            prop_assert_eq!(a, b);
        }
    }

    #[test]
    fn gaps_by_hand() {
        let mut w = FairnessWindow::new(FairnessConfig { window: 100, min_group: 1, min_class: 1, max_gap: 0.1 });
        // group 0: 4 outcomes, 2 positives (1 caught), 2 negatives (0 flagged): rate 0.25, tpr 0.5, fpr 0
        for (d, l) in [(true, true), (false, true), (false, false), (false, false)] {
            w.push(0, d, l);
        }
        // group 1: rate 0.75, tpr 1.0, fpr 0.5
        for (d, l) in [(true, true), (true, true), (true, false), (false, false)] {
            w.push(1, d, l);
        }
        let r = w.report();
        assert_eq!(r.demographic_parity_difference, Some(0.5));
        assert_eq!(r.equalized_odds_gap, Some(0.5));
        assert_eq!(r.groups[1].fpr, Some(0.5));
    }
}
