//! The `vigil` command: `demo`, `run`, `gen`, `broker`, `runs`, `model`,
//! `features`, `replay`, `nexmark` (one file each under `cli/`).

mod cli;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// mimalloc: the hot path allocates a few small objects per event.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "vigil", version, about = "A streaming dataflow engine for real-time machine learning")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Embedded broker + synthetic transactions + the fraud job, in one process.
    Demo(cli::demo::DemoArgs),
    /// Run a job (TOML) against a Kafka cluster until stopped (SIGTERM / Ctrl-C).
    Run(cli::run::RunArgs),
    /// Publish synthetic card transactions (and delayed labels) to a Kafka cluster.
    Gen(cli::gen::GenArgs),
    /// Run the embedded Kafka-protocol broker in the foreground.
    Broker(cli::broker::BrokerArgs),
    /// The experiment log of online training: a leaderboard of the variants, or
    /// `runs show ID` for one run's curve.
    Runs(cli::runs::RunsArgs),
    /// Move a champion's weights out of a run (export) or check one against a job
    /// before starting it with `--model-init` (import).
    #[command(subcommand)]
    Model(cli::model::ModelCommand),
    /// The offline feature log: point-in-time training tables.
    #[command(subcommand)]
    Features(cli::features::FeaturesCommand),
    /// Drive a job that trains online deterministically from an events file and a
    /// labels file (JSON lines): event-time consistency, the scores a live run of
    /// the same records served.
    Replay(cli::replay::ReplayArgs),
    /// The Nexmark benchmark through Kafka: publish its events, run a query.
    #[command(subcommand)]
    Nexmark(cli::nexmark::NexmarkCommand),
    /// Copy a job's newest checkpoint out of its checkpoint directory and keep
    /// it: a changed job starts from it with `vigil run --from-savepoint`.
    Savepoint(cli::savepoint::SavepointArgs),
}

fn main() {
    // Crash points for tests (FAILPOINTS=name=return); inert otherwise.
    let _failpoints = fail::FailScenario::setup();
    // before any thread: no `XDG_RUNTIME_DIR` noise from the Vulkan layers
    vigil::gpu::quiet_vulkan_layers();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn,vigil=info".into()))
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = real_main(Cli::parse()) {
        eprintln!("vigil: error: {e:#}");
        std::process::exit(1);
    }
}

fn real_main(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Demo(a) => cli::demo::run(a),
        Command::Run(a) => cli::run::run(a),
        Command::Gen(a) => cli::gen::run(a),
        Command::Broker(a) => cli::broker::run(a),
        Command::Runs(a) => cli::runs::run(a),
        Command::Model(c) => cli::model::run(c),
        Command::Features(c) => cli::features::run(c),
        Command::Replay(a) => cli::replay::run(a),
        Command::Nexmark(c) => cli::nexmark::run(c),
        Command::Savepoint(a) => cli::savepoint::run(a),
    }
}
