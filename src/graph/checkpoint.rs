//! Checkpoints of a graph: at every `every`-th epoch boundary, where each source
//! stopped (next offset and event-time clock per (topic, partition)) and each
//! named operator's state on each worker, as of exactly the end of that epoch.
//!
//! - Every stateful operator processes its input in epoch order
//!   ([`super::epochs::EpochGate`]); once its input frontier passes a checkpoint
//!   epoch, and before it touches a record of a later one, it reports its state.
//!   Sources report their positions at the same boundaries.
//! - A coordinator thread per process ([`super::coordinator`]) writes each part
//!   as it arrives (`epoch-E/NAME.wW`, `epoch-E/source-TOPIC.wW`) and, once
//!   every worker's parts of every operator and source are in and the outputs
//!   of every epoch up to E are delivered, the manifest (`epoch-E.json`,
//!   atomically, last): a checkpoint exists only with its manifest. The
//!   processes of a cluster write into one shared directory. The two newest
//!   are kept.
//! - On restore the latest manifest wins (an exactly-once run on Kafka:
//!   the one its last commit names, see `kafka::graph_txn`). Its operator names and versions must
//!   match the graph's (a clear refusal names what differs); each worker takes
//!   from every old worker's part the keys it now owns, so the worker count may
//!   change; sources seek to the recorded offsets with their clocks.
//! - An online model's learner ([`super::OnlineModel`]) is in the checkpoint
//!   too (`epoch-E/learner-NAME.pP`, one per process's replica; a restore reads
//!   process 0's), as a TOML job's is (`learner::checkpoint`: the sealing rule,
//!   so that the saved model never trained on a sample of a later epoch). Each
//!   scorer tells the coordinator when it has sent the learner every prediction
//!   of an epoch (`Part::Fed`; in a cluster through the learner route, so it
//!   counts for every process's replica); once every worker's scorer has passed
//!   a checkpoint epoch, the coordinator asks the learner for its state as of
//!   that epoch. The learner's labels are read again from the positions saved
//!   with it.
//! - Differential views are rebuilt, not stored: the operators that feed them
//!   (`view`, `upsert_table`) keep their contents and send them again at the
//!   first epoch after the restore; upsert sinks keep what they last wrote per
//!   key, so an unchanged key is not written again.
//!
//! Outputs are at-least-once across a restore: what was written after the
//! checkpoint's epoch is written again; exactly-once through Kafka
//! transactions in one process (`KafkaRun::exactly_once`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::coordinator::Participation;
use crate::checkpoint::PartitionCut;
use crate::learner::checkpoint::CheckpointRequest;

/// What workers tell the coordinator.
pub(crate) enum Part {
    /// A worker built its graph: its operators' names (with state versions) and its sources' topics.
    Built { worker: usize, peers: usize, operators: Vec<(String, u32)>, sources: Vec<String> },
    /// The least input frontier of a worker's sinks: they have handed the runner
    /// every output of the epochs before it.
    Drained { worker: usize, frontier: u64 },
    /// A source's positions after every record of epochs up to `epoch`; `last`:
    /// the source has ended, so these are its positions at every later epoch too.
    Cut { worker: usize, topic: String, epoch: u64, partitions: Vec<PartitionCut>, last: bool },
    /// An operator's state after every record of epochs up to `epoch`, and none
    /// later; `last`: its input has ended, so this is its state at every later epoch.
    State { worker: usize, name: String, epoch: u64, bytes: Arc<Vec<u8>>, last: bool },
    /// An online model's learner started in this process: where to ask for its state.
    Learner { name: String, requests: Sender<CheckpointRequest> },
    /// Worker `worker`'s scorer of model `model` has sent the learner every
    /// prediction of epochs up to `epoch`; `last`: of every epoch (its input ended).
    Fed { worker: usize, model: String, epoch: u64, last: bool },
    /// A part of checkpoint `epoch` that will never come: that checkpoint is
    /// not taken (a run that commits stops: its transaction cannot commit
    /// without it).
    Skipped { epoch: u64, why: String },
    /// Answered once every part sent before it is taken (and the learners asked
    /// for what those parts made due).
    Flush(Sender<()>),
}

/// A checkpoint's table of contents.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub epoch: u64,
    pub workers: usize,
    /// Operator name -> its state version.
    pub operators: BTreeMap<String, u32>,
    pub sources: Vec<String>,
    /// Online model -> its learner state's format (`learner::checkpoint::FORMAT`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub learners: BTreeMap<String, u32>,
}

