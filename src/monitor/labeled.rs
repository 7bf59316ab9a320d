//! Monitors that need labels, run by the learner as labels join their
//! predictions: concept drift on the population's error stream (ADWIN, DDM,
//! Page-Hinkley) and group fairness of the served decisions.
//!
//! The error of one variant's prediction is 1 when its decision (score >= the
//! decision threshold, on the variant's own scale: see the learner's
//! `weighted_thresholds`) disagrees with the label. The detectors see, per labeled
//! event, the share of variants in error (DDM, which needs 0/1: whether most of
//! them are). Not the served champion's error: population-based training swaps
//! the champion every few thousand labels, and a swap (to a variant with another
//! positive-class weight, say) moves the served error rate though the world did
//! not change; a changed concept makes every variant err more. A detection is written at once
//! (`kind = "concept"`, `drift = true`) and returns the configured action for the
//! learner to apply; every `interval` of label event time each detector's
//! statistic and the fairness gaps are written too.

use std::sync::Arc;

use vigil_operators::drift::{Adwin, ChangeDetector, Ddm, FairnessReport, FairnessWindow, PageHinkley};

use super::emit::{DriftEmitter, DriftRecord};
use super::interner::Interner;
use super::spec::{ConceptAction, ResolvedMonitor};

/// One labeled, served prediction.
#[derive(Clone, Copy, Debug)]
pub struct Outcome {
    pub time_ms: i64,
    pub served: f32,
    pub label: bool,
    /// Share of the variants whose decision disagrees with the label.
    pub population_error: f32,
    /// Fairness group id (see `Interner`).
    pub group: u32,
}

struct Fairness {
    attribute: String,
    window: FairnessWindow,
    groups: Arc<Interner>,
}

pub struct LabeledMonitors {
    detectors: Vec<Box<dyn ChangeDetector>>,
    grace: u64,
    seen: u64,
    decision_threshold: f64,
    action: ConceptAction,
    boost_factor: f32,
    boost_labels: u64,
    fairness: Option<Fairness>,
    interval_ms: i64,
    next_eval: Option<i64>,
    progress: i64,
    emitter: Arc<DriftEmitter>,
    pub detections: u64,
}

impl LabeledMonitors {
    /// `groups`: the interner of the fairness attribute's values, shared with the scorers.
    pub fn new(m: &ResolvedMonitor, emitter: Arc<DriftEmitter>, groups: Option<Arc<Interner>>) -> LabeledMonitors {
        let c = &m.spec.concept;
        let detectors = c
            .detectors
            .iter()
            .map(|d| -> Box<dyn ChangeDetector> {
                match d.as_str() {
                    "adwin" => Box::new(Adwin::new(c.adwin)),
                    "ddm" => Box::new(Ddm::new(c.ddm)),
                    _ => Box::new(PageHinkley::new(c.page_hinkley)),
                }
            })
            .collect();
        let fairness = match (&m.spec.fairness, groups) {
            (Some(f), Some(groups)) => Some(Fairness { attribute: f.attribute.clone(), window: FairnessWindow::new(f.window), groups }),
            _ => None,
        };
        LabeledMonitors {
            detectors,
            grace: c.grace,
            seen: 0,
            decision_threshold: m.spec.prediction.decision_threshold,
            action: c.action,
            boost_factor: c.boost_factor,
            boost_labels: c.boost_labels,
            fairness,
            interval_ms: i64::try_from(m.spec.interval.as_millis()).unwrap_or(i64::MAX).max(1),
            next_eval: None,
            progress: i64::MIN,
            emitter,
            detections: 0,
        }
    }

    /// Feeds one labeled prediction; `Some(action)` when a detector fired and an
    /// action is configured.
    pub fn observe(&mut self, o: Outcome) -> Option<ConceptAction> {
        let decision = o.served as f64 >= self.decision_threshold;
        if let Some(f) = &mut self.fairness {
            f.window.push(o.group, decision, o.label);
        }
        let mut fired = false;
        self.seen += 1;
        if self.seen > self.grace {
            let share = o.population_error as f64;
            for d in &mut self.detectors {
                let x = if d.method() == "ddm" { (share > 0.5) as u8 as f64 } else { share };
                if d.update(x) {
                    fired = true;
                    self.detections += 1;
                    if let Some((before, after)) = d.change() {
                        tracing::warn!(method = d.method(), before, after, "concept drift: the error level changed");
                    }
                    self.emitter.detection(&DriftRecord::new(o.time_ms, "concept", "population", d.method(), d.statistic(), d.threshold(), true));
                }
            }
        }
        self.progress = self.progress.max(o.time_ms);
        let next = *self.next_eval.get_or_insert(o.time_ms - o.time_ms.rem_euclid(self.interval_ms) + self.interval_ms);
        if self.progress >= next {
            self.evaluate(next);
            self.next_eval = Some(self.progress - self.progress.rem_euclid(self.interval_ms) + self.interval_ms);
        }
        (fired && self.action != ConceptAction::None).then_some(self.action)
    }

