//! Running a job against a Kafka cluster: discovers partitions, restores the
//! checkpoint that matches the group's committed offsets (or starts from those
//! offsets), starts timely workers (threads, or processes in timely's cluster mode)
//! and the checkpoint coordinator, and on the way out flushes the producer, writes
//! the final checkpoint and commits. Offsets are committed only after the outputs
//! of everything before them are delivered (at-least-once).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use rdkafka::consumer::Consumer;
use timely::{CommunicationConfig, WorkerConfig};

use crate::checkpoint::restore::{self, Restored};
use crate::checkpoint::txlog::TxLog;
use crate::delivery::InFlight;
use crate::epoch::EpochClock;
use crate::kafka::coordinator::{CommitMode, Coordinator, CoordinatorConfig, CoordinatorSummary};
use crate::kafka::sink::KafkaSink;
use crate::kafka::source::{EndOffsets, KafkaSource};
use crate::kafka::{self, KafkaOptions};
use crate::metrics::Metrics;
use crate::pipeline::{run_worker, WorkerContext};
use crate::source::{owned_partitions, MemorySource};
use crate::spec::JobSpec;
use crate::store::FeatureStore;
use crate::types::Control;

/// How the job's workers are laid out.
#[derive(Clone, Debug)]
pub struct Cluster {
    /// Worker threads in this process.
    pub workers: usize,
    /// This process's index and every process's `host:port` (one entry: no cluster).
    pub process: usize,
    pub addresses: Vec<String>,
}

impl Cluster {
    pub fn threads(workers: usize) -> Self {
        Cluster { workers, process: 0, addresses: Vec::new() }
    }
    /// The number of processes.
    pub fn processes(&self) -> usize {
        self.addresses.len().max(1)
    }
    pub(crate) fn timely_config(&self) -> timely::Config {
        let communication = if self.addresses.len() > 1 {
            CommunicationConfig::Cluster { threads: self.workers, process: self.process, addresses: self.addresses.clone(), report: false, zerocopy: false }
        } else if self.workers > 1 {
            CommunicationConfig::Process(self.workers)
        } else {
            CommunicationConfig::Thread
        };
        timely::Config { communication, worker: WorkerConfig::default() }
    }
}

/// Settings of one `vigil run`.
#[derive(Clone)]
pub struct RunOptions {
    pub kafka: KafkaOptions,
    pub group_id: String,
    pub cluster: Cluster,
    /// Stop at the end offsets seen at start (bounded runs, tests, backfills).
    pub until_end: bool,
    /// Where checkpoints are kept; without one, offsets are still committed at
    /// every epoch but state starts empty on restart.
    pub checkpoint_dir: Option<PathBuf>,
    /// Time between checkpoints (epoch length).
    pub checkpoint_interval: Duration,
    /// Write outputs in Kafka transactions committed with the input offsets.
    pub exactly_once: bool,
    /// The online feature store the workers publish to (served over HTTP).
    pub store: Option<Arc<FeatureStore>>,
    /// The job's data directory: the offline log (Parquet) goes under it.
    pub data_dir: Option<PathBuf>,
    /// Start each partition at its first record stamped at or after this time
    /// (epoch ms; Kafka's offsets-for-times) instead of the group's committed
    /// offset. A checkpoint restored wins over it (as Flink's savepoints do).
    pub start_at: Option<i64>,
    /// Stop each partition at its first record stamped at or after this time
    /// (epoch ms): the run reads `[start, until)`, then ends.
    pub until: Option<i64>,
    /// Start from this savepoint (a savepoint folder or a directory of them),
    /// its state carried into this job by name (`checkpoint::upgrade`), unless
    /// the checkpoint directory already has a checkpoint to resume from (a
    /// restart after the upgrade).
    pub from_savepoint: Option<PathBuf>,
    /// Names of features, joins or the model whose changed state may start over.
    pub allow_state_reset: Vec<String>,
    /// Once the run stops (its final checkpoint committed), copy that
    /// checkpoint into a savepoint under this directory.
    pub savepoint_on_stop: Option<PathBuf>,
}

