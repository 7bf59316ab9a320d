//! Choosing the checkpoint to restore: the newest one whose input offsets are
//! exactly what the consumer group has committed. A checkpoint is committed only
//! after every output before it was delivered, so that one is safe to resume from;
//! a newer one may not be (its outputs may have been lost in a crash).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use vigil_operators::{FeatureState, JoinState};

use super::format::{self, Manifest};
use crate::watermark::PartitionClock;

/// A checkpoint chosen for restore.
#[derive(Clone, Debug)]
pub struct Restored {
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// A savepoint of a changed job: how its state becomes this job's.
    pub upgrade: Option<std::sync::Arc<super::upgrade::Upgrade>>,
}

impl Restored {
    pub fn epoch(&self) -> u64 {
        self.manifest.epoch
    }
    /// Next offset of every partition.
    pub fn offsets(&self) -> HashMap<u32, i64> {
        self.manifest.partitions.iter().map(|c| (c.partition, c.next_offset)).collect()
    }
    pub fn clock(&self, partition: u32) -> PartitionClock {
        self.manifest.partitions.iter().find(|c| c.partition == partition).map(|c| c.clock.clone()).unwrap_or_default()
    }
    /// The online learner's state, when the checkpoint has one.
    pub fn learner(&self) -> Result<Option<crate::learner::checkpoint::LearnerCheckpoint>> {
        if self.upgrade.as_ref().is_some_and(|u| !u.carry_model) {
            return Ok(None);
        }
        match &self.manifest.learner {
            Some(name) => {
                let path = self.dir.join(name);
                let bytes = std::fs::read(&path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
                crate::learner::checkpoint::LearnerCheckpoint::decode(&bytes).map(Some).map_err(|e| anyhow::anyhow!("{}: {e:#}", path.display()))
            }
            None => Ok(None),
        }
    }

    /// The feature and join state of the keys that `keep` selects (this worker's share),
    /// gathered from every worker's state file: any number of workers can restore
    /// a checkpoint taken with any other number.
    pub fn worker_state(&self, empty: (FeatureState, JoinState), keep: impl Fn(&str) -> bool) -> Result<(FeatureState, JoinState)> {
        let (mut state, mut joins) = empty;
        for name in &self.manifest.states {
            let (mut part, mut part_joins) = format::read_state(&self.dir.join(name))?;
            if let Some(u) = &self.upgrade {
                (part, part_joins) = u.migrate(part, part_joins);
            }
            state.absorb(part, &keep).map_err(|e| anyhow::anyhow!("{}: {e}", name))?;
            joins.absorb(part_joins, &keep).map_err(|e| anyhow::anyhow!("{}: {e}", name))?;
        }
        Ok((state, joins))
    }
}

/// The savepoint at `path` (see [`super::savepoint::find`]) planned into `job`
/// (see [`super::upgrade::plan`]): what a run restores; the plan's lines are
/// logged.
pub fn from_savepoint(path: &Path, job: &crate::spec::JobSpec, reset: &[String]) -> Result<Restored> {
    let (dir, manifest) = super::savepoint::find(path)?;
    let Some(shape) = &manifest.shape else { bail!("{} predates savepoints: it records no state shape", dir.display()) };
    let upgrade = super::upgrade::plan(shape, job, reset).map_err(|e| anyhow::anyhow!("{}: {e:#}", dir.display()))?;
    for line in &upgrade.report {
        tracing::info!(savepoint = %dir.display(), "{line}");
    }
    Ok(Restored { dir, manifest, upgrade: Some(std::sync::Arc::new(upgrade)) })
}

/// Finds the checkpoint in `dir` that matches `committed` (partition -> next offset
/// committed by the group, for partitions that have a commit).
pub fn choose(dir: &Path, committed: &HashMap<u32, i64>, partitions: u32, fingerprint: &str) -> Result<Option<Restored>> {
    let manifests = format::list_manifests(dir)?;
    if manifests.is_empty() {
        return Ok(None);
    }
    if committed.is_empty() {
        tracing::warn!(dir = %dir.display(), "checkpoints exist but the group has no committed offsets: starting from the beginning without state");
        return Ok(None);
    }
    for (_, path) in &manifests {
        let m = format::read_manifest(path)?;
        if m.fingerprint != fingerprint {
            bail!(
                "{} was written by a different job definition (features, schema or lateness changed); \
                 move the checkpoint directory away to start without state",
                path.display()
            );
        }
        let offsets: HashMap<u32, i64> = m.partitions.iter().map(|c| (c.partition, c.next_offset)).collect();
        let matches = (0..partitions).all(|p| offsets.get(&p).copied().unwrap_or(-1) == committed.get(&p).copied().unwrap_or(-1));
        if matches {
            return Ok(Some(Restored { dir: dir.to_owned(), manifest: m, upgrade: None }));
        }
    }
    bail!(
        "the consumer group's committed offsets match no checkpoint in {}; refusing to run with state that does not \
         match the input position (move the directory away to start without state, or reset the group's offsets)",
        dir.display()
    )
}

/// Clears the checkpoints in `dir` that no restart will restore, before a run
/// writes its own, and says how many went:
/// - after `restored` (a checkpoint of this directory, the one this run resumes)
///   every newer manifest is deleted: a run wrote it and stopped before its
///   offsets were committed, and the group's offsets never come back to it;
/// - without one (no state, or a savepoint's), every manifest and state file
///   is moved into `superseded-<unix ms>/`, kept for recovery by hand (a wrong
///   group id starts without state, and this directory's checkpoints stay).
///
/// Left in place, such a manifest counts among the newest to the checkpoint
/// coordinator's garbage collection, which then deletes this run's state files
/// in progress (older than it, named by no kept manifest), and a later restart
/// finds its checkpoint's state missing.
pub fn clear_unrestorable(dir: &Path, restored: Option<u64>) -> Result<usize> {
    let stale: Vec<(u64, PathBuf)> = format::list_manifests(dir)?.into_iter().filter(|(e, _)| restored.is_none_or(|r| *e > r)).collect();
    if stale.is_empty() {
        return Ok(0);
    }
    if restored.is_some() {
        for (_, path) in &stale {
            std::fs::remove_file(path).map_err(|e| anyhow::anyhow!("removing {}: {e}", path.display()))?;
        }
        return Ok(stale.len());
    }
    let aside = dir.join(format!("superseded-{}", crate::types::now_us() / 1000));
    std::fs::create_dir_all(&aside)?;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_owned();
        if path.is_file() && (name.starts_with("manifest-") || name.starts_with("state-")) {
            std::fs::rename(&path, aside.join(&name)).map_err(|e| anyhow::anyhow!("moving {} aside: {e}", path.display()))?;
        }
    }
    tracing::warn!(dir = %dir.display(), moved_to = %aside.display(), checkpoints = stale.len(), "checkpoints this run does not restore are moved aside");
    Ok(stale.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::format::{manifest_name, state_name, write_atomic, write_test_checkpoint};

    fn exists(dir: &Path, name: &str) -> bool {
        dir.join(name).exists()
    }

    #[test]
    fn a_crashed_runs_newer_checkpoints_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // a run committed epoch 2, wrote checkpoints 3..=9 and crashed
        (2..=9).for_each(|e| write_test_checkpoint(d, e, b"x"));
        assert_eq!(clear_unrestorable(d, Some(2)).unwrap(), 7);
        assert_eq!(format::list_manifests(d).unwrap().iter().map(|m| m.0).collect::<Vec<_>>(), vec![2]);
        assert!(exists(d, &manifest_name(2)) && exists(d, &state_name(2, 0)));
    }

    #[test]
    fn without_a_restored_checkpoint_every_checkpoint_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        (1..=3).for_each(|e| write_test_checkpoint(d, e, b"x"));
        write_atomic(&d.join(format::COMMITTED_MARKER), b"3").unwrap();
        assert_eq!(clear_unrestorable(d, None).unwrap(), 3);
        assert!(format::list_manifests(d).unwrap().is_empty());
        let aside: Vec<_> = std::fs::read_dir(d).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
        assert_eq!(aside.len(), 1);
        assert_eq!(format::list_manifests(&aside[0]).unwrap().len(), 3);
        assert!(exists(&aside[0], &state_name(3, 0)) && !exists(d, &state_name(3, 0)));
        assert_eq!(clear_unrestorable(d, None).unwrap(), 0, "nothing left to clear");
    }
}
