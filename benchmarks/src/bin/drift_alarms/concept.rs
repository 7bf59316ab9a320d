//! Concept-drift detectors on Bernoulli error streams: River's defaults against
//! the job's (`ConceptSpec::default()`: rising errors only, a grace of labels
//! before the detectors start, the chosen warm-ups and thresholds). False alarms
//! per 100,000 labels on stationary streams, delays on rate steps.

use vigil::monitor::spec::ConceptSpec;
use vigil_operators::drift::{Adwin, AdwinConfig, ChangeDetector, Ddm, DdmConfig, PageHinkley, PageHinkleyConfig};

use crate::streams::bernoulli_errors;

/// One detector with its parameters and the labels it skips first.
pub struct Setting {
    pub label: String,
    pub method: &'static str,
    pub grace: usize,
    make: Box<dyn Fn() -> Box<dyn ChangeDetector>>,
}

impl Setting {
    pub fn new(label: &str, method: &'static str, grace: usize, make: impl Fn() -> Box<dyn ChangeDetector> + 'static) -> Setting {
        Setting { label: label.to_owned(), method, grace, make: Box::new(make) }
    }

    /// Detections (positions in the whole stream) of a fresh detector fed from `grace` on.
    pub fn detections(&self, values: &[f64]) -> Vec<usize> {
        let mut d = (self.make)();
        values.iter().enumerate().skip(self.grace).filter_map(|(i, &x)| d.update(x).then_some(i)).collect()
    }
}

/// River's defaults (both directions, no grace) and the job's defaults.
pub fn settings() -> Vec<Setting> {
    let job = ConceptSpec::default();
    let g = job.grace as usize;
    let (a, d, p) = (job.adwin, job.ddm, job.page_hinkley);
    vec![
        Setting::new("River default", "adwin", 0, || Box::new(Adwin::new(AdwinConfig::default()))),
        Setting::new("River default", "ddm", 0, || Box::new(Ddm::new(DdmConfig::default()))),
        Setting::new("River default", "page_hinkley", 0, || Box::new(PageHinkley::new(PageHinkleyConfig::default()))),
        Setting::new("job default", "adwin", g, move || Box::new(Adwin::new(a))),
        Setting::new("job default", "ddm", g, move || Box::new(Ddm::new(d))),
        Setting::new("job default", "page_hinkley", g, move || Box::new(PageHinkley::new(p))),
    ]
}

/// False alarms per 100,000 labels (counted from the grace on) over `runs`
/// stationary streams of `len` labels at error rate `p`.
pub fn false_alarm_rate(s: &Setting, p: f64, runs: usize, len: usize, seed: u64) -> (u64, f64) {
    let mut alarms = 0u64;
    for r in 0..runs {
        let values = bernoulli_errors(seed.wrapping_add(r as u64 * 7_777 + (p * 1e4) as u64), len, p, p, len);
        alarms += s.detections(&values).len() as u64;
    }
    let watched = (runs * len.saturating_sub(s.grace)).max(1) as f64;
    (alarms, alarms as f64 * 100_000.0 / watched)
}

/// A step from `p` to `q` at label `at`: per run, the delay (labels after the
/// step) of the first detection within `horizon`, and whether it alarmed before.
pub fn step(s: &Setting, p: f64, q: f64, at: usize, horizon: usize, runs: usize, seed: u64) -> (Vec<Option<u64>>, u64) {
    let mut delays = Vec::new();
    let mut early = 0;
    for r in 0..runs {
        let values = bernoulli_errors(seed.wrapping_add(r as u64 * 3_331 + (q * 1e4) as u64), at + horizon, p, q, at);
        let found = s.detections(&values);
        early += found.iter().filter(|&&i| i < at).count() as u64;
        delays.push(found.iter().find(|&&i| i >= at).map(|&i| (i - at) as u64));
    }
    (delays, early)
}
