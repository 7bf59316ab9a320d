//! The process's checkpoint coordinator, a thread of its own (never a worker):
//! - moves the epoch clock every interval (never more than `MAX_EPOCHS_AHEAD`
//!   epochs past the last committed one);
//! - collects the sources' cuts and the scorers' states, and once every local
//!   worker has passed an epoch whose cuts are all in, writes that checkpoint
//!   (state files, then the manifest that makes it exist);
//! - once every output of that epoch and the earlier ones is delivered, commits the
//!   checkpoint's offsets to the consumer group, then removes checkpoints older
//!   than the last two;
//! - stops the job if an output could not be delivered (nothing past it is ever
//!   committed, so a restart replays it).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use rdkafka::consumer::{BaseConsumer, ConsumerGroupMetadata};

use super::sink::KafkaSink;
use crate::checkpoint::format::{self, Manifest};
use crate::checkpoint::txlog::{self, TxLog};
use crate::checkpoint::{PartitionCut, Report};
use crate::delivery::{InFlight, MAX_EPOCHS_AHEAD};
use crate::epoch::EpochClock;
use crate::metrics::Metrics;
use crate::types::Control;

pub struct CoordinatorConfig {
    /// Where checkpoints go; `None` commits offsets at epoch boundaries without state.
    pub dir: Option<PathBuf>,
    pub interval: Duration,
    /// Worker indices of this process.
    pub workers: Vec<usize>,
    pub job: String,
    pub fingerprint: String,
    /// The state's shape, recorded in every manifest (for savepoints).
    pub shape: crate::checkpoint::upgrade::StateShape,
    pub topic: String,
    /// First epoch of this run (one past the restored checkpoint).
    pub start_epoch: u64,
    /// The online learner, asked for its state at every checkpoint.
    pub learner: Option<std::sync::mpsc::Sender<crate::learner::checkpoint::CheckpointRequest>>,
}

/// How a completed epoch is made durable in Kafka.
pub enum CommitMode {
    /// Commit the input offsets to the group once the epoch's outputs are
    /// delivered (at-least-once).
    Offsets(BaseConsumer),
    /// Commit the epoch's outputs and input offsets in one transaction, recording
    /// the decision in the transaction log when checkpoints are on (exactly-once
    /// for `read_committed` consumers).
    ///
    /// The same offsets are then also committed outside the transaction: on a real
    /// broker that is a no-op, and it makes the protocol checkable on rdkafka's
    /// mock broker, which accepts transactional offset commits but does not store
    /// them.
    Transactions { sink: Arc<KafkaSink>, group: ConsumerGroupMetadata, run: String, consumer: BaseConsumer },
}

/// What the coordinator did, for summaries and tests.
#[derive(Debug, Default, Clone)]
pub struct CoordinatorSummary {
    pub checkpoints_written: u64,
    pub last_checkpoint: Option<u64>,
    pub last_committed: Option<u64>,
}

pub struct Coordinator {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Result<CoordinatorSummary>>,
}

