//! `vigil run JOB.toml`: a job against a Kafka cluster until stopped, on the
//! pipeline or (several topics, `--engine graph`) on the graph.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use vigil::metrics::Metrics;
use vigil::offline::log::{OfflineConfig, OfflineLog};
use vigil::run::{run_job, Cluster, RunOptions};
use vigil::spec::JobSpec;
use vigil::types::Control;

use super::{metrics_addr, KafkaArgs};

#[derive(Args)]
pub struct RunArgs {
    /// The job spec (TOML).
    pub job: PathBuf,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Timely worker threads per process.
    #[arg(short = 'w', long, default_value_t = 1)]
    pub workers: usize,
    /// Number of processes (timely cluster mode).
    #[arg(short = 'n', long, default_value_t = 1)]
    pub processes: usize,
    /// This process's index in the cluster.
    #[arg(short = 'p', long, default_value_t = 0)]
    pub process: usize,
    /// File with one host:port per process (timely cluster mode); default localhost:2101+i.
    #[arg(long)]
    pub hostfile: Option<PathBuf>,
    /// Where this process listens for the others (timely cluster mode) instead
    /// of its own hostfile line, e.g. 0.0.0.0:2101 in a container whose hostfile
    /// names the pods by DNS.
    #[arg(long, value_name = "HOST:PORT")]
    pub cluster_listen: Option<String>,
    /// Consumer group for offset commits (default: vigil-<job name>).
    #[arg(long)]
    pub group_id: Option<String>,
    /// Stop once the input is read up to the end offsets seen at start.
    #[arg(long)]
    pub until_end: bool,
    /// Keep checkpoints (offsets, partition clocks, feature state) here and restore
    /// from them on start. Without it, state starts empty after a restart.
    #[arg(long)]
    pub checkpoint_dir: Option<PathBuf>,
    /// Time between checkpoints, e.g. 10s or 500ms.
    #[arg(long, default_value = "10s")]
    pub checkpoint_interval: String,
    /// Paces reading (the graph engine): each worker reads at most N records of
    /// each source per epoch (epochs are 1 s), e.g. so that a backfill does not
    /// outrun its outputs.
    #[arg(long, value_name = "N")]
    pub max_records_per_epoch: Option<usize>,
    /// Write outputs in Kafka transactions committed with the input offsets, so
    /// that read_committed consumers see each output once (needs a broker with
    /// transactions). Without it: at-least-once.
    #[arg(long)]
    pub exactly_once: bool,
    /// Address for /metrics ("off" to disable).
    #[arg(long, default_value = "127.0.0.1:9898")]
    pub metrics_addr: String,
    /// Overrides `[model.online] device`: auto (a real GPU, else the CPU twin), gpu
    /// (any adapter, software ones included; fail without one), cpu.
    #[arg(long, value_enum)]
    pub device: Option<vigil::gpu::DeviceChoice>,
    /// Start every variant from this champion file (`vigil model export`).
    #[arg(long)]
    pub model_init: Option<PathBuf>,
    /// The job's data directory: every scored event's features are logged to
    /// Parquet under DIR/offline, partitioned by hour (`vigil features export`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Start each partition at its first record stamped at or after this time
    /// (RFC 3339, e.g. 2026-11-30T00:00:00Z) instead of the group's committed
    /// offset, then run on to live. A restored checkpoint wins over it.
    #[arg(long, value_name = "RFC3339")]
    pub start_at: Option<String>,
    /// Stop each partition at its first record stamped at or after this time
    /// (RFC 3339), or at its end as of the start if no record is that late yet.
    #[arg(long, value_name = "RFC3339")]
    pub until: Option<String>,
    /// `/readyz` answers 503 while the consumer lag, summed over this
    /// process's partitions, is above this many records.
    #[arg(long, default_value_t = vigil::health::DEFAULT_READY_MAX_LAG)]
    pub ready_max_lag: i64,
    /// `/healthz` answers 503 once a worker has not finished a turn of its
    /// loop for this long (a stuck operator), e.g. 60s.
    #[arg(long, default_value = "60s")]
    pub health_stall: String,
    /// What runs the job: `pipeline` (every feature of a single-topic job) or
    /// `graph` (the dataflow API; always for jobs with several topics).
    #[arg(long, value_enum, default_value = "pipeline")]
    pub engine: Engine,
    /// Start from a savepoint (a `savepoint-<epoch>` folder, or a directory of
    /// them: the newest): unchanged features, joins and the model keep their
    /// state by name, added ones start empty, removed ones are dropped, changed
    /// ones are refused (see "Upgrading a job" in the README). A checkpoint in
    /// --checkpoint-dir wins over it (a restart after the upgrade).
    #[arg(long, value_name = "PATH")]
    pub from_savepoint: Option<PathBuf>,
    /// A changed feature, join or model whose state may start over instead of
    /// refusing the savepoint; repeatable.
    #[arg(long, value_name = "NAME")]
    pub allow_state_reset: Vec<String>,
    /// When the job stops (SIGTERM, --until, --until-end), keep its final
    /// checkpoint as a savepoint under DIR (needs --checkpoint-dir).
    #[arg(long, value_name = "DIR")]
    pub savepoint_on_stop: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    Pipeline,
    Graph,
}

