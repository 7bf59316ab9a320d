//! Feature and prediction drift, on the monitor thread: the scorers hand over
//! every scored event's watched values ([`Observations`]); every `interval` of
//! event time each watched value is compared with its reference and one record
//! per method goes out.
//!
//! Prediction drift watches the served score (PSI, KS, Wasserstein) and the
//! positive rate (two-proportion z test) per champion: when the champion changes
//! (another variant, or a replaced one), its reference starts over.

use std::sync::Arc;

use vigil_operators::drift::feature::{DriftThresholds, Finding, NumericDrift};
use vigil_operators::drift::rate::RateShift;
use vigil_operators::drift::CategoricalDrift;

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
    /// The served score; NaN for an A/B arm-B event (prediction drift is the champion's).
    pub score: Vec<f32>,
    /// Identity of the model that served each score (the champion's run id; 0 for a fixed model).
    pub model: Vec<u64>,
}

impl Observations {
    pub fn len(&self) -> usize {
        self.time_ms.len()
    }
    pub fn is_empty(&self) -> bool {
        self.time_ms.is_empty()
    }
}

pub struct DistributionMonitors {
    numeric: Vec<(String, NumericDrift)>,
    categorical: Vec<(String, CategoricalDrift)>,
    score: Option<(NumericDrift, RateShift)>,
    decision_threshold: f64,
    model: Option<u64>,
    thresholds: DriftThresholds,
    interval_ms: i64,
    next_eval: Option<i64>,
    progress: i64,
    emitter: Arc<DriftEmitter>,
    pub records: u64,
}

impl DistributionMonitors {
    pub fn new(m: &ResolvedMonitor, emitter: Arc<DriftEmitter>) -> DistributionMonitors {
        let w = m.spec.window;
        let p = &m.spec.prediction;
        DistributionMonitors {
            numeric: m.numeric.iter().map(|(n, _)| (n.clone(), NumericDrift::new(m.reference.clone(), w))).collect(),
            categorical: m.categorical.iter().map(|(n, _)| (n.clone(), CategoricalDrift::new(m.reference.clone(), w))).collect(),
            score: p.enabled.then(|| (NumericDrift::new(p.reference.clone(), w), RateShift::new(p.reference.clone(), w))),
            decision_threshold: p.decision_threshold,
            model: None,
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
        for i in 0..batch.len() {
            let t = batch.time_ms[i];
            for (j, (_, d)) in self.numeric.iter_mut().enumerate() {
                d.push(t, batch.numeric[i * f + j]);
            }
            for (j, (_, d)) in self.categorical.iter_mut().enumerate() {
                d.push_id(t, batch.categorical[i * c + j]);
            }
            let served = batch.score[i] as f64;
            if let (Some((score, rate)), true) = (&mut self.score, served.is_finite()) {
                if self.model != Some(batch.model[i]) {
                    // a new champion is a new normal, not drift
                    score.reset();
                    rate.reset();
                    self.model = Some(batch.model[i]);
                }
                score.push(t, served);
                rate.push(t, served >= self.decision_threshold);
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

    fn emit(&mut self, ts: i64, kind: &str, name: &str, f: &Finding) {
        self.emitter.finding(&DriftRecord::new(ts, kind, name, f.method, f.value, f.threshold, f.drift));
        self.records += 1;
    }

    fn evaluate(&mut self, ts: i64) {
        let th = self.thresholds;
        let tests = self.numeric.len();
        let mut out: Vec<(&'static str, String, Finding)> = Vec::new();
        for (name, d) in &mut self.numeric {
            for f in d.evaluate(&th, tests).into_iter().flatten() {
                out.push(("feature", name.clone(), f));
            }
        }
        for (name, d) in &mut self.categorical {
            for f in d.evaluate(&th).into_iter().flatten() {
                out.push(("feature", name.clone(), f));
            }
        }
        if let Some((score, rate)) = &mut self.score {
            for f in score.evaluate(&th, 1).into_iter().flatten() {
                out.push(("prediction", "score".into(), f));
            }
            if let Some((f, _)) = rate.evaluate(th.ks_alpha) {
                out.push(("prediction", "positive_rate".into(), f));
            }
        }
        for (kind, name, f) in out {
            self.emit(ts, kind, &name, &f);
        }
    }
}

/// Ids of the watched string fields' values, shared with the scorers.
pub fn interners(m: &ResolvedMonitor) -> Vec<Arc<Interner>> {
    m.spec.string_fields().iter().map(|_| Interner::new()).collect()
}
