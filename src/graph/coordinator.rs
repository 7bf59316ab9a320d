//! The checkpoint coordinator of a graph run: a thread per process that writes
//! the parts its workers send and publishes a checkpoint once it is whole.
//!
//! A checkpoint of epoch E is published (its manifest `epoch-E.json` written,
//! atomically, last) only when all of these hold:
//! 1. every worker's parts of E are written: each named operator's state and
//!    each source's positions (`epoch-E/NAME.wW`, `epoch-E/source-TOPIC.wW`),
//!    and each online model's learner state (`epoch-E/learner-NAME.pP`), asked
//!    for once every scorer of the model has sent it the predictions of epochs
//!    up to E;
//! 2. every sink of every worker has passed E: each has handed the runner all
//!    of its outputs of epochs up to E;
//! 3. the runner has delivered those outputs (a Kafka run's producer has them
//!    acknowledged by the brokers), so that a restore from E loses none;
//! 4. in a cluster of several processes, every process has done 1-3 for its own
//!    workers and said so with a marker `epoch-E/process-P.done`; process 0
//!    then writes the manifest. The processes must share the directory (one
//!    volume): process 0 warns, naming the silent processes, when markers do not
//!    come.
//!
//! A run that commits ([`Participation::commit`], exactly-once on Kafka) makes
//! each published checkpoint's outputs final: one process prepares, writes the
//! manifest and commits; in a cluster each process prepares its own
//! transaction before its marker and commits once the manifest is there, one
//! checkpoint at a time, and the processes agree on a last checkpoint at the
//! end (`close.rs`).
//!
//! Process 0 (or the only one) keeps the two newest checkpoints and removes
//! older ones. At the start of a run, parts of epochs after the newest manifest
//! (a checkpoint the previous run did not finish) are removed before any worker
//! starts, so that no marker or part of the old run counts for the new one;
//! every process of a cluster must therefore have stopped before any restarts
//! (a supervisor restarts the whole job, as timely has no membership changes).
//!
//! ```
//! use vigil::graph::{LocalRun, Source};
//! let dir = tempfile::tempdir().unwrap();
//! let line = |i: i64| format!(r#"{{"key":"k{}","ts":{}}}"#, i % 3, 1_700_000_000_000 + i).into_bytes();
//! let out = LocalRun::new(2)
//!     .topic("clicks", vec![(0..40).map(line).collect()])
//!     .epoch_records(10)
//!     .checkpoints(dir.path(), 2)
//!     .run(|g| {
//!         g.source(Source::json("clicks")).view("per_key", |r| r.key.clone()).count().sink_upsert("counts");
//!         Ok(())
//!     })
//!     .unwrap();
//! assert!(!out.checkpoints.is_empty());
//! assert!(dir.path().join(format!("epoch-{}.json", out.checkpoints.last().unwrap())).exists());
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

mod close;

pub(crate) use close::forget_closing;

use super::checkpoint::{Manifest, Part};
use crate::checkpoint::format::write_atomic;
use crate::learner::checkpoint::CheckpointRequest;

/// Whether the outputs of every epoch up to the given one are delivered.
pub type Delivered = Arc<dyn Fn(u64) -> bool + Send + Sync>;

/// Makes each published checkpoint's outputs final (an exactly-once run
/// commits its transaction). An error stops the coordinator.
pub trait Commit: Send + Sync {
    /// Once every part of checkpoint `epoch` is in, before its manifest is
    /// written: the sources' positions `(topic, partition, next offset)`
    /// (an exactly-once run puts them into its transaction, which fails
    /// if a newer instance fenced it: a fenced instance writes no manifest).
    fn prepare(&self, epoch: u64, positions: &[(String, u32, i64)]) -> Result<()>;
    /// Once the manifest is written, before older checkpoints are pruned.
    fn commit(&self, epoch: u64) -> Result<()>;
    /// At the end of a cluster's run, before its last checkpoint is
    /// prepared: every output still held for a later transaction goes into
    /// the open one (see the module docs).
    fn seal(&self) {}
}

/// How a process takes part in its run's checkpoints.
#[derive(Clone)]
pub struct Participation {
    /// This process's index, and the number of processes whose coordinators
    /// share the directory (1: this coordinator gets every worker's parts).
    pub process: usize,
    pub processes: usize,
    pub delivered: Delivered,
    /// Called once if the coordinator stops on an error (after logging it): a
    /// run on Kafka shuts down then rather than going on without checkpoints
    /// (and with a learner that trains only what a checkpoint seals).
    pub on_failure: Arc<dyn Fn() + Send + Sync>,
    /// Called for every checkpoint published (in a cluster, by every
    /// process for its own transaction). A run that commits also checkpoints
    /// where it ends: once every source and operator
    /// has ended, the epoch where the last of them ended is a checkpoint too,
    /// so that its last outputs are committed.
    pub commit: Option<Arc<dyn Commit>>,
    /// Whether some output will never be delivered. A run that commits stops
    /// then (its open transaction can never commit); otherwise no checkpoint
    /// from that output's epoch on is published.
    pub undeliverable: Arc<dyn Fn() -> bool + Send + Sync>,
}