    /// Writes the detectors' statistics and the fairness gaps.
    pub fn evaluate(&mut self, ts: i64) {
        if self.seen > self.grace {
            for d in &self.detectors {
                let (v, t) = (d.statistic(), d.threshold());
                self.emitter.finding(&DriftRecord::new(ts, "concept", "population", d.method(), v, t, false));
            }
        }
        if let Some(f) = &self.fairness {
            let report = f.window.report();
            publish_fairness(&self.emitter, ts, f, &report);
        }
    }

    pub fn decision_threshold(&self) -> f64 {
        self.decision_threshold
    }

    /// `boost_lr`: the factor and how many labels it lasts.
    pub fn boost_factor(&self) -> f32 {
        self.boost_factor
    }
    pub fn boost_labels(&self) -> u64 {
        self.boost_labels
    }

    /// The last evaluation of a run.
    pub fn finish(&mut self) {
        if self.progress > i64::MIN {
            self.evaluate(self.progress);
        }
    }
}

fn publish_fairness(emitter: &DriftEmitter, ts: i64, f: &Fairness, r: &FairnessReport) {
    let m = &emitter.metrics().drift;
    for g in &r.groups {
        let name = f.groups.name(g.group);
        for (rate, v) in [("positive_rate", g.positive_rate), ("tpr", g.tpr), ("fpr", g.fpr)] {
            if let Some(v) = v {
                m.fairness_rate.with_label_values(&[f.attribute.as_str(), name.as_str(), rate]).set(v);
            }
        }
    }
    let max_gap = f.window.max_gap();
    for (metric, v) in [("demographic_parity_difference", r.demographic_parity_difference), ("equalized_odds_gap", r.equalized_odds_gap)] {
        if let Some(v) = v {
            m.fairness_gap.with_label_values(&[f.attribute.as_str(), metric]).set(v);
            emitter.finding(&DriftRecord::new(ts, "fairness", &f.attribute, metric, v, max_gap, v > max_gap));
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::metrics::Metrics;
    use crate::monitor::emit::{DriftSink, MemoryDriftSink};
    use crate::spec::JobSpec;

    /// The error share rises from 2% to 20% at label 30,000: the detectors fire
    /// after it (none before) and hand back the configured action; fairness gaps
    /// are written every interval.
    #[test]
    fn rising_errors_are_detected_after_the_change_and_act() {
        let toml = format!("{}\n[monitor]\n[monitor.concept]\ngrace = 1000\nddm = {{ warm_start = 1000 }}\n[monitor.fairness]\nattribute = \"band\"\nwindow = 5000\nmin_group = 100\nmin_class = 20", crate::monitor::spec::tests::JOB);
        let mut m = JobSpec::from_toml(&toml).expect("valid").monitor.expect("monitored");
        m.spec.concept.action = ConceptAction::Promote;
        let sink = MemoryDriftSink::new();
        let emitter = DriftEmitter::new(Some(sink.clone() as Arc<dyn DriftSink>), Metrics::new(), 1);
        let groups = Interner::new();
        let (a, b) = (groups.id(Some("a")), groups.id(Some("b")));
        let mut monitors = LabeledMonitors::new(&m, emitter, Some(groups));
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let mut actions = Vec::new();
        for i in 0..60_000i64 {
            let rate = if i < 30_000 { 0.02 } else { 0.2 };
            let label = rng.gen::<f64>() < 0.1;
            let wrong = rng.gen::<f64>() < rate;
            let served = if label != wrong { 0.9 } else { 0.1 };
            let o = Outcome { time_ms: i * 10, served, label, population_error: wrong as u8 as f32, group: if i % 2 == 0 { a } else { b } };
            if let Some(action) = monitors.observe(o) {
                actions.push((i, action));
            }
        }
        monitors.finish();
        let records = sink.records();
        let detections: Vec<&DriftRecord> = records.iter().filter(|r| r.kind == "concept" && r.drift).collect();
        assert!(detections.iter().all(|r| r.ts >= 300_000), "{detections:#?}");
        for method in ["adwin", "ddm", "page_hinkley"] {
            let first = detections.iter().find(|r| r.method == method).unwrap_or_else(|| panic!("{method} missed the change"));
            assert!(first.ts < 300_000 + 20_000, "{method} took {} ms", first.ts - 300_000);
        }
        assert!(!actions.is_empty() && actions.iter().all(|(i, a)| *i >= 30_000 && *a == ConceptAction::Promote), "{actions:?}");
        let fairness: Vec<&DriftRecord> = records.iter().filter(|r| r.kind == "fairness").collect();
        assert!(fairness.iter().any(|r| r.method == "demographic_parity_difference") && fairness.iter().any(|r| r.method == "equalized_odds_gap"));
        // both groups are treated alike
        assert!(fairness.iter().all(|r| !r.drift), "{fairness:#?}");
    }
}
