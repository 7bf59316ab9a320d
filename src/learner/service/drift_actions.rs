//! What the learner does when the monitor detects a concept drift (`[monitor.concept]
//! action`: promote, boost the learning rates, restart the worst challenger), and
//! the per-variant decision thresholds the monitor judges errors with.

use anyhow::{anyhow, Result};

use super::Service;
use crate::monitor::ConceptAction;

/// Each variant's decision threshold for the monitor's `t`: a model trained with
/// positive-class weight `w` estimates odds `w` times the true ones, so the same
/// decision is at `w t / ((1 - t) + w t)` on its scale. With it, every variant's
/// errors measure the same decision, whatever the population's mix of weights
/// (population-based training changes that mix: measured, all-10 to all-1 over a
/// demo run, which moved the unadjusted error share as much as a concept drift).
pub(in crate::learner) fn weighted_thresholds(state: &vigil_operators::learn::ModelState, t: f64) -> Vec<f64> {
    state
        .hyper
        .iter()
        .map(|h| {
            let w = h.pos_weight.max(1e-6) as f64;
            w * t / ((1.0 - t) + w * t)
        })
        .collect()
}

impl Service {
    /// The periodic part: a pending action, and the end of a learning-rate boost.
    pub(super) fn concept_drift_actions(&mut self) -> Result<()> {
        if let Some(action) = self.action.take() {
            self.on_concept_drift(action)?;
        }
        if self.boost_until.is_some_and(|until| self.summary.counts.joined >= until) {
            self.boost_until = None;
            self.scale_learning_rates(1.0 / self.spec_boost_factor())?;
        }
        Ok(())
    }

    fn spec_boost_factor(&self) -> f32 {
        self.monitor.as_ref().map_or(1.0, |m| m.boost_factor()).max(1e-3)
    }

    /// Applies what `[monitor.concept] action` asks after a detection.
    pub(super) fn on_concept_drift(&mut self, action: ConceptAction) -> Result<()> {
        tracing::info!(?action, "concept drift: acting");
        match action {
            ConceptAction::None => {}
            ConceptAction::Promote => self.select()?,
            ConceptAction::BoostLr => {
                if self.boost_until.is_none() {
                    self.scale_learning_rates(self.spec_boost_factor())?;
                }
                let labels = self.monitor.as_ref().map_or(0, |m| m.boost_labels());
                self.boost_until = Some(self.summary.counts.joined + labels);
            }
            ConceptAction::ResetWorst => {
                self.train()?;
                let scores: Vec<Option<f64>> = self.qualities().iter().map(|q| self.ranked_score(q)).collect();
                let worst = (0..self.k)
                    .filter(|k| *k != self.champion && Some(*k) != self.challenger)
                    .min_by(|a, b| scores[*a].unwrap_or(0.0).total_cmp(&scores[*b].unwrap_or(0.0)).then(b.cmp(a)));
                if let Some(w) = worst {
                    let mut state = self.trainer.state().map_err(|e| anyhow!("reading the model back: {e}"))?;
                    let fresh = crate::learner::initial_state(&self.spec, &self.names.inputs)?;
                    state.reset_variant(w, &fresh);
                    self.trainer.set_state(&state).map_err(|e| anyhow!("resetting variant {w}: {e}"))?;
                    self.windows[w].clear();
                    self.replaced_at[w] = self.version + 1;
                    self.dirty = true;
                }
            }
        }
        Ok(())
    }

