//! Exactly-once output of a graph run on Kafka
//! ([`super::KafkaRun::exactly_once`]): each checkpoint's outputs are one
//! Kafka transaction per process, committed together with the sources'
//! positions. This module is one process's part; a cluster's processes each
//! log their transaction ahead in the checkpoint, so that one a crash cut
//! short is committed again at the next start ([`super::graph_wal`]).
//!
//! - The open transaction holds the outputs (sinks and dead letters) of the
//!   epochs after the last committed checkpoint up to the next checkpoint
//!   epoch; a record of a later epoch waits in memory until that checkpoint
//!   commits and the next transaction opens.
//! - Once every part of checkpoint E is in and every output of epochs up to
//!   E is acknowledged, the coordinator puts the sources' positions into the
//!   transaction as the consumer group's offsets (`send_offsets_to_transaction`,
//!   each with the metadata `vigil-epoch=E`; a fenced instance fails here and
//!   writes no manifest), writes the manifest, and commits. A crash between
//!   the manifest and the commit leaves a newer manifest than the commit.
//!   No record reaches the producer between a commit and the next begin
//!   (librdkafka refuses it there): sends and commits share a gate.
//! - An output that cannot be delivered (a fenced producer's, a broker that
//!   refused it) or a checkpoint that cannot be taken stops the run: its
//!   transaction could never commit.
//! - At a start, the producer's `init_transactions` fences any earlier
//!   instance and aborts its open transaction; then the group's committed
//!   offsets say which checkpoint was committed last (their metadata), and the
//!   run restores exactly that one. Manifests after it (their outputs were
//!   aborted) are removed; no commit yet means a fresh start, unless the
//!   directory's [`COMMITTED_MARK`] says its run committed (the group's
//!   offsets expired or were reset: refused, loudly).
//! - A run that ends cleanly checkpoints where it ends and commits that (see
//!   [`crate::graph::coordinator::Participation::commit`]), so a bounded run's
//!   last outputs are committed too; a run that ends with outputs no
//!   checkpoint sealed fails (they are aborted, and written again at the next
//!   start).
//!
//! What is exactly-once: every record the graph's sinks write and every dead
//! letter, for a `read_committed` consumer. Not in a transaction's epochs:
//! the findings an online model's labeled monitors write (they follow the
//! labels, not the epochs) go into whichever transaction is open, and those
//! after the last checkpoint are committed as the run closes (at-least-once
//! across a crash).
//!
//! ```
//! use vigil::kafka::graph_txn::{epoch_of, marker};
//! assert_eq!(epoch_of(&marker(41)), Some(41));
//! assert_eq!(epoch_of("something else"), None);
//! ```

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rdkafka::consumer::{BaseConsumer, ConsumerGroupMetadata};
use rdkafka::producer::{Producer, ProducerContext, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

use super::sink::{retrying, TXN_TIMEOUT};
use super::txn_watch::TxnWatch;
use super::KafkaOptions;

/// A record of an epoch past the open transaction, waiting for it to close
/// (or, in a cluster, one in the open transaction's log).
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct Held {
    pub topic: String,
    pub key: Vec<u8>,
    pub payload: Option<Vec<u8>>,
    pub epoch: u64,
}

/// The offsets' metadata that names the checkpoint a commit made final.
pub fn marker(epoch: u64) -> String {
    format!("vigil-epoch={epoch}")
}

/// The checkpoint epoch a committed offset's metadata names, if any.
pub fn epoch_of(metadata: &str) -> Option<u64> {
    metadata.strip_prefix("vigil-epoch=")?.parse().ok()
}

/// An exactly-once run's transactions; see the module docs.
pub(super) struct Transactions {
    /// Held by every send (read) and by a commit or the close (write): no
    /// record reaches the producer between a transaction's commit and the
    /// next one's begin (librdkafka refuses it there).
    gate: RwLock<()>,
    /// The newest epoch whose records go into the open transaction (moved
    /// only under the gate's write lock).
    open_through: AtomicU64,
    waiting: Mutex<Vec<Held>>,
    /// The last checkpoint committed (`NONE`: none in this run).
    committed: AtomicU64,
    /// Records in the open transaction, and those of them of an epoch after
    /// the last commit (outputs a checkpoint must still seal; the learner's
    /// findings carry epoch 0 and are sealed by any commit).
    open: AtomicU64,
    unsealed: AtomicU64,
    watch: TxnWatch,
    group: ConsumerGroupMetadata,
    /// Checkpoints are the ends of every `every`-th epoch.
    every: u64,
    /// The checkpoint directory's mark that a commit happened (written once).
    mark: std::path::PathBuf,
    /// In a cluster: the open transaction's records, logged ahead at each
    /// prepare (see [`super::graph_wal`]).
    wal: Option<Wal>,
}

/// A cluster process's log of its open transaction.
struct Wal {
    dir: std::path::PathBuf,
    process: usize,
    records: Mutex<Vec<Held>>,
    /// The checkpoint committed before the open transaction (`None`: none).
    from: Mutex<Option<u64>>,
}

const NONE: u64 = u64::MAX;

/// A file in the checkpoint directory, written at a run's first commit: a
/// later start that finds no committed offsets refuses rather than start over.
pub const COMMITTED_MARK: &str = "exactly-once.committed";

/// How long past its start a blocking transactional call may run before the
/// process gives up on it (as the pipeline's sink).
const TXN_STALL: Duration = Duration::from_secs(TXN_TIMEOUT.as_secs() + 30);

impl Transactions {
    /// Opens the first transaction of a run that resumes after checkpoint
    /// `resumed` (`None`: a fresh start); `init_transactions` was called on
    /// `producer` already. `cluster`: this process's index, if it is one of
    /// several (its transactions are logged ahead).
    pub(super) fn begin<C: ProducerContext + 'static>(
        producer: &ThreadedProducer<C>,
        group: ConsumerGroupMetadata,
        every: u64,
        resumed: Option<u64>,
        dir: &Path,
        cluster: Option<usize>,
    ) -> Result<Self> {
        producer.begin_transaction().context("beginning a transaction")?;
        let every = every.max(1);
        let start_epoch = resumed.map_or(0, |e| e + 1);
        let wal = cluster.map(|process| Wal { dir: dir.to_owned(), process, records: Mutex::default(), from: Mutex::new(resumed) });
        Ok(Transactions {
            gate: RwLock::new(()),
            open_through: AtomicU64::new(next_checkpoint(start_epoch, every)),
            waiting: Mutex::new(Vec::new()),
            committed: AtomicU64::new(NONE),
            open: AtomicU64::new(0),
            unsealed: AtomicU64::new(0),
            watch: TxnWatch::start(TXN_STALL),
            group,
            every,
            mark: dir.join(COMMITTED_MARK),
            wal,
        })
    }

    /// Logs a record handed to the producer in the open transaction (a
    /// cluster's, see [`super::graph_wal`]).
    pub(super) fn log(&self, topic: &str, key: &[u8], payload: Option<&[u8]>, epoch: u64) {
        if let Some(w) = &self.wal {
            let held = Held { topic: topic.to_owned(), key: key.to_vec(), payload: payload.map(<[u8]>::to_vec), epoch };
            w.records.lock().unwrap_or_else(|e| e.into_inner()).push(held);
        }
    }

    /// At a cluster's end: every held record goes into the open transaction,
    /// whatever its epoch, to be committed with the last checkpoint.
    pub(super) fn seal(&self, send: impl Fn(Held)) {
        let _closed = self.gate.write().unwrap_or_else(|e| e.into_inner());
        let held: Vec<Held> = self.waiting.lock().unwrap_or_else(|e| e.into_inner()).drain(..).collect();
        for h in held {
            self.opened(h.epoch);
            send(h);
        }
        self.open_through.store(u64::MAX - 1, Ordering::SeqCst);
    }

    /// Sends a record into the open transaction with `enqueue`, or holds it
    /// until the transaction of its epoch opens.
    pub(super) fn send(&self, topic: &str, key: &[u8], payload: Option<&[u8]>, epoch: u64, enqueue: impl FnOnce()) {
        let _open = self.gate.read().unwrap_or_else(|e| e.into_inner());
        if epoch > self.open_through.load(Ordering::SeqCst) {
            let held = Held { topic: topic.to_owned(), key: key.to_vec(), payload: payload.map(<[u8]>::to_vec), epoch };
            self.waiting.lock().unwrap_or_else(|e| e.into_inner()).push(held);
            return;
        }
        self.opened(epoch);
        enqueue();
    }

    /// A record went into the open transaction.
    fn opened(&self, epoch: u64) {
        self.open.fetch_add(1, Ordering::SeqCst);
        let committed = self.committed.load(Ordering::SeqCst);
        if committed == NONE || epoch > committed {
            self.unsealed.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Puts checkpoint `epoch`'s sources' `positions` into the open
    /// transaction as the group's offsets (before the manifest is written;
    /// fails if a newer instance fenced this one). Call only once every
    /// output of epochs up to `epoch` is acknowledged.
    pub(super) fn prepare<C: ProducerContext + 'static>(&self, producer: &ThreadedProducer<C>, epoch: u64, positions: &[(String, u32, i64)]) -> Result<()> {
        if let Some(w) = &self.wal {
            // the records and positions, before the positions go into the transaction
            let mut records = w.records.lock().unwrap_or_else(|e| e.into_inner());
            let from = *w.from.lock().unwrap_or_else(|e| e.into_inner());
            let file = super::graph_wal::WalFile { epoch, process: w.process, from, positions: positions.to_vec(), records: std::mem::take(&mut *records) };
            let written = super::graph_wal::write(&w.dir, &file);
            *records = file.records;
            written?;
        }
        let mut offsets = TopicPartitionList::new();
        for (topic, partition, next) in positions {
            offsets.add_partition_offset(topic, *partition as i32, Offset::Offset(*next))?;
            if let Some(e) = offsets.find_partition(topic, *partition as i32).as_mut() {
                e.set_metadata(marker(epoch));
            }
        }
        let result = retrying(&self.watch, "send_offsets_to_transaction", || producer.send_offsets_to_transaction(&offsets, &self.group, TXN_TIMEOUT));
        self.failed(producer, result, epoch)?;
        // a crash here leaves the offsets in an open transaction, which the restart aborts
        crate::crash_point!("graph-txn-after-offsets");
        Ok(())
    }

    /// Aborts the open transaction if `result` is an error.
    fn failed<C: ProducerContext + 'static>(&self, producer: &ThreadedProducer<C>, result: rdkafka::error::KafkaResult<()>, epoch: u64) -> Result<()> {
        if let Err(e) = result {
            let _ = self.watch.call("abort_transaction", || producer.abort_transaction(TXN_TIMEOUT));
            return Err(e).with_context(|| format!("committing the outputs of checkpoint {epoch}"));
        }
        Ok(())
    }

    /// Commits the open transaction as checkpoint `epoch`'s (prepared, its
    /// manifest written) and opens the next one: the held records of its
    /// epochs go to `send` first, so a key's records keep their order.
    pub(super) fn commit<C: ProducerContext + 'static>(&self, producer: &ThreadedProducer<C>, epoch: u64, send: impl Fn(Held)) -> Result<()> {
        let _closed = self.gate.write().unwrap_or_else(|e| e.into_inner());
        let watch = &self.watch;
        // a crash here leaves the manifest published and this transaction aborted
        crate::crash_point!("graph-txn-before-commit");
        let result = retrying(watch, "commit_transaction", || producer.commit_transaction(TXN_TIMEOUT));
        self.failed(producer, result, epoch)?;
        crate::crash_point!("graph-txn-after-commit");
        if self.committed.swap(epoch, Ordering::SeqCst) == NONE && !self.mark.exists() {
            crate::checkpoint::format::write_atomic(&self.mark, format!("{epoch}\n").as_bytes())?;
        }
        self.open.store(0, Ordering::SeqCst);
        self.unsealed.store(0, Ordering::SeqCst);
        if let Some(w) = &self.wal {
            w.records.lock().unwrap_or_else(|e| e.into_inner()).clear();
            *w.from.lock().unwrap_or_else(|e| e.into_inner()) = Some(epoch);
        }
        watch.call("begin_transaction", || producer.begin_transaction()).context("beginning the next transaction")?;
        let through = next_checkpoint(epoch + 1, self.every);
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        let (now, later): (Vec<Held>, Vec<Held>) = waiting.drain(..).partition(|h| h.epoch <= through);
        *waiting = later;
        for h in now {
            self.opened(h.epoch);
            send(h);
        }
        self.open_through.store(through, Ordering::SeqCst);
        Ok(())
    }

    /// At the end of a run: fails if outputs were never committed (the run's
    /// last checkpoint was not published: they are aborted, and the next
    /// start writes them again); commits what came after the last checkpoint
    /// and belongs to none (an online model's last findings), else aborts the
    /// empty transaction the last commit opened.
    pub(super) fn close<C: ProducerContext + 'static>(&self, producer: &ThreadedProducer<C>) -> Result<()> {
        let _closed = self.gate.write().unwrap_or_else(|e| e.into_inner());
        let held = self.waiting.lock().unwrap_or_else(|e| e.into_inner()).len() as u64;
        let unsealed = self.unsealed.load(Ordering::SeqCst) + held;
        if unsealed > 0 {
            let _ = self.watch.call("abort_transaction", || producer.abort_transaction(TXN_TIMEOUT));
            let last = self.committed.load(Ordering::SeqCst);
            let after = if last == NONE { "the run's start".to_owned() } else { format!("checkpoint {last}") };
            bail!(
                "{unsealed} output records of epochs after {after} were never committed: the run ended before its last checkpoint \
                 was published (they are aborted; the next start writes them again)"
            );
        }
        if self.open.load(Ordering::SeqCst) > 0 {
            return retrying(&self.watch, "commit_transaction", || producer.commit_transaction(TXN_TIMEOUT)).context("committing the last findings");
        }
        self.watch.call("abort_transaction", || producer.abort_transaction(TXN_TIMEOUT)).context("closing the last transaction")
    }
}

