//! Running a graph on in-memory topics: any number of worker threads, or several
//! timely processes on loopback (inside this one OS process, each with its own
//! threads, exchanging records over TCP as a cluster would).
//!
//! The graph is built by a closure that runs once per worker, as in timely: it
//! must build the same graph on every worker. Outputs, dead letters and per-source
//! counts are gathered in [`Outputs`].

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context, Result};
use timely::{CommunicationConfig, WorkerConfig};

use super::checkpoint::{Checkpoints, Part};
use super::online::OnlineModel;
use super::stream::Shared;
use super::GraphBuilder;
use crate::learner::service::LabelSourceFactory;
use crate::learner::{Learner, LearnerLink, LearnerSummary};
use crate::monitor::interner::Interner;
use crate::monitor::{DriftEmitter, DriftSink, LabeledMonitors};
use crate::types::Control;

/// One in-memory topic: `partitions[p]` holds partition `p`'s payloads in offset
/// order (`None`: a record without payload).
pub type MemoryTopic = Vec<Arc<Vec<Option<Vec<u8>>>>>;

/// A record a sink wrote: its epoch, key, event time and JSON value (`None`: a
/// tombstone, from upsert sinks).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SinkRecord {
    pub epoch: u64,
    pub key: String,
    pub time_ms: i64,
    pub value: Option<String>,
}

/// A record that did not become an event.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetter {
    pub topic: String,
    pub partition: u32,
    pub offset: i64,
    pub reason: &'static str,
    pub detail: String,
    pub payload: Option<Vec<u8>>,
}

/// What a source read: every record is accepted or rejected (with a reason).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceCounts {
    pub read: u64,
    pub accepted: u64,
    pub rejected: BTreeMap<&'static str, u64>,
}

