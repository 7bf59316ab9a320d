//! The `[monitor]` section of a job: what is watched for drift, against what
//! reference, with which thresholds and detectors. Every part has defaults that
//! follow what users of Evidently and River know; see `examples/fraud_online.toml`.
//!
//! ```toml
//! [monitor]
//! interval = "1m"                 # event time between evaluations
//! window = 20000                  # values in the current (sliding) window
//! reference = { kind = "first", skip = 20000, events = 20000 }  # or "time_range", "trailing" (skip = N)
//! numeric = ["amount", "tx_count_1m"]   # features or numeric fields (default: every feature)
//! categorical = ["country"]             # string fields
//! # effect sizes for windows above p_value_max values, p-values (KS, z) at or below:
//! thresholds = { psi = 0.25, wasserstein = 0.1, ks = 1.0, js = 0.1, rate = 0.05, ks_alpha = 0.001, noise_alpha = 1e-4, p_value_max = 1000 }
//! patience = 2                    # evaluations in a row past a threshold, spanning a fresh window = drift
//! [monitor.prediction]            # score distribution and positive rate
//! decision_threshold = 0.5
//! [monitor.concept]               # on the population's error stream (delayed labels)
//! detectors = ["adwin", "ddm", "page_hinkley"]
//! grace = 2000                    # labels before the detectors start
//! ddm = { warm_start = 2000, drift_threshold = 4.0 }          # job defaults (River: 30, 3)
//! page_hinkley = { threshold = 200.0, alpha = 0.99999, mode = "up" }  # (River: 50, 0.9999, "both")
//! adwin = { delta = 0.002, direction = "up" }                 # (River: "both")
//! action = "promote"              # or "boost_lr", "reset_worst", "none"
//! [monitor.fairness]
//! attribute = "age_band"
//! ```

use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Deserializer, Serialize};
use vigil_operators::drift::feature::DriftThresholds;
use vigil_operators::drift::{AdwinConfig, DdmConfig, Direction, FairnessConfig, PageHinkleyConfig, PhMode, Reference};

use crate::spec::{parse_duration, FieldType, JobSpec};

fn duration<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

/// A detector's table over the job's default (`ConceptSpec::default()`): the
/// keys it leaves out keep the job's values, not River's.
fn over_default<T: Serialize + serde::de::DeserializeOwned, E: serde::de::Error>(table: toml::Table, default: T) -> std::result::Result<T, E> {
    let mut base = match toml::Value::try_from(default).map_err(E::custom)? {
        toml::Value::Table(t) => t,
        _ => toml::Table::new(),
    };
    base.extend(table);
    toml::Value::Table(base).try_into().map_err(E::custom)
}
fn adwin_job<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<AdwinConfig, D::Error> {
    over_default(toml::Table::deserialize(d)?, ConceptSpec::default().adwin)
}
fn ddm_job<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<DdmConfig, D::Error> {
    over_default(toml::Table::deserialize(d)?, ConceptSpec::default().ddm)
}
fn page_hinkley_job<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<PageHinkleyConfig, D::Error> {
    over_default(toml::Table::deserialize(d)?, ConceptSpec::default().page_hinkley)
}

/// Drift monitoring of a job.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MonitorSpec {
    /// Event time between two evaluations (and `drift` records).
    #[serde(deserialize_with = "duration")]
    pub interval: Duration,
    /// Values in each current window.
    pub window: usize,
    /// The reference of feature drift; default: the first `window` values.
    pub reference: Option<Reference>,
    /// Features or numeric fields to watch; `None`: every feature.
    pub numeric: Option<Vec<String>>,
    /// String fields to watch.
    pub categorical: Vec<String>,
    pub thresholds: DriftThresholds,
    /// Evaluations in a row a finding must be past its threshold to be drift; the
    /// run must also span a fresh window (the windows of its first and last
    /// evaluation share no value).
    pub patience: u32,
    pub prediction: PredictionSpec,
    pub concept: ConceptSpec,
    pub fairness: Option<FairnessSpec>,
}