/// The first checkpoint epoch at or after `epoch`.
fn next_checkpoint(epoch: u64, every: u64) -> u64 {
    epoch + (every - 1 - epoch % every)
}

/// The checkpoint the group committed last: the epoch in its offsets'
/// metadata on the topics of the checkpoints under `dir` (none: nothing
/// committed yet). Call after `init_transactions`, so that no transaction
/// holds offsets still.
pub(super) fn committed_epoch(opts: &KafkaOptions, group: &str, dir: &Path) -> Result<Option<u64>> {
    let mut topics = BTreeSet::new();
    for epoch in manifests(dir)? {
        let path = dir.join(format!("epoch-{epoch}.json"));
        let bytes = match std::fs::read(&path) {
            // another process of a cluster removed it (an uncommitted checkpoint)
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            bytes => bytes.with_context(|| format!("reading {}", path.display()))?,
        };
        let m: crate::graph::checkpoint::Manifest = serde_json::from_slice(&bytes).with_context(|| format!("reading {}", path.display()))?;
        topics.extend(m.sources);
    }
    let consumer = opts.admin_consumer(group)?;
    let mut epochs = BTreeSet::new();
    for topic in &topics {
        let partitions = super::partition_count(&consumer, topic, Duration::from_secs(30))?;
        let committed = super::committed_list(&consumer, topic, partitions)?;
        epochs.extend(committed.elements().iter().filter_map(|e| epoch_of(e.metadata())));
    }
    if epochs.len() > 1 {
        bail!("the offsets of group `{group}` name different checkpoints {epochs:?}: they were not committed by one exactly-once graph run");
    }
    Ok(epochs.into_iter().next())
}

