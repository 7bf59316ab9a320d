//! ADWIN (ADaptive WINdowing, Bifet & Gavaldà 2007): keeps a window of recent
//! values whose mean has not changed, compressed into exponential buckets (ADWIN2),
//! and drops its oldest part when two sub-windows' means differ by more than the
//! Hoeffding-style bound `epsilon_cut` at confidence `delta`.
//!
//! The arithmetic follows River 0.26's `drift.ADWIN` step by step (bucket merging,
//! the incremental variance, the cut scan from the oldest bucket, and the reset on
//! the update after a detection), so that both alarm at the same positions of the
//! same stream; `benchmarks/src/bin/drift_bench.rs` checks that against River.
//!
//! ```
//! use vigil_operators::drift::{detections, Adwin, AdwinConfig};
//! // 1000 values around 0.5, then 1000 around 5.5: one change, found shortly after 1000
//! let stream = (0..2000).map(|i| if i < 1000 { (i % 2) as f64 } else { 5.0 + (i % 2) as f64 });
//! let found = detections(&mut Adwin::new(AdwinConfig::default()), stream);
//! assert_eq!(found.len(), 1);
//! assert!(found[0] >= 1000 && found[0] < 1100, "{found:?}");
//! ```

use serde::{Deserialize, Serialize};

use super::{ChangeDetector, Direction};

/// River's defaults: `delta=0.002, clock=32, max_buckets=5, min_window_length=5, grace_period=10`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdwinConfig {
    /// Confidence of a cut: smaller alarms less often.
    pub delta: f64,
    /// Check for a cut every `clock` values.
    pub clock: u32,
    /// Buckets of one size kept before two merge.
    pub max_buckets: usize,
    /// Smallest sub-window a cut may leave.
    pub min_window_length: u32,
    /// No check before this many values.
    pub grace_period: u32,
    /// `Up`: a cut where the newer values are lower still shrinks the window, but is not an alarm.
    pub direction: Direction,
}

impl Default for AdwinConfig {
    fn default() -> Self {
        AdwinConfig { delta: 0.002, clock: 32, max_buckets: 5, min_window_length: 5, grace_period: 10, direction: Direction::Both }
    }
}

/// Buckets of `2^i` values each, oldest first: (sum, variance sum) per bucket.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Row {
    totals: Vec<f64>,
    variances: Vec<f64>,
}

impl Row {
    fn push(&mut self, total: f64, variance: f64) {
        self.totals.push(total);
        self.variances.push(variance);
    }
    fn drop_oldest(&mut self, n: usize) {
        self.totals.drain(..n);
        self.variances.drain(..n);
    }
    fn len(&self) -> usize {
        self.totals.len()
    }
}

/// The ADWIN detector; see the module docs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Adwin {
    cfg: AdwinConfig,
    rows: Vec<Row>,
    total: f64,
    /// Sum of squared deviations from the window mean.
    variance: f64,
    width: f64,
    tick: u64,
    /// A change was detected at the last update: the next one starts afresh.
    detected: bool,
    detections: u64,
    /// Largest |mean difference| / epsilon_cut over the cuts of the last check.
    last_ratio: f64,
    /// The means of the older and the newer side at the last cut that held.
    last_cut: Option<(f64, f64)>,
}

impl Adwin {
    pub fn new(cfg: AdwinConfig) -> Adwin {
        Adwin {
            cfg,
            rows: vec![Row::default()],
            total: 0.0,
            variance: 0.0,
            width: 0.0,
            tick: 0,
            detected: false,
            detections: 0,
            last_ratio: 0.0,
            last_cut: None,
        }
    }

    /// Values in the current window.
    pub fn width(&self) -> u64 {
        self.width as u64
    }

    /// Mean of the current window.
    pub fn estimation(&self) -> f64 {
        if self.width > 0.0 {
            self.total / self.width
        } else {
            0.0
        }
    }

    /// The older and newer sub-windows' means at the first cut of the last
    /// detection (what changed, and by how much).
    pub fn last_cut(&self) -> Option<(f64, f64)> {
        self.last_cut
    }

    /// Changes detected since creation.
    pub fn detections(&self) -> u64 {
        self.detections
    }

    fn reset(&mut self) {
        *self = Adwin { detections: self.detections, ..Adwin::new(self.cfg) };
    }

    fn insert(&mut self, value: f64) {
        if self.rows.is_empty() {
            self.rows.push(Row::default());
        }
        self.rows[0].push(value, 0.0);
        self.width += 1.0;
        let mut incremental = 0.0;
        if self.width > 1.0 {
            let d = value - self.total / (self.width - 1.0);
            incremental = (self.width - 1.0) * d * d / self.width;
        }
        self.variance += incremental;
        self.total += value;
        self.compress();
    }

    /// Merges the two oldest buckets of a full row into one of the next size.
    fn compress(&mut self) {
        let mut i = 0;
        while self.rows[i].len() == self.cfg.max_buckets + 1 {
            let n = (1u64 << i) as f64;
            let (t0, t1) = (self.rows[i].totals[0], self.rows[i].totals[1]);
            let (v0, v1) = (self.rows[i].variances[0], self.rows[i].variances[1]);
            let (mu0, mu1) = (t0 / n, t1 / n);
            let merged_variance = v0 + v1 + n * 0.5 * (mu0 - mu1) * (mu0 - mu1);
            if i + 1 == self.rows.len() {
                self.rows.push(Row::default());
            }
            self.rows[i + 1].push(t0 + t1, merged_variance);
            self.rows[i].drop_oldest(2);
            if self.rows[i + 1].len() <= self.cfg.max_buckets {
                break;
            }
            i += 1;
        }
    }