/// What a run resumes from.
pub struct Restored {
    pub manifest: Manifest,
    /// (topic, partition) -> where to resume.
    pub positions: HashMap<(String, u32), PartitionCut>,
    /// Operator name -> every old worker's part.
    pub states: HashMap<String, Vec<Vec<u8>>>,
    /// Online model -> its learner's state (process 0's replica).
    pub learners: HashMap<String, Vec<u8>>,
}

impl Restored {
    /// The first epoch after the checkpoint.
    pub fn start_epoch(&self) -> u64 {
        self.manifest.epoch + 1
    }
    /// The learner state of online model `name` in the checkpoint, if any.
    pub(crate) fn learner(&self, name: &str) -> Result<Option<crate::learner::checkpoint::LearnerCheckpoint>> {
        let Some(bytes) = self.learners.get(name) else { return Ok(None) };
        let c = crate::learner::checkpoint::LearnerCheckpoint::decode(bytes)
            .with_context(|| format!("the learner of `{name}` in checkpoint {}", self.manifest.epoch))?;
        Ok(Some(c))
    }
    /// Checks the graph's operators and online models against the checkpoint's.
    pub(crate) fn check(&self, operators: &[(String, u32)], learners: &[String]) -> Result<()> {
        let then: Vec<&String> = self.manifest.learners.keys().collect();
        let now: Vec<&String> = learners.iter().collect();
        if then != now {
            bail!("the checkpoint of epoch {} does not match this graph: its online models are {then:?}, this graph's are {now:?}", self.manifest.epoch);
        }
        if let Some((name, v)) = self.manifest.learners.iter().find(|(_, v)| **v != crate::learner::checkpoint::FORMAT) {
            bail!("online model `{name}`: the checkpoint has learner state format {v}, this build's is {}", crate::learner::checkpoint::FORMAT);
        }
        let now: BTreeMap<String, u32> = operators.iter().cloned().collect();
        let then = &self.manifest.operators;
        let missing: Vec<&String> = then.keys().filter(|n| !now.contains_key(*n)).collect();
        let added: Vec<&String> = now.keys().filter(|n| !then.contains_key(*n)).collect();
        if !missing.is_empty() || !added.is_empty() {
            bail!(
                "the checkpoint of epoch {} does not match this graph: operators only in the checkpoint: {missing:?}; only in the graph: {added:?}",
                self.manifest.epoch
            );
        }
        for (name, v) in &now {
            if then[name] != *v {
                bail!("operator `{name}`: the checkpoint has state version {}, this graph's is {v}", then[name]);
            }
        }
        Ok(())
    }
}

/// Loads the newest complete checkpoint under `dir`, if any.
pub fn latest(dir: &Path) -> Result<Option<Restored>> {
    let Some(epoch) = super::coordinator::newest_manifest(dir) else { return Ok(None) };
    load(dir, epoch).map(Some)
}

/// Loads the checkpoint of `epoch` under `dir`.
pub fn load(dir: &Path, epoch: u64) -> Result<Restored> {
    let path = dir.join(format!("epoch-{epoch}.json"));
    let manifest: Manifest = serde_json::from_slice(&std::fs::read(&path)?).with_context(|| format!("reading {}", path.display()))?;
    let parts = dir.join(format!("epoch-{epoch}"));
    let positions = positions(dir, &manifest)?;
    let mut states = HashMap::new();
    for name in manifest.operators.keys() {
        let mut all = Vec::new();
        for w in 0..manifest.workers {
            let file = parts.join(format!("{name}.w{w}"));
            all.push(std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?);
        }
        states.insert(name.clone(), all);
    }
    let mut learners = HashMap::new();
    for name in manifest.learners.keys() {
        let file = parts.join(format!("learner-{name}.p0"));
        learners.insert(name.clone(), std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?);
    }
    Ok(Restored { manifest, positions, states, learners })
}

/// The sources' positions in the checkpoint of `manifest` under `dir`.
pub(crate) fn positions(dir: &Path, manifest: &Manifest) -> Result<HashMap<(String, u32), PartitionCut>> {
    let parts = dir.join(format!("epoch-{}", manifest.epoch));
    let mut positions = HashMap::new();
    for topic in &manifest.sources {
        for w in 0..manifest.workers {
            let file = parts.join(format!("source-{topic}.w{w}"));
            let cuts: Vec<PartitionCut> = bincode::deserialize(&std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?)?;
            positions.extend(cuts.into_iter().map(|c| ((topic.clone(), c.partition), c)));
        }
    }
    Ok(positions)
}