impl Default for Participation {
    /// One coordinator for every worker; outputs count as delivered once
    /// handed over (memory).
    fn default() -> Self {
        Participation { process: 0, processes: 1, delivered: Arc::new(|_| true), on_failure: Arc::new(|| {}), commit: None, undeliverable: Arc::new(|| false) }
    }
}

/// How long process 0 waits for the other processes' markers before it warns.
const MARKER_PATIENCE: Duration = Duration::from_secs(60);
/// How long a committing process of a cluster waits for a checkpoint's
/// manifest before it stops. With checkpoints far apart the broker's 600 s
/// transaction timeout may come first: the commit fails then, and the
/// restart rolls the logged transactions forward all the same.
const MANIFEST_LIMIT: Duration = Duration::from_secs(300);
/// How long the coordinator goes on publishing after the workers ended.
const FINAL_PATIENCE: Duration = Duration::from_secs(60);

/// What the graph is made of, from the workers' `Built` parts.
struct Layout {
    peers: usize,
    operators: BTreeMap<String, u32>,
    sources: BTreeSet<String>,
}

/// The coordinator's state; see the module docs.
struct Coordinator<'a> {
    dir: &'a Path,
    every: u64,
    me: Participation,
    layout: Option<Layout>,
    /// Per checkpoint epoch: the files of this process's workers written.
    have: BTreeMap<u64, BTreeSet<String>>,
    /// The last parts of ended sources and operators, from their epoch on.
    ended: Vec<(u64, String, Arc<Vec<u8>>)>,
    /// Epochs whose local parts are whole, not yet published (or marked).
    whole: BTreeSet<u64>,
    /// Epochs this process marked, waiting for the others' markers (process 0):
    /// since when.
    marked: BTreeMap<u64, Instant>,
    /// Each local worker's least sink frontier.
    drained: HashMap<usize, u64>,
    done: Vec<u64>,
    newest: &'a AtomicU64,
    warned: BTreeSet<u64>,
    /// This process's learners, by online model (see [`Learners`]).
    learners: BTreeMap<String, Learners>,
    /// The final checkpoint's epoch, once made (see [`Participation::commit`]).
    closed: Option<u64>,
    /// A cluster that commits: the epoch this process prepared and marked,
    /// committed once its manifest is written (one at a time), and since when.
    committing: Option<u64>,
    prepared_at: Instant,
}

/// One online model's learner, as the coordinator asks it for its state.
struct Learners {
    requests: std::sync::mpsc::Sender<CheckpointRequest>,
    /// Per scorer (worker): the epoch through which it has fed the learner
    /// (`u64::MAX`: every epoch).
    fed: HashMap<usize, u64>,
    /// The newest checkpoint epoch the learner was asked for.
    asked: Option<u64>,
}

/// How long the coordinator waits for a learner's state.
const LEARNER_PATIENCE: Duration = Duration::from_secs(120);

/// Runs the coordinator until the workers are gone (and a little after, to
/// publish what they finished); returns the epochs whose manifests it wrote
/// (process 0) or marked (the others; committed, in a cluster that commits).
pub(crate) fn coordinate(dir: &Path, every: u64, me: Participation, rx: Receiver<Part>, newest: &AtomicU64) -> Result<Vec<u64>> {
    let on_failure = me.on_failure.clone();
    let result = run_coordinator(dir, every, me, rx, newest);
    if let Err(e) = &result {
        tracing::error!(dir = %dir.display(), error = %format!("{e:#}"), "the checkpoint coordinator stopped: no checkpoint is written from here on");
        on_failure();
    }
    result
}

fn run_coordinator(dir: &Path, every: u64, me: Participation, rx: Receiver<Part>, newest: &AtomicU64) -> Result<Vec<u64>> {
    let mut c = Coordinator {
        dir,
        every,
        me,
        layout: None,
        have: BTreeMap::new(),
        ended: Vec::new(),
        whole: BTreeSet::new(),
        marked: BTreeMap::new(),
        drained: HashMap::new(),
        done: Vec::new(),
        newest,
        warned: BTreeSet::new(),
        learners: BTreeMap::new(),
        closed: None,
        committing: None,
        prepared_at: Instant::now(),
    };
    loop {
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(part) => c.take(part)?,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        c.publish()?;
    }
    if c.me.commit.is_some() && c.me.processes > 1 {
        c.close_cluster()?;
        return Ok(c.done);
    }
    // the workers ended; what they finished is published once delivered
    let until = Instant::now() + FINAL_PATIENCE;
    while (!c.whole.is_empty() || !c.marked.is_empty()) && Instant::now() < until {
        c.publish()?;
        std::thread::sleep(Duration::from_millis(20));
    }
    if let Some(e) = c.whole.iter().chain(c.marked.keys()).next() {
        tracing::warn!(dir = %dir.display(), epoch = e, "the run ended before its checkpoint of epoch {e} was whole; it is not used");
    }
    Ok(c.done)
}