/// Runs the command.
pub fn run(a: RunArgs) -> Result<()> {
    let text = std::fs::read_to_string(&a.job).with_context(|| format!("reading {}", a.job.display()))?;
    let mut job = JobSpec::from_toml(&text).with_context(|| format!("in {}", a.job.display()))?;
    if let Some(online) = job.model.online.as_mut() {
        online.device = a.device.unwrap_or(online.device);
        online.init = a.model_init.clone().or(online.init.take());
    }
    if let Some(why) = job.graph_only() {
        tracing::info!(job = %job.name, "the job {why}: it runs on the graph");
        return run_on_graph(job, a);
    }
    if a.engine == Engine::Graph {
        return run_on_graph(job, a);
    }
    if a.max_records_per_epoch.is_some() {
        bail!("--max-records-per-epoch paces the graph engine only (`--engine graph`); job `{}` runs on the pipeline", job.name);
    }
    let addresses = cluster_addresses(&a)?;
    let metrics = Metrics::new();
    let store = vigil::store::FeatureStore::new(job.features.iter().map(|f| f.name().to_owned()).collect());
    let control = Control::new();
    if let Some(addr) = metrics_addr(&a.metrics_addr)? {
        let bound = vigil::http::serve_probed(addr, metrics.clone(), Some(store.clone()), Some(probes(&a, control.clone())?))?;
        tracing::info!("metrics at http://{bound}/metrics, features at http://{bound}/features/{{key}}, probes at /healthz and /readyz");
    }
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
        start_at: time_arg("--start-at", &a.start_at)?,
        until: time_arg("--until", &a.until)?,
        from_savepoint: a.from_savepoint,
        allow_state_reset: a.allow_state_reset,
        savepoint_on_stop: a.savepoint_on_stop,
    };
    if let (Some(s), Some(u)) = (opts.start_at, opts.until) {
        if s >= u {
            bail!("--start-at must be before --until: nothing lies in [{}, {})", a.start_at.as_deref().unwrap_or(""), a.until.as_deref().unwrap_or(""));
        }
    }
    let summary = run_job(job.clone(), &opts, metrics.clone(), control, Arc::new(std::sync::Mutex::new(None)))?;
    eprint!("{}", vigil::summary::run_summary(&summary, &metrics, &job));
    Ok(())
}

/// Every process's `host:port` from `-n`, `-p`, `--hostfile` and
/// `--cluster-listen` (empty: one process).
fn cluster_addresses(a: &RunArgs) -> Result<Vec<String>> {
    if a.process >= a.processes {
        bail!("--process {} is out of range for {} processes", a.process, a.processes);
    }
    let mut addresses = match (&a.hostfile, a.processes) {
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
    if let (Some(listen), Some(own)) = (&a.cluster_listen, addresses.get_mut(a.process)) {
        // the others connect to the hostfile's name; this process binds here
        *own = listen.clone();
    }
    Ok(addresses)
}

/// An RFC 3339 time of the command line in epoch milliseconds.
pub fn time_arg(flag: &str, value: &Option<String>) -> Result<Option<i64>> {
    value
        .as_deref()
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(v)
                .map(|t| t.timestamp_millis())
                .with_context(|| format!("{flag} `{v}` is not an RFC 3339 time (e.g. 2026-11-30T08:00:00Z)"))
        })
        .transpose()
}

/// The limits of `/healthz` and `/readyz` from the command line.
fn probes(a: &RunArgs, control: Arc<Control>) -> Result<vigil::http::Probes> {
    let stall = vigil::spec::parse_duration(&a.health_stall).context("--health-stall")?;
    if a.ready_max_lag < 0 {
        bail!("--ready-max-lag must be 0 or more, got {}", a.ready_max_lag);
    }
    Ok(vigil::http::Probes { control, stall, max_lag: a.ready_max_lag })
}