impl RunOptions {
    /// Options for one process with `workers` threads, no checkpoint directory.
    pub fn new(kafka: KafkaOptions, group_id: &str, workers: usize) -> Self {
        RunOptions {
            kafka,
            group_id: group_id.to_owned(),
            cluster: Cluster::threads(workers),
            until_end: false,
            checkpoint_dir: None,
            checkpoint_interval: Duration::from_secs(10),
            exactly_once: false,
            store: None,
            data_dir: None,
            start_at: None,
            until: None,
            from_savepoint: None,
            allow_state_reset: Vec::new(),
            savepoint_on_stop: None,
        }
    }
}

/// What a finished run did.
#[derive(Debug, Default)]
pub struct RunSummary {
    pub partitions: u32,
    pub committed: Vec<(u32, i64)>,
    /// The checkpoint this run resumed from.
    pub restored_epoch: Option<u64>,
    pub checkpoints: CoordinatorSummary,
    /// What online learning did (jobs that train online).
    pub learner: Option<crate::learner::LearnerSummary>,
    /// What drift monitoring found (jobs with `[monitor]`).
    pub monitor: Option<crate::monitor::MonitorSummary>,
    /// What the offline log wrote (runs with a data directory).
    pub offline: Option<crate::offline::log::OfflineSummary>,
    /// The savepoint written at the stop (`RunOptions::savepoint_on_stop`).
    pub savepoint: Option<PathBuf>,
}