impl Coordinator<'_> {
    fn take(&mut self, part: Part) -> Result<()> {
        let own = match part {
            Part::Built { worker, peers, operators, sources } => {
                self.drained.entry(worker).or_insert(0);
                self.layout = Some(Layout { peers, operators: operators.into_iter().collect(), sources: sources.into_iter().collect() });
                return Ok(());
            }
            Part::Drained { worker, frontier } => {
                self.drained.insert(worker, frontier);
                return Ok(());
            }
            Part::Cut { worker, topic, epoch, partitions, last } => {
                let bytes = Arc::new(bincode::serialize(&partitions)?);
                self.settle(epoch, format!("source-{topic}.w{worker}"), bytes, last)?
            }
            Part::State { worker, name, epoch, bytes, last } => self.settle(epoch, format!("{name}.w{worker}"), bytes, last)?,
            Part::Learner { name, requests } => {
                if self.me.commit.is_some() && self.me.processes > 1 {
                    bail!("exactly-once across processes does not take an online model (`{name}`) yet: run it in one process, or at-least-once");
                }
                self.learners.insert(name, Learners { requests, fed: HashMap::new(), asked: None });
                return Ok(());
            }
            Part::Fed { worker, model, epoch, last } => {
                // a learner registers while the graph is built, before any data flows
                debug_assert!(self.learners.contains_key(&model), "fed a learner never registered: {model}");
                if let Some(l) = self.learners.get_mut(&model) {
                    let through = if last { u64::MAX } else { epoch };
                    let e = l.fed.entry(worker).or_insert(through);
                    *e = (*e).max(through);
                }
                None
            }
            Part::Skipped { epoch, why } => {
                if self.me.commit.is_some() {
                    bail!("checkpoint {epoch} cannot be taken ({why}): its outputs can never commit, so the run stops");
                }
                return Ok(());
            }
            Part::Flush(done) => {
                let _ = done.send(());
                return Ok(());
            }
        };
        if self.layout.is_none() {
            if own.is_some() {
                bail!("a checkpoint part arrived before the graph was built");
            }
            return Ok(());
        }
        if let Some((epoch, file, bytes)) = own {
            self.write_part(epoch, &file, &bytes)?;
        }
        self.close()?;
        self.ask_learners()?;
        let Some(layout) = &self.layout else { return Ok(()) };
        let local_workers = layout.peers / self.me.processes.max(1);
        let per_epoch = local_workers * (layout.operators.len() + layout.sources.len()) + self.learners.len();
        let whole: Vec<u64> = self.have.iter().filter(|(_, f)| f.len() == per_epoch).map(|(e, _)| *e).collect();
        for e in whole {
            self.have.remove(&e);
            self.whole.insert(e);
        }
        Ok(())
    }

    /// Writes a part of checkpoint `epoch` (the first of the epoch brings the
    /// last parts of what ended before it).
    fn write_part(&mut self, epoch: u64, file: &str, bytes: &[u8]) -> Result<()> {
        let parts = self.dir.join(format!("epoch-{epoch}"));
        if !self.have.contains_key(&epoch) {
            std::fs::create_dir_all(&parts)?;
            let files = self.have.entry(epoch).or_default();
            for (_, f, b) in self.ended.iter().filter(|(e, _, _)| *e < epoch) {
                files.insert(f.clone());
                write_atomic(&parts.join(f), b)?;
            }
        }
        write_atomic(&parts.join(file), bytes)?;
        self.have.entry(epoch).or_default().insert(file.to_owned());
        Ok(())
    }

    /// In a run that commits, once every local source and operator has ended:
    /// makes the epoch where the last of them ended a checkpoint (their last
    /// parts stand for it), unless it is one already.
    fn close(&mut self) -> Result<()> {
        let Some(layout) = &self.layout else { return Ok(()) };
        // (a cluster agrees on its last checkpoint once the workers are gone: `close_cluster`)
        if self.me.commit.is_none() || self.closed.is_some() || self.me.processes > 1 {
            return Ok(());
        }
        let local_workers = layout.peers / self.me.processes.max(1);
        if self.ended.len() < local_workers * (layout.operators.len() + layout.sources.len()) {
            return Ok(());
        }
        let Some(last) = self.ended.iter().map(|(e, _, _)| *e).max() else { return Ok(()) };
        self.closed = Some(last);
        if self.have.contains_key(&last) || self.whole.contains(&last) || self.done.contains(&last) {
            return Ok(());
        }
        for (_, file, bytes) in self.ended.clone() {
            self.write_part(last, &file, &bytes)?;
        }
        Ok(())
    }

    /// Asks each learner, in epoch order, for its state as of every checkpoint
    /// under way that all of the model's scorers have fed it through, and
    /// writes it (the learner then seals those epochs).
    fn ask_learners(&mut self) -> Result<()> {
        let Some(peers) = self.layout.as_ref().map(|l| l.peers) else { return Ok(()) };
        let process = self.me.process;
        let mut due = Vec::new();
        for (name, l) in &self.learners {
            let through = if l.fed.len() < peers { None } else { l.fed.values().copied().min() };
            let Some(through) = through else { continue };
            for &e in self.have.keys().filter(|e| **e <= through && l.asked.is_none_or(|a| **e > a)) {
                due.push((e, name.clone()));
            }
        }
        due.sort();
        for (epoch, name) in due {
            let l = self.learners.get_mut(&name).expect("a learner just listed");
            let (reply, answer) = std::sync::mpsc::sync_channel(1);
            l.requests.send(CheckpointRequest { epoch, reply }).map_err(|_| anyhow::anyhow!("the learner of `{name}` is gone before checkpoint {epoch}"))?;
            let bytes = match answer.recv_timeout(LEARNER_PATIENCE) {
                Ok(Ok(bytes)) => bytes,
                Ok(Err(e)) => bail!("the learner of `{name}` could not give its state for checkpoint {epoch}: {e}"),
                Err(_) => bail!("the learner of `{name}` gave no state for checkpoint {epoch} within {LEARNER_PATIENCE:?}"),
            };
            l.asked = Some(epoch);
            self.write_part(epoch, &format!("learner-{name}.p{process}"), &bytes)?;
        }
        Ok(())
    }

    /// A part that may be the last of its kind (an ended source or operator): it
    /// stands for itself in every later epoch, those under way and those to come.
    /// Returns the part to write for `epoch` itself, if that epoch is a checkpoint.
    fn settle(&mut self, epoch: u64, file: String, bytes: Arc<Vec<u8>>, last: bool) -> Result<Option<(u64, String, Arc<Vec<u8>>)>> {
        if last {
            self.ended.push((epoch, file.clone(), bytes.clone()));
            for (e, files) in self.have.iter_mut().filter(|(e, _)| **e > epoch) {
                if files.insert(file.clone()) {
                    write_atomic(&self.dir.join(format!("epoch-{e}")).join(&file), &bytes)?;
                }
            }
        }
        Ok((epoch % self.every == self.every - 1).then_some((epoch, file, bytes)))
    }

    /// Publishes (or marks) every whole epoch whose outputs are out, and, on
    /// process 0, every marked epoch all processes have marked.
    fn publish(&mut self) -> Result<()> {
        if self.me.commit.is_some() && (self.me.undeliverable)() {
            bail!("an output record could not be delivered (see the error logged for it): the open transaction can never commit, so the run stops");
        }
        let Some(peers) = self.layout.as_ref().map(|l| l.peers) else { return Ok(()) };
        let local_workers = peers / self.me.processes.max(1);
        let passed = if self.drained.len() < local_workers { 0 } else { self.drained.values().copied().min().unwrap_or(0) };
        while let Some(&e) = self.whole.first() {
            // a cluster that commits has one transaction under way at a time
            if passed <= e || !(self.me.delivered)(e) || self.committing.is_some() {
                break;
            }
            self.whole.remove(&e);
            if self.me.processes <= 1 {
                self.manifest(e)?;
                continue;
            }
            self.mark(e)?;
        }
        self.commit_published()?;
        self.publish_marked()
    }

    /// Process 0: publishes every marked epoch all processes have marked.
    fn publish_marked(&mut self) -> Result<()> {
        let mut published = Vec::new();
        for (&e, since) in &self.marked {
            let missing: Vec<usize> = (0..self.me.processes).filter(|p| !self.marker(e, *p).exists()).collect();
            if missing.is_empty() {
                published.push(e);
            } else if self.me.commit.is_some() && since.elapsed() > MANIFEST_LIMIT {
                bail!("checkpoint {e} still waits for processes {missing:?} after {MANIFEST_LIMIT:?}: they stopped checkpointing; the transactions would time out");
            } else if since.elapsed() > MARKER_PATIENCE && self.warned.insert(e) {
                tracing::warn!(
                    dir = %self.dir.display(), epoch = e, ?missing,
                    "the checkpoint of epoch {e} waits for processes {missing:?}: their parts are not in the checkpoint directory \
                     (with several processes it must be one volume that every process shares)"
                );
            }
        }
        for e in published {
            self.marked.remove(&e);
            // a committing process 0 publishes only the epoch its transaction is prepared for
            if self.me.commit.is_none() || self.committing == Some(e) {
                self.manifest(e)?;
            }
        }
        Ok(())
    }

    /// Marks this process's part of a cluster's checkpoint `epoch` as whole;
    /// a process that commits prepares its transaction first.
    fn mark(&mut self, e: u64) -> Result<()> {
        if let Some(commit) = &self.me.commit {
            commit.prepare(e, &self.own_positions(e)?)?;
            self.committing = Some(e);
            self.prepared_at = Instant::now();
        }
        write_atomic(&self.marker(e, self.me.process), b"")?;
        if self.me.process == 0 {
            if self.me.commit.is_some() {
                // an epoch marked before is never published now: its transaction became this one
                self.marked.retain(|k, _| *k > e);
            }
            self.marked.entry(e).or_insert_with(Instant::now);
        } else if self.me.commit.is_none() {
            self.done.push(e);
            self.newest.store(e, Ordering::SeqCst);
        }
        Ok(())
    }

    /// A process of a cluster that commits (not 0, which commits as it
    /// writes the manifest): commits its prepared epoch once the manifest is
    /// there.
    fn commit_published(&mut self) -> Result<()> {
        let (Some(commit), Some(e)) = (&self.me.commit, self.committing) else { return Ok(()) };
        if self.me.process == 0 {
            return Ok(());
        }
        if !self.dir.join(format!("epoch-{e}.json")).exists() {
            let waited = self.prepared_at.elapsed();
            if waited > MANIFEST_LIMIT {
                bail!(
                    "checkpoint {e}'s manifest did not come within {MANIFEST_LIMIT:?}: another process stopped checkpointing; its transaction would time out"
                );
            }
            if waited > MARKER_PATIENCE && self.warned.insert(e) {
                tracing::warn!(dir = %self.dir.display(), epoch = e, "this process's transaction waits for checkpoint {e}'s manifest, which process 0 has not written (its outputs are held meanwhile)");
            }
            return Ok(());
        }
        commit.commit(e)?;
        self.committing = None;
        self.done.push(e);
        self.newest.store(e, Ordering::SeqCst);
        Ok(())
    }

    fn marker(&self, epoch: u64, process: usize) -> PathBuf {
        self.dir.join(format!("epoch-{epoch}")).join(format!("process-{process}.done"))
    }

    /// Writes the manifest of `epoch` and prunes older checkpoints.
    fn manifest(&mut self, epoch: u64) -> Result<()> {
        let Some(layout) = &self.layout else { return Ok(()) };
        let learners = self.learners.keys().map(|n| (n.clone(), crate::learner::checkpoint::FORMAT)).collect();
        let manifest =
            Manifest { epoch, workers: layout.peers, operators: layout.operators.clone(), sources: layout.sources.iter().cloned().collect(), learners };
        if let (Some(commit), true) = (&self.me.commit, self.me.processes <= 1) {
            let positions = super::checkpoint::positions(self.dir, &manifest)?;
            let mut offsets: Vec<(String, u32, i64)> = positions.into_iter().map(|((t, p), cut)| (t, p, cut.next_offset)).collect();
            offsets.sort();
            commit.prepare(epoch, &offsets)?;
        }
        write_atomic(&self.dir.join(format!("epoch-{epoch}.json")), &serde_json::to_vec_pretty(&manifest)?)?;
        crate::crash_point!("graph-checkpoint-written");
        if let Some(commit) = &self.me.commit {
            commit.commit(epoch)?;
            self.committing = None;
        }
        self.done.push(epoch);
        self.newest.store(epoch, Ordering::SeqCst);
        prune(self.dir, epoch)
    }
}