    /// Drops the oldest bucket.
    fn drop_oldest_bucket(&mut self) {
        let last = self.rows.len() - 1;
        let n = (1u64 << last) as f64;
        let (u, v) = (self.rows[last].totals[0], self.rows[last].variances[0]);
        let mu = u / n;
        self.width -= n;
        self.total -= u;
        let mu_window = self.total / self.width;
        self.variance -= v + n * self.width * (mu - mu_window) * (mu - mu_window) / (n + self.width);
        self.rows[last].drop_oldest(1);
        if self.rows[last].len() == 0 {
            self.rows.pop();
        }
    }

    /// `epsilon_cut` for sub-windows of `n0` and `n1` values; `delta_prime` is
    /// `ln(2 ln(width) / delta)`, fixed while the width is.
    fn epsilon(&self, n0: f64, n1: f64, delta_prime: f64) -> f64 {
        let min = self.cfg.min_window_length as f64;
        let m_recip = 1.0 / (n0 - min + 1.0) + 1.0 / (n1 - min + 1.0);
        (2.0 * m_recip * (self.variance / self.width) * delta_prime).sqrt() + 2.0 / 3.0 * delta_prime * m_recip
    }

    /// Scans every cut from the oldest bucket; drops the oldest bucket while a cut
    /// holds. Returns (a cut was found, the newer side's mean was higher at the first).
    fn check(&mut self) -> (bool, bool) {
        let min = self.cfg.min_window_length as f64;
        let (mut changed, mut rising) = (false, false);
        self.last_ratio = 0.0;
        'rescan: loop {
            let (mut n0, mut n1, mut u0, mut u1) = (0.0, self.width, 0.0, self.total);
            let delta_prime = (2.0 * self.width.ln() / self.cfg.delta).ln();
            for i in (0..self.rows.len()).rev() {
                let size = (1u64 << i) as f64;
                let len = self.rows[i].len();
                for k in 0..len {
                    n0 += size;
                    n1 -= size;
                    let t = self.rows[i].totals[k];
                    u0 += t;
                    u1 -= t;
                    if i == 0 && k == len - 1 {
                        break 'rescan;
                    }
                    if n1 < min || n0 < min {
                        continue;
                    }
                    let delta_mean = u0 / n0 - u1 / n1;
                    let epsilon = self.epsilon(n0, n1, delta_prime);
                    self.last_ratio = self.last_ratio.max(delta_mean.abs() / epsilon);
                    if delta_mean.abs() > epsilon {
                        if !changed {
                            rising = delta_mean < 0.0;
                            self.last_cut = Some((u0 / n0, u1 / n1));
                        }
                        changed = true;
                        if self.width > 0.0 {
                            self.drop_oldest_bucket();
                            continue 'rescan;
                        }
                    }
                }
            }
            break;
        }
        (changed, rising)
    }
}

impl ChangeDetector for Adwin {
    fn update(&mut self, x: f64) -> bool {
        if self.detected {
            self.reset();
        }
        self.insert(x);
        self.tick += 1;
        if self.tick % self.cfg.clock.max(1) as u64 != 0 || self.width <= self.cfg.grace_period as f64 {
            return false;
        }
        let (changed, rising) = self.check();
        self.detected = changed;
        let alarm = changed && (self.cfg.direction == Direction::Both || rising);
        if alarm {
            self.detections += 1;
        }
        alarm
    }

    fn method(&self) -> &'static str {
        "adwin"
    }

    fn statistic(&self) -> f64 {
        self.last_ratio
    }

    fn threshold(&self) -> f64 {
        1.0
    }

    fn change(&self) -> Option<(f64, f64)> {
        self.last_cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The window's sums and variance equal a direct computation over the values
    /// it still holds (no cut: a constant-mean stream).
    #[test]
    fn buckets_keep_exact_totals_and_variance() {
        let mut a = Adwin::new(AdwinConfig { clock: 1_000_000, ..AdwinConfig::default() });
        let values: Vec<f64> = (0..1000).map(|i| ((i * 37) % 11) as f64).collect();
        for &v in &values {
            a.update(v);
        }
        assert_eq!(a.width(), 1000);
        let mean = values.iter().sum::<f64>() / 1000.0;
        let ss: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
        assert!((a.total - values.iter().sum::<f64>()).abs() < 1e-9);
        assert!((a.variance - ss).abs() / ss < 1e-9, "{} vs {ss}", a.variance);
        // at most max_buckets + ... buckets per row, sizes sum to the width
        let held: usize = a.rows.iter().enumerate().map(|(i, r)| r.len() << i).sum();
        assert_eq!(held, 1000);
        assert!(a.rows.iter().all(|r| r.len() <= 5));
    }

    #[test]
    fn constant_stream_never_alarms() {
        let mut a = Adwin::new(AdwinConfig::default());
        assert!(detections(&mut a, std::iter::repeat(1.0).take(20_000)).is_empty());
    }

    #[test]
    fn up_direction_ignores_improvements() {
        let falling = (0..4000).map(|i| if i < 2000 { 1.0 } else { (i % 10 == 0) as u8 as f64 });
        assert!(detections(&mut Adwin::new(AdwinConfig { direction: Direction::Up, ..Default::default() }), falling.clone()).is_empty());
        assert!(!detections(&mut Adwin::new(AdwinConfig::default()), falling).is_empty());
        let rising = (0..4000).map(|i| if i < 2000 { (i % 10 == 0) as u8 as f64 } else { 1.0 });
        assert!(!detections(&mut Adwin::new(AdwinConfig { direction: Direction::Up, ..Default::default() }), rising).is_empty());
    }

    use super::super::detections;
}