/// Refuses a source topic whose committed offsets in `group` do not name the
/// checkpoint the run resumes from (`None`: a fresh start, so none may be
/// committed): the checkpoint directory is not the committing run's (lost,
/// or another's), or another job committed in the group; resuming would write
/// outputs twice or skip input.
pub(super) fn check_committed(consumer: &BaseConsumer, group: &str, topic: &str, partitions: u32, resumes: Option<u64>) -> Result<()> {
    let committed = super::committed_list(consumer, topic, partitions)?;
    for e in committed.elements().iter().filter(|e| matches!(e.offset(), Offset::Offset(_))) {
        let named = epoch_of(e.metadata());
        if named != resumes {
            let what = match named {
                Some(n) => format!("the outputs of checkpoint {n}"),
                None => "offsets not written by an exactly-once graph run".to_owned(),
            };
            let from = resumes.map_or("a fresh start (no checkpoint committed)".to_owned(), |r| format!("checkpoint {r}"));
            bail!(
                "exactly-once: group `{group}` committed {what} on {topic}/{}, but this run resumes from {from}: its checkpoint directory \
                 is not the one of the run that committed (or another job commits in this group); resuming would write outputs twice or skip input",
                e.partition()
            );
        }
    }
    Ok(())
}

/// The epochs of the manifests under `dir`.
fn manifests(dir: &Path) -> Result<Vec<u64>> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(Vec::new()) };
    let mut out: Vec<u64> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_prefix("epoch-")?.strip_suffix(".json")?.parse().ok()))
        .collect();
    out.sort();
    Ok(out)
}