/// The newest complete checkpoint's epoch under `dir`.
pub(crate) fn newest_manifest(dir: &Path) -> Option<u64> {
    let entries = std::fs::read_dir(dir).ok()?;
    entries.filter_map(|e| e.ok()).filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_prefix("epoch-")?.strip_suffix(".json")?.parse().ok())).max()
}

/// Removes the parts of epochs after `newest`, the checkpoint a run resumes
/// from (`None`: every epoch's): a checkpoint an earlier run did not finish
/// (see the module docs).
pub(crate) fn clear_after(dir: &Path, newest: Option<u64>) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    for e in entries.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(epoch) = name.strip_prefix("epoch-").and_then(|r| r.parse::<u64>().ok()) else { continue };
        if newest.is_none_or(|n| epoch > n) {
            // the other processes of a cluster clear the same parts at their start:
            // one of them moves the folder aside (atomically), then removes it
            let trash = dir.join(format!(".unfinished-{name}-{}", std::process::id()));
            match std::fs::rename(e.path(), &trash) {
                Ok(()) => std::fs::remove_dir_all(&trash)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// Keeps the two newest checkpoints (and parts of epochs after the newest).
fn prune(dir: &Path, newest: u64) -> Result<()> {
    let names: Vec<String> = std::fs::read_dir(dir)?.filter_map(|e| e.ok()).filter_map(|e| e.file_name().to_str().map(str::to_owned)).collect();
    let mut complete: Vec<u64> = names.iter().filter_map(|n| n.strip_prefix("epoch-")?.strip_suffix(".json")?.parse().ok()).filter(|e| *e <= newest).collect();
    complete.sort();
    let keep_from = complete.iter().rev().nth(1).copied().unwrap_or(newest);
    for n in &names {
        let epoch: Option<u64> = n.strip_prefix("epoch-").and_then(|r| r.strip_suffix(".json").unwrap_or(r).parse().ok());
        if epoch.is_some_and(|e| e < keep_from) {
            let path = dir.join(n);
            let _ = if n.ends_with(".json") { std::fs::remove_file(&path) } else { std::fs::remove_dir_all(&path) };
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::mpsc::channel;
    use std::sync::Arc;
    use std::time::Duration;

    use super::{coordinate, Participation};
    use crate::graph::checkpoint::Part;

    /// A coordinator of `process` (of `processes`, one worker each, one operator
    /// `op`, no source) over `dir`, checkpointing every epoch, whose outputs are
    /// delivered once `delivered` is set; returns the sender and the thread.
    fn start(
        dir: &std::path::Path,
        process: usize,
        processes: usize,
        delivered: Arc<AtomicBool>,
    ) -> (std::sync::mpsc::Sender<Part>, std::thread::JoinHandle<anyhow::Result<Vec<u64>>>) {
        let (tx, rx) = channel();
        let me = Participation { process, processes, delivered: Arc::new(move |_| delivered.load(Ordering::SeqCst)), ..Default::default() };
        let dir = dir.to_owned();
        let h = std::thread::spawn(move || coordinate(&dir, 1, me, rx, &AtomicU64::new(u64::MAX)));
        tx.send(Part::Built { worker: process, peers: processes, operators: vec![("op".into(), 1)], sources: Vec::new() }).unwrap();
        (tx, h)
    }

    fn state(worker: usize, epoch: u64) -> Part {
        Part::State { worker, name: "op".into(), epoch, bytes: Arc::new(vec![epoch as u8]), last: false }
    }

    fn eventually(what: &str, f: impl Fn() -> bool) {
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(std::time::Instant::now() < until, "{what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_manifest_waits_for_the_sinks_and_the_deliveries() {
        let dir = tempfile::tempdir().unwrap();
        let delivered = Arc::new(AtomicBool::new(false));
        let (tx, h) = start(dir.path(), 0, 1, delivered.clone());
        let manifest = dir.path().join("epoch-0.json");
        tx.send(state(0, 0)).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert!(!manifest.exists(), "the sinks have not passed epoch 0");
        tx.send(Part::Drained { worker: 0, frontier: 1 }).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert!(!manifest.exists(), "epoch 0's outputs are not delivered");
        delivered.store(true, Ordering::SeqCst);
        eventually("the manifest once both hold", || manifest.exists());
        drop(tx);
        assert_eq!(h.join().unwrap().unwrap(), vec![0]);
    }

    #[test]
    fn process_0_publishes_once_every_process_has_marked_the_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let yes = Arc::new(AtomicBool::new(true));
        let (p0, h0) = start(dir.path(), 0, 2, yes.clone());
        let (p1, h1) = start(dir.path(), 1, 2, yes);
        let manifest = dir.path().join("epoch-0.json");
        p0.send(state(0, 0)).unwrap();
        p0.send(Part::Drained { worker: 0, frontier: 1 }).unwrap();
        eventually("process 0's marker", || dir.path().join("epoch-0/process-0.done").exists());
        std::thread::sleep(Duration::from_millis(100));
        assert!(!manifest.exists(), "process 1 has not marked epoch 0");
        p1.send(state(1, 0)).unwrap();
        p1.send(Part::Drained { worker: 1, frontier: 1 }).unwrap();
        eventually("the manifest once both marked", || manifest.exists());
        assert!(dir.path().join("epoch-0/op.w0").exists() && dir.path().join("epoch-0/op.w1").exists());
        drop((p0, p1));
        assert_eq!(h0.join().unwrap().unwrap(), vec![0]);
        assert_eq!(h1.join().unwrap().unwrap(), vec![0], "process 1 marked epoch 0");
    }

    #[test]
    fn a_learner_is_asked_for_its_state_once_every_scorer_has_fed_it() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = channel();
        let d = dir.path().to_owned();
        let stopped = Arc::new(AtomicBool::new(false));
        let s = stopped.clone();
        let me = Participation { on_failure: Arc::new(move || s.store(true, Ordering::SeqCst)), ..Default::default() };
        let h = std::thread::spawn(move || coordinate(&d, 1, me, rx, &AtomicU64::new(u64::MAX)));
        let (requests, asked) = channel::<crate::learner::checkpoint::CheckpointRequest>();
        tx.send(Part::Learner { name: "m".into(), requests }).unwrap();
        for w in 0..2 {
            tx.send(Part::Built { worker: w, peers: 2, operators: vec![("op".into(), 1)], sources: Vec::new() }).unwrap();
        }
        for w in 0..2 {
            tx.send(state(w, 0)).unwrap();
            tx.send(Part::Drained { worker: w, frontier: 1 }).unwrap();
        }
        let fed = |worker: usize, epoch: u64, last: bool| Part::Fed { worker, model: "m".into(), epoch, last };
        tx.send(fed(0, 0, false)).unwrap();
        assert!(asked.recv_timeout(Duration::from_millis(200)).is_err(), "worker 1's scorer has not sent epoch 0's predictions");
        assert!(!dir.path().join("epoch-0.json").exists());
        tx.send(fed(1, 0, false)).unwrap();
        let req = asked.recv_timeout(Duration::from_secs(10)).expect("asked once both have fed epoch 0");
        assert_eq!(req.epoch, 0);
        req.reply.send(Ok(b"state0".to_vec())).unwrap();
        eventually("the manifest of epoch 0", || dir.path().join("epoch-0.json").exists());
        let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("epoch-0.json")).unwrap()).unwrap();
        assert_eq!(manifest["learners"]["m"], crate::learner::checkpoint::FORMAT);
        assert_eq!(std::fs::read(dir.path().join("epoch-0/learner-m.p0")).unwrap(), b"state0");
        // scorers that ended have fed every later epoch: the learner is asked at once
        tx.send(fed(0, 0, true)).unwrap();
        tx.send(fed(1, 0, true)).unwrap();
        tx.send(state(0, 1)).unwrap();
        let req = asked.recv_timeout(Duration::from_secs(10)).expect("asked for epoch 1");
        assert_eq!(req.epoch, 1);
        req.reply.send(Err("no".into())).unwrap();
        drop(tx);
        let err = h.join().unwrap().unwrap_err();
        assert!(format!("{err:#}").contains("could not give its state for checkpoint 1: no"), "{err:#}");
        assert!(stopped.load(Ordering::SeqCst), "a run is told when its checkpoints stop");
    }

    /// Each checkpoint prepared, with its positions.
    type Prepared = std::sync::Mutex<Vec<(u64, Vec<(String, u32, i64)>)>>;

    /// Records each prepare, commit and seal, checking the manifest is
    /// written between a prepare and its commit.
    struct Recorder(std::path::PathBuf, Prepared, std::sync::Mutex<Vec<u64>>, AtomicU64);

    impl super::Commit for Recorder {
        fn prepare(&self, epoch: u64, positions: &[(String, u32, i64)]) -> anyhow::Result<()> {
            assert!(!self.0.join(format!("epoch-{epoch}.json")).exists(), "prepared before the manifest");
            self.1.lock().unwrap().push((epoch, positions.to_vec()));
            Ok(())
        }
        fn commit(&self, epoch: u64) -> anyhow::Result<()> {
            assert!(self.0.join(format!("epoch-{epoch}.json")).exists(), "committed after the manifest");
            self.2.lock().unwrap().push(epoch);
            Ok(())
        }
        fn seal(&self) {
            self.3.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A source `t`'s cut of one partition (the worker's index) by `worker`.
    fn cut(worker: usize, epoch: u64, next: i64, last: bool) -> Part {
        let partitions = vec![crate::checkpoint::PartitionCut { partition: worker as u32, next_offset: next, clock: Default::default() }];
        Part::Cut { worker, topic: "t".into(), epoch, partitions, last }
    }

    #[test]
    fn each_process_of_a_committing_cluster_commits_once_the_manifest_is_written_and_all_agree_on_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let mut procs = Vec::new();
        for p in 0..2 {
            let (tx, rx) = channel();
            let recorder = Arc::new(Recorder(dir.path().to_owned(), Default::default(), Default::default(), Default::default()));
            let me = Participation { process: p, processes: 2, commit: Some(recorder.clone()), ..Default::default() };
            let d = dir.path().to_owned();
            let h = std::thread::spawn(move || coordinate(&d, 2, me, rx, &AtomicU64::new(u64::MAX)));
            tx.send(Part::Built { worker: p, peers: 2, operators: vec![("op".into(), 1)], sources: vec!["t".into()] }).unwrap();
            procs.push((tx, h, recorder));
        }
        // checkpoint 1 (every 2nd epoch): process 1's parts come first
        for p in [1, 0] {
            let tx = &procs[p].0;
            tx.send(state(p, 1)).unwrap();
            tx.send(cut(p, 1, 10 + p as i64, false)).unwrap();
            tx.send(Part::Drained { worker: p, frontier: 2 }).unwrap();
        }
        eventually("both committed checkpoint 1", || procs.iter().all(|(_, _, r)| *r.2.lock().unwrap() == vec![1]));
        for (p, (_, _, r)) in procs.iter().enumerate() {
            assert_eq!(*r.1.lock().unwrap(), vec![(1, vec![("t".to_owned(), p as u32, 10 + p as i64)])], "process {p} commits its own positions");
        }
        // process 0 ends at epoch 2, process 1 at epoch 4: neither is a checkpoint
        // epoch of the other, so the processes agree on 4 once their workers are gone
        for (p, end) in [(0, 2u64), (1, 4)] {
            let tx = &procs[p].0;
            tx.send(cut(p, end, 20 + p as i64, true)).unwrap();
            tx.send(Part::State { worker: p, name: "op".into(), epoch: end, bytes: Arc::new(vec![end as u8]), last: true }).unwrap();
            tx.send(Part::Drained { worker: p, frontier: u64::MAX }).unwrap();
        }
        let (senders, rest): (Vec<_>, Vec<_>) = procs.into_iter().map(|(tx, h, r)| (tx, (h, r))).unzip();
        drop(senders);
        let results: Vec<_> = rest.into_iter().map(|(h, r)| (h.join().unwrap().unwrap(), r)).collect();
        for (p, (done, r)) in results.iter().enumerate() {
            assert_eq!(*done, vec![1, 4], "process {p}'s committed checkpoints");
            assert_eq!(*r.2.lock().unwrap(), vec![1, 4]);
            assert_eq!(r.1.lock().unwrap()[1], (4, vec![("t".to_owned(), p as u32, 20 + p as i64)]), "process {p}'s last positions");
            assert!(r.3.load(Ordering::SeqCst) > 0, "process {p} sealed its held outputs into the last transaction");
        }
        assert!(dir.path().join("epoch-4.json").exists());
        assert_eq!(std::fs::read(dir.path().join("epoch-4/op.w0")).unwrap(), vec![2], "process 0's ended state stands for epoch 4");
    }

    #[test]
    fn a_committing_run_commits_each_checkpoint_and_checkpoints_where_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = channel();
        let recorder = Arc::new(Recorder(dir.path().to_owned(), Default::default(), Default::default(), Default::default()));
        let d = dir.path().to_owned();
        let me = Participation { commit: Some(recorder.clone()), ..Default::default() };
        let h = std::thread::spawn(move || coordinate(&d, 4, me, rx, &AtomicU64::new(u64::MAX)));
        tx.send(Part::Built { worker: 0, peers: 1, operators: vec![("op".into(), 1)], sources: vec!["t".into()] }).unwrap();
        let cut = |epoch: u64, next: i64, last: bool| Part::Cut {
            worker: 0,
            topic: "t".into(),
            epoch,
            partitions: vec![crate::checkpoint::PartitionCut { partition: 0, next_offset: next, clock: Default::default() }],
            last,
        };
        // epoch 3 is a checkpoint (every 4th)
        tx.send(state(0, 3)).unwrap();
        tx.send(cut(3, 30, false)).unwrap();
        tx.send(Part::Drained { worker: 0, frontier: 4 }).unwrap();
        eventually("checkpoint 3 committed", || recorder.2.lock().unwrap().len() == 1);
        // the source ends at epoch 5 and the operator at 6: epoch 6 is made a checkpoint
        tx.send(cut(5, 52, true)).unwrap();
        tx.send(Part::State { worker: 0, name: "op".into(), epoch: 6, bytes: Arc::new(vec![6]), last: true }).unwrap();
        tx.send(Part::Drained { worker: 0, frontier: u64::MAX }).unwrap();
        eventually("the final checkpoint committed", || recorder.2.lock().unwrap().len() == 2);
        drop(tx);
        assert_eq!(h.join().unwrap().unwrap(), vec![3, 6]);
        let t = |next| vec![("t".to_owned(), 0u32, next)];
        assert_eq!(*recorder.1.lock().unwrap(), vec![(3, t(30)), (6, t(52))]);
        assert_eq!(*recorder.2.lock().unwrap(), vec![3, 6]);
        assert_eq!(std::fs::read(dir.path().join("epoch-6/op.w0")).unwrap(), vec![6]);
    }

    #[test]
    fn parts_of_an_unfinished_checkpoint_are_cleared_before_a_run() {
        let dir = tempfile::tempdir().unwrap();
        for e in [3, 5] {
            std::fs::create_dir_all(dir.path().join(format!("epoch-{e}"))).unwrap();
            std::fs::write(dir.path().join(format!("epoch-{e}/process-1.done")), b"").unwrap();
        }
        std::fs::write(dir.path().join("epoch-3.json"), b"{}").unwrap();
        super::clear_after(dir.path(), super::newest_manifest(dir.path())).unwrap();
        assert!(dir.path().join("epoch-3/process-1.done").exists(), "the newest manifest's parts stay");
        assert!(!dir.path().join("epoch-5").exists(), "a stale marker of an unfinished epoch would count for the next run");
    }
}
