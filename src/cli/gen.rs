//! `vigil gen`: synthetic card transactions (and delayed labels, and logins)
//! published to a Kafka cluster.

use anyhow::Result;
use clap::Args;
use vigil::demo::generator::GenConfig;
use vigil::demo::publish::{publish, PublishOptions, PublishProgress};
use vigil::types::Control;

use super::KafkaArgs;

#[derive(Args)]
pub struct GenArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[arg(long, default_value = "transactions")]
    pub topic: String,
    /// Topic for delayed labels ("none" to skip).
    #[arg(long, default_value = "labels")]
    pub labels_topic: String,
    /// Topic for the cards' logins ("none" to skip).
    #[arg(long, default_value = "none")]
    pub logins_topic: String,
    #[arg(long, default_value_t = 100_000)]
    pub events: u64,
    #[arg(long)]
    pub rate: Option<f64>,
    #[arg(long, default_value_t = 0.0)]
    pub bad_ratio: f64,
    #[arg(long)]
    pub drift_at: Option<u64>,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// Runs the command.
pub fn run(a: GenArgs) -> Result<()> {
    let control = Control::new();
    vigil::http::install_signal_handler(control.clone())?;
    let progress = PublishProgress::default();
    let gen = GenConfig { seed: a.seed, bad_ratio: a.bad_ratio, drift_at: a.drift_at, ..GenConfig::default() };
    let labels = (a.labels_topic != "none").then_some(a.labels_topic);
    let logins = (a.logins_topic != "none").then_some(a.logins_topic);
    let opts = PublishOptions { topic: a.topic, labels_topic: labels, logins_topic: logins, events: a.events, rate: a.rate };
    publish(&a.kafka.options()?, gen, &opts, &progress, control.shutdown_flag())?;
    eprintln!("vigil gen: published {} transactions", progress.events.load(std::sync::atomic::Ordering::Relaxed));
    Ok(())
}