impl Coordinator {
    #[allow(clippy::too_many_arguments)]
    pub fn spawn(
        cfg: CoordinatorConfig,
        reports: Receiver<Report>,
        clock: Arc<EpochClock>,
        inflight: Arc<InFlight>,
        commit: CommitMode,
        control: Arc<Control>,
        metrics: Arc<Metrics>,
    ) -> Result<Coordinator> {
        if let Some(dir) = &cfg.dir {
            std::fs::create_dir_all(dir)?;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let txlog = cfg.dir.as_deref().map(TxLog::open);
        let state = State {
            cfg,
            clock,
            inflight,
            txlog,
            commit,
            control,
            metrics,
            cuts: BTreeMap::new(),
            passed: HashMap::new(),
            written: None,
            committed: None,
            summary: CoordinatorSummary::default(),
        };
        let stop2 = stop.clone();
        let handle = std::thread::Builder::new().name("vigil-checkpoints".into()).spawn(move || state.run(reports, stop2))?;
        Ok(Coordinator { stop, handle })
    }

    /// Call once the workers have ended and the producer is flushed: completes the
    /// final checkpoint, commits it, and returns what was done.
    pub fn finish(self) -> Result<CoordinatorSummary> {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().map_err(|_| anyhow::anyhow!("the checkpoint coordinator panicked"))?
    }
}

struct State {
    cfg: CoordinatorConfig,
    clock: Arc<EpochClock>,
    inflight: Arc<InFlight>,
    commit: CommitMode,
    txlog: Option<TxLog>,
    control: Arc<Control>,
    metrics: Arc<Metrics>,
    /// epoch -> worker -> cut
    cuts: BTreeMap<u64, HashMap<usize, Vec<PartitionCut>>>,
    /// worker -> (since, through, state file) reports, in order
    passed: HashMap<usize, Vec<(u64, u64, Option<String>)>>,
    written: Option<u64>,
    committed: Option<u64>,
    summary: CoordinatorSummary,
}

/// The stop's final commit failed. A transactional error that is not fatal
/// (a broker connection not yet back after an outage: "Broker transport
/// failure" on the transaction's offsets, which librdkafka does not mark
/// retriable) ends the process as a stalled call does, with
/// [`super::txn_watch::EXIT_STALLED`] (75, try again): the transaction was
/// aborted and a restart redoes it from the last commit, so nothing is lost
/// or written twice. Any other error is returned.
fn final_commit_failed(e: anyhow::Error) -> Result<()> {
    let transient =
        e.chain().any(|c| matches!(c.downcast_ref::<rdkafka::error::KafkaError>(), Some(rdkafka::error::KafkaError::Transaction(t)) if !t.is_fatal()));
    if !transient {
        return Err(e);
    }
    tracing::error!(
        error = %format!("{e:#}"),
        "the final commit of the stop failed: its transaction is aborted and redone at the next start; exiting with code {}",
        super::txn_watch::EXIT_STALLED
    );
    std::process::exit(super::txn_watch::EXIT_STALLED);
}

impl State {
    fn run(self, reports: Receiver<Report>, stop: Arc<AtomicBool>) -> Result<CoordinatorSummary> {
        let control = self.control.clone();
        let result = self.run_loop(reports, stop);
        if result.is_err() {
            control.request_shutdown();
        }
        result
    }

    fn run_loop(mut self, reports: Receiver<Report>, stop: Arc<AtomicBool>) -> Result<CoordinatorSummary> {
        let mut last_tick = Instant::now();
        loop {
            let stopping = stop.load(Ordering::SeqCst);
            match reports.recv_timeout(Duration::from_millis(20)) {
                Ok(report) => self.receive(report)?,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {}
            }
            while let Ok(report) = reports.try_recv() {
                self.receive(report)?;
            }
            if last_tick.elapsed() >= self.cfg.interval && !self.control.shutdown_requested() {
                let open = self.clock.target().saturating_sub(self.committed.unwrap_or(self.cfg.start_epoch));
                if open < MAX_EPOCHS_AHEAD {
                    self.clock.advance();
                }
                last_tick = Instant::now();
            }
            self.complete()?;
            if self.inflight.failed() {
                self.control.request_shutdown();
                bail!("an output record could not be delivered; offsets after the last commit are not committed");
            }
            self.commit()?;
            if stopping {
                // Workers are done and the producer was flushed: everything is settled.
                self.complete()?;
                if let Err(e) = self.commit() {
                    final_commit_failed(e)?;
                }
                return Ok(self.summary);
            }
        }
    }

    fn receive(&mut self, report: Report) -> Result<()> {
        match report {
            Report::Cut { worker, epoch, partitions } => {
                self.cuts.entry(epoch).or_default().insert(worker, partitions);
            }
            Report::Passed { worker, since, through, state } => {
                let name = match (&self.cfg.dir, state) {
                    (Some(dir), Some(bytes)) => {
                        // The final report (through = MAX) is named after the final epoch.
                        let name = format::state_name(through.min(self.clock.target()), worker);
                        format::write_atomic(&dir.join(&name), &bytes)?;
                        Some(name)
                    }
                    _ => None,
                };
                self.passed.entry(worker).or_default().push((since, through, name));
            }
        }
        Ok(())
    }

