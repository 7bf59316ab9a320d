//! Running a job on in-memory input with any number of worker threads: the same
//! dataflow as a Kafka job, for tests, benchmarks and examples.

use std::sync::Arc;

use anyhow::{anyhow, bail, Result};

use crate::learner::service::LabelSourceFactory;
use crate::learner::LearnerSummary;
use crate::metrics::Metrics;
use crate::output::OutputSink;
use crate::pipeline::{run_worker, WorkerContext};
use crate::source::{MemorySource, RecordSource};
use crate::spec::JobSpec;
use crate::types::Control;

/// One in-memory topic: `partitions[p]` holds partition `p`'s payloads in offset order
/// (`None` is a record without payload).
pub type MemoryTopic = Vec<Arc<Vec<Option<Vec<u8>>>>>;

/// Runs `job` over `input` with `workers` threads until the input is exhausted.
pub fn run_local(job: &JobSpec, input: &MemoryTopic, workers: usize, sink: Arc<dyn OutputSink>, metrics: Arc<Metrics>) -> Result<()> {
    run_local_with_labels(job, input, &Vec::new(), workers, sink, metrics).map(|_| ())
}

/// [`run_local`] for a job that trains online: `labels` is the labels topic. The
/// learner reads it while the workers score, and finishes after them.
pub fn run_local_with_labels(
    job: &JobSpec,
    input: &MemoryTopic,
    labels: &MemoryTopic,
    workers: usize,
    sink: Arc<dyn OutputSink>,
    metrics: Arc<Metrics>,
) -> Result<Option<LearnerSummary>> {
    run_local_monitored(job, input, labels, workers, sink, metrics, None).map(|(learned, _)| learned)
}

/// [`run_local_with_labels`] that also returns what the drift monitor found
/// (`[monitor]` in the job); its records go to `drift` when given.
pub fn run_local_monitored(
    job: &JobSpec,
    input: &MemoryTopic,
    labels: &MemoryTopic,
    workers: usize,
    sink: Arc<dyn OutputSink>,
    metrics: Arc<Metrics>,
    drift: Option<Arc<dyn crate::monitor::DriftSink>>,
) -> Result<(Option<LearnerSummary>, Option<crate::monitor::MonitorSummary>)> {
    let (events, labels) = memory_sources(job, input, labels);
    run_local_sources(job, events, labels, workers, sink, metrics, drift)
}

/// Each worker's share of `input`, and the learner's reader of `labels`.
fn memory_sources(job: &JobSpec, input: &MemoryTopic, labels: &MemoryTopic) -> (EventSources, LabelSourceFactory) {
    let (topic, input) = (job.source.topic.clone(), input.clone());
    let events: EventSources = Arc::new(move |index, peers| Box::new(MemorySource::new(&topic, &input, index, peers)) as Box<dyn RecordSource>);
    let label_topic = job.model.online.as_ref().map(|o| o.labels.topic.clone()).unwrap_or_default();
    let data = labels.clone();
    let labels: LabelSourceFactory = Box::new(move || Ok(Box::new(MemorySource::new(&label_topic, &data, 0, 1)) as Box<dyn RecordSource>));
    (events, labels)
}

/// [`run_local`] for a job with lookup features: `tables` are its `[[table]]`s
/// (e.g. [`crate::table::SharedTable::from_records`]), read as they stand.
pub fn run_local_with_tables(
    job: &JobSpec,
    input: &MemoryTopic,
    tables: Vec<Arc<crate::table::SharedTable>>,
    workers: usize,
    sink: Arc<dyn OutputSink>,
    metrics: Arc<Metrics>,
) -> Result<()> {
    let (events, labels) = memory_sources(job, input, &Vec::new());
    run_local_inner(job, events, labels, workers, sink, metrics, Side { drift: None, tables }).map(|_| ())
}

/// What a local run reads and writes beside its topics.
struct Side {
    drift: Option<Arc<dyn crate::monitor::DriftSink>>,
    tables: Vec<Arc<crate::table::SharedTable>>,
}

/// Each worker's event source, from (worker index, peers).
pub type EventSources = Arc<dyn Fn(usize, usize) -> Box<dyn RecordSource> + Send + Sync>;

/// [`run_local_monitored`] over any bounded sources (e.g. ones that hand out their
/// records over time, to compare a paced run with a burst).
pub fn run_local_sources(
    job: &JobSpec,
    events: EventSources,
    labels: LabelSourceFactory,
    workers: usize,
    sink: Arc<dyn OutputSink>,
    metrics: Arc<Metrics>,
    drift: Option<Arc<dyn crate::monitor::DriftSink>>,
) -> Result<(Option<LearnerSummary>, Option<crate::monitor::MonitorSummary>)> {
    run_local_inner(job, events, labels, workers, sink, metrics, Side { drift, tables: Vec::new() })
}

fn run_local_inner(
    job: &JobSpec,
    events: EventSources,
    labels: LabelSourceFactory,
    workers: usize,
    sink: Arc<dyn OutputSink>,
    metrics: Arc<Metrics>,
    Side { drift, tables }: Side,
) -> Result<(Option<LearnerSummary>, Option<crate::monitor::MonitorSummary>)> {
    if let Some(why) = job.graph_only() {
        bail!("job `{}` {why}: run it as a graph (`vigil::graph::job::job_graph` on `LocalRun`)", job.name);
    }
    let mut job = job.clone();
    if let Some(o) = job.model.online.as_mut() {
        o.resolve_consistency(true, false);
    }
    let job = &job;
    let mut context = WorkerContext::local(Arc::new(job.clone()), sink, metrics.clone(), Control::new());
    // in the job's order, found by name
    for spec in &job.tables {
        let Some(table) = tables.iter().find(|t| t.name() == spec.name) else {
            bail!("job `{}` looks up table `{}`, which was not given", job.name, spec.name);
        };
        context.tables.push(table.clone());
    }
    let monitor = job.monitor.as_ref().map(|m| crate::monitor::start(m, drift, metrics.clone(), job.model.online.is_some())).transpose()?;
    let learner = match &job.model.online {
        Some(online) => {
            let labeled = monitor.as_ref().map(|m| m.labeled());
            let resume = crate::learner::service::Resume { sources: workers, ..Default::default() };
            Some(crate::learner::start(online.clone(), crate::learner::ModelNames::of(job), metrics, labels, resume, labeled)?)
        }
        None => None,
    };
    context.learner = learner.as_ref().map(|l| l.link.clone());
    if let (Some(m), Some(l)) = (&monitor, &learner) {
        m.watch_model(l.link.model.clone());
    }
    context.monitor = monitor.as_ref().map(|m| m.link.clone());
    let ctx = Arc::new(context);
    let config = if workers > 1 { timely::Config::process(workers) } else { timely::Config::thread() };
    let guards = timely::execute(config, move |worker| {
        let source = events(worker.index(), worker.peers());
        run_worker(worker, &ctx, source)
    })
    .map_err(|e| anyhow!("starting workers: {e}"))?;
    let results = guards.join();
    let learned = learner.map(|l| l.finish()).transpose()?;
    let monitored = monitor.map(|m| m.finish()).transpose()?;
    for r in results {
        r.map_err(|e| anyhow!("a worker failed: {e}"))??;
    }
    Ok((learned, monitored))
}
