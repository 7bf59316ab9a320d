//! Progressive validation: a sliding window of (prediction, label) pairs per model
//! variant, with log loss, ROC-AUC and PR-AUC (average precision) over it.
//!
//! The predictions are the ones made when each event was scored, before its label
//! was known, so the window measures what the model would have served.

use std::collections::VecDeque;

/// The last `capacity` (prediction, label, weight) triples of one variant.
#[derive(Clone, Debug)]
pub struct QualityWindow {
    capacity: usize,
    items: VecDeque<(f32, bool, f32)>,
}

/// Metrics of one window.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Quality {
    pub labels: usize,
    pub positives: usize,
    pub log_loss: f64,
    /// `None` until the window holds both classes.
    pub roc_auc: Option<f64>,
    pub pr_auc: Option<f64>,
}

impl QualityWindow {
    pub fn new(capacity: usize) -> QualityWindow {
        QualityWindow { capacity: capacity.max(1), items: VecDeque::new() }
    }

    /// Adds one labeled prediction with an importance weight; the oldest leaves
    /// when the window is full.
    pub fn push(&mut self, prediction: f32, label: bool, weight: f32) {
        if self.items.len() == self.capacity {
            self.items.pop_front();
        }
        self.items.push_back((prediction, label, weight));
    }

    /// A window holding `items` (oldest first), e.g. restored from a checkpoint.
    pub fn from_items(capacity: usize, items: Vec<(f32, bool, f32)>) -> QualityWindow {
        let mut w = QualityWindow::new(capacity);
        for (p, y, weight) in items {
            w.push(p, y, weight);
        }
        w
    }

    /// The window's contents, oldest first.
    pub fn items(&self) -> Vec<(f32, bool, f32)> {
        self.items.iter().copied().collect()
    }