    /// Writes the newest checkpoint that every local worker has passed, with a state
    /// of each worker as of exactly that epoch.
    fn complete(&mut self) -> Result<()> {
        let workers = &self.cfg.workers;
        let Some(through) = workers.iter().map(|w| self.passed.get(w).and_then(|v| v.last()).map(|l| l.1)).collect::<Option<Vec<_>>>() else {
            return Ok(());
        };
        let through = through.into_iter().min().unwrap_or(0);
        let Some(epoch) = choose_epoch(&self.cuts, &self.passed, workers, through, self.cfg.dir.is_some()) else { return Ok(()) };
        if self.written.is_some_and(|w| w >= epoch) {
            return Ok(());
        }
        if let Some(dir) = &self.cfg.dir {
            let mut states = Vec::new();
            for w in workers {
                match state_at(&self.passed[w], epoch).and_then(|(_, _, f)| f.clone()) {
                    Some(f) => states.push(f),
                    None => bail!("worker {w} passed epoch {epoch} without a state file"),
                }
            }
            let mut partitions: Vec<PartitionCut> = self.cuts[&epoch].values().flatten().cloned().collect();
            partitions.sort_by_key(|c| c.partition);
            let learner = match &self.cfg.learner {
                Some(tx) => {
                    let (reply, answer) = std::sync::mpsc::sync_channel(1);
                    tx.send(crate::learner::checkpoint::CheckpointRequest { epoch, reply }).map_err(|_| anyhow::anyhow!("the learner is gone"))?;
                    let bytes = answer
                        .recv_timeout(Duration::from_secs(300))
                        .map_err(|_| anyhow::anyhow!("the learner did not answer for checkpoint {epoch}"))?
                        .map_err(|e| anyhow::anyhow!("the learner's state for checkpoint {epoch}: {e}"))?;
                    let name = format::learner_name(epoch);
                    format::write_atomic(&dir.join(&name), &bytes)?;
                    Some(name)
                }
                None => None,
            };
            let manifest = Manifest {
                learner,
                format: format::FORMAT_VERSION,
                job: self.cfg.job.clone(),
                fingerprint: self.cfg.fingerprint.clone(),
                epoch,
                partitions,
                states,
                created_unix_ms: crate::types::now_us() / 1000,
                shape: Some(self.cfg.shape.clone()),
            };
            format::write_manifest(dir, &manifest)?;
            self.summary.checkpoints_written += 1;
            self.summary.last_checkpoint = Some(epoch);
            self.metrics.checkpoints.inc();
        }
        self.written = Some(epoch);
        Ok(())
    }