/// Removes the checkpoints under `dir` after `committed` (all of them when
/// nothing is committed): their outputs were aborted, so a run must not
/// resume from them. Fails if `committed` names a checkpoint not there.
pub(super) fn discard_uncommitted(dir: &Path, group: &str, committed: Option<u64>) -> Result<()> {
    let all = manifests(dir)?;
    if committed.is_none() && dir.join(COMMITTED_MARK).exists() {
        bail!(
            "group `{group}` has no committed offsets on this job's topics, but the run whose checkpoints are in {} committed before \
             (its `{COMMITTED_MARK}`): the offsets expired (the brokers' offsets.retention.minutes) or were reset or deleted, and a fresh start \
             would write every output again. Restore the group's offsets, or remove the directory to start over on purpose",
            dir.display()
        );
    }
    if let Some(e) = committed {
        if !all.contains(&e) {
            bail!(
                "group `{group}` committed the outputs of checkpoint {e}, which is not in {}: an exactly-once run must resume from the checkpoints \
                 of the run that committed (another directory would write its outputs twice or lose some)",
                dir.display()
            );
        }
    }
    for epoch in all.into_iter().filter(|e| committed.is_none_or(|c| *e > c)) {
        tracing::info!(epoch, dir = %dir.display(), "removing checkpoint {epoch}: its outputs were never committed");
        // the other processes of a cluster remove the same files at their start
        let gone = |r: std::io::Result<()>| r.or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) });
        gone(std::fs::remove_file(dir.join(format!("epoch-{epoch}.json"))))?;
        gone(std::fs::remove_dir_all(dir.join(format!("epoch-{epoch}"))))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_transaction_reaches_the_next_checkpoint_epoch() {
        assert_eq!(next_checkpoint(0, 1), 0);
        assert_eq!(next_checkpoint(5, 1), 5);
        assert_eq!(next_checkpoint(0, 4), 3);
        assert_eq!(next_checkpoint(3, 4), 3);
        assert_eq!(next_checkpoint(4, 4), 7);
        // after a final checkpoint of epoch 5 (not a multiple), the next is 7
        assert_eq!(next_checkpoint(6, 4), 7);
    }

    #[test]
    fn uncommitted_checkpoints_are_removed_and_a_missing_committed_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        for e in [3, 7, 11] {
            std::fs::write(dir.path().join(format!("epoch-{e}.json")), b"{}").unwrap();
            std::fs::create_dir_all(dir.path().join(format!("epoch-{e}"))).unwrap();
        }
        let err = discard_uncommitted(dir.path(), "g", Some(5)).unwrap_err();
        assert!(format!("{err:#}").contains("committed the outputs of checkpoint 5, which is not in"), "{err:#}");
        discard_uncommitted(dir.path(), "g", Some(7)).unwrap();
        assert_eq!(manifests(dir.path()).unwrap(), vec![3, 7]);
        assert!(!dir.path().join("epoch-11").exists());
        discard_uncommitted(dir.path(), "g", None).unwrap();
        assert!(manifests(dir.path()).unwrap().is_empty() && !dir.path().join("epoch-3").exists());
        // a directory whose run committed before, with the group's offsets gone
        std::fs::write(dir.path().join(COMMITTED_MARK), b"7\n").unwrap();
        let err = discard_uncommitted(dir.path(), "g", None).unwrap_err();
        assert!(format!("{err:#}").contains("offsets.retention.minutes"), "{err:#}");
    }
}