/// Runs `job` until the input ends (`until_end`, or end offsets set on `end`) or
/// shutdown is requested on `control`.
pub fn run_job(mut job: JobSpec, opts: &RunOptions, metrics: Arc<Metrics>, control: Arc<Control>, end: EndOffsets) -> Result<RunSummary> {
    if let Some(why) = job.graph_only() {
        bail!("job `{}` {why}: it runs on the graph (`vigil run` does so by itself), not on this pipeline", job.name);
    }
    if opts.checkpoint_dir.is_none() {
        if opts.savepoint_on_stop.is_some() {
            bail!("--savepoint-on-stop needs --checkpoint-dir: a savepoint is the final checkpoint, kept");
        }
        if opts.from_savepoint.is_some() {
            bail!("--from-savepoint needs --checkpoint-dir: the job goes on checkpointing its upgraded state there");
        }
    }
    if let Some(o) = job.model.online.as_mut() {
        o.resolve_consistency(opts.until_end || opts.until.is_some(), opts.checkpoint_dir.is_some());
    }
    // Stable across restarts and independent of the number of workers.
    let transactional_id = format!("vigil-{}-{}-p{}", job.name, opts.group_id, opts.cluster.process);
    if opts.exactly_once {
        // before reading the committed offsets: a killed run's open transaction may hold some
        kafka::sink::fence_earlier(&opts.kafka, &transactional_id)?;
    }
    let admin = opts.kafka.admin_consumer(&opts.group_id)?;
    let topic = job.source.topic.clone();
    let (partitions, start, restored) = starting_point(&job, opts, &admin, &end)?;
    tracing::info!(%topic, partitions, ?start, "starting the job");

    let inflight = Arc::new(InFlight::default());
    let start_epoch = restored.as_ref().map_or(0, |r| r.epoch() + 1);
    let run_id = format!("{:x}-{}", crate::types::now_us() / 1000, std::process::id());
    let feature_names: Vec<String> = job.features.iter().map(|f| f.name().to_owned()).collect();
    let avro = crate::output::avro::AvroOutputs::register(&job.sinks, &feature_names)?.map(Arc::new);
    let sink = Arc::new(KafkaSink::new(
        &opts.kafka,
        &job.sinks,
        metrics.clone(),
        inflight.clone(),
        &run_id,
        opts.exactly_once.then_some(transactional_id.as_str()),
        start_epoch,
        avro.clone(),
    )?);
    let commit = if opts.exactly_once {
        let group = admin.group_metadata().context("the consumer group has no metadata")?;
        CommitMode::Transactions { sink: sink.clone(), group, run: run_id.clone(), consumer: opts.kafka.admin_consumer(&opts.group_id)? }
    } else {
        CommitMode::Offsets(opts.kafka.admin_consumer(&opts.group_id)?)
    };
    let monitor = start_monitor(&job, opts, &metrics, avro)?;
    let learner = start_learner(&job, opts, &admin, restored.as_deref(), monitor.as_ref(), &metrics)?;
    if let (Some(m), Some(l)) = (&monitor, &learner) {
        m.watch_model(l.link.model.clone());
    }
    let offline = match &opts.data_dir {
        Some(dir) => {
            let cfg = crate::offline::log::OfflineConfig::new(dir, job.features.iter().map(|f| f.name().to_owned()).collect());
            Some(crate::offline::OfflineLog::start(cfg, Some(inflight.clone()), metrics.clone())?)
        }
        None => None,
    };
    // tables are read up to their end before the first event is scored
    let tables = crate::kafka::table::Tables::start(&job.tables, &opts.kafka, &metrics, Duration::from_secs(120))?;
    let epochs = Arc::new(EpochClock::starting_at(start_epoch));
    let (reports, received) = std::sync::mpsc::channel();
    let first_worker = opts.cluster.process * opts.cluster.workers;
    let coordinator = Coordinator::spawn(
        CoordinatorConfig {
            dir: opts.checkpoint_dir.clone(),
            interval: opts.checkpoint_interval,
            workers: (first_worker..first_worker + opts.cluster.workers).collect(),
            job: job.name.clone(),
            fingerprint: job.state_fingerprint(),
            shape: crate::checkpoint::upgrade::StateShape::of(&job),
            topic: topic.clone(),
            start_epoch,
            learner: learner.as_ref().and_then(|l| l.checkpoints.clone()),
        },
        received,
        epochs.clone(),
        inflight.clone(),
        commit,
        control.clone(),
        metrics.clone(),
    )?;
    let ctx = Arc::new(WorkerContext {
        learner: learner.as_ref().map(|l| l.link.clone()),
        monitor: monitor.as_ref().map(|m| m.link.clone()),
        offline: offline.as_ref().map(|o| o.link.clone()),
        tables: tables.tables.clone(),
        job: Arc::new(job),
        sink: sink.clone(),
        metrics: metrics.clone(),
        control: control.clone(),
        epochs,
        reports: Some(reports),
        snapshot_state: opts.checkpoint_dir.is_some(),
        restored: restored.clone(),
        store: opts.store.clone(),
    });
    metrics.workers.set(opts.cluster.workers as i64);
    control.health().expect_workers(opts.cluster.workers);
    let kafka_opts = opts.kafka.clone();
    let group = opts.group_id.clone();
    let guards = timely::execute(opts.cluster.timely_config(), move |worker| -> Result<()> {
        let owned = owned_partitions(partitions, worker.index(), worker.peers());
        match KafkaSource::new(&kafka_opts, &group, &topic, owned, &start, end.clone(), &ctx.metrics) {
            Ok(source) => run_worker(worker, &ctx, Box::new(source)),
            Err(e) => {
                // Build the same dataflow as the other workers, over nothing, and stop.
                ctx.control.request_shutdown();
                let _ = run_worker(worker, &ctx, Box::new(MemorySource::new(&topic, &[], 0, 1)));
                Err(e.context("a worker cannot start its source"))
            }
        }
    })
    .map_err(|e| anyhow!("starting timely workers: {e}"))?;
    let failure = joined(guards.join());
    // Outputs first, offsets second: a committed offset has its outputs delivered.
    sink.flush(Duration::from_secs(60))?;
    tables.finish();
    // the offline log's rows settle their epochs too: written before the final commit
    let offline = offline.map(|o| o.finish()).transpose();
    // The final checkpoint asks the learner for its state: the learner ends after it.
    let checkpoints = coordinator.finish();
    let learned = learner.map(|l| l.finish()).transpose();
    // the monitor last: the learner's final labels feed it too
    let monitored = monitor.map(|m| m.finish()).transpose()?;
    let checkpoints = checkpoints?;
    let offline = offline?;
    if let Some(e) = failure {
        return Err(e);
    }
    let failed = metrics.producer_errors.get();
    if failed > 0 {
        bail!("{failed} output records were not delivered; input offsets are not committed");
    }
    // The coordinator committed the final checkpoint's offsets (= these positions).
    let committed = control.positions();
    if opts.exactly_once {
        sink.close()?;
    }
    let savepoint = match (&opts.savepoint_on_stop, &opts.checkpoint_dir) {
        (Some(to), Some(from)) => Some(crate::checkpoint::savepoint::write(from, to)?),
        _ => None,
    };
    Ok(RunSummary {
        partitions,
        committed,
        restored_epoch: restored.map(|r| r.epoch()),
        checkpoints,
        learner: learned?,
        monitor: monitored,
        offline,
        savepoint,
    })
}