    fn scale_learning_rates(&mut self, factor: f32) -> Result<()> {
        self.train()?;
        let mut state = self.trainer.state().map_err(|e| anyhow!("reading the model back: {e}"))?;
        for h in &mut state.hyper {
            h.lr *= factor;
        }
        self.trainer.set_state(&state).map_err(|e| anyhow!("setting learning rates: {e}"))?;
        self.dirty = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use crate::gpu::DeviceChoice;
    use crate::learner::LabelSpec;
    use vigil_operators::learn::ModelKind;

    /// A CPU learner of 4 variants over 2 inputs, watched by a monitor whose
    /// boost is x3 for 100 labels.
    fn service() -> Service {
        let labels = LabelSpec::new("l", "event_id", "y", Duration::from_secs(60), None);
        let mut spec = OnlineSpec::new(ModelKind::Logistic, labels);
        (spec.device, spec.variants, spec.batch, spec.min_labels) = (DeviceChoice::Cpu, 4, 8, 10);
        let names = ModelNames { job: "j".into(), model: "m".into(), inputs: vec!["a".into(), "b".into()] };
        let state = crate::learner::initial_state(&spec, &names.inputs).expect("a model");
        let trainer = open_trainer(spec.device, state.clone()).expect("the CPU twin");
        let model = ModelHandle::new(ModelSnapshot::new(0, state, 0, None, (1..=4).collect()));
        let metrics = Metrics::new();
        let toml = format!("{}\n[monitor.concept]\nboost_factor = 3.0\nboost_labels = 100", crate::monitor::spec::tests::JOB);
        let resolved = crate::spec::JobSpec::from_toml(&toml).expect("valid").monitor.expect("monitored");
        let mut s = Service::new(spec, trainer, model, metrics.clone(), None, names);
        s.monitor = Some(LabeledMonitors::new(&resolved, crate::monitor::DriftEmitter::new(None, metrics, 1), None));
        s
    }

    /// `n` labeled predictions: label = first input above 0.5.
    fn learn(s: &mut Service, n: u64) {
        for i in 0..n {
            let v = (i % 10) as f32 / 10.0;
            let p = Pending {
                id: i,
                time_ms: i as i64,
                x: vec![v, 1.0 - v],
                preds: vec![0.5; 4],
                served: 0.5,
                arm: 0,
                version: 0,
                epoch: 0,
                weight: 1.0,
                group: 0,
            };
            s.count("joined");
            s.learn_from(p, v > 0.5);
        }
        s.train().expect("trains");
    }

    fn lrs(s: &mut Service) -> Vec<f32> {
        s.trainer.state().expect("state").hyper.iter().map(|h| h.lr).collect()
    }

    #[test]
    fn boost_multiplies_learning_rates_for_a_while() {
        let mut s = service();
        let before = lrs(&mut s);
        s.on_concept_drift(ConceptAction::BoostLr).expect("boost");
        // a second detection while boosted extends the boost, it does not compound
        s.on_concept_drift(ConceptAction::BoostLr).expect("boost");
        let boosted = lrs(&mut s);
        assert!(boosted.iter().zip(&before).all(|(a, b)| (a / b - 3.0).abs() < 1e-5), "{boosted:?} vs {before:?}");
        learn(&mut s, 150);
        s.periodic(false).expect("periodic");
        let after = lrs(&mut s);
        assert!(after.iter().zip(&before).all(|(a, b)| (a / b - 1.0).abs() < 1e-5), "{after:?} vs {before:?}");
    }

    #[test]
    fn reset_worst_restarts_one_challenger_and_promote_selects() {
        let mut s = service();
        learn(&mut s, 400);
        let trained = s.trainer.state().expect("state");
        assert!((0..4).all(|k| trained.variant_params(k).iter().any(|w| *w != 0.0)), "every variant learned");
        let rounds = s.summary.counts.selections;
        s.on_concept_drift(ConceptAction::Promote).expect("promote");
        assert_eq!(s.summary.counts.selections, rounds + 1, "a selection round ran");
        learn(&mut s, 400);
        s.on_concept_drift(ConceptAction::ResetWorst).expect("reset");
        let after = s.trainer.state().expect("state");
        let reset: Vec<usize> = (0..4).filter(|k| after.variant_params(*k).iter().all(|w| *w == 0.0)).collect();
        assert_eq!(reset.len(), 1, "exactly one variant starts over");
        assert!(reset[0] != s.champion && Some(reset[0]) != s.challenger);
        assert!(s.windows[reset[0]].is_empty());
    }
}
