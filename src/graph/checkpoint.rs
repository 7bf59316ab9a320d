//! Checkpoints of a graph: at every `every`-th epoch boundary, where each source
//! stopped (next offset and event-time clock per (topic, partition)) and each
//! named operator's state on each worker, as of exactly the end of that epoch.
//!
//! - Every stateful operator processes its input in epoch order
//!   ([`super::epochs::EpochGate`]); once its input frontier passes a checkpoint
//!   epoch, and before it touches a record of a later one, it reports its state.
//!   Sources report their positions at the same boundaries.
//! - A coordinator thread writes each part as it arrives
//!   (`epoch-E/NAME.wW`, `epoch-E/source-TOPIC.wW`) and, once every worker's
//!   parts of every operator and source are in, the manifest (`epoch-E.json`,
//!   atomically, last): a checkpoint exists only with its manifest. The two
//!   newest are kept.
//! - On restore the latest manifest wins. Its operator names and versions must
//!   match the graph's (a clear refusal names what differs); each worker takes
//!   from every old worker's part the keys it now owns, so the worker count may
//!   change; sources seek to the recorded offsets with their clocks.
//! - Differential views are rebuilt, not stored: the operators that feed them
//!   (`view`, `upsert_table`) keep their contents and send them again at the
//!   first epoch after the restore; upsert sinks keep what they last wrote per
//!   key, so an unchanged key is not written again.
//!
//! Outputs are at-least-once across a restore: what was written after the
//! checkpoint's epoch is written again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::checkpoint::format::write_atomic;
use crate::checkpoint::PartitionCut;

/// What workers tell the coordinator.
pub(crate) enum Part {
    /// A worker built its graph: its operators' names (with state versions) and its sources' topics.
    Built { peers: usize, operators: Vec<(String, u32)>, sources: Vec<String> },
    /// A source's positions after every record of epochs up to `epoch`; `last`:
    /// the source has ended, so these are its positions at every later epoch too.
    Cut { worker: usize, topic: String, epoch: u64, partitions: Vec<PartitionCut>, last: bool },
    /// An operator's state after every record of epochs up to `epoch`, and none
    /// later; `last`: its input has ended, so this is its state at every later epoch.
    State { worker: usize, name: String, epoch: u64, bytes: Arc<Vec<u8>>, last: bool },
}

/// A checkpoint's table of contents.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub epoch: u64,
    pub workers: usize,
    /// Operator name -> its state version.
    pub operators: BTreeMap<String, u32>,
    pub sources: Vec<String>,
}

/// What a run resumes from.
pub struct Restored {
    pub manifest: Manifest,
    /// (topic, partition) -> where to resume.
    pub positions: HashMap<(String, u32), PartitionCut>,
    /// Operator name -> every old worker's part.
    pub states: HashMap<String, Vec<Vec<u8>>>,
}

impl Restored {
    /// The first epoch after the checkpoint.
    pub fn start_epoch(&self) -> u64 {
        self.manifest.epoch + 1
    }
    /// Checks the graph's operators against the checkpoint's.
    pub(crate) fn check(&self, operators: &[(String, u32)]) -> Result<()> {
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
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(None) };
    let mut epochs: Vec<u64> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_prefix("epoch-")?.strip_suffix(".json")?.parse().ok()))
        .collect();
    epochs.sort();
    let Some(epoch) = epochs.last() else { return Ok(None) };
    let path = dir.join(format!("epoch-{epoch}.json"));
    let manifest: Manifest = serde_json::from_slice(&std::fs::read(&path)?).with_context(|| format!("reading {}", path.display()))?;
    let parts = dir.join(format!("epoch-{epoch}"));
    let mut positions = HashMap::new();
    for topic in &manifest.sources {
        for w in 0..manifest.workers {
            let file = parts.join(format!("source-{topic}.w{w}"));
            let cuts: Vec<PartitionCut> = bincode::deserialize(&std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?)?;
            positions.extend(cuts.into_iter().map(|c| ((topic.clone(), c.partition), c)));
        }
    }
    let mut states = HashMap::new();
    for name in manifest.operators.keys() {
        let mut all = Vec::new();
        for w in 0..manifest.workers {
            let file = parts.join(format!("{name}.w{w}"));
            all.push(std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?);
        }
        states.insert(name.clone(), all);
    }
    Ok(Some(Restored { manifest, positions, states }))
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