    /// Commits the newest written epoch whose outputs are all delivered.
    fn commit(&mut self) -> Result<()> {
        let Some(epoch) = self.written else { return Ok(()) };
        if self.committed.is_some_and(|c| c >= epoch) {
            return Ok(());
        }
        let first_open = self.committed.map_or(self.cfg.start_epoch, |c| c + 1);
        if self.inflight.failed() {
            return Ok(());
        }
        let mut positions: Vec<(u32, i64)> = self.cuts[&epoch].values().flatten().map(|c| (c.partition, c.next_offset)).collect();
        positions.sort();
        match &self.commit {
            CommitMode::Offsets(consumer) => {
                if !self.inflight.delivered_through(first_open, epoch) {
                    return Ok(());
                }
                super::commit_positions(consumer, &self.cfg.topic, &positions)?;
            }
            CommitMode::Transactions { sink, group, run, consumer } => {
                let entry = |state: &str| txlog::Entry { run: run.clone(), first: first_open, through: epoch, state: state.into(), offsets: positions.clone() };
                if let Some(log) = &self.txlog {
                    log.append(&entry("committing"))?;
                }
                crate::crash_point!("txn-before-commit");
                sink.commit_through(epoch, &self.cfg.topic, &positions, group)?;
                crate::crash_point!("txn-after-commit");
                sink.watched("commit (consumer offsets)", || super::commit_positions(consumer, &self.cfg.topic, &positions))?;
                if let Some(log) = &self.txlog {
                    log.append(&entry("committed"))?;
                }
            }
        }
        self.committed = Some(epoch);
        if let Some(dir) = &self.cfg.dir {
            // what `vigil savepoint` may copy: a checkpoint whose offsets are committed
            format::write_atomic(&dir.join(format::COMMITTED_MARKER), epoch.to_string().as_bytes())?;
        }
        self.summary.last_committed = Some(epoch);
        self.metrics.committed_epoch.set(epoch as i64);
        // Forget what is no longer needed, in memory and on disk.
        self.cuts = self.cuts.split_off(&epoch);
        for v in self.passed.values_mut() {
            let keep_from = v.iter().position(|(_, t, _)| *t >= epoch).unwrap_or(v.len());
            v.drain(..keep_from);
        }
        if let Some(dir) = &self.cfg.dir {
            collect_garbage(dir, epoch)?;
        }
        Ok(())
    }
}

/// The report of a worker whose state is its state as of the end of `epoch`.
fn state_at(reports: &[(u64, u64, Option<String>)], epoch: u64) -> Option<&(u64, u64, Option<String>)> {
    reports.iter().find(|(since, through, _)| *since <= epoch && epoch <= *through)
}

/// The newest epoch up to `through` with the cut of every worker and, when
/// checkpoints keep state, a state of every worker as of exactly that epoch.
fn choose_epoch(
    cuts: &BTreeMap<u64, HashMap<usize, Vec<PartitionCut>>>,
    passed: &HashMap<usize, Vec<(u64, u64, Option<String>)>>,
    workers: &[usize],
    through: u64,
    with_state: bool,
) -> Option<u64> {
    let fits = |w: &usize, epoch: u64| !with_state || passed.get(w).is_some_and(|r| state_at(r, epoch).is_some());
    cuts.range(..=through).rev().find(|(e, by_worker)| workers.iter().all(|w| by_worker.contains_key(w) && fits(w, **e))).map(|(e, _)| *e)
}

/// Keeps the two newest checkpoints and the committed one; removes older manifests
/// and every state file that no kept manifest names and that is older than the
/// newest manifest (newer ones belong to checkpoints in progress).
pub fn collect_garbage(dir: &std::path::Path, committed: u64) -> Result<()> {
    let manifests = format::list_manifests(dir)?;
    let keep: Vec<&(u64, PathBuf)> = manifests.iter().enumerate().filter(|(i, (e, _))| *i < 2 || *e == committed).map(|(_, m)| m).collect();
    let newest = manifests.first().map(|m| m.0).unwrap_or(0);
    let mut named = std::collections::HashSet::new();
    for (_, path) in &keep {
        let m = format::read_manifest(path)?;
        named.extend(m.states);
        named.extend(m.learner);
    }
    for (epoch, path) in &manifests {
        if !keep.iter().any(|(e, _)| e == epoch) {
            std::fs::remove_file(path)?;
        }
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_owned();
        let through: Option<u64> = name.strip_prefix("state-").and_then(|n| n.split('-').next()).and_then(|n| n.parse().ok());
        if let Some(through) = through {
            if !named.contains(&name) && through < newest {
                std::fs::remove_file(&path)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cuts(epochs: std::ops::RangeInclusive<u64>, workers: &[usize]) -> BTreeMap<u64, HashMap<usize, Vec<PartitionCut>>> {
        epochs.map(|e| (e, workers.iter().map(|w| (*w, Vec::new())).collect())).collect()
    }

    #[test]
    fn a_crashed_runs_checkpoints_do_not_cost_the_next_run_its_state_in_progress() {
        use crate::checkpoint::format::{manifest_name, state_name, write_atomic};
        use crate::checkpoint::restore::clear_unrestorable;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let manifest = |epoch: u64| format::write_test_checkpoint(d, epoch, b"x");
        // a run committed epoch 2, wrote checkpoints 3..=9 and crashed
        (2..=9).for_each(manifest);
        // the next run resumes at 2, commits its checkpoint 3 and has written
        // epoch 4's state, not yet its manifest
        let run = |clear: bool| {
            if clear {
                clear_unrestorable(d, Some(2)).unwrap();
            }
            manifest(3);
            write_atomic(&d.join(state_name(4, 0)), b"y").unwrap();
            collect_garbage(d, 3).unwrap();
            d.join(state_name(4, 0)).exists() && d.join(manifest_name(3)).exists()
        };
        assert!(!run(false), "the crashed run's checkpoint 9 counts as the newest: epoch 4's state is collected");
        (2..=9).for_each(manifest);
        assert!(run(true), "cleared at the start, the state in progress stays");
    }

    #[test]
    fn a_state_is_used_only_for_the_epochs_it_is_the_state_of() {
        // worker 0 saw the frontier jump from 10 to 13 and processed epochs 11 and
        // 12 in one go: its state has their records, so it is not epoch 10's state
        let cuts = cuts(8..=12, &[0, 1]);
        let s = |a: u64, b: u64| (a, b, Some(format!("state-{b}")));
        let passed: HashMap<usize, Vec<_>> = [(0, vec![s(8, 10), s(12, 12)]), (1, vec![s(9, 9), s(10, 11)])].into();
        // worker 1 passed only 11: epoch 11 has no state of worker 0 and epoch 10 is
        // the newest with both
        assert_eq!(choose_epoch(&cuts, &passed, &[0, 1], 11, true), Some(10));
        // without state, any epoch both passed will do
        assert_eq!(choose_epoch(&cuts, &passed, &[0, 1], 11, false), Some(11));
        let passed: HashMap<usize, Vec<_>> = [(0, vec![s(12, 12)]), (1, vec![s(9, 9), s(10, 11)])].into();
        assert_eq!(choose_epoch(&cuts, &passed, &[0, 1], 11, true), None);
        assert_eq!(state_at(&passed[&0], 12).map(|r| r.1), Some(12));
    }
}
