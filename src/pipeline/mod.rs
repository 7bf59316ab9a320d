//! The job as a timely dataflow, one instance per worker:
//!
//! ```text
//! source (owned partitions) -> decode/validate/watermark -> exchange by key
//!     -> features as of each event -> score -> sink
//! ```
//!
//! * Ingest runs on the worker that owns the partition, so every per-partition
//!   decision (accepted, late, bad timestamp) follows offset order.
//! * Events move to the worker owning their key's hash. Timely channels are FIFO per
//!   (sender, receiver) pair and the scoring operator reads its input in arrival
//!   order, so each key's events are scored in partition offset order: features do
//!   not depend on the number of workers or processes.
//! * Nothing waits for the watermark: an event is scored as soon as every earlier
//!   checkpoint epoch is complete, normally in the activation that receives it.
//! * Files: `ingest.rs` (the source operator), `score.rs` (the scoring operator's
//!   epochs and checkpoint reports), `scorer.rs` (what a batch does: features,
//!   scores, outputs).
//! * The timely time of a record is its checkpoint epoch (see `epoch`): sources
//!   follow the process's epoch clock and report their cut at every step; the
//!   scoring operator processes epochs in order and reports its state each time its
//!   input frontier passes an epoch, so a checkpoint is exactly "every record of
//!   epochs up to e, and none later".
//! * Rejected records go to the DLQ from the ingest worker; scores from the scoring
//!   worker. Both through the process's [`OutputSink`], tagged with their epoch so
//!   that offsets are committed only after their outputs are delivered.

use std::sync::mpsc::Sender;
use std::sync::Arc;

use timely::worker::Worker;

use crate::checkpoint::restore::Restored;
use crate::checkpoint::Report;
use crate::epoch::EpochClock;
use crate::metrics::Metrics;
use crate::output::OutputSink;
use crate::source::RecordSource;
use crate::spec::JobSpec;
use crate::store::FeatureStore;
use crate::types::Control;

mod ingest;
mod score;
mod scorer;

/// Everything a worker needs to run the job.
pub struct WorkerContext {
    pub job: Arc<JobSpec>,
    pub sink: Arc<dyn OutputSink>,
    pub metrics: Arc<Metrics>,
    pub control: Arc<Control>,
    pub epochs: Arc<EpochClock>,
    /// Where cuts and states go (the checkpoint coordinator); none for local runs.
    pub reports: Option<Sender<Report>>,
    /// Whether scoring operators encode their state at every epoch.
    pub snapshot_state: bool,
    /// The checkpoint this run resumes from.
    pub restored: Option<Arc<Restored>>,
    /// Where the latest feature vector of every key is published for lookups.
    pub store: Option<Arc<FeatureStore>>,
    /// The online learner (model snapshots in, pending predictions out).
    pub learner: Option<crate::learner::LearnerLink>,
    /// The drift monitor (watched values of every scored event out).
    pub monitor: Option<crate::monitor::MonitorLink>,
    /// The offline log (every scored event's features, to Parquet).
    pub offline: Option<crate::offline::OfflineLink>,
    /// The job's tables, for lookup features (in `JobSpec::tables` order).
    pub tables: Vec<Arc<crate::table::SharedTable>>,
}

impl WorkerContext {
    /// A context for a run without checkpoints or commits (tests, benchmarks).
    pub fn local(job: Arc<JobSpec>, sink: Arc<dyn OutputSink>, metrics: Arc<Metrics>, control: Arc<Control>) -> Self {
        WorkerContext {
            job,
            sink,
            metrics,
            control,
            epochs: Arc::new(EpochClock::default()),
            reports: None,
            snapshot_state: false,
            restored: None,
            store: None,
            learner: None,
            monitor: None,
            offline: None,
            tables: Vec::new(),
        }
    }
    /// The first epoch of this run: one past the restored checkpoint.
    pub fn start_epoch(&self) -> u64 {
        self.restored.as_ref().map_or(0, |r| r.epoch() + 1)
    }
    pub(crate) fn report(&self, report: Report) {
        if let Some(tx) = &self.reports {
            let _ = tx.send(report);
        }
    }
}

/// Builds the job's dataflow on `worker` and runs it until the source ends (bounded
/// input) or shutdown is requested and everything in flight is scored.
pub fn run_worker(worker: &mut Worker, ctx: &Arc<WorkerContext>, source: Box<dyn RecordSource>) -> anyhow::Result<()> {
    let health = ctx.control.health().worker(worker.index());
    health.assign(source.partitions().len());
    let built = worker.dataflow::<u64, _, _>(|scope| {
        let events = ingest::ingest(scope, ctx, source);
        score::score(events, ctx)
    });
    if let Err(e) = &built {
        // Every worker must build the same dataflow: stop the job instead of leaving
        // the others waiting.
        ctx.control.request_shutdown();
        tracing::error!(error = %e, "worker cannot restore its state");
    }
    if built.is_ok() {
        health.ready();
    }
    while worker.has_dataflows() {
        // wakes at least once a second, so that /healthz sees the worker turn
        worker.step_or_park(Some(std::time::Duration::from_secs(1)));
        health.beat();
    }
    health.ended();
    built
}
