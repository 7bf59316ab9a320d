//! Savepoints: a checkpoint copied out of the job's checkpoint directory and
//! kept (the job prunes its own checkpoints; it never touches a savepoint).
//! Taken with `vigil savepoint` (the newest checkpoint of a running or stopped
//! job) or by `vigil run --savepoint-on-stop DIR` (the final checkpoint, once
//! its offsets are committed). A changed job starts from one with
//! `vigil run --from-savepoint PATH` (see [`super::upgrade`]).
//!
//! What is copied: the newest checkpoint whose offsets the job has committed
//! (the coordinator records it after each commit), never a newer one whose
//! outputs may not have been delivered.
//!
//! Layout: `DIR/savepoint-<epoch>/` holds the manifest and every file it names.
//! The files are copied into `DIR/.tmp-savepoint-<epoch>-<pid>/`, each fsynced,
//! the manifest last, then the folder is renamed into place and `DIR` fsynced:
//! a crash at any point (SIGKILL included) leaves either a whole savepoint or
//! only a `.tmp-` folder, which readers ignore and the next write removes.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::format::{self, Manifest};

/// Copies the newest checkpoint under `checkpoints` into a savepoint under
/// `savepoints`; returns its folder. Retries when the job prunes the
/// checkpoint while it is copied.
pub fn write(checkpoints: &Path, savepoints: &Path) -> Result<PathBuf> {
    let mut last_error = None;
    for _ in 0..3 {
        // the newest checkpoint whose offsets are committed: a newer one may
        // have outputs that were never delivered
        let committed = format::committed_epoch(checkpoints);
        let newest = format::list_manifests(checkpoints)?.into_iter().find(|(e, _)| committed.is_none_or(|c| *e <= c));
        let Some((_, manifest_path)) = newest else {
            bail!("{} holds no committed checkpoint to save", checkpoints.display());
        };
        match copy(&manifest_path, checkpoints, savepoints) {
            Ok(dir) => return Ok(dir),
            // pruned under our feet: the next newest is there
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.expect("three attempts").context("copying the newest checkpoint into a savepoint"))
}

fn copy(manifest_path: &Path, checkpoints: &Path, savepoints: &Path) -> Result<PathBuf> {
    let manifest = format::read_manifest(manifest_path)?;
    if manifest.shape.is_none() {
        bail!("{} predates savepoints (no state shape in its manifest): let the job write one more checkpoint", manifest_path.display());
    }
    std::fs::create_dir_all(savepoints).with_context(|| format!("creating {}", savepoints.display()))?;
    let target = savepoints.join(format!("savepoint-{:020}", manifest.epoch));
    if target.exists() {
        let same = std::fs::read(target.join(format::manifest_name(manifest.epoch))).ok() == Some(std::fs::read(manifest_path)?);
        if same {
            return Ok(target);
        }
        bail!(
            "{} exists and holds another checkpoint of epoch {} (another job's, or an older version's?): keep each job's savepoints in a directory of their own",
            target.display(),
            manifest.epoch
        );
    }
    remove_partial(savepoints)?;
    let tmp = savepoints.join(format!(".tmp-savepoint-{}-{}", manifest.epoch, std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let files = manifest.states.iter().chain(manifest.learner.iter());
    for (i, name) in files.enumerate() {
        let bytes = std::fs::read(checkpoints.join(name)).with_context(|| format!("reading {}", checkpoints.join(name).display()))?;
        format::write_atomic(&tmp.join(name), &bytes)?;
        if i == 0 {
            crate::crash_point!("savepoint-copying");
        }
    }
    format::write_atomic(&tmp.join(format::manifest_name(manifest.epoch)), &std::fs::read(manifest_path)?)?;
    std::fs::rename(&tmp, &target).with_context(|| format!("renaming {} into place", tmp.display()))?;
    std::fs::File::open(savepoints)?.sync_all()?;
    Ok(target)
}

/// Removes what interrupted writes left (folders of writers no longer running).
fn remove_partial(savepoints: &Path) -> Result<()> {
    for entry in std::fs::read_dir(savepoints)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        let writer = name.strip_prefix(".tmp-savepoint-").and_then(|r| r.rsplit('-').next()).and_then(|p| p.parse::<u32>().ok());
        let running = writer.is_some_and(|pid| pid != std::process::id() && Path::new(&format!("/proc/{pid}")).exists());
        if name.starts_with(".tmp-savepoint-") && !running {
            std::fs::remove_dir_all(&path).with_context(|| format!("removing the partial savepoint {}", path.display()))?;
        }
    }
    Ok(())
}

/// The savepoint at `path`: a savepoint folder, or a directory of them (the
/// newest whole one).
pub fn find(path: &Path) -> Result<(PathBuf, Manifest)> {
    let own = format::list_manifests(path)?;
    if let Some((_, m)) = own.first() {
        return Ok((path.to_owned(), format::read_manifest(m)?));
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("reading the savepoint path {}", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("savepoint-")))
        .collect();
    found.sort();
    for dir in found.iter().rev() {
        if let Some((_, m)) = format::list_manifests(dir)?.first() {
            return Ok((dir.clone(), format::read_manifest(m)?));
        }
    }
    bail!("{} holds no whole savepoint (an interrupted write leaves only a `.tmp-savepoint-` folder, never used)", path.display())
}
