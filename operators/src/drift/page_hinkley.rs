//! The Page-Hinkley test (Page 1954): a cumulative sum of the deviations from the
//! running mean, with a forgetting factor `alpha` and a tolerated magnitude
//! `delta`, alarms when the sum rises more than `threshold` above its minimum
//! (an increase) or falls that far below its maximum (a decrease).
//!
//! Same update order, comparisons and defaults as River 0.26's `drift.PageHinkley`
//! (`min_instances=30, delta=0.005, threshold=50, alpha=1-1e-4, mode="both"`),
//! including the reset on the update after a detection.
//!
//! ```
//! use vigil_operators::drift::{detections, PageHinkley, PageHinkleyConfig};
//! let stream = (0..3000).map(|i| if i < 1000 { 0.0 } else { 1.0 });
//! let found = detections(&mut PageHinkley::new(PageHinkleyConfig::default()), stream);
//! assert!(found[0] > 1000 && found[0] < 1200, "{found:?}");
//! ```

use serde::{Deserialize, Serialize};

use super::ChangeDetector;

/// Which side of the test alarms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PhMode {
    Up,
    Down,
    #[default]
    Both,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PageHinkleyConfig {
    pub min_instances: u32,
    pub delta: f64,
    pub threshold: f64,
    pub alpha: f64,
    pub mode: PhMode,
}

impl Default for PageHinkleyConfig {
    fn default() -> Self {
        PageHinkleyConfig { min_instances: 30, delta: 0.005, threshold: 50.0, alpha: 1.0 - 0.0001, mode: PhMode::Both }
    }
}

/// The Page-Hinkley detector; see the module docs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PageHinkley {
    cfg: PageHinkleyConfig,
    n: f64,
    mean: f64,
    sum_increase: f64,
    sum_decrease: f64,
    min_increase: f64,
    max_decrease: f64,
    detected: bool,
}

impl PageHinkley {
    pub fn new(cfg: PageHinkleyConfig) -> PageHinkley {
        PageHinkley { cfg, n: 0.0, mean: 0.0, sum_increase: 0.0, sum_decrease: 0.0, min_increase: f64::INFINITY, max_decrease: -1.0, detected: false }
    }
}

impl ChangeDetector for PageHinkley {
    fn update(&mut self, x: f64) -> bool {
        if self.detected {
            *self = PageHinkley::new(self.cfg);
        }
        self.n += 1.0;
        self.mean += (1.0 / self.n) * (x - self.mean);
        let dev = x - self.mean;
        self.sum_increase = self.cfg.alpha * self.sum_increase + dev - self.cfg.delta;
        self.sum_decrease = self.cfg.alpha * self.sum_decrease + dev + self.cfg.delta;
        if self.sum_increase < self.min_increase {
            self.min_increase = self.sum_increase;
        }
        if self.sum_decrease > self.max_decrease {
            self.max_decrease = self.sum_decrease;
        }
        if self.n >= self.cfg.min_instances as f64 {
            let up = self.sum_increase - self.min_increase;
            let down = self.max_decrease - self.sum_decrease;
            self.detected = match self.cfg.mode {
                PhMode::Up => up > self.cfg.threshold,
                PhMode::Down => down > self.cfg.threshold,
                PhMode::Both => up > self.cfg.threshold || down > self.cfg.threshold,
            };
        }
        self.detected
    }

    fn method(&self) -> &'static str {
        "page_hinkley"
    }

    /// The test's rise above the cumulative sum's minimum (or fall below its maximum).
    fn statistic(&self) -> f64 {
        if self.n < self.cfg.min_instances as f64 {
            return 0.0;
        }
        let (up, down) = (self.sum_increase - self.min_increase, self.max_decrease - self.sum_decrease);
        match self.cfg.mode {
            PhMode::Up => up,
            PhMode::Down => down,
            PhMode::Both => up.max(down),
        }
    }

    fn threshold(&self) -> f64 {
        self.cfg.threshold
    }
}
