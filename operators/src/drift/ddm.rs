//! DDM (Drift Detection Method, Gama et al. 2004) on a 0/1 error stream: tracks
//! the error rate `p` and its standard deviation `s = sqrt(p(1-p)/n)`, remembers
//! the point where `p + s` was lowest, and alarms when `p + s` exceeds
//! `p_min + 3 s_min` (a warning at 2). It only sees increases of the error rate.
//!
//! Same update order, comparisons and defaults as River 0.26's `drift.binary.DDM`
//! (`warm_start=30, warning_threshold=2, drift_threshold=3`), including the reset
//! on the update after a detection.
//!
//! ```
//! use vigil_operators::drift::{detections, Ddm, DdmConfig};
//! // 2% errors, then 30%
//! let errors = (0..6000).map(|i| if i < 3000 { (i % 50 == 0) as u8 as f64 } else { (i % 10 < 3) as u8 as f64 });
//! let found = detections(&mut Ddm::new(DdmConfig::default()), errors);
//! assert!(found[0] > 3000 && found[0] < 3100, "{found:?}");
//! ```

use serde::{Deserialize, Serialize};

use super::ChangeDetector;

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DdmConfig {
    /// Values seen before any test.
    pub warm_start: u32,
    pub warning_threshold: f64,
    pub drift_threshold: f64,
}

impl Default for DdmConfig {
    fn default() -> Self {
        DdmConfig { warm_start: 30, warning_threshold: 2.0, drift_threshold: 3.0 }
    }
}

/// The DDM detector; see the module docs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Ddm {
    cfg: DdmConfig,
    n: f64,
    p: f64,
    p_min: f64,
    s_min: f64,
    ps_min: f64,
    warning: bool,
    detected: bool,
    /// s at the last update.
    s: f64,
}

impl Ddm {
    pub fn new(cfg: DdmConfig) -> Ddm {
        Ddm { cfg, n: 0.0, p: 0.0, p_min: f64::NAN, s_min: f64::NAN, ps_min: f64::INFINITY, warning: false, detected: false, s: 0.0 }
    }

    /// In the warning zone (between the warning and the drift threshold).
    pub fn warning(&self) -> bool {
        self.warning
    }

    /// The error rate since the last reset.
    pub fn error_rate(&self) -> f64 {
        self.p
    }
}

impl ChangeDetector for Ddm {
    /// `x` is an error indicator: anything above 0.5 counts as an error.
    fn update(&mut self, x: f64) -> bool {
        if self.detected {
            *self = Ddm::new(self.cfg);
        }
        let x = if x > 0.5 { 1.0 } else { 0.0 };
        self.n += 1.0;
        self.p += (1.0 / self.n) * (x - self.p);
        let s = (self.p * (1.0 - self.p) / self.n).sqrt();
        self.s = s;
        if self.n > self.cfg.warm_start as f64 {
            if self.p + s <= self.ps_min {
                self.p_min = self.p;
                self.s_min = s;
                self.ps_min = self.p_min + self.s_min;
            }
            self.warning = self.p + s > self.p_min + self.cfg.warning_threshold * self.s_min;
            if self.p + s > self.p_min + self.cfg.drift_threshold * self.s_min {
                self.detected = true;
                self.warning = false;
            }
        }
        self.detected
    }

    fn method(&self) -> &'static str {
        "ddm"
    }

    /// How many `s_min` the error rate is above its best: (p + s - p_min) / s_min.
    fn statistic(&self) -> f64 {
        if self.s_min > 0.0 {
            (self.p + self.s - self.p_min) / self.s_min
        } else {
            0.0
        }
    }

    fn threshold(&self) -> f64 {
        self.cfg.drift_threshold
    }

    fn change(&self) -> Option<(f64, f64)> {
        self.s_min.is_finite().then_some((self.p_min, self.p))
    }
}
