//! Running a job on in-memory input with any number of worker threads: the same
//! dataflow as a Kafka job, for tests, benchmarks and examples.

use std::sync::Arc;

use anyhow::{anyhow, Result};

use crate::learner::service::LabelSourceFactory;
use crate::learner::LearnerSummary;
use crate::metrics::Metrics;
use crate::output::OutputSink;
use crate::pipeline::{run_worker, Control, WorkerContext};
use crate::source::MemorySource;
use crate::spec::JobSpec;

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
    let mut context = WorkerContext::local(Arc::new(job.clone()), sink, metrics.clone(), Control::new());
    let learner = match &job.model.online {
        Some(online) => {
            let (topic, data) = (online.labels.topic.clone(), labels.clone());
            let source: LabelSourceFactory = Box::new(move || Ok(Box::new(MemorySource::new(&topic, &data, 0, 1)) as Box<dyn crate::source::RecordSource>));
            Some(crate::learner::start(online.clone(), crate::learner::ModelNames::of(job), metrics, source, Default::default())?)
        }
        None => None,
    };
    context.learner = learner.as_ref().map(|l| l.link.clone());
    let ctx = Arc::new(context);
    let input = input.clone();
    let topic = job.source.topic.clone();
    let config = if workers > 1 { timely::Config::process(workers) } else { timely::Config::thread() };
    let guards = timely::execute(config, move |worker| {
        let source = MemorySource::new(&topic, &input, worker.index(), worker.peers());
        run_worker(worker, &ctx, Box::new(source))
    })
    .map_err(|e| anyhow!("starting workers: {e}"))?;
    let results = guards.join();
    let learned = learner.map(|l| l.finish()).transpose()?;
    for r in results {
        r.map_err(|e| anyhow!("a worker failed: {e}"))??;
    }
    Ok(learned)
}
