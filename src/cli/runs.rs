//! `vigil runs`: the experiment log of online training (a leaderboard, or one
//! run's curve).

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};

#[derive(Args)]
pub struct RunsArgs {
    #[command(subcommand)]
    pub show: Option<RunsCommand>,
    /// Directory of the experiment logs.
    #[arg(long, default_value = "runs", global = true)]
    pub dir: PathBuf,
    /// A log file (default: the newest in --dir).
    #[arg(long, global = true)]
    pub file: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum RunsCommand {
    /// Draws one run's progressive ROC-AUC over the labels seen.
    Show { run: u64 },
}

/// Runs the command.
pub fn run(a: RunsArgs) -> Result<()> {
    let text = match a.show {
        Some(RunsCommand::Show { run }) => vigil::learner::runs::show(&a.dir, a.file.as_deref(), run)?,
        None => vigil::learner::runs::leaderboard(&a.dir, a.file.as_deref())?,
    };
    print!("{text}");
    Ok(())
}