/// Where the run starts: the topic's partitions, the offset of each (the
/// checkpoint's, else the group's committed ones), and the checkpoint restored.
/// Settles an exactly-once run's open transactions first; with `until_end`,
/// records the end offsets.
fn starting_point(
    job: &JobSpec,
    opts: &RunOptions,
    admin: &rdkafka::consumer::BaseConsumer,
    end: &EndOffsets,
) -> Result<(u32, Vec<i64>, Option<Arc<Restored>>)> {
    let topic = job.source.topic.as_str();
    let partitions = kafka::partition_count(admin, topic, Duration::from_secs(30))?;
    let committed = kafka::committed_offsets(admin, topic, partitions)?;
    if let (Some(dir), true) = (&opts.checkpoint_dir, opts.exactly_once) {
        std::fs::create_dir_all(dir)?;
        TxLog::open(dir).settle(&committed)?;
    }
    let restored = match &opts.checkpoint_dir {
        Some(_) if opts.cluster.addresses.len() > 1 => {
            bail!("checkpoints need a single process for now (use -w for more workers)")
        }
        Some(dir) => {
            if opts.from_savepoint.is_some() {
                own_history(dir, &job.state_fingerprint())?;
            }
            match restore::choose(dir, &committed, partitions, &job.state_fingerprint()) {
                Ok(r) => r.map(Arc::new),
                // the upgraded job stopped after writing a checkpoint and before
                // committing its offsets: the group still has the old job's
                Err(e) if opts.from_savepoint.is_some() => {
                    tracing::warn!("{e:#}: starting from the savepoint again");
                    None
                }
                Err(e) => return Err(e),
            }
        }
        None => None,
    };
    let restored = match (restored, &opts.from_savepoint) {
        (Some(r), Some(path)) => {
            tracing::info!(epoch = r.epoch(), savepoint = %path.display(), "--from-savepoint is not used: the job's own checkpoint is newer, and resumes it");
            Some(r)
        }
        (None, Some(path)) => {
            let r = restore::from_savepoint(path, job, &opts.allow_state_reset)?;
            if let Some(p) = r.manifest.partitions.iter().find(|c| c.partition >= partitions) {
                bail!("the savepoint has partition {} of `{topic}`, which now has {partitions}", p.partition);
            }
            Some(Arc::new(r))
        }
        (r, None) => r,
    };
    if let Some(dir) = &opts.checkpoint_dir {
        let own = restored.as_ref().filter(|r| r.dir == *dir).map(|r| r.epoch());
        let cleared = restore::clear_unrestorable(dir, own)?;
        if cleared > 0 && own.is_some() {
            tracing::info!(checkpoints = cleared, "removed checkpoints newer than the restored one (never committed)");
        }
    }
    let mut start = kafka::start_offsets(admin, topic, partitions, &committed)?;
    match (&restored, opts.start_at) {
        (Some(r), at) => {
            for (p, o) in r.offsets() {
                start[p as usize] = o;
            }
            tracing::info!(epoch = r.epoch(), "restoring checkpoint");
            if at.is_some() {
                tracing::warn!(epoch = r.epoch(), "--start-at is ignored: a checkpoint is restored, and it says where each partition resumes");
            }
        }
        (None, Some(at)) => {
            start = kafka::offsets_for_time(admin, topic, partitions, at)?;
            tracing::info!(at_ms = at, ?start, "starting at a time: each partition at its first record stamped at or after it");
        }
        (None, None) => {}
    }
    let mut ends: Option<Vec<i64>> = None;
    if opts.until_end {
        ends = Some(kafka::end_offsets(admin, topic, partitions)?);
    }
    if let Some(until) = opts.until {
        let at = kafka::offsets_for_time(admin, topic, partitions, until)?;
        ends = Some(match ends {
            Some(e) => e.into_iter().zip(at).map(|(a, b)| a.min(b)).collect(),
            None => at,
        });
    }
    if let Some(ends) = ends {
        *end.lock().unwrap_or_else(|e| e.into_inner()) = Some(ends.into_iter().enumerate().map(|(p, o)| (p as u32, o)).collect());
    }
    Ok((partitions, start, restored))
}

