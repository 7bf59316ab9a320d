//! The `vigil` command: `demo`, `run`, `gen`, `broker`, `runs`, `model`, `features`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use vigil::broker::EmbeddedBroker;
use vigil::demo::{run_demo, DemoOptions};
use vigil::generator::GenConfig;
use vigil::kafka::publish::{publish, PublishOptions, PublishProgress};
use vigil::kafka::KafkaOptions;
use vigil::metrics::Metrics;
use vigil::run::{run_job, Cluster, RunOptions};
use vigil::spec::JobSpec;
use vigil::types::Control;

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
    Demo(DemoArgs),
    /// Run a job (TOML) against a Kafka cluster until stopped (SIGTERM / Ctrl-C).
    Run(RunArgs),
    /// Publish synthetic card transactions (and delayed labels) to a Kafka cluster.
    Gen(GenArgs),
    /// Run the embedded Kafka-protocol broker in the foreground.
    Broker(BrokerArgs),
    /// The experiment log of online training: a leaderboard of the variants, or
    /// `runs show ID` for one run's curve.
    Runs(RunsArgs),
    /// Move a champion's weights out of a run (export) or check one against a job
    /// before starting it with `--model-init` (import).
    #[command(subcommand)]
    Model(ModelCommand),
    /// The offline feature log: point-in-time training tables.
    #[command(subcommand)]
    Features(FeaturesCommand),
    /// Drive a job that trains online deterministically from an events file and a
    /// labels file (JSON lines): event-time consistency, the scores a live run of
    /// the same records served.
    Replay(ReplayArgs),
}

