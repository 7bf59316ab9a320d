//! Champion files: a model's weights moved out of and into jobs (rollback,
//! serving elsewhere). The learner rewrites `<log>.champion.json` beside its
//! experiment log at every selection round (atomically); `vigil model export`
//! copies the newest one out; `--model-init FILE` (or `[model.online] init`)
//! starts every variant of a job from a champion's weights and feature statistics.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use vigil_operators::learn::{Hyper, ModelKind, ModelState, Shape};

/// One variant's model, self-describing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChampionFile {
    pub format: u32,
    pub job: String,
    pub model: String,
    pub model_version: String,
    pub kind: ModelKind,
    /// The job's model inputs, in order (names of features or fields).
    pub inputs: Vec<String>,
    pub hidden_max: u32,
    pub hyper: Hyper,
    /// The variant's parameters (layout of `vigil_operators::learn::Shape::stride`).
    pub params: Vec<f32>,
    /// Per input: count, mean, M2 of the standardization.
    pub stats: Vec<f32>,
    /// Progressive ROC-AUC when it was written.
    pub roc_auc: Option<f64>,
}

pub const FORMAT: u32 = 1;

impl ChampionFile {
    pub fn from_state(
        job: &str,
        model: &str,
        model_version: String,
        inputs: Vec<String>,
        state: &ModelState,
        slot: usize,
        roc_auc: Option<f64>,
    ) -> ChampionFile {
        ChampionFile {
            format: FORMAT,
            job: job.to_owned(),
            model: model.to_owned(),
            model_version,
            kind: state.shape.kind,
            inputs,
            hidden_max: state.shape.hidden_max,
            hyper: state.hyper[slot],
            params: state.variant_params(slot).to_vec(),
            stats: state.stats.clone(),
            roc_auc,
        }
    }

    pub fn read(path: &Path) -> Result<ChampionFile> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let f: ChampionFile = serde_json::from_str(&text).with_context(|| format!("{} is not a vigil model file", path.display()))?;
        if f.format != FORMAT {
            bail!("{}: model file format {} (this vigil reads {FORMAT})", path.display(), f.format);
        }
        let shape = Shape { kind: f.kind, d: f.inputs.len() as u32, hidden_max: f.hidden_max, batch: 1 };
        if f.params.len() != shape.stride() || f.stats.len() != 3 * f.inputs.len() || f.params.iter().chain(&f.stats).any(|v| !v.is_finite()) {
            bail!("{}: the weights do not match the model's shape", path.display());
        }
        Ok(f)
    }

    /// Writes atomically (temporary file, then rename).
    pub fn write(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
        Ok(())
    }

    /// Why this model cannot start a job with these inputs and shape, if it cannot.
    pub fn check_fits(&self, kind: ModelKind, inputs: &[String], hidden_max: u32) -> Result<()> {
        if self.kind != kind {
            bail!("the model is {:?}, the job trains {:?}", self.kind, kind);
        }
        if self.inputs != inputs {
            bail!("the model's inputs {:?} differ from the job's {:?}", self.inputs, inputs);
        }
        if self.hidden_max != hidden_max {
            bail!("the model has {} hidden units allocated, the job {}", self.hidden_max, hidden_max);
        }
        Ok(())
    }

    /// Starts every variant of `state` from this model (weights and feature
    /// statistics; each variant keeps its hyperparameters, hidden sizes capped to
    /// the model's units).
    pub fn seed(&self, state: &mut ModelState) {
        let stride = state.shape.stride();
        for k in 0..state.k() {
            state.params[k * stride..(k + 1) * stride].copy_from_slice(&self.params);
            if self.kind == ModelKind::Mlp {
                state.hyper[k].hidden = self.hyper.hidden;
            }
        }
        state.stats.copy_from_slice(&self.stats);
    }
}

/// The champion file beside an experiment log.
pub fn champion_path(log: &Path) -> PathBuf {
    log.with_extension("champion.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seeded_model_scores_like_the_champion_and_mismatches_are_refused() {
        let shape = Shape { kind: ModelKind::Mlp, d: 3, hidden_max: 4, batch: 8 };
        let hyper = vec![Hyper::adam(0.01, 0.0, 1.0).with_hidden(4), Hyper::adam(0.03, 0.0, 1.0).with_hidden(2)];
        let mut trained = ModelState::new(shape, hyper.clone(), 3).unwrap();
        trained.stats = vec![10.0, 1.0, 4.0, 10.0, -2.0, 9.0, 10.0, 0.5, 0.25];
        let inputs: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let file = ChampionFile::from_state("job", "m", "r1@2".into(), inputs.clone(), &trained, 0, Some(0.9));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        file.write(&path).unwrap();
        let back = ChampionFile::read(&path).unwrap();
        assert_eq!(back, file);
        let mut fresh = ModelState::new(shape, hyper, 99).unwrap();
        back.check_fits(ModelKind::Mlp, &inputs, 4).unwrap();
        back.seed(&mut fresh);
        for row in [[0.0, 1.0, 2.0], [5.0, -3.0, 0.5]] {
            for k in 0..2 {
                assert_eq!(fresh.score(k, &row), trained.score(0, &row));
            }
        }
        assert!(back.check_fits(ModelKind::Logistic, &inputs, 4).is_err());
        assert!(back.check_fits(ModelKind::Mlp, &inputs[..2], 4).is_err());
        assert!(back.check_fits(ModelKind::Mlp, &inputs, 8).is_err());
        std::fs::write(&path, br#"{"format":1}"#).unwrap();
        assert!(ChampionFile::read(&path).is_err());
    }
}