/// `vigil run` of a job that reads several topics (or `--engine graph`): built
/// as a graph (`graph::job::job_graph`) and run on Kafka by `KafkaRun`.
fn run_on_graph(job: JobSpec, a: RunArgs) -> Result<()> {
    let unsupported = [(a.from_savepoint.is_some(), "--from-savepoint"), (a.savepoint_on_stop.is_some(), "--savepoint-on-stop")];
    let named: Vec<&str> = unsupported.iter().filter(|(on, _)| *on).map(|(_, what)| *what).collect();
    if !named.is_empty() {
        bail!("job `{}` runs on the graph, which does not take {} yet", job.name, named.join(", "));
    }
    let group = a.group_id.clone().unwrap_or_else(|| format!("vigil-{}", job.name));
    let mut run = vigil::kafka::KafkaRun::new(a.kafka.options()?)
        .workers(a.workers.max(1))
        .cluster(a.process, cluster_addresses(&a)?)
        .group(&group)
        .dlq_topic(&job.sinks.dlq);
    if a.exactly_once {
        if a.checkpoint_dir.is_none() {
            bail!("job `{}` runs on the graph, where --exactly-once needs --checkpoint-dir: each checkpoint's outputs are one transaction", job.name);
        }
        // stable across restarts, and not the pipeline's (`-p<process>`): one engine's transactions per job
        run = run.exactly_once(&format!("vigil-{}-{group}-graph", job.name));
    }
    if a.until_end {
        run = run.until_end();
    }
    if let Some(t) = time_arg("--start-at", &a.start_at)? {
        run = run.start_at(t);
    }
    if let Some(t) = time_arg("--until", &a.until)? {
        run = run.until(t);
    }
    if let Some(n) = a.max_records_per_epoch {
        run = run.max_records_per_epoch(n);
    }
    if let Some(dir) = &a.checkpoint_dir {
        // epochs are 1 s apart: a checkpoint every N epochs is one every N seconds
        let every = vigil::spec::parse_duration(&a.checkpoint_interval)?.as_secs().max(1);
        run = run.checkpoints(dir, every);
    }
    let feature_names: Vec<String> = job.features.iter().map(|f| f.name().to_owned()).collect();
    if let Some(avro) = vigil::output::avro::AvroOutputs::register(&job.sinks, &feature_names)? {
        run = run.avro_outputs(std::sync::Arc::new(avro));
    }
    let mut io = vigil::graph::job::JobIo::default();
    if let Some(addr) = metrics_addr(&a.metrics_addr)? {
        let store = vigil::store::FeatureStore::new(feature_names.clone());
        let bound = vigil::http::serve_probed(addr, run.metrics(), Some(store.clone()), Some(probes(&a, run.control())?))?;
        tracing::info!("metrics at http://{bound}/metrics, features at http://{bound}/features/{{key}}, probes at /healthz and /readyz");
        io.store = Some(store);
    }
    let offline = match &a.data_dir {
        Some(dir) => Some(OfflineLog::start(OfflineConfig::new(dir, feature_names), None, run.metrics())?),
        None => None,
    };
    io.offline = offline.as_ref().map(|o| o.link.clone());
    // tables are read up to their end before the first event is featured
    let tables = vigil::kafka::table::Tables::start(&job.tables, &a.kafka.options()?, &run.metrics(), std::time::Duration::from_secs(120))?;
    io.tables = tables.tables.clone();
    vigil::http::install_signal_handler(run.control())?;
    let name = job.name.clone();
    let out = run.run(move |g| vigil::graph::job::job_graph_with(g, &job, &io));
    // the log's rows are on disk before the run reports (or fails)
    let logged = offline.map(|o| o.finish()).transpose();
    tables.finish();
    let out = out?;
    eprintln!("vigil run: job `{name}` (graph) stopped");
    if let Some(o) = logged? {
        eprintln!("  offline log: {} rows in {} files", o.rows, o.files);
    }
    for (topic, c) in &out.sources {
        eprintln!("  {topic}: read {}, accepted {}, rejected {:?}", c.read, c.accepted, c.rejected);
    }
    for (topic, n) in &out.produced {
        eprintln!("  wrote {n} records to {topic}");
    }
    for (model, l) in &out.learners {
        let c = &l.counts;
        let resumed = l.restored_epoch.map(|e| format!(", resumed from checkpoint {e}")).unwrap_or_default();
        eprintln!(
            "  learner {model}: labels read {}, joined {}, expired {}, orphan {}, sampled out {}, malformed {}; trained {}, timed out {}, held at end {}{resumed}",
            c.labels_read, c.joined, c.expired, c.orphan, c.sampled_out, c.malformed, c.trained, c.timed_out, l.held_at_end
        );
    }
    if let Some(e) = out.checkpoints.last() {
        eprintln!("  checkpoints: {} written, the newest of epoch {e}", out.checkpoints.len());
    }
    for w in &out.warnings {
        eprintln!("  warning: {w}");
    }
    Ok(())
}