    pub fn clear(&mut self) {
        self.items.clear();
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Log loss, ROC-AUC and PR-AUC over the window (weighted).
    pub fn quality(&self) -> Quality {
        let items: Vec<(f32, bool, f32)> = self.items.iter().copied().collect();
        let positives = items.iter().filter(|i| i.1).count();
        Quality { labels: items.len(), positives, log_loss: log_loss(&items), roc_auc: roc_auc(&items), pr_auc: average_precision(&items) }
    }
}

/// Weighted mean log loss, predictions clamped to [1e-7, 1 - 1e-7].
pub fn log_loss(items: &[(f32, bool, f32)]) -> f64 {
    let (mut sum, mut weight) = (0.0, 0.0);
    for &(p, y, w) in items {
        let p = (p as f64).clamp(1e-7, 1.0 - 1e-7);
        sum += w as f64 * if y { -p.ln() } else { -(1.0 - p).ln() };
        weight += w as f64;
    }
    if weight > 0.0 {
        sum / weight
    } else {
        0.0
    }
}

/// Groups of equal predictions in descending order: (weight of positives, of negatives).
fn tie_groups(items: &[(f32, bool, f32)]) -> Vec<(f64, f64)> {
    let mut sorted: Vec<(f32, bool, f32)> = items.iter().copied().filter(|i| i.0.is_finite()).collect();
    sorted.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut groups: Vec<(f64, f64)> = Vec::new();
    let mut last = None;
    for (p, y, w) in sorted {
        if last != Some(p) {
            groups.push((0.0, 0.0));
            last = Some(p);
        }
        let g = groups.last_mut().expect("pushed above");
        if y {
            g.0 += w as f64;
        } else {
            g.1 += w as f64;
        }
    }
    groups
}

/// The probability that a random positive scores above a random negative (ties
/// count one half), weighted; `None` without both classes.
pub fn roc_auc(items: &[(f32, bool, f32)]) -> Option<f64> {
    let groups = tie_groups(items);
    let (pos, neg): (f64, f64) = groups.iter().fold((0.0, 0.0), |a, g| (a.0 + g.0, a.1 + g.1));
    if pos <= 0.0 || neg <= 0.0 {
        return None;
    }
    // walk from the highest score down: each negative is beaten by the positives above it
    let (mut above, mut area) = (0.0, 0.0);
    for (p, n) in groups {
        area += n * (above + p / 2.0);
        above += p;
    }
    Some(area / (pos * neg))
}

/// Average precision: the sum over thresholds of precision times the recall gained.
pub fn average_precision(items: &[(f32, bool, f32)]) -> Option<f64> {
    let groups = tie_groups(items);
    let pos: f64 = groups.iter().map(|g| g.0).sum();
    let total: f64 = groups.iter().map(|g| g.0 + g.1).sum();
    if pos <= 0.0 || pos >= total {
        return None;
    }
    let (mut tp, mut seen, mut ap) = (0.0, 0.0, 0.0);
    for (p, n) in groups {
        tp += p;
        seen += p + n;
        if p > 0.0 {
            ap += (p / pos) * (tp / seen);
        }
    }
    Some(ap)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive_auc(items: &[(f32, bool, f32)]) -> Option<f64> {
        let (mut num, mut den) = (0.0, 0.0);
        for a in items.iter().filter(|i| i.1) {
            for b in items.iter().filter(|i| !i.1) {
                let w = a.2 as f64 * b.2 as f64;
                den += w;
                num += w * if a.0 > b.0 { 1.0 } else if a.0 == b.0 { 0.5 } else { 0.0 };
            }
        }
        (den > 0.0).then(|| num / den)
    }

    /// Average precision by its definition: over each distinct threshold, from the top.
    fn naive_ap(items: &[(f32, bool, f32)]) -> Option<f64> {
        let pos: f64 = items.iter().filter(|i| i.1).map(|i| i.2 as f64).sum();
        let all: f64 = items.iter().map(|i| i.2 as f64).sum();
        if pos <= 0.0 || pos >= all {
            return None;
        }
        let mut thresholds: Vec<f32> = items.iter().map(|i| i.0).collect();
        thresholds.sort_by(|a, b| b.total_cmp(a));
        thresholds.dedup();
        let (mut ap, mut prev_recall) = (0.0, 0.0);
        for t in thresholds {
            let tp: f64 = items.iter().filter(|i| i.1 && i.0 >= t).map(|i| i.2 as f64).sum();
            let sel: f64 = items.iter().filter(|i| i.0 >= t).map(|i| i.2 as f64).sum();
            let recall = tp / pos;
            ap += (recall - prev_recall) * tp / sel;
            prev_recall = recall;
        }
        Some(ap)
    }

    proptest! {
        #[test]
        fn auc_and_ap_match_their_definitions(items in proptest::collection::vec((0u8..20, any::<bool>(), 1u8..4), 0..60)) {
            let items: Vec<(f32, bool, f32)> = items.into_iter().map(|(p, y, w)| (p as f32 / 20.0, y, w as f32)).collect();
            let (a, b) = (roc_auc(&items), naive_auc(&items));
            prop_assert_eq!(a.is_some(), b.is_some());
            if let (Some(a), Some(b)) = (a, b) { prop_assert!((a - b).abs() < 1e-9, "auc {} vs {}", a, b); }
            let (a, b) = (average_precision(&items), naive_ap(&items));
            prop_assert_eq!(a.is_some(), b.is_some());
            if let (Some(a), Some(b)) = (a, b) { prop_assert!((a - b).abs() < 1e-9, "ap {} vs {}", a, b); }
        }
    }

    #[test]
    fn window_slides_and_scores() {
        let mut w = QualityWindow::new(4);
        for (p, y) in [(0.9, false), (0.8, true), (0.1, false), (0.7, true), (0.2, false)] {
            w.push(p, y, 1.0);
        }
        let q = w.quality();
        assert_eq!((q.labels, q.positives), (4, 2));
        assert_eq!(q.roc_auc, Some(1.0)); // the 0.9 negative slid out
        assert_eq!(q.pr_auc, Some(1.0));
        let expected = -((0.8f64).ln() + (0.9f64).ln() + (0.7f64).ln() + (0.8f64).ln()) / 4.0;
        assert!((q.log_loss - expected).abs() < 1e-6);
    }
}
