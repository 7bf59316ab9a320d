//! `vigil broker`: the embedded Kafka-protocol broker in the foreground.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use vigil::demo::broker::EmbeddedBroker;

#[derive(Args)]
pub struct BrokerArgs {
    /// Topics to create, NAME:PARTITIONS (NAME alone: 1 partition); repeatable,
    /// replaces the defaults. A topic not created here is created with 4 partitions
    /// when a producer first writes to it; consumers create nothing.
    #[arg(long = "topic", default_values_t = ["transactions:8".to_string(), "labels:8".into(), "scores:8".into(), "dlq:4".into(), "drift:1".into()])]
    pub topics: Vec<String>,
    /// Also write the bootstrap address to this file (for scripts and tests).
    #[arg(long)]
    pub address_file: Option<PathBuf>,
    /// Number of brokers in the embedded cluster.
    #[arg(long, default_value_t = 1)]
    pub brokers: i32,
    /// Read fault-injection commands from standard input, one per line:
    /// `down ID`, `up ID`, `rtt ID MS`, `produce-errors COUNT` (for tests).
    #[arg(long)]
    pub control_stdin: bool,
}

/// Runs the command (until a signal ends the process).
pub fn run(a: BrokerArgs) -> Result<()> {
    let broker = EmbeddedBroker::start(a.brokers.max(1))?;
    for t in &a.topics {
        let (name, parts) = t.split_once(':').unwrap_or((t, "1"));
        broker.create_topic(name, parts.parse().with_context(|| format!("bad partition count in `{t}`"))?)?;
    }
    let addr = broker.bootstrap_servers();
    if let Some(f) = &a.address_file {
        std::fs::write(f, &addr)?;
    }
    exit_on_signal()?;
    println!("vigil broker: listening at {addr} (topics: {})", a.topics.join(", "));
    if a.control_stdin {
        // fault commands until standard input closes
        for line in std::io::stdin().lines().map_while(Result::ok) {
            match broker.apply(&line) {
                Ok(()) => println!("vigil broker: ok: {line}"),
                Err(e) => println!("vigil broker: error: {line}: {e:#}"),
            }
        }
    }
    loop {
        std::thread::park();
    }
}

/// Ends the process at the first SIGINT or SIGTERM, at once: the embedded broker
/// keeps nothing that outlives it, so there is nothing to flush or commit.
/// Returns once the handlers are installed.
fn exit_on_signal() -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let (ready, installed) = std::sync::mpsc::channel::<std::io::Result<()>>();
    std::thread::Builder::new().name("vigil-signals".into()).spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => return drop(ready.send(Err(e))),
        };
        rt.block_on(async move {
            let (mut int, mut term) = match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
                (Ok(i), Ok(t)) => (i, t),
                (Err(e), _) | (_, Err(e)) => return drop(ready.send(Err(e))),
            };
            let _ = ready.send(Ok(()));
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            println!("vigil broker: stopped");
            std::process::exit(0);
        });
    })?;
    installed.recv().context("the signal thread ended")?.context("installing signal handlers")
}
