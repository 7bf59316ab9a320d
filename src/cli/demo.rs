//! `vigil demo`: the embedded broker, synthetic transactions and the fraud job,
//! in one process.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use vigil::demo::{run_demo, DemoOptions};
use vigil::types::Control;

use super::metrics_addr;

#[derive(Args)]
pub struct DemoArgs {
    /// Transactions to generate; the demo ends once all are scored or dead-lettered.
    #[arg(long, default_value_t = 200_000)]
    pub events: u64,
    /// Generation rate in events per second (default: as fast as possible).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Share of malformed records.
    #[arg(long, default_value_t = 0.01)]
    pub bad_ratio: f64,
    /// Shift the fraud pattern and amounts from this event on.
    #[arg(long)]
    pub drift_at: Option<u64>,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Keep the broker up this many seconds after the last event.
    #[arg(long, default_value_t = 0)]
    pub linger: u64,
    /// Timely worker threads.
    #[arg(short = 'w', long, default_value_t = 1)]
    pub workers: usize,
    #[arg(long, default_value_t = 8)]
    pub partitions: i32,
    /// Address for /metrics ("off" to disable).
    #[arg(long, default_value = "127.0.0.1:9898")]
    pub metrics_addr: String,
    /// Where online training runs: auto (a real GPU if one is found, else the CPU
    /// twin), gpu (any adapter, software ones included; fail without one), cpu.
    #[arg(long, value_enum)]
    pub device: Option<vigil::gpu::DeviceChoice>,
    /// Score with the fixed weights of examples/fraud_job.toml instead of training
    /// online (examples/fraud_online.toml).
    #[arg(long)]
    pub fixed_model: bool,
    /// Where the experiment log goes.
    #[arg(long, default_value = "runs")]
    pub runs_dir: PathBuf,
    /// Start every variant from this champion file (`vigil model export`).
    #[arg(long)]
    pub model_init: Option<PathBuf>,
    /// Log every scored event's features to Parquet under DIR/offline (for
    /// `vigil features export`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// Runs the command.
pub fn run(a: DemoArgs) -> Result<()> {
    let control = Control::new();
    vigil::http::install_signal_handler(control.clone())?;
    let opts = DemoOptions {
        events: a.events,
        rate: a.rate,
        bad_ratio: a.bad_ratio,
        drift_at: a.drift_at,
        seed: a.seed,
        linger: Duration::from_secs(a.linger),
        workers: a.workers.max(1),
        partitions: a.partitions.max(1),
        metrics_addr: metrics_addr(&a.metrics_addr)?,
        device: a.device,
        online: !a.fixed_model,
        runs_dir: a.runs_dir,
        model_init: a.model_init,
        data_dir: a.data_dir,
    };
    run_demo(&opts, control).map(|_| ())
}
