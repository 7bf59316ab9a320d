//! The end of a cluster's run that commits (exactly-once across processes):
//! the processes agree on one last checkpoint and commit it.
//!
//! Each process's sources end at an epoch of their own (the clock is per
//! process), and a process whose sources and operators all ended sends no part
//! of a later epoch, so the checkpoints of the others' later epochs could never
//! be whole. Once its workers are gone, each process writes the newest epoch it
//! knows (ended, prepared or committed) to `closing/process-P` in the
//! checkpoint directory; the largest of them, L, is the last checkpoint. Each
//! process then puts every output it still holds into its open transaction,
//! writes its ended parts as its parts of L (an ended source or operator stands
//! for itself in every later epoch), prepares and marks L; process 0 writes the
//! manifest and every process commits. A process's own `closing` file is
//! removed at its start, before the processes connect, so that no process
//! reads one of an earlier run.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use super::{Coordinator, FINAL_PATIENCE};
use crate::checkpoint::format::write_atomic;
use crate::checkpoint::PartitionCut;

/// Where process `process` says which epoch it ended at.
fn closing(dir: &Path, process: usize) -> PathBuf {
    dir.join("closing").join(format!("process-{process}"))
}

/// Removes this process's word of an earlier run's end (at its start).
pub(crate) fn forget_closing(dir: &Path, process: usize) -> Result<()> {
    match std::fs::remove_file(closing(dir, process)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).context("removing an earlier run's closing mark"),
        _ => Ok(()),
    }
}

impl Coordinator<'_> {
    /// The positions of this process's workers' partitions in checkpoint
    /// `epoch`: `(topic, partition, next offset)`, what its transaction commits.
    pub(super) fn own_positions(&self, epoch: u64) -> Result<Vec<(String, u32, i64)>> {
        let layout = self.layout.as_ref().context("a checkpoint before the graph was built")?;
        let local = layout.peers / self.me.processes.max(1);
        let parts = self.dir.join(format!("epoch-{epoch}"));
        let mut out = Vec::new();
        for topic in &layout.sources {
            for w in self.me.process * local..(self.me.process + 1) * local {
                let file = parts.join(format!("source-{topic}.w{w}"));
                let cuts: Vec<PartitionCut> = bincode::deserialize(&std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?)?;
                out.extend(cuts.into_iter().map(|c| (topic.clone(), c.partition, c.next_offset)));
            }
        }
        out.sort();
        if out.is_empty() && self.me.processes > 1 {
            bail!(
                "exactly-once across processes: process {} reads no partition of any source, so Kafka could not tell at a restart whether \
                 its transactions committed; give the sources at least as many partitions as the cluster has workers, or run fewer",
                self.me.process
            );
        }
        Ok(out)
    }

    /// Agrees with the other processes on the run's last checkpoint and
    /// commits it (see the module docs). A run that did not end cleanly (a
    /// source or operator never ended) commits nothing more.
    pub(super) fn close_cluster(&mut self) -> Result<()> {
        let Some(layout) = &self.layout else { return Ok(()) };
        let local = layout.peers / self.me.processes.max(1);
        if self.ended.len() < local * (layout.operators.len() + layout.sources.len()) {
            return Ok(());
        }
        let ends = self.ended.iter().map(|(e, _, _)| *e);
        let mine = ends.chain(self.committing).chain(self.done.iter().copied()).max().unwrap_or(0);
        std::fs::create_dir_all(self.dir.join("closing"))?;
        write_atomic(&closing(self.dir, self.me.process), format!("{mine}\n").as_bytes())?;
        let until = Instant::now() + FINAL_PATIENCE;
        let last = loop {
            let said: Vec<Option<u64>> =
                (0..self.me.processes).map(|p| std::fs::read_to_string(closing(self.dir, p)).ok().and_then(|s| s.trim().parse().ok())).collect();
            if said.iter().all(Option::is_some) {
                break said.into_iter().flatten().max().unwrap_or(mine);
            }
            if Instant::now() > until {
                bail!("the run's end: processes {:?} did not say where they ended within {FINAL_PATIENCE:?}", missing(&said));
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        while !self.done.contains(&last) {
            if Instant::now() > until {
                bail!("the cluster's last checkpoint {last} was not published within {FINAL_PATIENCE:?}: its outputs are not committed");
            }
            if self.committing != Some(last) {
                // an earlier epoch prepared is never committed on its own now: sealing puts
                // later epochs' outputs into its transaction, which commits as `last` (a crash
                // first rolls the earlier epoch's log forward, if its manifest was written)
                if let Some(e) = self.committing.take() {
                    self.marked.remove(&e);
                }
                if let Some(c) = &self.me.commit {
                    c.seal();
                }
                if (self.me.delivered)(u64::MAX - 1) {
                    self.prepare_last(last)?;
                }
            }
            self.commit_published()?;
            self.publish_marked()?;
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Ok(())
    }

    /// Marks `last` with the ended parts (every output sealed and delivered).
    fn prepare_last(&mut self, last: u64) -> Result<()> {
        for (_, file, bytes) in self.ended.clone() {
            self.write_part(last, &file, &bytes)?;
        }
        self.have.remove(&last);
        self.whole.remove(&last);
        self.mark(last)
    }
}

fn missing(said: &[Option<u64>]) -> Vec<usize> {
    said.iter().enumerate().filter(|(_, s)| s.is_none()).map(|(p, _)| p).collect()
}
