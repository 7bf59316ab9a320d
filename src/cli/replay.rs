//! `vigil replay`: a job that trains online, driven deterministically from an
//! events file and a labels file.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use vigil::spec::JobSpec;

#[derive(Args)]
pub struct ReplayArgs {
    /// The job (TOML); it must train online ([model.online]).
    pub job: PathBuf,
    /// Event records, one JSON object per line, in publishing order.
    #[arg(long)]
    pub events: PathBuf,
    /// Label records, one JSON object per line, in publishing order.
    #[arg(long)]
    pub labels: PathBuf,
    /// How long after its time a label counts as revealed (overrides labels.delay), e.g. 30s.
    #[arg(long)]
    pub label_delay: Option<String>,
    /// The label records' time field (overrides labels.time).
    #[arg(long)]
    pub label_time: Option<String>,
    /// Split the events over this many partitions by key.
    #[arg(long, default_value_t = 1)]
    pub partitions: usize,
    #[arg(short = 'w', long, default_value_t = 1)]
    pub workers: usize,
    /// Write the scores here (JSON lines; dead letters to OUT with .dlq.jsonl).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Runs the command.
pub fn run(a: ReplayArgs) -> Result<()> {
    let job = JobSpec::from_toml(&std::fs::read_to_string(&a.job).with_context(|| format!("reading {}", a.job.display()))?)?;
    let opts = vigil::replay_files::ReplayOptions {
        label_delay: a.label_delay.as_deref().map(vigil::spec::parse_duration).transpose()?,
        label_time: a.label_time,
        partitions: a.partitions,
        workers: a.workers,
        out: a.out,
        ..vigil::replay_files::ReplayOptions::new(a.events, a.labels)
    };
    let report = vigil::replay_files::replay(job, &opts)?;
    print!("{}", report.text);
    Ok(())
}
