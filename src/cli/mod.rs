//! The `vigil` command, one file per command: `demo`, `run`, `gen`, `broker`,
//! `runs`, `model`, `features`, `replay`, `nexmark`, `savepoint`; what they share (Kafka settings, the
//! metrics address) here.

pub mod broker;
pub mod demo;
pub mod features;
pub mod gen;
pub mod model;
pub mod nexmark;
pub mod replay;
pub mod run;
pub mod runs;
pub mod savepoint;

use std::net::SocketAddr;

use anyhow::{Context, Result};
use clap::Args;
use vigil::kafka::KafkaOptions;

#[derive(Args)]
pub struct KafkaArgs {
    /// Bootstrap servers, HOST:PORT[,HOST:PORT...].
    #[arg(long)]
    pub brokers: String,
    /// librdkafka setting passed through (TLS, SASL, ...), KEY=VALUE; repeatable.
    /// Values may come from an environment variable (`env:NAME`) or a file
    /// (`file:PATH`); they are never logged.
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    pub settings: Vec<String>,
}

impl KafkaArgs {
    pub fn options(&self) -> Result<KafkaOptions> {
        let mut opts = KafkaOptions::new(&self.brokers);
        for s in &self.settings {
            let (k, v) = s.split_once('=').with_context(|| format!("-X expects KEY=VALUE, got `{}`", s.split('=').next().unwrap_or("")))?;
            let v = if let Some(var) = v.strip_prefix("env:") {
                std::env::var(var).with_context(|| format!("environment variable {var} (for -X {k}) is not set"))?
            } else if let Some(path) = v.strip_prefix("file:") {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading the file for -X {k}"))?;
                text.trim_end_matches(['\n', '\r']).to_owned()
            } else {
                v.to_owned()
            };
            opts.extra.push((k.to_owned(), v));
        }
        Ok(opts)
    }
}

pub fn metrics_addr(s: &str) -> Result<Option<SocketAddr>> {
    if s == "off" {
        return Ok(None);
    }
    Ok(Some(s.parse().with_context(|| format!("bad metrics address `{s}`"))?))
}