/// Where operators and sources send their parts, and which epochs are checkpoints.
pub(crate) struct Checkpoints {
    pub(crate) every: u64,
    pub(crate) restored: Option<Arc<Restored>>,
    parts: Mutex<Sender<Part>>,
    /// The newest epoch whose manifest is written (`u64::MAX`: none yet).
    newest: Arc<AtomicU64>,
}

impl Checkpoints {
    pub(crate) fn send(&self, part: Part) {
        let _ = self.parts.lock().unwrap_or_else(|e| e.into_inner()).send(part);
    }
    /// Waits until the coordinator has taken every part sent so far (the
    /// runner calls it before it ends the learners: the checkpoints those parts
    /// completed have asked them for their state by then).
    pub(crate) fn flush(&self) {
        let (tx, rx) = std::sync::mpsc::channel();
        self.send(Part::Flush(tx));
        let _ = rx.recv();
    }
    /// Whether the end of `epoch` is a checkpoint.
    pub(crate) fn is_checkpoint(&self, epoch: u64) -> bool {
        epoch % self.every == self.every - 1
    }
    /// Whether every checkpoint up to `epoch` that this run takes is written.
    pub(crate) fn written_through(&self, epoch: u64) -> bool {
        let start = self.start_epoch();
        let Some(last) = (start..=epoch).rev().find(|e| self.is_checkpoint(*e)) else { return true };
        let newest = self.newest.load(Ordering::SeqCst);
        newest != u64::MAX && newest >= last
    }
    /// The first epoch of this run.
    pub(crate) fn start_epoch(&self) -> u64 {
        self.restored.as_ref().map_or(0, |r| r.start_epoch())
    }
}

/// The coordinator's thread: the checkpoint epochs it wrote.
pub(crate) type Coordinator = std::thread::JoinHandle<Result<Vec<u64>>>;

/// Checkpoints as a runner configures them (`(dir, every)`): the checkpoint
/// there to resume from (the newest; or, `pinned`, the one given, `None`: a
/// fresh start, as an exactly-once run's last commit says), and the
/// coordinator started.
pub(crate) fn configure(
    config: &Option<(std::path::PathBuf, u64)>,
    me: Participation,
    pinned: Option<Option<u64>>,
) -> Result<(Option<Arc<Checkpoints>>, Option<Coordinator>)> {
    let Some((dir, every)) = config else { return Ok((None, None)) };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let from = pinned.unwrap_or_else(|| super::coordinator::newest_manifest(dir));
    super::coordinator::clear_after(dir, from).with_context(|| format!("clearing an unfinished checkpoint in {}", dir.display()))?;
    if me.commit.is_some() && me.processes > 1 {
        super::coordinator::forget_closing(dir, me.process)?;
    }
    let restored = from.map(|e| load(dir, e)).transpose()?.map(Arc::new);
    let (c, h) = start(dir, *every, restored, me)?;
    Ok((Some(c), Some(h)))
}

/// The epochs a coordinator wrote, once every worker is done.
pub(crate) fn finish(coordinator: Option<Coordinator>) -> Result<Vec<u64>> {
    match coordinator {
        Some(h) => h.join().map_err(|_| anyhow::anyhow!("the checkpoint coordinator panicked"))?,
        None => Ok(Vec::new()),
    }
}

/// Starts the coordinator writing under `dir`; returns the handle for workers and
/// the thread (which ends when every sender is gone).
fn start(dir: &Path, every: u64, restored: Option<Arc<Restored>>, me: Participation) -> Result<(Arc<Checkpoints>, Coordinator)> {
    let (tx, rx) = std::sync::mpsc::channel();
    let dir = dir.to_owned();
    let newest = Arc::new(AtomicU64::new(u64::MAX));
    let written = newest.clone();
    let handle =
        std::thread::Builder::new().name("graph-checkpoints".into()).spawn(move || super::coordinator::coordinate(&dir, every.max(1), me, rx, &written))?;
    Ok((Arc::new(Checkpoints { every: every.max(1), restored, parts: Mutex::new(tx), newest }), handle))
}
