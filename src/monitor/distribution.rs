//! Feature and prediction drift, on the monitor thread: the scorers hand over
//! every scored event's watched values ([`Observations`]); every `interval` of
//! event time each watched value is compared with its reference and one record
//! per method goes out.
//!
//! Findings are judged as `vigil_operators::drift::feature` describes (effect
//! sizes above 1,000 values, p-values below) and become drift only when they
//! persist across a fresh window (`DriftEmitter::finding_at`).
//!
//! Prediction drift compares score distributions (PSI, KS, Wasserstein) and
//! positive rates (Cohen's h, or the two-proportion z test for small windows):
//! - a fixed model: the served scores, reference against current window;
//! - a model trained online: the *current* champion scores both the reference's
//!   inputs and the current window's at every evaluation. An online learner's
//!   served scores move with every update and every champion swap, which is not
//!   drift; scored by one model, the two windows differ only where the inputs
//!   moved in ways the model cares about.

use std::sync::{Arc, OnceLock};

use vigil_operators::drift::dependence::BatchVariance;
use vigil_operators::drift::feature::{compare_samples, DriftThresholds, Finding, NumericDrift};
use vigil_operators::drift::rate::{rate_shift, RateShift};
use vigil_operators::drift::windows::ReferenceSample;
use vigil_operators::drift::{CategoricalDrift, Evidence, SampleWindows};

use crate::model::ModelHandle;

use super::emit::{DriftEmitter, DriftRecord};
use super::interner::Interner;
use super::spec::ResolvedMonitor;

/// Watched values of a batch of scored events, row-major.
#[derive(Clone, Debug, Default)]
pub struct Observations {
    pub time_ms: Vec<i64>,
    /// `numeric.len() / time_ms.len()` values per event (NaN when missing).
    pub numeric: Vec<f64>,
    /// Category ids per event, one per watched string field.
    pub categorical: Vec<u32>,
    /// The served score (fixed models).
    pub score: Vec<f32>,
    /// With online training: each event's imputed model inputs, row-major.
    pub inputs: Vec<f32>,
}

impl Observations {
    pub fn len(&self) -> usize {
        self.time_ms.len()
    }
    pub fn is_empty(&self) -> bool {
        self.time_ms.is_empty()
    }
}

/// How predictions are watched.
enum Prediction {
    /// A fixed model: its served scores.
    Served { score: NumericDrift, rate: RateShift },
    /// A model trained online: the inputs, scored by the current champion when evaluated.
    Rescored { inputs: SampleWindows<Box<[f32]>>, model: Arc<OnceLock<Arc<ModelHandle>>> },
}

pub struct DistributionMonitors {
    numeric: Vec<(String, NumericDrift)>,
    categorical: Vec<(String, CategoricalDrift)>,
    prediction: Option<Prediction>,
    decision_threshold: f64,
    prediction_thresholds: DriftThresholds,
    thresholds: DriftThresholds,
    interval_ms: i64,
    next_eval: Option<i64>,
    progress: i64,
    emitter: Arc<DriftEmitter>,
    pub records: u64,
}

impl DistributionMonitors {
    /// `model`: set once the learner runs (jobs trained online); otherwise the
    /// served scores are compared.
    pub fn new(m: &ResolvedMonitor, emitter: Arc<DriftEmitter>, model: Option<Arc<OnceLock<Arc<ModelHandle>>>>) -> DistributionMonitors {
        let w = m.spec.window;
        let p = &m.spec.prediction;
        let pw = p.window.unwrap_or(w).max(100);
        let reference = p.reference.clone().unwrap_or_else(|| m.reference.clone());
        let prediction = p.enabled.then(|| match model {
            Some(model) => Prediction::Rescored { inputs: SampleWindows::new(reference, pw), model },
            None => Prediction::Served { score: NumericDrift::new(reference.clone(), pw), rate: RateShift::new(reference, pw) },
        });
        DistributionMonitors {
            numeric: m.numeric.iter().map(|(n, _)| (n.clone(), NumericDrift::new(m.reference.clone(), w))).collect(),
            categorical: m.categorical.iter().map(|(n, _)| (n.clone(), CategoricalDrift::new(m.reference.clone(), w))).collect(),
            prediction,
            decision_threshold: p.decision_threshold,
            prediction_thresholds: DriftThresholds { ks_alpha: p.alpha.unwrap_or(m.spec.thresholds.ks_alpha), ..m.spec.thresholds },
            thresholds: m.spec.thresholds,
            interval_ms: i64::try_from(m.spec.interval.as_millis()).unwrap_or(i64::MAX).max(1),
            next_eval: None,
            progress: i64::MIN,
            emitter,
            records: 0,
        }
    }

