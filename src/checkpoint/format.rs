//! Checkpoint files. A checkpoint is a manifest (`manifest-<epoch>.json`) that lists
//! every partition's next offset and clock and names one state file per worker
//! (`state-<through>-w<worker>.bin`). Every file is written to a temporary name,
//! fsynced, renamed and its directory fsynced, so a crash never leaves a partial
//! file under a real name; a checkpoint exists once its manifest does. Both formats
//! carry a version; an unknown version is refused, never guessed at.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use vigil_operators::{FeatureState, JoinState};

use super::PartitionCut;

/// Version of the manifest and state formats written by this build (2: feature
/// state with window kinds, open windows and close timers; 3: interval joins'
/// state beside the features').
pub const FORMAT_VERSION: u32 = 3;
const STATE_MAGIC: &[u8; 8] = b"VIGILST\0";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub job: String,
    /// Hash of everything that shapes state (features, schema, lateness): a changed
    /// job cannot read an old job's state.
    pub fingerprint: String,
    pub epoch: u64,
    pub partitions: Vec<PartitionCut>,
    /// State files, relative to the checkpoint directory.
    pub states: Vec<String>,
    pub created_unix_ms: u64,
    /// The online learner's state file (`learner::checkpoint`), for jobs that train.
    #[serde(default)]
    pub learner: Option<String>,
    /// What shapes the state, by name: a savepoint of it can start a changed
    /// job ([`super::upgrade`]). Absent in checkpoints of older builds.
    #[serde(default)]
    pub shape: Option<super::upgrade::StateShape>,
}

/// The file holding the epoch of the newest checkpoint whose offsets are
/// committed (written after each commit; what a savepoint may copy).
pub const COMMITTED_MARKER: &str = "committed-epoch";

/// The epoch in `dir`'s committed marker, if any.
pub fn committed_epoch(dir: &Path) -> Option<u64> {
    std::fs::read_to_string(dir.join(COMMITTED_MARKER)).ok()?.trim().parse().ok()
}

pub fn manifest_name(epoch: u64) -> String {
    format!("manifest-{epoch:020}.json")
}

/// The learner's state file of checkpoint `epoch` (named like worker states, so
/// that garbage collection treats it alike).
pub fn learner_name(epoch: u64) -> String {
    format!("state-{epoch:020}-learner.bin")
}

pub fn state_name(through: u64, worker: usize) -> String {
    format!("state-{through:020}-w{worker}.bin")
}

/// Writes `bytes` to `path` atomically (temp file, fsync, rename, fsync directory).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().context("a checkpoint file needs a directory")?;
    // unique per file and process: the processes of a cluster write into one shared directory
    let name = path.file_name().context("a checkpoint file needs a name")?.to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} into place", tmp.display()))?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

pub fn write_manifest(dir: &Path, m: &Manifest) -> Result<PathBuf> {
    let path = dir.join(manifest_name(m.epoch));
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(&serde_json::to_vec_pretty(m)?)?;
        f.sync_all()?;
    }
    crate::crash_point!("checkpoint-before-rename");
    std::fs::rename(&tmp, &path).with_context(|| format!("renaming {} into place", tmp.display()))?;
    std::fs::File::open(dir)?.sync_all()?;
    crate::crash_point!("checkpoint-after-rename");
    Ok(path)
}

pub fn read_manifest(path: &Path) -> Result<Manifest> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let probe: serde_json::Value = serde_json::from_slice(&bytes).with_context(|| format!("{} is not JSON", path.display()))?;
    let format = probe["format"].as_u64().unwrap_or(0);
    if format != FORMAT_VERSION as u64 {
        bail!("{} has checkpoint format {format}; this build reads format {FORMAT_VERSION} only", path.display());
    }
    serde_json::from_slice(&bytes).with_context(|| format!("{} is not a valid manifest", path.display()))
}

/// Encodes one worker's operator state: its features' and its joins' (header + bincode).
pub fn encode_state(state: &FeatureState, joins: &JoinState) -> Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(1 << 16);
    bytes.extend_from_slice(STATE_MAGIC);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bincode::serialize_into(&mut bytes, &(state, joins)).context("encoding state")?;
    Ok(bytes)
}

/// Writes one worker's operator state.
pub fn write_state(path: &Path, state: &FeatureState, joins: &JoinState) -> Result<()> {
    write_atomic(path, &encode_state(state, joins)?)
}

pub fn read_state(path: &Path) -> Result<(FeatureState, JoinState)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() < 12 || &bytes[..8] != STATE_MAGIC {
        bail!("{} is not a vigil state file", path.display());
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION {
        bail!("{} has state format {version}; this build reads format {FORMAT_VERSION} only", path.display());
    }
    bincode::deserialize(&bytes[12..]).with_context(|| format!("decoding {}", path.display()))
}

/// Manifests in `dir`, newest first.
pub fn list_manifests(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    if !dir.exists() {
        return Ok(out);
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some(epoch) = name.strip_prefix("manifest-").and_then(|n| n.strip_suffix(".json")).and_then(|n| n.parse().ok()) {
            out.push((epoch, path));
        }
    }
    out.sort_by(|a, b| b.0.cmp(&a.0));
    Ok(out)
}

/// For tests: a checkpoint of `epoch` with one worker's state file (`bytes`).
#[cfg(test)]
pub(crate) fn write_test_checkpoint(dir: &Path, epoch: u64, bytes: &[u8]) {
    write_atomic(&dir.join(state_name(epoch, 0)), bytes).unwrap();
    let m = Manifest {
        format: FORMAT_VERSION,
        job: "j".into(),
        fingerprint: "f".into(),
        epoch,
        partitions: Vec::new(),
        states: vec![state_name(epoch, 0)],
        created_unix_ms: 0,
        learner: None,
        shape: None,
    };
    write_manifest(dir, &m).unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_versions_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let m = Manifest {
            format: 99,
            job: "j".into(),
            fingerprint: "f".into(),
            epoch: 3,
            partitions: vec![],
            states: vec![],
            created_unix_ms: 0,
            learner: None,
            shape: None,
        };
        let path = write_manifest(dir.path(), &m).unwrap();
        let err = read_manifest(&path).unwrap_err().to_string();
        assert!(err.contains("format 99"), "{err}");

        let state = dir.path().join("s.bin");
        write_atomic(&state, b"VIGILST\0\x07\0\0\0rest").unwrap();
        assert!(read_state(&state).unwrap_err().to_string().contains("state format 7"));
        write_atomic(&state, b"garbage").unwrap();
        assert!(read_state(&state).is_err());
    }

    #[test]
    fn state_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let defs = vec![vigil_operators::FeatureDef::TimeSincePrev { name: "p".into(), ttl_ms: 10 }];
        let mut s = FeatureState::new(defs, 1);
        let mut out = Vec::new();
        s.observe("k", 0, 0, 5, &[f64::NAN], &mut out);
        let path = dir.path().join(state_name(4, 0));
        write_state(&path, &s, &JoinState::default()).unwrap();
        let (mut back, _) = read_state(&path).unwrap();
        back.observe("k", 0, 0, 9, &[1.0], &mut out);
        assert_eq!(out, vec![Some(0.004)]);
        assert_eq!(list_manifests(dir.path()).unwrap().len(), 0);
    }
}