impl SourceCounts {
    fn add(&mut self, other: SourceCounts) {
        self.read += other.read;
        self.accepted += other.accepted;
        for (reason, n) in other.rejected {
            *self.rejected.entry(reason).or_default() += n;
        }
    }
    /// Records rejected, for any reason.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

/// Where a run's sources read.
pub(crate) enum Inputs {
    /// In-memory topics; epoch `e` holds offsets `[e * n, (e + 1) * n)`.
    Memory { topics: HashMap<String, MemoryTopic>, values: HashMap<String, Arc<dyn std::any::Any + Send + Sync>>, epoch_records: usize },
    /// An external system's topics (Kafka), in epochs of its clock.
    Connector(Arc<dyn super::connector::Connector>),
}

/// An online model's learner, and the ids of its fairness groups (the
/// scorers' and its monitor's).
struct RunningLearner {
    learner: Learner,
    groups: Option<(String, Arc<Interner>)>,
}

/// The fairness attribute and its value ids, shared by scorers and learner.
pub(crate) type Groups = Option<(String, Arc<Interner>)>;

/// Where the workers of a run find their inputs and leave their outputs.
pub struct Collector {
    pub(crate) inputs: Inputs,
    sinks: Mutex<BTreeMap<String, Vec<SinkRecord>>>,
    /// Records written per sink (kept or not).
    written: Mutex<BTreeMap<String, u64>>,
    /// Whether in-memory sinks keep their records (else only count them).
    pub(crate) keep_sinks: bool,
    dead: Mutex<Vec<DeadLetter>>,
    counts: Mutex<BTreeMap<String, SourceCounts>>,
    warnings: Mutex<Vec<String>>,
    pub(crate) checkpoints: Option<Arc<Checkpoints>>,
    /// A simulated crash: sources stop after this epoch, and the workers stop
    /// dead once it is processed (and checkpointed, if it ends a checkpoint).
    crash_after: Option<u64>,
    crashed: AtomicBool,
    /// This process's index in its cluster.
    pub(crate) process: usize,
    /// Processes with a collector of their own, each running a replica of
    /// every online model's learner (1: every worker shares this collector).
    pub(crate) replicas: usize,
    /// The online learners, one per model name, started by the first worker
    /// that builds the model.
    learners: Mutex<BTreeMap<String, RunningLearner>>,
    /// The metrics of a run in memory.
    memory_metrics: std::sync::OnceLock<Arc<crate::metrics::Metrics>>,
}

impl Collector {
    pub(crate) fn new(inputs: Inputs, checkpoints: Option<Arc<Checkpoints>>) -> Self {
        Collector {
            inputs,
            sinks: Mutex::default(),
            written: Mutex::default(),
            keep_sinks: true,
            dead: Mutex::default(),
            counts: Mutex::default(),
            warnings: Mutex::default(),
            checkpoints,
            crash_after: None,
            crashed: AtomicBool::new(false),
            process: 0,
            replicas: 1,
            learners: Mutex::default(),
            memory_metrics: std::sync::OnceLock::new(),
        }
    }
    /// The learner of `model` (started on first use), for `scorers` workers,
    /// with its labeled monitors (`OnlineModel::monitored`) writing their
    /// findings to their sink.
    pub(crate) fn learner(self: &Arc<Self>, model: &OnlineModel, scorers: usize) -> Result<(LearnerLink, Groups)> {
        let mut learners = self.learners.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = learners.get(&model.name) {
            return Ok((l.learner.link.clone(), l.groups.clone()));
        }
        let mut spec = model.spec.clone();
        let bounded = match &self.inputs {
            Inputs::Memory { .. } => true,
            Inputs::Connector(io) => io.bounded(),
        };
        spec.resolve_consistency(bounded, self.checkpoints.is_some());
        spec.check()?;
        // the learner's state in the checkpoint restored, and where its labels stood
        let from = match self.checkpoints.as_ref().and_then(|c| c.restored.as_ref()) {
            Some(r) => r.learner(&model.name)?,
            None => None,
        };
        let positions = from.as_ref().map(|c| c.label_positions.clone()).unwrap_or_default();
        let topic = spec.labels.topic.clone();
        let labels: LabelSourceFactory = match &self.inputs {
            Inputs::Memory { topics, .. } => {
                let data = topics.get(&topic).cloned().ok_or_else(|| anyhow!("the runner has no input for the labels topic `{topic}`"))?;
                Box::new(move || {
                    Ok(Box::new(crate::source::MemorySource::new(&topic, &data, 0, 1).starting_at(&positions)) as Box<dyn crate::source::RecordSource>)
                })
            }
            Inputs::Connector(io) => io.label_source(&topic, &positions)?,
        };
        let metrics = self.metrics();
        let (labeled, groups) = match &model.watch {
            Some((monitor, sink)) => {
                // in a cluster, process 0's replica writes the findings
                let sink = sink
                    .as_ref()
                    .filter(|_| self.process == 0)
                    .map(|name| Arc::new(SinkOfDrift { collector: Arc::downgrade(self), name: name.clone() }) as Arc<dyn DriftSink>);
                let emitter = DriftEmitter::new(sink, metrics.clone(), monitor.spec.patience);
                let groups = monitor.spec.fairness.as_ref().map(|f| (f.attribute.clone(), Interner::new()));
                (Some(LabeledMonitors::new(monitor, emitter, groups.as_ref().map(|g| g.1.clone()))), groups)
            }
            None => (None, None),
        };
        let resume = crate::learner::service::Resume { sources: scorers, checkpointing: self.checkpoints.is_some(), from };
        let learner = crate::learner::start(spec, model.names(), metrics, labels, resume, labeled)?;
        let link = learner.link.clone();
        if let (Some(c), Some(requests)) = (&self.checkpoints, &learner.checkpoints) {
            c.send(Part::Learner { name: model.name.clone(), requests: requests.clone() });
        }
        learners.insert(model.name.clone(), RunningLearner { learner, groups: groups.clone() });
        Ok((link, groups))
    }
    /// The model a learner of this run serves (a monitor re-scores with it).
    pub(crate) fn learner_model(&self, name: &str) -> Option<Arc<crate::model::ModelHandle>> {
        self.learners.lock().unwrap_or_else(|e| e.into_inner()).get(name).map(|l| l.learner.link.model.clone())
    }
    /// The run's Prometheus metrics (a run in memory: metrics of its own).
    pub(crate) fn metrics(&self) -> Arc<crate::metrics::Metrics> {
        match &self.inputs {
            Inputs::Connector(io) => io.metrics(),
            Inputs::Memory { .. } => self.memory_metrics.get_or_init(crate::metrics::Metrics::new).clone(),
        }
    }
    /// The run's control, for a run on an external system (health, shutdown).
    pub(crate) fn control(&self) -> Option<&Control> {
        match &self.inputs {
            Inputs::Connector(io) => Some(io.control()),
            Inputs::Memory { .. } => None,
        }
    }
    /// Whether a source should crash (the run stop dead) instead of reading `epoch`.
    pub(crate) fn crash_before(&self, epoch: u64) -> bool {
        let crash = self.crash_after.is_some_and(|c| epoch > c);
        if crash {
            self.crashed.store(true, Ordering::SeqCst);
        }
        crash
    }
    /// Whether sinks only count their records (in memory, `count_only`).
    pub(crate) fn count_only(&self) -> bool {
        !self.keep_sinks && matches!(self.inputs, Inputs::Memory { .. })
    }
    /// `n` records of `sink` written and dropped.
    pub(crate) fn count(&self, sink: &str, n: u64) {
        *self.written.lock().unwrap_or_else(|e| e.into_inner()).entry(sink.to_owned()).or_default() += n;
    }
    /// Sink records: to the sink's topic (Kafka runs) or kept (in memory).
    pub(crate) fn write(&self, sink: &str, records: &mut Vec<SinkRecord>) {
        if let Inputs::Connector(io) = &self.inputs {
            io.produce(sink, records);
            return;
        }
        *self.written.lock().unwrap_or_else(|e| e.into_inner()).entry(sink.to_owned()).or_default() += records.len() as u64;
        if !self.keep_sinks {
            records.clear();
            return;
        }
        let mut sinks = self.sinks.lock().unwrap_or_else(|e| e.into_inner());
        sinks.entry(sink.to_owned()).or_default().append(records);
    }
    /// A source's counts and rejections of records read in `epoch`: dead
    /// letters go to the DLQ topic (Kafka runs, in that epoch's output) or are
    /// kept (in memory).
    pub(crate) fn record_source(&self, topic: &str, counts: SourceCounts, dead: Vec<DeadLetter>, epoch: u64) {
        if counts.read > 0 {
            self.counts.lock().unwrap_or_else(|e| e.into_inner()).entry(topic.to_owned()).or_default().add(counts);
        }
        if dead.is_empty() {
            return;
        }
        if let Inputs::Connector(io) = &self.inputs {
            io.dead_letters(&dead, epoch);
            return;
        }
        self.dead.lock().unwrap_or_else(|e| e.into_inner()).extend(dead);
    }
    /// A misconfiguration found while running (named, logged once per message).
    pub(crate) fn warn(&self, message: String) {
        let mut w = self.warnings.lock().unwrap_or_else(|e| e.into_inner());
        if !w.contains(&message) {
            tracing::warn!("{message}");
            w.push(message);
        }
    }
}

/// Runs graphs on in-memory topics; see the module docs.
#[derive(Clone)]
pub struct LocalRun {
    workers: usize,
    processes: usize,
    topics: HashMap<String, MemoryTopic>,
    values: HashMap<String, Arc<dyn std::any::Any + Send + Sync>>,
    epoch_records: usize,
    checkpoints: Option<(PathBuf, u64)>,
    crash_after: Option<u64>,
    keep_sinks: bool,
}

impl LocalRun {
    /// `workers` threads in one process.
    pub fn new(workers: usize) -> Self {
        LocalRun {
            workers: workers.max(1),
            processes: 1,
            topics: HashMap::new(),
            values: HashMap::new(),
            epoch_records: 1024,
            checkpoints: None,
            crash_after: None,
            keep_sinks: true,
        }
    }
    /// `processes` timely processes on loopback, each with the workers of [`LocalRun::new`].
    pub fn processes(mut self, processes: usize) -> Self {
        self.processes = processes.max(1);
        self
    }
    /// A topic's partitions, each a list of payloads.
    pub fn topic(self, name: &str, partitions: Vec<Vec<Vec<u8>>>) -> Self {
        self.topic_with_gaps(name, partitions.into_iter().map(|p| p.into_iter().map(Some).collect()).collect())
    }
    /// [`LocalRun::topic`] where a record may have no payload (`None`).
    pub fn topic_with_gaps(mut self, name: &str, partitions: Vec<Vec<Option<Vec<u8>>>>) -> Self {
        self.topics.insert(name.to_owned(), partitions.into_iter().map(Arc::new).collect());
        self
    }
    /// Values of your type for [`super::GraphBuilder::source_values`], in
    /// partitions; a run moves them into its workers, so each run needs them
    /// given again (see [`super::values_source`]).
    pub fn values<T: Send + 'static>(mut self, name: &str, partitions: Vec<Vec<T>>) -> Self {
        self.values.insert(name.to_owned(), super::values_source::erase(partitions));
        self
    }
    /// The number of worker threads (per process).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// Sinks only count their records (`Outputs::written`), keeping none: for
    /// benchmarks, whose outputs would not fit or would cost what they measure.
    pub fn count_only(mut self) -> Self {
        self.keep_sinks = false;
        self
    }