/// Checkpoints as a runner configures them (`(dir, every)`): the newest
/// checkpoint there to resume from, and the coordinator started.
pub(crate) fn configure(config: &Option<(std::path::PathBuf, u64)>) -> Result<(Option<Arc<Checkpoints>>, Option<Coordinator>)> {
    let Some((dir, every)) = config else { return Ok((None, None)) };
    let restored = latest(dir)?.map(Arc::new);
    let (c, h) = start(dir, *every, restored)?;
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
fn start(dir: &Path, every: u64, restored: Option<Arc<Restored>>) -> Result<(Arc<Checkpoints>, Coordinator)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (tx, rx) = std::sync::mpsc::channel();
    let dir = dir.to_owned();
    let newest = Arc::new(AtomicU64::new(u64::MAX));
    let written = newest.clone();
    let handle = std::thread::Builder::new().name("graph-checkpoints".into()).spawn(move || coordinate(&dir, every.max(1), rx, &written))?;
    Ok((Arc::new(Checkpoints { every: every.max(1), restored, parts: Mutex::new(tx), newest }), handle))
}

/// Writes parts as they come and a manifest once an epoch is whole; returns the
/// epochs checkpointed.
fn coordinate(dir: &Path, every: u64, rx: Receiver<Part>, newest: &AtomicU64) -> Result<Vec<u64>> {
    let mut layout: Option<(usize, BTreeMap<String, u32>, BTreeSet<String>)> = None;
    // per checkpoint epoch: the files written
    let mut have: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    // the last cuts of ended sources, from their epoch on
    let mut ended: Vec<(u64, String, Arc<Vec<u8>>)> = Vec::new();
    let mut done = Vec::new();
    for part in rx {
        let own = match part {
            Part::Built { peers, operators, sources } => {
                layout = Some((peers, operators.into_iter().collect(), sources.into_iter().collect()));
                continue;
            }
            Part::Cut { worker, topic, epoch, partitions, last } => {
                let (file, bytes) = (format!("source-{topic}.w{worker}"), Arc::new(bincode::serialize(&partitions)?));
                settle(dir, every, &mut have, &mut ended, epoch, file, bytes, last)?
            }
            Part::State { worker, name, epoch, bytes, last } => settle(dir, every, &mut have, &mut ended, epoch, format!("{name}.w{worker}"), bytes, last)?,
        };
        let Some((peers, operators, sources)) = &layout else { bail!("a checkpoint part arrived before the graph was built") };
        if let Some((epoch, file, bytes)) = own {
            let parts = dir.join(format!("epoch-{epoch}"));
            if !have.contains_key(&epoch) {
                std::fs::create_dir_all(&parts)?;
                let files = have.entry(epoch).or_default();
                for (_, f, b) in ended.iter().filter(|(e, _, _)| *e < epoch) {
                    files.insert(f.clone());
                    write_atomic(&parts.join(f), b)?;
                }
            }
            write_atomic(&parts.join(&file), &bytes)?;
            have.entry(epoch).or_default().insert(file);
        }
        let complete: Vec<u64> = have.iter().filter(|(_, f)| f.len() == peers * (operators.len() + sources.len())).map(|(e, _)| *e).collect();
        for e in complete {
            let manifest = Manifest { epoch: e, workers: *peers, operators: operators.clone(), sources: sources.iter().cloned().collect() };
            write_atomic(&dir.join(format!("epoch-{e}.json")), &serde_json::to_vec_pretty(&manifest)?)?;
            crate::crash_point!("graph-checkpoint-written");
            have.remove(&e);
            done.push(e);
            newest.store(e, Ordering::SeqCst);
            prune(dir, e)?;
        }
    }
    Ok(done)
}

/// A part that may be the last of its kind (an ended source or operator): it
/// stands for itself in every later epoch, those under way and those to come.
/// Returns the part to write for `epoch` itself, if that epoch is a checkpoint.
#[allow(clippy::too_many_arguments)]
fn settle(
    dir: &Path,
    every: u64,
    have: &mut BTreeMap<u64, BTreeSet<String>>,
    ended: &mut Vec<(u64, String, Arc<Vec<u8>>)>,
    epoch: u64,
    file: String,
    bytes: Arc<Vec<u8>>,
    last: bool,
) -> Result<Option<(u64, String, Arc<Vec<u8>>)>> {
    if last {
        ended.push((epoch, file.clone(), bytes.clone()));
        for (e, files) in have.iter_mut().filter(|(e, _)| **e > epoch) {
            if files.insert(file.clone()) {
                write_atomic(&dir.join(format!("epoch-{e}")).join(&file), &bytes)?;
            }
        }
    }
    Ok((epoch % every == every - 1).then_some((epoch, file, bytes)))
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
