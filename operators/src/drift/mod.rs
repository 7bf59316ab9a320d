//! Drift detection: is the world the model sees still the world it learned?
//!
//! - **Concept drift** on a model's error stream (from delayed labels): [`Adwin`],
//!   [`Ddm`] and [`PageHinkley`], the same algorithms with the same parameters as
//!   River 0.26 (`drift.ADWIN`, `drift.binary.DDM`, `drift.PageHinkley`), so that on
//!   the same error stream they alarm at the same positions. All three implement
//!   [`ChangeDetector`].
//! - **Distribution drift** of features and predictions against a reference:
//!   [`stats`] (PSI, two-sample Kolmogorov-Smirnov, Wasserstein-1, Jensen-Shannon),
//!   [`windows`] (the reference policy and the sliding current window),
//!   [`feature`] (a numeric and a categorical monitor that combine the two), and
//!   [`rate`] (a positive-rate shift test); [`noise`] (what each statistic shows
//!   by chance), [`dependence`] (how many independent values a window is worth)
//!   and [`persistence`] (when a finding past its threshold becomes drift).
//! - **Fairness**: [`fairness`], per-group rates and gaps over a sliding window of
//!   labeled decisions.
//!
//! Every monitor here is a plain state machine fed one value at a time; the engine
//! decides when to evaluate and where the results go (`src/monitor/`).

pub mod adwin;
pub mod ddm;
pub mod dependence;
pub mod fairness;
pub mod feature;
pub mod noise;
pub mod page_hinkley;
pub mod persistence;
pub mod rate;
pub mod stats;
pub mod windows;

pub use adwin::{Adwin, AdwinConfig};
pub use ddm::{Ddm, DdmConfig};
pub use fairness::{FairnessConfig, FairnessReport, FairnessWindow};
pub use feature::{CategoricalDrift, NumericDrift};
pub use page_hinkley::{PageHinkley, PageHinkleyConfig, PhMode};
pub use persistence::{Evidence, Streak};
pub use windows::{Reference, SampleWindows};

/// Which changes of a detector's input count as drift.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Any change (River's behaviour).
    #[default]
    Both,
    /// Only increases (an error rate that rises): a model that improves is not an alarm.
    Up,
}

/// A sequential change detector over a stream of values (errors: 0/1 or real).
pub trait ChangeDetector: Send {
    /// Feeds one value; true when a change is detected at this value.
    fn update(&mut self, x: f64) -> bool;
    /// Short method name used in records and metrics (`adwin`, `ddm`, `page_hinkley`).
    fn method(&self) -> &'static str;
    /// The detector's current test statistic, comparable with [`threshold`](Self::threshold).
    fn statistic(&self) -> f64;
    /// The value of the statistic above which the detector alarms.
    fn threshold(&self) -> f64;
    /// The level before and after the last detected change, where the detector knows it.
    fn change(&self) -> Option<(f64, f64)> {
        None
    }
}

/// Runs a detector over a whole stream and returns the 0-based positions where it
/// alarmed (the way River's examples do: `update` then `drift_detected`).
pub fn detections(detector: &mut dyn ChangeDetector, values: impl IntoIterator<Item = f64>) -> Vec<usize> {
    values.into_iter().enumerate().filter_map(|(i, x)| detector.update(x).then_some(i)).collect()
}
