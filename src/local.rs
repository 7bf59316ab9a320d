//! Running a job on in-memory input with any number of worker threads: the same
//! dataflow as a Kafka job, for tests, benchmarks and examples.

use std::sync::Arc;

use anyhow::{anyhow, Result};

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
    let ctx = Arc::new(WorkerContext::local(Arc::new(job.clone()), sink, metrics, Control::new()));
    let input = input.clone();
    let topic = job.source.topic.clone();
    let config = if workers > 1 { timely::Config::process(workers) } else { timely::Config::thread() };
    let guards = timely::execute(config, move |worker| {
        let source = MemorySource::new(&topic, &input, worker.index(), worker.peers());
        run_worker(worker, &ctx, Box::new(source))
    })
    .map_err(|e| anyhow!("starting workers: {e}"))?;
    for r in guards.join() {
        r.map_err(|e| anyhow!("a worker failed: {e}"))??;
    }
    Ok(())
}