    /// Adds a batch; evaluates each time event time passes an interval boundary.
    pub fn observe(&mut self, batch: &Observations) {
        let (f, c) = (self.numeric.len(), self.categorical.len());
        let d = batch.inputs.len() / batch.len().max(1);
        for i in 0..batch.len() {
            let t = batch.time_ms[i];
            for (j, (_, d)) in self.numeric.iter_mut().enumerate() {
                d.push(t, batch.numeric[i * f + j]);
            }
            for (j, (_, d)) in self.categorical.iter_mut().enumerate() {
                d.push_id(t, batch.categorical[i * c + j]);
            }
            match &mut self.prediction {
                Some(Prediction::Served { score, rate }) => {
                    let served = batch.score[i] as f64;
                    score.push(t, served);
                    rate.push(t, served >= self.decision_threshold);
                }
                Some(Prediction::Rescored { inputs, .. }) if d > 0 => inputs.push(t, batch.inputs[i * d..(i + 1) * d].into()),
                _ => {}
            }
            self.progress = self.progress.max(t);
            let next = *self.next_eval.get_or_insert(t - t.rem_euclid(self.interval_ms) + self.interval_ms);
            if self.progress >= next {
                self.evaluate(next);
                self.next_eval = Some(self.progress - self.progress.rem_euclid(self.interval_ms) + self.interval_ms);
            }
        }
    }

    /// Evaluates now (the end of a run).
    pub fn finish(&mut self) {
        if self.progress > i64::MIN {
            self.evaluate(self.progress);
        }
    }

    fn emit(&mut self, ts: i64, kind: &str, name: &str, f: &Finding, at: Evidence) {
        self.emitter.finding_at(&DriftRecord::new(ts, kind, name, f.method, f.value, f.threshold, f.drift), Some(at));
        self.records += 1;
    }

