//! `drift-alarms`: how often vigil's drift monitors alarm when nothing drifted,
//! and how soon they alarm when something did, at the job's defaults.
//!
//! - Feature and prediction drift (`DriftThresholds::default()`, patience 2 over
//!   a fresh window): false alarms per 1,000 evaluations on drift-free streams
//!   (i.i.d. Gaussian, lognormal, Student-t, Poisson counts, AR(1) with phi 0.9, a
//!   categorical, positive decisions i.i.d. and in bursts) for windows of 1,000
//!   (p-value regime), 5,000 and 20,000 values, beside the old rule (p-values
//!   at 0.05, patience 2 evaluations); detection delays of mean shifts of 0.1,
//!   0.25 and 0.5 standard deviations and of a x1.5 scale; the demo's own
//!   feature streams, drift-free and with `--drift-at`.
//! - Concept drift (ADWIN, DDM, Page-Hinkley): River's defaults against the
//!   job's on Bernoulli error streams: false alarms per 100,000 labels at
//!   several error rates, delays on rate steps.
//!
//! Everything is seeded and single-threaded: the numbers reproduce.
//! Run: `cargo run --release -p vigil-benchmarks --bin drift-alarms`

#[path = "../../report.rs"]
mod report;

mod concept;
mod demo;
mod distribution;
mod streams;
mod tables;

use anyhow::Result;
use clap::Parser;

#[derive(Parser)]
pub struct Args {
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Drift-free evaluations per stream kind and window.
    #[arg(long, default_value_t = 10_000)]
    pub evaluations: usize,
    /// Runs per shift and window (delays).
    #[arg(long, default_value_t = 40)]
    pub delay_runs: usize,
    /// Demo seeds (each a drift-free and a drifted stream).
    #[arg(long, default_value_t = 4)]
    pub demo_seeds: u64,
    #[arg(long, default_value_t = 400_000)]
    pub demo_events: u64,
    #[arg(long, default_value_t = 150_000)]
    pub demo_drift_at: u64,
    /// Stationary error streams per rate (concept detectors).
    #[arg(long, default_value_t = 20)]
    pub concept_runs: usize,
    /// Labels per stationary error stream.
    #[arg(long, default_value_t = 200_000)]
    pub labels: usize,
    #[arg(long, default_value = "benchmarks/RESULTS.md")]
    pub out: String,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let started = std::time::Instant::now();
    let mut section = tables::header(&args);
    section.push_str(&tables::distribution_false_alarms(&args));
    eprintln!("false alarms done ({:.0} s)", started.elapsed().as_secs_f64());
    section.push_str(&tables::distribution_delays(&args));
    eprintln!("delays done ({:.0} s)", started.elapsed().as_secs_f64());
    section.push_str(&tables::demo(&args)?);
    eprintln!("demo done ({:.0} s)", started.elapsed().as_secs_f64());
    section.push_str(&tables::concept(&args));
    eprintln!("concept done ({:.0} s)", started.elapsed().as_secs_f64());
    println!("{section}");
    report::write_section(&args.out, "## Drift monitors: false alarms and detection delays at the defaults", &section)?;
    Ok(())
}