/// A job started from a savepoint writes checkpoints of its own shape: the
/// checkpoint directory must not hold another job's.
fn own_history(dir: &std::path::Path, fingerprint: &str) -> Result<()> {
    if let Some((_, path)) = crate::checkpoint::format::list_manifests(dir)?.first() {
        let m = crate::checkpoint::format::read_manifest(path)?;
        if m.fingerprint != fingerprint {
            bail!(
                "--checkpoint-dir {} holds checkpoints of another job definition (the one before the upgrade?); \
                 a job started from a savepoint needs a checkpoint directory of its own: give it an empty one",
                dir.display()
            );
        }
    }
    Ok(())
}

/// The drift monitor of a job with `[monitor]`, writing to its `drift` topic.
fn start_monitor(
    job: &JobSpec,
    opts: &RunOptions,
    metrics: &Arc<Metrics>,
    avro: Option<Arc<crate::output::avro::AvroOutputs>>,
) -> Result<Option<crate::monitor::Monitor>> {
    Ok(match &job.monitor {
        Some(m) => {
            let sink = match &job.sinks.drift {
                Some(topic) => Some(Arc::new(crate::kafka::drift_sink::KafkaDriftSink::new(&opts.kafka, topic, avro)?) as Arc<dyn crate::monitor::DriftSink>),
                None => None,
            };
            Some(crate::monitor::start(m, sink, metrics.clone(), job.model.online.is_some())?)
        }
        None => None,
    })
}

/// The learner of a job trained online: labels read from the checkpoint's
/// positions (or the group's), state from the checkpoint.
fn start_learner(
    job: &JobSpec,
    opts: &RunOptions,
    admin: &rdkafka::consumer::BaseConsumer,
    restored: Option<&Restored>,
    monitor: Option<&crate::monitor::Monitor>,
    metrics: &Arc<Metrics>,
) -> Result<Option<crate::learner::Learner>> {
    Ok(match &job.model.online {
        Some(_) if opts.cluster.addresses.len() > 1 => {
            bail!("online training runs in one process for now (its learner owns the model): use -w for more workers, not -n")
        }
        Some(online) => {
            let topic = online.labels.topic.clone();
            let parts = kafka::partition_count(admin, &topic, Duration::from_secs(30)).with_context(|| format!("the labels topic `{topic}`"))?;
            let resume_from = match restored {
                Some(r) => r.learner()?,
                None => None,
            };
            let mut start = {
                let committed = kafka::committed_offsets(admin, &topic, parts)?;
                kafka::start_offsets(admin, &topic, parts, &committed)?
            };
            // labels are read again from where the checkpoint's learner state stood
            for (p, o) in resume_from.iter().flat_map(|c| c.label_positions.iter()) {
                if let Some(slot) = start.get_mut(*p as usize) {
                    *slot = *o;
                }
            }
            let (kafka_opts, group, m) = (opts.kafka.clone(), opts.group_id.clone(), metrics.clone());
            let labels: crate::learner::service::LabelSourceFactory = Box::new(move || {
                let source = KafkaSource::new(&kafka_opts, &group, &topic, (0..parts).collect(), &start, Default::default(), &m)?;
                Ok(Box::new(source) as Box<dyn crate::source::RecordSource>)
            });
            let resume = crate::learner::service::Resume { checkpointing: opts.checkpoint_dir.is_some(), from: resume_from, sources: opts.cluster.workers };
            let labeled = monitor.map(|m| m.labeled());
            Some(crate::learner::start(online.clone(), crate::learner::ModelNames::of(job), metrics.clone(), labels, resume, labeled)?)
        }
        None => None,
    })
}

/// The first error of the workers, if any.
fn joined(results: Vec<std::result::Result<Result<()>, String>>) -> Option<anyhow::Error> {
    let mut failure = None;
    for result in results {
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failure = failure.or(Some(e)),
            Err(e) => failure = failure.or(Some(anyhow!("a worker failed: {e}"))),
        }
    }
    failure
}