#[derive(Args)]
struct ReplayArgs {
    /// The job (TOML); it must train online ([model.online]).
    job: PathBuf,
    /// Event records, one JSON object per line, in publishing order.
    #[arg(long)]
    events: PathBuf,
    /// Label records, one JSON object per line, in publishing order.
    #[arg(long)]
    labels: PathBuf,
    /// How long after its time a label counts as revealed (overrides labels.delay), e.g. 30s.
    #[arg(long)]
    label_delay: Option<String>,
    /// The label records' time field (overrides labels.time).
    #[arg(long)]
    label_time: Option<String>,
    /// Split the events over this many partitions by key.
    #[arg(long, default_value_t = 1)]
    partitions: usize,
    #[arg(short = 'w', long, default_value_t = 1)]
    workers: usize,
    /// Write the scores here (JSON lines; dead letters to OUT with .dlq.jsonl).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Subcommand)]
enum FeaturesCommand {
    /// Joins labels to the offline log (`--data-dir` of `vigil run` or `vigil demo`)
    /// by event id and writes a Parquet training table: each labeled event with the
    /// features it was scored with, as of its own event.
    Export(ExportArgs),
}

#[derive(Args)]
struct ExportArgs {
    /// The job's data directory (holds `offline/`).
    #[arg(long)]
    data_dir: PathBuf,
    /// A JSON-lines file of label records, or (with --brokers) a Kafka topic.
    #[arg(long)]
    labels: String,
    /// Read the labels topic from this cluster.
    #[arg(long)]
    brokers: Option<String>,
    /// librdkafka setting for the labels topic's cluster, KEY=VALUE; repeatable.
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    settings: Vec<String>,
    /// The label records' event-id field.
    #[arg(long, default_value = "event_id")]
    id_field: String,
    /// The label records' label field (boolean, 0/1, "true"/"false").
    #[arg(long, default_value = "is_fraud")]
    label_field: String,
    /// A time field of the label records, copied to `label_time`.
    #[arg(long)]
    label_time: Option<String>,
    /// The training table (Parquet).
    #[arg(long, default_value = "train.parquet")]
    out: PathBuf,
}

#[derive(Subcommand)]
enum ModelCommand {
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

#[derive(Args)]
struct RunsArgs {
    #[command(subcommand)]
    show: Option<RunsCommand>,
    /// Directory of the experiment logs.
    #[arg(long, default_value = "runs", global = true)]
    dir: PathBuf,
    /// A log file (default: the newest in --dir).
    #[arg(long, global = true)]
    file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum RunsCommand {
    /// Draws one run's progressive ROC-AUC over the labels seen.
    Show { run: u64 },
}

#[derive(Args)]
struct KafkaArgs {
    /// Bootstrap servers, HOST:PORT[,HOST:PORT...].
    #[arg(long)]
    brokers: String,
    /// librdkafka setting passed through (TLS, SASL, ...), KEY=VALUE; repeatable.
    /// Values may come from an environment variable (`env:NAME`) or a file
    /// (`file:PATH`); they are never logged.
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    settings: Vec<String>,
}

impl KafkaArgs {
    fn options(&self) -> Result<KafkaOptions> {
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

#[derive(Args)]
struct DemoArgs {
    /// Transactions to generate; the demo ends once all are scored or dead-lettered.
    #[arg(long, default_value_t = 200_000)]
    events: u64,
    /// Generation rate in events per second (default: as fast as possible).
    #[arg(long)]
    rate: Option<f64>,
    /// Share of malformed records.
    #[arg(long, default_value_t = 0.01)]
    bad_ratio: f64,
    /// Shift the fraud pattern and amounts from this event on.
    #[arg(long)]
    drift_at: Option<u64>,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Keep the broker up this many seconds after the last event.
    #[arg(long, default_value_t = 0)]
    linger: u64,
    /// Timely worker threads.
    #[arg(short = 'w', long, default_value_t = 1)]
    workers: usize,
    #[arg(long, default_value_t = 8)]
    partitions: i32,
    /// Address for /metrics ("off" to disable).
    #[arg(long, default_value = "127.0.0.1:9898")]
    metrics_addr: String,
    /// Where online training runs: auto (a real GPU if one is found, else the CPU
    /// twin), gpu (any adapter, software ones included; fail without one), cpu.
    #[arg(long, value_enum)]
    device: Option<vigil::gpu::DeviceChoice>,
    /// Score with the fixed weights of examples/fraud_job.toml instead of training
    /// online (examples/fraud_online.toml).
    #[arg(long)]
    fixed_model: bool,
    /// Where the experiment log goes.
    #[arg(long, default_value = "runs")]
    runs_dir: PathBuf,
    /// Start every variant from this champion file (`vigil model export`).
    #[arg(long)]
    model_init: Option<PathBuf>,
    /// Log every scored event's features to Parquet under DIR/offline (for
    /// `vigil features export`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Args)]
struct RunArgs {
    /// The job spec (TOML).
    job: PathBuf,
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Timely worker threads per process.
    #[arg(short = 'w', long, default_value_t = 1)]
    workers: usize,
    /// Number of processes (timely cluster mode).
    #[arg(short = 'n', long, default_value_t = 1)]
    processes: usize,
    /// This process's index in the cluster.
    #[arg(short = 'p', long, default_value_t = 0)]
    process: usize,
    /// File with one host:port per process (timely cluster mode); default localhost:2101+i.
    #[arg(long)]
    hostfile: Option<PathBuf>,
    /// Consumer group for offset commits (default: vigil-<job name>).
    #[arg(long)]
    group_id: Option<String>,
    /// Stop once the input is read up to the end offsets seen at start.
    #[arg(long)]
    until_end: bool,
    /// Keep checkpoints (offsets, partition clocks, feature state) here and restore
    /// from them on start. Without it, state starts empty after a restart.
    #[arg(long)]
    checkpoint_dir: Option<PathBuf>,
    /// Time between checkpoints, e.g. 10s or 500ms.
    #[arg(long, default_value = "10s")]
    checkpoint_interval: String,
    /// Write outputs in Kafka transactions committed with the input offsets, so
    /// that read_committed consumers see each output once (needs a broker with
    /// transactions). Without it: at-least-once.
    #[arg(long)]
    exactly_once: bool,
    /// Address for /metrics ("off" to disable).
    #[arg(long, default_value = "127.0.0.1:9898")]
    metrics_addr: String,
    /// Overrides `[model.online] device`: auto (a real GPU, else the CPU twin), gpu
    /// (any adapter, software ones included; fail without one), cpu.
    #[arg(long, value_enum)]
    device: Option<vigil::gpu::DeviceChoice>,
    /// Start every variant from this champion file (`vigil model export`).
    #[arg(long)]
    model_init: Option<PathBuf>,
    /// The job's data directory: every scored event's features are logged to
    /// Parquet under DIR/offline, partitioned by hour (`vigil features export`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// What runs the job: `pipeline` (every feature of a single-topic job) or
    /// `graph` (the dataflow API; always for jobs with several topics).
    #[arg(long, value_enum, default_value = "pipeline")]
    engine: Engine,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Engine {
    Pipeline,
    Graph,
}

#[derive(Args)]
struct GenArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[arg(long, default_value = "transactions")]
    topic: String,
    /// Topic for delayed labels ("none" to skip).
    #[arg(long, default_value = "labels")]
    labels_topic: String,
    /// Topic for the cards' logins ("none" to skip).
    #[arg(long, default_value = "none")]
    logins_topic: String,
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    #[arg(long)]
    rate: Option<f64>,
    #[arg(long, default_value_t = 0.0)]
    bad_ratio: f64,
    #[arg(long)]
    drift_at: Option<u64>,
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

#[derive(Args)]
struct BrokerArgs {
    /// Topics to create, NAME:PARTITIONS (NAME alone: 1 partition); repeatable,
    /// replaces the defaults. A topic not created here is created with 4 partitions
    /// when a producer first writes to it; consumers create nothing.
    #[arg(long = "topic", default_values_t = ["transactions:8".to_string(), "labels:8".into(), "scores:8".into(), "dlq:4".into(), "drift:1".into()])]
    topics: Vec<String>,
    /// Also write the bootstrap address to this file (for scripts and tests).
    #[arg(long)]
    address_file: Option<PathBuf>,
    /// Number of brokers in the embedded cluster.
    #[arg(long, default_value_t = 1)]
    brokers: i32,
    /// Read fault-injection commands from standard input, one per line:
    /// `down ID`, `up ID`, `rtt ID MS`, `produce-errors COUNT` (for tests).
    #[arg(long)]
    control_stdin: bool,
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

/// `vigil run` of a job that reads several topics (or `--engine graph`): built
/// as a graph (`graph::job::job_graph`) and run on Kafka by `KafkaRun`.
fn run_on_graph(job: JobSpec, a: RunArgs) -> Result<()> {
    let unsupported = [
        (a.processes > 1, "-n (several processes)"),
        (a.exactly_once, "--exactly-once"),
        (a.data_dir.is_some(), "--data-dir"),
    ];
    let named: Vec<&str> = unsupported.iter().filter(|(on, _)| *on).map(|(_, what)| *what).collect();
    if !named.is_empty() {
        bail!("job `{}` runs on the graph, which does not take {} yet", job.name, named.join(", "));
    }
    let mut run = vigil::graph::KafkaRun::new(a.kafka.options()?)
        .workers(a.workers.max(1))
        .group(&a.group_id.unwrap_or_else(|| format!("vigil-{}", job.name)))
        .dlq_topic(&job.sinks.dlq);
    if a.until_end {
        run = run.until_end();
    }
    if let Some(dir) = &a.checkpoint_dir {
        // epochs are 1 s apart: a checkpoint every N epochs is one every N seconds
        let every = vigil::spec::parse_duration(&a.checkpoint_interval)?.as_secs().max(1);
        run = run.checkpoints(dir, every);
    }
    if let Some(addr) = metrics_addr(&a.metrics_addr)? {
        let bound = vigil::http::serve(addr, run.metrics(), None)?;
        tracing::info!("metrics at http://{bound}/metrics");
    }
    vigil::http::install_signal_handler(run.control())?;
    let name = job.name.clone();
    let out = run.run(move |g| vigil::graph::job::job_graph(g, &job))?;
    eprintln!("vigil run: job `{name}` (graph) stopped");
    for (topic, c) in &out.sources {
        eprintln!("  {topic}: read {}, accepted {}, rejected {:?}", c.read, c.accepted, c.rejected);
    }
    for (topic, n) in &out.produced {
        eprintln!("  wrote {n} records to {topic}");
    }
    for w in &out.warnings {
        eprintln!("  warning: {w}");
    }
    Ok(())
}

fn metrics_addr(s: &str) -> Result<Option<SocketAddr>> {
    if s == "off" {
        return Ok(None);
    }
    Ok(Some(s.parse().with_context(|| format!("bad metrics address `{s}`"))?))
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
        Command::Demo(a) => {
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
        Command::Run(a) => {
            let text = std::fs::read_to_string(&a.job).with_context(|| format!("reading {}", a.job.display()))?;
            let mut job = JobSpec::from_toml(&text).with_context(|| format!("in {}", a.job.display()))?;
            if let Some(online) = job.model.online.as_mut() {
                online.device = a.device.unwrap_or(online.device);
                online.init = a.model_init.clone().or(online.init.take());
            }
            if job.several_topics() || a.engine == Engine::Graph {
                return run_on_graph(job, a);
            }
            if a.process >= a.processes {
                bail!("--process {} is out of range for {} processes", a.process, a.processes);
            }
            let addresses = match (&a.hostfile, a.processes) {
                (_, 1) => Vec::new(),
                (Some(f), n) => {
                    let hosts: Vec<String> = std::fs::read_to_string(f)?.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
                    if hosts.len() < n {
                        bail!("{} lists {} hosts for {n} processes", f.display(), hosts.len());
                    }
                    hosts[..n].to_vec()
                }
                (None, n) => (0..n).map(|i| format!("localhost:{}", 2101 + i)).collect(),
            };
            let metrics = Metrics::new();
            let store = vigil::store::FeatureStore::new(job.features.iter().map(|f| f.name().to_owned()).collect());
            if let Some(addr) = metrics_addr(&a.metrics_addr)? {
                let bound = vigil::http::serve(addr, metrics.clone(), Some(store.clone()))?;
                tracing::info!("metrics at http://{bound}/metrics, features at http://{bound}/features/{{key}}");
            }
            let control = Control::new();
            vigil::http::install_signal_handler(control.clone())?;
            let opts = RunOptions {
                kafka: a.kafka.options()?,
                group_id: a.group_id.unwrap_or_else(|| format!("vigil-{}", job.name)),
                cluster: Cluster { workers: a.workers.max(1), process: a.process, addresses },
                until_end: a.until_end,
                checkpoint_dir: a.checkpoint_dir,
                checkpoint_interval: vigil::spec::parse_duration(&a.checkpoint_interval)?,
                exactly_once: a.exactly_once,
                store: Some(store),
                data_dir: a.data_dir,
            };
            let summary = run_job(job.clone(), &opts, metrics.clone(), control, Arc::new(std::sync::Mutex::new(None)))?;
            eprint!("{}", vigil::summary::run_summary(&summary, &metrics, &job));
            Ok(())
        }
        Command::Gen(a) => {
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
        Command::Runs(a) => {
            let text = match a.show {
                Some(RunsCommand::Show { run }) => vigil::learner::runs::show(&a.dir, a.file.as_deref(), run)?,
                None => vigil::learner::runs::leaderboard(&a.dir, a.file.as_deref())?,
            };
            print!("{text}");
            Ok(())
        }
        Command::Model(ModelCommand::Export { dir, log, out }) => {
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
        Command::Model(ModelCommand::Import { model, job }) => {
            let text = std::fs::read_to_string(&job).with_context(|| format!("reading {}", job.display()))?;
            let spec = JobSpec::from_toml(&text).with_context(|| format!("in {}", job.display()))?;
            let online = spec.model.online.as_ref().with_context(|| format!("{} does not train online", job.display()))?;
            let file = vigil::learner::export::ChampionFile::read(&model)?;
            let inputs: Vec<String> = spec.model.inputs.iter().map(|i| i.name.clone()).collect();
            file.check_fits(online.kind, &inputs, online.hidden_max())?;
            println!("{} fits {}: start it with `vigil run {} --model-init {}`", model.display(), job.display(), job.display(), model.display());
            Ok(())
        }
        Command::Features(FeaturesCommand::Export(a)) => {
            use vigil::offline::export::{export, LabelFields, LabelInput};
            let labels = match &a.brokers {
                Some(brokers) => {
                    let kafka = KafkaArgs { brokers: brokers.clone(), settings: a.settings.clone() }.options()?;
                    LabelInput::Topic { kafka, topic: a.labels.clone() }
                }
                None => LabelInput::File(PathBuf::from(&a.labels)),
            };
            let fields = LabelFields { id: a.id_field, label: a.label_field, time: a.label_time };
            let s = export(&a.data_dir, &labels, &fields, &a.out)?;
            let malformed: u64 = s.malformed.values().sum();
            println!(
                "vigil features export: {} rows ({} features) to {}; labels read {}, malformed {} {:?}, relabeled {}, not in the log {}; log: {} files, {} rows, {} replayed rows skipped",
                s.rows,
                s.features.len(),
                a.out.display(),
                s.labels,
                malformed,
                s.malformed,
                s.relabeled,
                s.unmatched,
                s.log_files,
                s.log_rows,
                s.duplicate_rows
            );
            Ok(())
        }
        Command::Replay(a) => {
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
        Command::Broker(a) => {
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
    }
}