impl Default for MonitorSpec {
    fn default() -> Self {
        MonitorSpec {
            interval: Duration::from_secs(60),
            window: 20_000,
            reference: None,
            numeric: None,
            categorical: Vec::new(),
            thresholds: DriftThresholds::default(),
            patience: 2,
            prediction: PredictionSpec::default(),
            concept: ConceptSpec::default(),
            fairness: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PredictionSpec {
    pub enabled: bool,
    /// Default: the monitor's reference. (A model trained online scores both
    /// windows with its current champion at each evaluation.)
    pub reference: Option<Reference>,
    /// Scores in each window; default: the monitor's `window`.
    pub window: Option<usize>,
    /// Significance of the score KS test and of the positive-rate z test where
    /// they are judged by p-values (windows of at most `thresholds.p_value_max`;
    /// default: `thresholds.ks_alpha`).
    pub alpha: Option<f64>,
    /// A score at or above this is a positive decision (positive rate, fairness).
    pub decision_threshold: f64,
}

impl Default for PredictionSpec {
    fn default() -> Self {
        PredictionSpec { enabled: true, reference: None, window: None, alpha: None, decision_threshold: 0.5 }
    }
}

/// What a concept-drift detection does to the learner.
#[derive(Clone, Copy, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConceptAction {
    /// Only the record, the metric and the log line.
    #[default]
    None,
    /// A population-based-training round now: the variant that did best on the
    /// recent labels becomes champion.
    Promote,
    /// Multiply every variant's learning rate by `boost_factor` for `boost_labels` labels.
    BoostLr,
    /// Restart the worst-ranked challenger from its initial weights, so that it
    /// learns from the labels after the change only.
    ResetWorst,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConceptSpec {
    /// Any of `adwin`, `ddm`, `page_hinkley`; empty: no concept monitoring.
    pub detectors: Vec<String>,
    /// The job's defaults differ from River's (measured by `drift-alarms` in
    /// benchmarks/RESULTS.md: River's alarm on stationary error streams): only a
    /// rising error alarms (`direction = "up"`, `mode = "up"`: a model that gets
    /// better is not drift); DDM waits 2,000 labels before it pins its best error
    /// rate (River: 30) and alarms at 4 sigma (River: 3); Page-Hinkley alarms at
    /// 200 (River: 50) with a forgetting factor of 1 - 1e-5 (River: 1 - 1e-4).
    /// A table that sets some parameters keeps the job's defaults for the others.
    #[serde(deserialize_with = "adwin_job")]
    pub adwin: AdwinConfig,
    #[serde(deserialize_with = "ddm_job")]
    pub ddm: DdmConfig,
    #[serde(deserialize_with = "page_hinkley_job")]
    pub page_hinkley: PageHinkleyConfig,
    /// Labels before the detectors start (the model's own warm-up).
    pub grace: u64,
    pub action: ConceptAction,
    pub boost_factor: f32,
    pub boost_labels: u64,
}

impl Default for ConceptSpec {
    fn default() -> Self {
        ConceptSpec {
            detectors: vec!["adwin".into(), "ddm".into(), "page_hinkley".into()],
            adwin: AdwinConfig { direction: Direction::Up, ..AdwinConfig::default() },
            ddm: DdmConfig { warm_start: 2_000, drift_threshold: 4.0, ..DdmConfig::default() },
            page_hinkley: PageHinkleyConfig { mode: PhMode::Up, threshold: 200.0, alpha: 1.0 - 1e-5, ..PageHinkleyConfig::default() },
            grace: 2_000,
            action: ConceptAction::None,
            boost_factor: 3.0,
            boost_labels: 5_000,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FairnessSpec {
    /// A string field of the source: the groups.
    pub attribute: String,
    #[serde(flatten)]
    pub window: FairnessConfig,
}

/// Where a watched numeric value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumericSource {
    Feature(usize),
    /// Index into the event's numeric values.
    Field(usize),
}

/// A monitor spec checked against its job: names resolved to positions.
#[derive(Clone, Debug)]
pub struct ResolvedMonitor {
    pub spec: MonitorSpec,
    pub numeric: Vec<(String, NumericSource)>,
    /// Watched string fields: name and index into the event's kept strings.
    pub categorical: Vec<(String, usize)>,
    /// Index of the fairness attribute in the event's kept strings.
    pub fairness_attribute: Option<usize>,
    pub reference: Reference,
}

impl MonitorSpec {
    /// The checks that need no job: window and interval sizes.
    pub fn check_sizes(&self) -> Result<()> {
        if self.window < 100 {
            bail!("[monitor] window must be at least 100 values");
        }
        if self.interval.is_zero() {
            bail!("[monitor] interval must be positive");
        }
        Ok(())
    }

    /// Checks the names against the job and resolves them.
    pub fn resolve(&self, job: &JobSpec) -> Result<ResolvedMonitor> {
        self.check_sizes()?;
        let names: Vec<String> = match &self.numeric {
            Some(n) => n.clone(),
            None => job.features.iter().map(|f| f.name().to_owned()).collect(),
        };
        let numeric_fields: Vec<&str> = job.numeric_fields().iter().map(|f| f.name.as_str()).collect();
        let mut numeric = Vec::new();
        for name in names {
            let source = if let Some(i) = job.features.iter().position(|f| f.name() == name) {
                NumericSource::Feature(i)
            } else if let Some(i) = numeric_fields.iter().position(|f| *f == name) {
                NumericSource::Field(i)
            } else {
                bail!("[monitor] numeric `{name}` is neither a feature nor a numeric field");
            };
            numeric.push((name, source));
        }
        let kept = self.string_fields();
        let position = |name: &str| -> Result<usize> {
            let field = job.source.fields.iter().find(|f| f.name == name).with_context(|| format!("[monitor] `{name}` is not a field of the source"))?;
            if field.ty != FieldType::Str {
                bail!("[monitor] `{name}` must be a string field");
            }
            Ok(kept.iter().position(|k| k == name).expect("kept_strings lists the monitor's fields"))
        };
        let categorical = self.categorical.iter().map(|n| Ok((n.clone(), position(n)?))).collect::<Result<Vec<_>>>()?;
        let fairness_attribute = self.fairness.as_ref().map(|f| position(&f.attribute)).transpose()?;
        for d in &self.concept.detectors {
            if !["adwin", "ddm", "page_hinkley"].contains(&d.as_str()) {
                bail!("[monitor.concept] unknown detector `{d}` (adwin, ddm, page_hinkley)");
            }
        }
        if self.concept.action != ConceptAction::None && job.model.online.is_none() {
            bail!("[monitor.concept] an action needs online training ([model.online])");
        }
        let reference = self.reference.clone().unwrap_or(Reference::First { skip: 0, events: self.window });
        Ok(ResolvedMonitor { spec: self.clone(), numeric, categorical, fairness_attribute, reference })
    }

    /// The string fields the decoder must keep for this monitor.
    pub fn string_fields(&self) -> Vec<String> {
        let mut names = self.categorical.clone();
        if let Some(f) = &self.fairness {
            if !names.contains(&f.attribute) {
                names.push(f.attribute.clone());
            }
        }
        names
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const JOB: &str = r#"
[source]
topic = "t"
key = "k"
event_time = "ts"
event_id = "id"
[source.schema]
amount = "f64"
country = "str"
band = "str?"
flag = "bool?"
[[feature]]
name = "n_1m"
agg = "count"
window = "sliding 1m"
[sinks]
scores = "s"
dlq = "d"
drift = "drift"
"#;

    fn job(monitor: &str) -> Result<JobSpec> {
        JobSpec::from_toml(&format!("{JOB}\n{monitor}"))
    }

    #[test]
    fn names_resolve_and_defaults_hold() {
        let j = job("[monitor]\nnumeric = [\"amount\", \"n_1m\"]\ncategorical = [\"country\"]\n[monitor.fairness]\nattribute = \"band\"\n[monitor.concept]\nadwin = { delta = 0.01 }")
            .expect("valid");
        let m = j.monitor.clone().expect("monitored");
        assert_eq!(m.numeric, vec![("amount".into(), NumericSource::Field(0)), ("n_1m".into(), NumericSource::Feature(0))]);
        assert_eq!(m.categorical, vec![("country".into(), 0)]);
        assert_eq!(m.fairness_attribute, Some(1));
        assert_eq!(j.sinks.drift.as_deref(), Some("drift"));
        assert_eq!(j.kept_strings(), vec!["country".to_string(), "band".to_string()]);
        // a table that sets other parameters keeps "rising errors only"
        assert_eq!(m.spec.concept.adwin.direction, Direction::Up);
        assert_eq!(m.spec.concept.adwin.delta, 0.01);
        assert_eq!(m.spec.concept.page_hinkley.mode, PhMode::Up);
        assert_eq!(m.spec.concept.ddm, ConceptSpec::default().ddm);
        let c =
            job("[monitor.concept]\nddm = { warm_start = 500 }\npage_hinkley = { mode = \"both\" }").expect("valid").monitor.expect("monitored").spec.concept;
        assert_eq!((c.ddm.warm_start, c.ddm.drift_threshold), (500, 4.0));
        assert_eq!((c.page_hinkley.mode, c.page_hinkley.threshold), (PhMode::Both, 200.0));
        assert_eq!(m.reference, Reference::First { skip: 0, events: 20_000 });
        // every feature by default
        let m = job("[monitor]").expect("valid").monitor.expect("monitored");
        assert_eq!(m.numeric, vec![("n_1m".into(), NumericSource::Feature(0))]);
    }

    #[test]
    fn bad_monitors_are_refused_with_the_reason() {
        let err = |m: &str| format!("{:#}", job(m).expect_err(m));
        assert!(err("[monitor]\nnumeric = [\"nope\"]").contains("neither a feature nor a numeric field"));
        assert!(err("[monitor]\ncategorical = [\"amount\"]").contains("must be a string field"));
        assert!(err("[monitor]\ncategorical = [\"flag\"]").contains("must be a string field"));
        assert!(err("[monitor.fairness]\nattribute = \"missing\"").contains("not a field"));
        assert!(err("[monitor.concept]\ndetectors = [\"cusum\"]").contains("unknown detector"));
        assert!(err("[monitor.concept]\naction = \"promote\"").contains("needs online training"));
        assert!(err("[monitor]\nwindow = 10").contains("at least 100"));
        assert!(err("[monitor]\nreference = { kind = \"first\" }").contains("events"));
    }
}
