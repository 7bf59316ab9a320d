//! `vigil model export|import`: a champion's weights out of a run, or checked
//! against a job.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use vigil::spec::JobSpec;

#[derive(Subcommand)]
pub enum ModelCommand {
    /// Writes the newest run's champion (weights, feature statistics,
    /// hyperparameters) to a JSON file.
    Export {
        /// Directory of the experiment logs.
        #[arg(long, default_value = "runs")]
        dir: PathBuf,
        /// A log file (default: the newest in --dir).
        #[arg(long)]
        log: Option<PathBuf>,
        #[arg(long, default_value = "model.json")]
        out: PathBuf,
    },
    /// Checks that a model file fits a job's online model, and says how to start
    /// the job from it.
    Import {
        model: PathBuf,
        #[arg(long)]
        job: PathBuf,
    },
}

/// Runs the command.
pub fn run(command: ModelCommand) -> Result<()> {
    match command {
        ModelCommand::Export { dir, log, out } => {
            let log = match log {
                Some(l) => l,
                None => vigil::learner::runs::log_files(&dir)?.pop().with_context(|| format!("no experiment logs in {}", dir.display()))?,
            };
            let path = vigil::learner::export::champion_path(&log);
            let model = vigil::learner::export::ChampionFile::read(&path).with_context(|| format!("no champion written for {} yet", log.display()))?;
            model.write(&out)?;
            println!(
                "exported {} {} ({:?}, {} inputs, ROC-AUC {}) to {}",
                model.model,
                model.model_version,
                model.kind,
                model.inputs.len(),
                model.roc_auc.map_or("-".into(), |a| format!("{a:.4}")),
                out.display()
            );
            Ok(())
        }
        ModelCommand::Import { model, job } => {
            let text = std::fs::read_to_string(&job).with_context(|| format!("reading {}", job.display()))?;
            let spec = JobSpec::from_toml(&text).with_context(|| format!("in {}", job.display()))?;
            let online = spec.model.online.as_ref().with_context(|| format!("{} does not train online", job.display()))?;
            let file = vigil::learner::export::ChampionFile::read(&model)?;
            let inputs: Vec<String> = spec.model.inputs.iter().map(|i| i.name.clone()).collect();
            file.check_fits(online.kind, &inputs, online.hidden_max())?;
            println!("{} fits {}: start it with `vigil run {} --model-init {}`", model.display(), job.display(), job.display(), model.display());
            Ok(())
        }
    }
}
