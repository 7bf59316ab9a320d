//! `vigil nexmark gen` and `vigil nexmark run`: the Nexmark benchmark through
//! Kafka. `gen` publishes Beam's generator's events to one topic (the three
//! kinds together); `run` runs one query over that topic and writes its
//! results to another (see `vigil::nexmark::kafka`).

use std::time::Instant;

use anyhow::Result;
use clap::{Args, Subcommand};
use vigil::nexmark::{kafka, queries, Generator, GeneratorConfig};

use super::KafkaArgs;

#[derive(Subcommand)]
pub enum NexmarkCommand {
    /// Publishes Nexmark events (Beam's generator, default configuration) to a
    /// topic: event i to partition i % partitions, as JSON. Creates the topic when missing.
    Gen(GenArgs),
    /// Runs one query (q0-q9) over a topic of Nexmark events and writes its
    /// results to a topic (views as upserts: the key, then the new value or a
    /// tombstone). Creates the results' and the dead letters' topics when
    /// missing, with the input's partition count.
    Run(RunArgs),
}

#[derive(Args)]
pub struct GenArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[arg(long, default_value = "nexmark")]
    pub topic: String,
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Partitions of the topic when it has to be created.
    #[arg(long, default_value_t = 4)]
    pub partitions: u32,
    /// Replication factor of the topic when it has to be created.
    #[arg(long, default_value_t = 1)]
    pub replication: i32,
}

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// The query: q0 to q9.
    #[arg(long)]
    pub query: String,
    #[arg(long, default_value = "nexmark")]
    pub topic: String,
    /// The results' topic (default `nexmark-<query>`).
    #[arg(long)]
    pub out: Option<String>,
    #[arg(long, default_value = "dlq")]
    pub dlq_topic: String,
    /// Replication factor of the output topics when they have to be created.
    #[arg(long, default_value_t = 1)]
    pub replication: i32,
    #[arg(short = 'w', long, default_value_t = 1)]
    pub workers: usize,
    /// Reads the topic to its end as of the start, then stops (a backfill);
    /// otherwise runs until stopped (SIGTERM / Ctrl-C).
    #[arg(long)]
    pub until_end: bool,
}

/// Runs the command.
pub fn run(command: NexmarkCommand) -> Result<()> {
    match command {
        NexmarkCommand::Gen(a) => gen(a),
        NexmarkCommand::Run(a) => query(a),
    }
}

fn gen(a: GenArgs) -> Result<()> {
    let opts = a.kafka.options()?;
    let partitions = vigil::kafka::ensure_topic(&opts, &a.topic, a.partitions, a.replication)?;
    let t = Instant::now();
    let events = Generator::new(GeneratorConfig::default()).take(a.events as usize);
    let n = kafka::publish(&opts, &a.topic, partitions, events)?;
    let secs = t.elapsed().as_secs_f64();
    eprintln!("vigil nexmark gen: published {n} events to {} ({partitions} partitions) in {secs:.1} s", a.topic);
    Ok(())
}

fn query(a: RunArgs) -> Result<()> {
    let known = queries::NAMES.contains(&a.query.as_str()) || queries::VARIANTS.contains(&a.query.as_str());
    anyhow::ensure!(known, "no Nexmark query `{}` (there are {}, {})", a.query, queries::NAMES.join(", "), queries::VARIANTS.join(", "));
    let out = a.out.clone().unwrap_or_else(|| format!("nexmark-{}", a.query));
    let opts = a.kafka.options()?;
    // the results' and dead letters' topics, made like the input's when missing
    let partitions = vigil::kafka::ensure_topic(&opts, &a.topic, 1, a.replication)?;
    for t in [&out, &a.dlq_topic] {
        vigil::kafka::ensure_topic(&opts, t, partitions, a.replication)?;
    }
    let mut run = vigil::kafka::KafkaRun::new(opts).workers(a.workers).group(&format!("vigil-nexmark-{}", a.query)).dlq_topic(&a.dlq_topic);
    if a.until_end {
        run = run.until_end();
    }
    vigil::http::install_signal_handler(run.control())?;
    let t = Instant::now();
    let (topic, q, sink) = (a.topic.clone(), a.query.clone(), out.clone());
    let summary = run.run(move |g| {
        let events = g.source_decoded(kafka::source(&topic), kafka::decode);
        queries::sink_query(&q, &events, &sink)
    })?;
    let secs = t.elapsed().as_secs_f64();
    let counts = summary.sources.get(&a.topic).cloned().unwrap_or_default();
    eprintln!(
        "vigil nexmark run: {} over {}: read {}, accepted {}, rejected {:?}; wrote {} records to {out} in {secs:.1} s ({:.0} events/s)",
        a.query,
        a.topic,
        counts.read,
        counts.accepted,
        counts.rejected,
        summary.produced.get(&out).copied().unwrap_or(0),
        counts.read as f64 / secs
    );
    Ok(())
}
