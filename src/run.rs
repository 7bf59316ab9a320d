//! Running a job against a Kafka cluster: discovers partitions and start offsets,
//! starts timely workers (threads, or processes in timely's cluster mode), and on
//! the way out flushes the producer and only then commits input offsets, so that a
//! committed offset always has its outputs delivered (at-least-once).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use timely::{CommunicationConfig, WorkerConfig};

use crate::kafka::sink::KafkaSink;
use crate::kafka::source::{EndOffsets, KafkaSource};
use crate::kafka::{self, KafkaOptions};
use crate::metrics::Metrics;
use crate::pipeline::{run_worker, Control, WorkerContext};
use crate::source::owned_partitions;
use crate::spec::JobSpec;

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
    fn timely_config(&self) -> timely::Config {
        let communication = if self.addresses.len() > 1 {
            CommunicationConfig::Cluster {
                threads: self.workers,
                process: self.process,
                addresses: self.addresses.clone(),
                report: false,
                zerocopy: false,
            }
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
}

/// What a finished run did.
#[derive(Debug, Default)]
pub struct RunSummary {
    pub partitions: u32,
    pub committed: Vec<(u32, i64)>,
}

/// Runs `job` until the input ends (`until_end`, or end offsets set on `end`) or
/// shutdown is requested on `control`.
pub fn run_job(job: JobSpec, opts: &RunOptions, metrics: Arc<Metrics>, control: Arc<Control>, end: EndOffsets) -> Result<RunSummary> {
    let admin = opts.kafka.admin_consumer(&opts.group_id)?;
    let topic = job.source.topic.clone();
    let partitions = kafka::partition_count(&admin, &topic, Duration::from_secs(30))?;
    let start = kafka::start_offsets(&admin, &topic, partitions)?;
    if opts.until_end {
        let ends = kafka::end_offsets(&admin, &topic, partitions)?;
        *end.lock().unwrap_or_else(|e| e.into_inner()) = Some(ends.into_iter().enumerate().map(|(p, o)| (p as u32, o)).collect());
    }
    tracing::info!(%topic, partitions, ?start, "starting the job");

    let sink = Arc::new(KafkaSink::new(&opts.kafka, &job.sinks.scores, &job.sinks.dlq, metrics.clone())?);
    let ctx = Arc::new(WorkerContext { job: Arc::new(job), sink: sink.clone(), metrics: metrics.clone(), control: control.clone() });
    metrics.workers.set(opts.cluster.workers as i64);
    let kafka_opts = opts.kafka.clone();
    let group = opts.group_id.clone();
    let input_topic = topic.clone();
    let guards = timely::execute(opts.cluster.timely_config(), move |worker| {
        let owned = owned_partitions(partitions, worker.index(), worker.peers());
        let source = KafkaSource::new(&kafka_opts, &group, &topic, owned, &start, end.clone());
        match source {
            Ok(source) => run_worker(worker, &ctx, Box::new(source)),
            Err(e) => {
                tracing::error!(error = %e, "worker cannot start its source");
                ctx.control.request_shutdown();
            }
        }
    })
    .map_err(|e| anyhow!("starting timely workers: {e}"))?;
    for result in guards.join() {
        result.map_err(|e| anyhow!("a worker failed: {e}"))?;
    }
    // Outputs first, offsets second: a committed offset has its outputs delivered.
    sink.flush(Duration::from_secs(60))?;
    let failed = metrics.producer_errors.get();
    if failed > 0 {
        bail!("{failed} output records were not delivered; input offsets are not committed");
    }
    let committed = control.positions();
    kafka::commit_positions(&admin, &input_topic, &committed)?;
    Ok(RunSummary { partitions, committed })
}
