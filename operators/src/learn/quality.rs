//! Progressive validation: a sliding window of (prediction, label) pairs per model
//! variant, with log loss, ROC-AUC, PR-AUC (average precision), precision at the
//! top k (the share of true positives among the highest-scored 1%) and the
//! expected calibration error over it.
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
    /// Precision among the top [`TOP_SHARE`] of the window by score.
    #[serde(default)]
    pub precision_at_k: Option<f64>,
    /// Expected calibration error over [`CALIBRATION_BINS`] equal-width bins.
    #[serde(default)]
    pub ece: Option<f64>,
}

/// The share of a window that "top k" means (at least one item).
pub const TOP_SHARE: f64 = 0.01;
/// Equal-width probability bins of the expected calibration error.
pub const CALIBRATION_BINS: usize = 10;

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

    /// Every metric over the window (weighted).
    pub fn quality(&self) -> Quality {
        let items: Vec<(f32, bool, f32)> = self.items.iter().copied().collect();
        Quality::of(&items)
    }
}

impl Quality {
    /// Every metric over `items` (prediction, label, weight).
    pub fn of(items: &[(f32, bool, f32)]) -> Quality {
        Quality {
            labels: items.len(),
            positives: items.iter().filter(|i| i.1).count(),
            log_loss: log_loss(items),
            roc_auc: roc_auc(items),
            pr_auc: average_precision(items),
            precision_at_k: precision_at_top(items, TOP_SHARE),
            ece: expected_calibration_error(items, CALIBRATION_BINS),
        }
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

/// Weighted precision among the highest-scored `share` of the total weight (at
/// least the top item); a tie group straddling the cut counts in proportion.
pub fn precision_at_top(items: &[(f32, bool, f32)], share: f64) -> Option<f64> {
    let groups = tie_groups(items);
    let total: f64 = groups.iter().map(|g| g.0 + g.1).sum();
    let first = groups.first().map(|g| g.0 + g.1)?;
    if total <= 0.0 {
        return None;
    }
    let k = (total * share).max(first.min(1.0));
    let (mut taken, mut tp) = (0.0, 0.0);
    for (p, n) in groups {
        let room = k - taken;
        if room <= 0.0 {
            break;
        }
        let size = p + n;
        let part = if size <= room { 1.0 } else { room / size };
        tp += p * part;
        taken += size * part;
    }
    Some(tp / taken)
}

/// Expected calibration error: over equal-width bins of the predicted probability,
/// the weighted mean of |mean prediction - positive share|.
pub fn expected_calibration_error(items: &[(f32, bool, f32)], bins: usize) -> Option<f64> {
    let bins = bins.max(1);
    let mut acc = vec![(0.0f64, 0.0f64, 0.0f64); bins]; // weight, sum of predictions, positive weight
    for &(p, y, w) in items.iter().filter(|i| i.0.is_finite()) {
        let p = (p as f64).clamp(0.0, 1.0);
        let b = ((p * bins as f64) as usize).min(bins - 1);
        acc[b].0 += w as f64;
        acc[b].1 += w as f64 * p;
        acc[b].2 += if y { w as f64 } else { 0.0 };
    }
    let total: f64 = acc.iter().map(|a| a.0).sum();
    (total > 0.0).then(|| acc.iter().filter(|a| a.0 > 0.0).map(|a| (a.1 / a.0 - a.2 / a.0).abs() * a.0 / total).sum())
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
                num += w * if a.0 > b.0 {
                    1.0
                } else if a.0 == b.0 {
                    0.5
                } else {
                    0.0
                };
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

    /// Precision at the top by expanding every item into unit copies (weights are
    /// integers in the test) and taking the first k by score, ties split evenly.
    fn naive_precision_at_top(items: &[(f32, bool, f32)], share: f64) -> Option<f64> {
        let total: f64 = items.iter().map(|i| i.2 as f64).sum();
        if total <= 0.0 {
            return None;
        }
        let mut scores: Vec<f32> = items.iter().map(|i| i.0).collect();
        scores.sort_by(|a, b| b.total_cmp(a));
        scores.dedup();
        let top = scores[0];
        let first: f64 = items.iter().filter(|i| i.0 == top).map(|i| i.2 as f64).sum();
        let k = (total * share).max(first.min(1.0));
        let (mut taken, mut tp) = (0.0, 0.0);
        for s in scores {
            let size: f64 = items.iter().filter(|i| i.0 == s).map(|i| i.2 as f64).sum();
            let pos: f64 = items.iter().filter(|i| i.0 == s && i.1).map(|i| i.2 as f64).sum();
            let take = size.min(k - taken);
            if take <= 0.0 {
                break;
            }
            tp += pos * take / size;
            taken += take;
        }
        Some(tp / taken)
    }

    fn naive_ece(items: &[(f32, bool, f32)], bins: usize) -> Option<f64> {
        let total: f64 = items.iter().map(|i| i.2 as f64).sum();
        if total <= 0.0 {
            return None;
        }
        let mut ece = 0.0;
        for b in 0..bins {
            let in_bin: Vec<_> = items.iter().filter(|i| (((i.0 as f64) * bins as f64) as usize).min(bins - 1) == b).collect();
            let w: f64 = in_bin.iter().map(|i| i.2 as f64).sum();
            if w > 0.0 {
                let conf: f64 = in_bin.iter().map(|i| i.0 as f64 * i.2 as f64).sum::<f64>() / w;
                let acc: f64 = in_bin.iter().filter(|i| i.1).map(|i| i.2 as f64).sum::<f64>() / w;
                ece += w / total * (conf - acc).abs();
            }
        }
        Some(ece)
    }

    proptest! {
        #[test]
        fn top_precision_and_ece_match_their_definitions(items in proptest::collection::vec((0u8..21, any::<bool>(), 1u8..4), 0..80), share in 0.0f64..0.5) {
            let items: Vec<(f32, bool, f32)> = items.into_iter().map(|(p, y, w)| (p as f32 / 20.0, y, w as f32)).collect();
            let (a, b) = (precision_at_top(&items, share), naive_precision_at_top(&items, share));
            prop_assert_eq!(a.is_some(), b.is_some());
            if let (Some(a), Some(b)) = (a, b) { prop_assert!((a - b).abs() < 1e-9, "p@k {} vs {}", a, b); }
            let (a, b) = (expected_calibration_error(&items, 10), naive_ece(&items, 10));
            prop_assert_eq!(a.is_some(), b.is_some());
            if let (Some(a), Some(b)) = (a, b) { prop_assert!((a - b).abs() < 1e-9, "ece {} vs {}", a, b); }
        }

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