    fn evaluate(&mut self, ts: i64) {
        let th = self.thresholds;
        let tests = self.numeric.len();
        let evidence = |(seen, window): (u64, u64)| Evidence { seen, window };
        let mut out: Vec<(&'static str, String, Finding, Evidence)> = Vec::new();
        for (name, d) in &mut self.numeric {
            for f in d.evaluate(&th, tests).into_iter().flatten() {
                out.push(("feature", name.clone(), f, evidence(d.progress())));
            }
        }
        for (name, d) in &mut self.categorical {
            for f in d.evaluate(&th).into_iter().flatten() {
                out.push(("feature", name.clone(), f, evidence(d.progress())));
            }
        }
        let pth = self.prediction_thresholds;
        match &mut self.prediction {
            Some(Prediction::Served { score, rate }) => {
                for f in score.evaluate(&pth, 1).into_iter().flatten() {
                    out.push(("prediction", "score".into(), f, evidence(score.progress())));
                }
                if let Some((f, _)) = rate.evaluate(&pth) {
                    out.push(("prediction", "positive_rate".into(), f, evidence(rate.progress())));
                }
            }
            Some(Prediction::Rescored { inputs, model }) => {
                let at = evidence((inputs.seen(), inputs.window() as u64));
                if let (Some(samples), Some(handle)) = (inputs.samples(), model.get()) {
                    // event-time consistency: the model that scored events at `ts`
                    let snap = handle.at(ts);
                    let score = |row: &Box<[f32]>| snap.state.score(snap.champion, row) as f64;
                    let reference: Vec<f64> = match samples.reference {
                        ReferenceSample::Fixed(r) => r.iter().map(score).collect(),
                        ReferenceSample::Moving(r) => r.iter().map(score).collect(),
                    };
                    let current: Vec<f64> = samples.current.iter().map(score).collect();
                    let decisions = |v: &[f64]| BatchVariance::of(v.iter().map(|s| *s >= self.decision_threshold));
                    let (rate, _) = rate_shift(&decisions(&reference), &decisions(&current), &pth);
                    for f in compare_samples(reference, current, &pth, 1) {
                        out.push(("prediction", "score".into(), f, at));
                    }
                    out.push(("prediction", "positive_rate".into(), rate, at));
                }
            }
            None => {}
        }
        for (kind, name, f, at) in out {
            self.emit(ts, kind, &name, &f, at);
        }
    }
}

/// Ids of the watched string fields' values, shared with the scorers.
pub fn interners(m: &ResolvedMonitor) -> Vec<Arc<Interner>> {
    m.spec.string_fields().iter().map(|_| Interner::new()).collect()
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::metrics::Metrics;
    use crate::monitor::emit::{DriftSink, MemoryDriftSink};
    use crate::spec::JobSpec;

    /// Ten minutes at 100 events/s; amounts double after five. Records every minute;
    /// only `amount` is flagged, only after the shift.
    #[test]
    fn flags_the_shifted_feature_after_the_shift_only() {
        let toml = format!(
            "{}\n[monitor]\nwindow = 2000\nreference = {{ kind = \"first\", skip = 1000, events = 2000 }}\nnumeric = [\"amount\", \"n_1m\"]\ncategorical = [\"country\"]",
            crate::monitor::spec::tests::JOB
        );
        let m = JobSpec::from_toml(&toml).expect("valid").monitor.expect("monitored");
        let sink = MemoryDriftSink::new();
        let emitter = DriftEmitter::new(Some(sink.clone() as Arc<dyn DriftSink>), Metrics::new(), m.spec.patience);
        let mut monitors = DistributionMonitors::new(&m, emitter, None);
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let shift_ms = 300_000;
        for second in 0..600i64 {
            let mut batch = Observations::default();
            for i in 0..100 {
                let t = second * 1000 + i * 10;
                let amount: f64 = (rng.gen::<f64>() * 3.0).exp() * if t >= shift_ms { 2.0 } else { 1.0 };
                batch.time_ms.push(t);
                batch.numeric.extend([amount, rng.gen_range(0..5) as f64]);
                batch.categorical.push(rng.gen_range(0..3));
                batch.score.push(rng.gen::<f32>().powi(3));
            }
            monitors.observe(&batch);
        }
        monitors.finish();
        let records = sink.records();
        let evaluations: std::collections::BTreeSet<i64> = records.iter().map(|r| r.ts).collect();
        assert!(evaluations.len() >= 9, "one evaluation a minute: {evaluations:?}");
        for (kind, name, method) in [
            ("feature", "amount", "psi"),
            ("feature", "n_1m", "ks"),
            ("feature", "country", "js"),
            ("prediction", "score", "wasserstein"),
            ("prediction", "positive_rate", "rate_h"),
        ] {
            assert!(records.iter().any(|r| (r.kind.as_str(), r.name.as_str(), r.method.as_str()) == (kind, name, method)), "no {kind} {name} {method}");
        }
        let flagged: Vec<&DriftRecord> = records.iter().filter(|r| r.drift).collect();
        assert!(flagged.iter().all(|r| r.ts > shift_ms && r.name == "amount"), "{flagged:#?}");
        // windows of 2,000: judged by effect size (PSI, Wasserstein); D is reported only
        for method in ["psi", "wasserstein"] {
            assert!(flagged.iter().any(|r| r.method == method), "amount's {method} not flagged: {flagged:#?}");
        }
        assert!(records.iter().any(|r| r.name == "amount" && r.method == "ks" && r.ts > shift_ms && r.value > 0.1), "amount's D is reported");
    }
}