    /// Records of each partition per epoch: epoch `e` holds offsets
    /// `[e * n, (e + 1) * n)` of every partition (default 1024).
    pub fn epoch_records(mut self, n: usize) -> Self {
        self.epoch_records = n.max(1);
        self
    }

    /// Checkpoints under `dir` at the end of every `every`-th epoch; a run
    /// resumes from the newest one there (see [`super::checkpoint`]).
    pub fn checkpoints(mut self, dir: &std::path::Path, every: u64) -> Self {
        self.checkpoints = Some((dir.to_owned(), every));
        self
    }
    /// Simulates a crash (for tests): the run stops dead, without draining,
    /// when a source would read past `epoch`.
    pub fn crash_after_epoch(mut self, epoch: u64) -> Self {
        self.crash_after = Some(epoch);
        self
    }

    /// Builds the graph with `build` on every worker and runs it to the end of the input.
    pub fn run<F>(&self, build: F) -> Result<Outputs>
    where
        F: Fn(&mut GraphBuilder<'_>) -> Result<()> + Send + Sync + 'static,
    {
        let (checkpoints, coordinator) = super::checkpoint::configure(&self.checkpoints, Default::default(), None)?;
        let mut collector =
            Collector::new(Inputs::Memory { topics: self.topics.clone(), values: self.values.clone(), epoch_records: self.epoch_records }, checkpoints);
        collector.crash_after = self.crash_after;
        collector.keep_sinks = self.keep_sinks;
        let mut outputs = run_processes(Arc::new(collector), self.configs()?, build);
        let written = super::checkpoint::finish(coordinator)?;
        if let Ok(o) = outputs.as_mut() {
            o.checkpoints = written;
        }
        outputs
    }
    fn configs(&self) -> Result<Vec<timely::Config>> {
        timely_configs(self.workers, self.processes)
    }
}

/// Runs `build`'s graph under each timely config (one per process, each on its
/// own thread) and gathers what the workers left in `collector`.
pub(crate) fn run_processes<F>(collector: Arc<Collector>, configs: Vec<timely::Config>, build: F) -> Result<Outputs>
where
    F: Fn(&mut GraphBuilder<'_>) -> Result<()> + Send + Sync + 'static,
{
    let build = Arc::new(build);
    let processes: Vec<_> = configs
        .into_iter()
        .map(|config| {
            let (collector, build) = (collector.clone(), build.clone());
            std::thread::spawn(move || -> Result<()> {
                let guards = timely::execute(config, move |worker| run_worker(worker, &collector, &*build)).map_err(|e| anyhow!("starting workers: {e}"))?;
                for r in guards.join() {
                    r.map_err(|e| anyhow!("a worker failed: {e}"))??;
                }
                Ok(())
            })
        })
        .collect();
    for p in processes {
        p.join().map_err(|_| anyhow!("a process panicked"))??;
    }
    // the checkpoints the workers completed have their learners' states
    if let Some(c) = &collector.checkpoints {
        c.flush();
    }
    // the learners first: their monitors' last findings go to the sinks
    let running = std::mem::take(&mut *collector.learners.lock().unwrap_or_else(|e| e.into_inner()));
    let mut learners = BTreeMap::new();
    for (name, l) in running {
        learners.insert(name.clone(), l.learner.finish().with_context(|| format!("the learner of `{name}`"))?);
    }
    let c = Arc::try_unwrap(collector).map_err(|_| anyhow!("workers still hold the outputs"))?;
    let mut sinks = c.sinks.into_inner().unwrap_or_else(|e| e.into_inner());
    sinks.values_mut().for_each(|v| v.sort());
    let mut dead = c.dead.into_inner().unwrap_or_else(|e| e.into_inner());
    dead.sort_by(|a, b| (&a.topic, a.partition, a.offset).cmp(&(&b.topic, b.partition, b.offset)));
    let sources = c.counts.into_inner().unwrap_or_else(|e| e.into_inner());
    let warnings = c.warnings.into_inner().unwrap_or_else(|e| e.into_inner());
    let written = c.written.into_inner().unwrap_or_else(|e| e.into_inner());
    Ok(Outputs { sinks, written, dead, sources, warnings, checkpoints: Vec::new(), learners })
}

/// A sink of the run as the destination of a learner's drift findings (the
/// `drift` contract: key `kind/name`, the record as JSON).
struct SinkOfDrift {
    collector: std::sync::Weak<Collector>,
    name: String,
}

impl DriftSink for SinkOfDrift {
    fn send(&self, key: &str, payload: &[u8]) {
        if let Some(c) = self.collector.upgrade() {
            let value = Some(String::from_utf8_lossy(payload).into_owned());
            c.write(&self.name, &mut vec![SinkRecord { epoch: 0, key: key.to_owned(), time_ms: 0, value }]);
        }
    }
}

/// Timely configs for `processes` processes of `workers` threads on loopback.
pub(crate) fn timely_configs(workers: usize, processes: usize) -> Result<Vec<timely::Config>> {
    if processes == 1 {
        let communication = if workers > 1 { CommunicationConfig::Process(workers) } else { CommunicationConfig::Thread };
        return Ok(vec![timely::Config { communication, worker: WorkerConfig::default() }]);
    }
    // free loopback ports for the processes to meet on
    let listeners: Vec<_> = (0..processes).map(|_| std::net::TcpListener::bind("127.0.0.1:0")).collect::<Result<_, _>>()?;
    let addresses: Vec<String> = listeners.iter().map(|l| l.local_addr().map(|a| a.to_string())).collect::<Result<_, _>>()?;
    drop(listeners);
    Ok((0..processes)
        .map(|process| timely::Config {
            communication: CommunicationConfig::Cluster { threads: workers, process, addresses: addresses.clone(), report: false, zerocopy: false },
            worker: WorkerConfig::default(),
        })
        .collect())
}

fn run_worker<F>(worker: &mut timely::worker::Worker, collector: &Arc<Collector>, build: &F) -> Result<()>
where
    F: Fn(&mut GraphBuilder<'_>) -> Result<()>,
{
    let shared = Rc::new(Shared {
        collector: collector.clone(),
        names: Default::default(),
        unsaved: Default::default(),
        errors: Default::default(),
        sources: Default::default(),
        online: Default::default(),
        worker: worker.index(),
        peers: worker.peers(),
        sink_frontiers: Default::default(),
    });
    let built = worker.dataflow::<u64, _, _>(|scope| {
        let mut g = GraphBuilder { scope, shared: shared.clone(), sources: 0, quality: Vec::new() };
        build(&mut g)
    });
    let mut errors = shared.errors.borrow().clone();
    if built.is_err() {
        drop_all(worker);
    }
    built?;
    let operators = shared.names.borrow().clone();
    if let Some(c) = &collector.checkpoints {
        if let Some(r) = &c.restored {
            let learners: Vec<String> = collector.learners.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect();
            if let Err(e) = r.check(&operators, &learners) {
                errors.push(format!("{e:#}"));
            }
        }
    }
    if !errors.is_empty() {
        // nothing of an invalid graph runs (timely would drain what was built)
        drop_all(worker);
        bail!("the graph is not valid: {}", errors.join("; "));
    }
    if let Some(c) = &collector.checkpoints {
        let sources = shared.sources.borrow().clone();
        c.send(Part::Built { worker: worker.index(), peers: worker.peers(), operators, sources });
    }
    // how far the sinks have written, for the checkpoints (see `super::coordinator`)
    let mut drained = None;
    let mut report_drained = |shared: &Shared| {
        let Some(c) = collector.checkpoints.as_ref() else { return };
        let frontier = shared.sinks_frontier();
        if drained != Some(frontier) {
            drained = Some(frontier);
            c.send(Part::Drained { worker: shared.worker, frontier });
        }
    };
    report_drained(&shared);
    let health = collector.control().map(|c| c.health().worker(worker.index()));
    if let Some(h) = &health {
        h.ready();
    }
    let mut crash_deadline = None;
    while worker.has_dataflows() {
        if collector.crashed.load(Ordering::SeqCst) {
            // a simulated crash right after epoch `crash_after`: once that epoch's
            // checkpoint (if it has one) is written, drop everything in flight
            let deadline = *crash_deadline.get_or_insert_with(|| std::time::Instant::now() + std::time::Duration::from_secs(30));
            let waiting = collector.checkpoints.as_ref().zip(collector.crash_after).is_some_and(|(c, after)| !c.written_through(after));
            if !waiting || std::time::Instant::now() > deadline {
                drop_all(worker);
                if let Some(h) = &health {
                    h.ended();
                }
                return Ok(());
            }
        }
        worker.step_or_park(Some(std::time::Duration::from_millis(20)));
        report_drained(&shared);
        if let Some(h) = &health {
            h.beat();
        }
    }
    // every dataflow ran to its end: the sinks wrote everything
    shared.sink_frontiers.borrow().iter().for_each(|c| c.set(u64::MAX));
    report_drained(&shared);
    if let Some(h) = &health {
        h.ended();
    }
    Ok(())
}

fn drop_all(worker: &mut timely::worker::Worker) {
    for d in worker.installed_dataflows() {
        worker.drop_dataflow(d);
    }
}

/// What a run left: sink records, dead letters and per-source counts.
#[derive(Debug)]
pub struct Outputs {
    sinks: BTreeMap<String, Vec<SinkRecord>>,
    /// Records written per sink (also with [`LocalRun::count_only`]).
    pub written: BTreeMap<String, u64>,
    /// Rejected records, by (topic, partition, offset).
    pub dead: Vec<DeadLetter>,
    /// Per source topic: records read, accepted and rejected by reason.
    pub sources: BTreeMap<String, SourceCounts>,
    /// Misconfigurations found while running.
    pub warnings: Vec<String>,
    /// The epochs checkpointed during the run.
    pub checkpoints: Vec<u64>,
    /// What each online model's learner did (labels joined, trained, ...).
    pub learners: BTreeMap<String, LearnerSummary>,
}

impl Outputs {
    /// The records of sink `name`, sorted by (epoch, key, time, value): the same
    /// for any worker count where the graph's outputs are deterministic.
    pub fn sink(&self, name: &str) -> &[SinkRecord] {
        self.sinks.get(name).map_or(&[], |v| v.as_slice())
    }
    /// The JSON values of sink `name` (tombstones as `null`), sorted.
    pub fn values(&self, name: &str) -> Vec<String> {
        let mut v: Vec<String> = self.sink(name).iter().map(|r| r.value.clone().unwrap_or_else(|| "null".into())).collect();
        v.sort();
        v
    }
    /// Names of the sinks that wrote anything.
    pub fn sink_names(&self) -> Vec<&str> {
        self.sinks.keys().map(String::as_str).collect()
    }
}
