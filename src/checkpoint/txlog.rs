//! The transaction log: the job's record of its commit decisions, next to its
//! checkpoints (`transactions.log`, one JSON object per line, fsynced). Before a
//! transaction is committed the job writes `committing` with the input offsets it
//! commits; after, `committed`. A crash in between leaves the decision open, and
//! the next start completes it from Kafka: the offsets are committed together with
//! the outputs, so the group's committed offsets say whether it happened.
//!
//! With it, anyone can tell from the output topics alone which records are
//! committed: every record carries `vigil-run` and `vigil-epoch` headers, and a
//! record is committed exactly when the log has a `committed` entry of its run
//! whose epoch range `first..=through` holds its epoch.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

pub const FILE: &str = "transactions.log";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub run: String,
    pub first: u64,
    pub through: u64,
    /// `committing`, `committed`, or `aborted` (settled at the next start).
    pub state: String,
    pub offsets: Vec<(u32, i64)>,
}

pub struct TxLog {
    path: PathBuf,
}

impl TxLog {
    pub fn open(dir: &Path) -> TxLog {
        TxLog { path: dir.join(FILE) }
    }

    pub fn append(&self, entry: &Entry) -> Result<()> {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&self.path).with_context(|| format!("opening {}", self.path.display()))?;
        let mut line = serde_json::to_vec(entry)?;
        line.push(b'\n');
        f.write_all(&line)?;
        f.sync_all()?;
        Ok(())
    }

    /// Every entry; a torn last line (a crash mid-write) is ignored.
    pub fn entries(&self) -> Result<Vec<Entry>> {
        read_entries(&self.path)
    }

    /// Settles a decision left open by a crash, from the group's committed offsets.
    pub fn settle(&self, committed: &HashMap<u32, i64>) -> Result<()> {
        let entries = self.entries()?;
        let mut settled: HashMap<(String, u64), bool> = HashMap::new();
        for e in &entries {
            if e.state != "committing" {
                settled.insert((e.run.clone(), e.through), true);
            }
        }
        for e in entries.iter().filter(|e| e.state == "committing") {
            if settled.contains_key(&(e.run.clone(), e.through)) {
                continue;
            }
            let happened = e.offsets.iter().all(|(p, o)| committed.get(p) == Some(o));
            let state = if happened { "committed" } else { "aborted" };
            tracing::info!(run = %e.run, through = e.through, state, "settling an open transaction decision");
            self.append(&Entry { state: state.into(), ..e.clone() })?;
        }
        Ok(())
    }
}

pub fn read_entries(path: &Path) -> Result<Vec<Entry>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
}

/// Whether the record of `run` and `epoch` is in a committed transaction.
pub fn is_committed(entries: &[Entry], run: &str, epoch: u64) -> bool {
    entries.iter().any(|e| e.state == "committed" && e.run == run && e.first <= epoch && epoch <= e.through)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_decisions_are_settled_from_the_committed_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let log = TxLog::open(dir.path());
        let e = |through, state: &str, offset| Entry { run: "r".into(), first: through, through, state: state.into(), offsets: vec![(0, offset)] };
        log.append(&e(1, "committing", 10)).unwrap();
        log.append(&e(1, "committed", 10)).unwrap();
        log.append(&e(2, "committing", 20)).unwrap();
        log.settle(&HashMap::from([(0, 20)])).unwrap();
        let entries = log.entries().unwrap();
        assert_eq!(entries.last().unwrap().state, "committed");
        assert!(is_committed(&entries, "r", 2));
        log.append(&e(3, "committing", 30)).unwrap();
        log.settle(&HashMap::from([(0, 20)])).unwrap();
        assert_eq!(log.entries().unwrap().last().unwrap().state, "aborted");
        assert!(!is_committed(&log.entries().unwrap(), "r", 3));
    }
}
