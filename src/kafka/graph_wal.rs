//! Exactly-once across processes: each process's transaction is logged ahead
//! in the checkpoint, so that one a crash left uncommitted can be committed
//! again at the next start.
//!
//! Every process of an exactly-once cluster has its own transactional producer
//! (the job's transactional id, `-p1`, `-p2`, ... appended for processes after
//! the first) and commits its own transaction per checkpoint: Kafka commits
//! each producer's transaction apart, never several as one. So a checkpoint's
//! manifest is the decision, and the commits follow it:
//! 1. each process, once its parts of checkpoint E are in and its outputs
//!    acknowledged, writes every record of its open transaction to
//!    `epoch-E/wal-pP` (this file: the records, the positions of its workers'
//!    partitions, and the checkpoint its transaction follows), then puts those
//!    positions into the transaction (`vigil-epoch=E`), then marks the epoch;
//! 2. process 0 writes the manifest once every process marked E;
//! 3. each process commits once it sees the manifest.
//!
//! A crash between 2 and 3 leaves some processes committed and others not (a
//! restart's `init_transactions` aborts theirs). At the next start, each
//! process fences the producers it answers for (its own; those of processes a
//! smaller cluster no longer has, by index modulo the new count), reads their
//! logs of the newest checkpoint, and commits again, in one transaction per
//! log, the records and positions of each log whose partitions' committed
//! offsets still name the checkpoint before: "rolled forward". All of this
//! happens before the processes connect to each other, so no run commits
//! before every roll-forward did; then the run resumes from that checkpoint.
//!
//! Bound: a process keeps its open transaction's records in memory as well
//! (one checkpoint interval of its outputs, plus the outputs it holds while it
//! waits for the slowest process to mark the checkpoint), and each checkpoint
//! writes them once more to the directory. A process that waits more than
//! 300 s for a manifest (or, process 0, for the others' markers) stops, and a
//! process whose checkpoints stop exits (75), so that the cluster restarts.
//!
//! ```
//! use vigil::kafka::graph_wal::txn_id;
//! assert_eq!(txn_id("vigil-fraud-g-graph", 0), "vigil-fraud-g-graph");
//! assert_eq!(txn_id("vigil-fraud-g-graph", 2), "vigil-fraud-g-graph-p2");
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::graph_txn::{epoch_of, marker, Held};
use super::sink::{retrying, TXN_TIMEOUT};
use super::txn_watch::TxnWatch;
use super::KafkaOptions;

/// A process's transaction as of the checkpoint it was prepared for.
#[derive(Serialize, Deserialize)]
pub(super) struct WalFile {
    pub epoch: u64,
    pub process: usize,
    /// The checkpoint committed before this transaction (`None`: none).
    pub from: Option<u64>,
    /// The positions of this process's partitions: `(topic, partition, next offset)`.
    pub positions: Vec<(String, u32, i64)>,
    pub records: Vec<Held>,
}

/// The transactional id of process `process` of a job whose id is `base`.
pub fn txn_id(base: &str, process: usize) -> String {
    if process == 0 {
        base.to_owned()
    } else {
        format!("{base}-p{process}")
    }
}

fn wal_path(dir: &Path, epoch: u64, process: usize) -> PathBuf {
    dir.join(format!("epoch-{epoch}")).join(format!("wal-p{process}"))
}

/// Writes the log of a prepared transaction (before its positions go into it).
pub(super) fn write(dir: &Path, wal: &WalFile) -> Result<()> {
    let path = wal_path(dir, wal.epoch, wal.process);
    crate::checkpoint::format::write_atomic(&path, &bincode::serialize(wal)?).with_context(|| format!("writing {}", path.display()))
}

/// The file that keeps the largest number of processes a run of this
/// directory ever had: their producers may hold open transactions.
const PROCESSES: &str = "exactly-once.processes";

fn processes_ever(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join(PROCESSES)).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(1)
}

/// The producers process `me` of `n` answers for at a start: its own, and
/// those of processes a larger cluster had, by index modulo `n`.
fn answers_for(me: usize, n: usize, ever: usize) -> Vec<usize> {
    std::iter::once(me).chain((n..ever).filter(|q| q % n == me)).collect()
}

/// At the start of process `me` of `n` of an exactly-once run (its own
/// producer `own` initialized): fences the other producers it answers for
/// (made by `make` from a transactional id) and rolls their transactions of
/// the newest checkpoint forward where needed (see the module docs). Returns
/// that checkpoint if it was taken by a cluster (the run resumes from it), or
/// `None`: a checkpoint of one process (or none), to be judged by its
/// committed offsets.
pub(super) fn recover<C: ProducerContext<DeliveryOpaque = usize> + 'static>(
    opts: &KafkaOptions,
    group: &str,
    dir: &Path,
    (me, n): (usize, usize),
    own: &ThreadedProducer<C>,
    make: impl Fn(usize) -> Result<ThreadedProducer<C>>,
) -> Result<Option<u64>> {
    let ever = processes_ever(dir);
    if me == 0 && n > ever {
        crate::checkpoint::format::write_atomic(&dir.join(PROCESSES), format!("{n}\n").as_bytes())?;
    }
    let newest = crate::graph::coordinator::newest_manifest(dir);
    let logged = newest.is_some_and(|e| wal_path(dir, e, 0).exists());
    // every producer this process answers for is fenced (its open transaction
    // aborted) before any offsets are read
    let others: Vec<(usize, ThreadedProducer<C>)> = answers_for(me, n, ever)
        .into_iter()
        .filter(|q| *q != me)
        .map(|q| {
            let p = make(q)?;
            p.init_transactions(TXN_TIMEOUT).with_context(|| format!("fencing the producer of process {q}"))?;
            Ok((q, p))
        })
        .collect::<Result<_>>()?;
    let (true, Some(epoch)) = (logged, newest) else { return Ok(None) };
    for (q, producer) in std::iter::once((me, own)).chain(others.iter().map(|(q, p)| (*q, p))) {
        let path = wal_path(dir, epoch, q);
        if path.exists() {
            let wal: WalFile = bincode::deserialize(&std::fs::read(&path)?).with_context(|| format!("reading {}", path.display()))?;
            roll_forward(opts, group, dir, producer, wal)?;
        } else if q < marked(dir, epoch) {
            bail!("checkpoint {epoch} in {} has no transaction log of process {q}: it was not written by an exactly-once cluster run", dir.display());
        }
    }
    Ok(Some(epoch))
}

/// How many processes marked checkpoint `epoch` (took part in it).
fn marked(dir: &Path, epoch: u64) -> usize {
    let Ok(entries) = std::fs::read_dir(dir.join(format!("epoch-{epoch}"))) else { return 0 };
    entries.filter_map(|e| e.ok()).filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with("process-") && n.ends_with(".done"))).count()
}

/// Commits `wal`'s records and positions in a transaction of `producer`
/// unless its partitions' committed offsets already name its checkpoint.
fn roll_forward<C: ProducerContext<DeliveryOpaque = usize> + 'static>(
    opts: &KafkaOptions,
    group: &str,
    dir: &Path,
    producer: &ThreadedProducer<C>,
    wal: WalFile,
) -> Result<()> {
    let consumer = opts.admin_consumer(group)?;
    // only this log's partitions: the others' may be in transactions of
    // producers another process has not fenced yet (unanswered until then)
    let mut own = TopicPartitionList::new();
    let mut topics: BTreeMap<&str, u32> = BTreeMap::new();
    for (topic, partition, _) in &wal.positions {
        own.add_partition(topic, *partition as i32);
        *topics.entry(topic).or_default() += 1;
    }
    let mut named = BTreeMap::new();
    if own.count() > 0 {
        for e in super::committed_of(&consumer, own)?.elements() {
            let epoch = matches!(e.offset(), Offset::Offset(_)).then(|| epoch_of(e.metadata())).flatten();
            named.insert((e.topic().to_owned(), e.partition()), epoch);
        }
    }
    let (epoch, process) = (wal.epoch, wal.process);
    if named.values().all(|e| *e == Some(epoch)) {
        return Ok(());
    }
    // a partition without offsets may be new since the transaction before
    if let Some(((topic, p), e)) = named.iter().find(|(_, e)| e.is_some() && **e != wal.from) {
        bail!(
            "exactly-once: {topic}/{p}'s committed offsets name checkpoint {e:?}, but process {process}'s transaction of checkpoint {epoch} \
             follows checkpoint {:?}: the group's offsets were changed outside this job",
            wal.from
        );
    }
    // none of its partitions has offsets: a first transaction, or the group's offsets are gone
    if named.values().all(Option::is_none) && dir.join(super::graph_txn::COMMITTED_MARK).exists() && !any_committed(opts, group, &topics)? {
        bail!(
            "group `{group}` has no committed offsets on this job's topics, but the run whose checkpoints are in {} committed before \
             (its `{}`): the offsets expired (the brokers' offsets.retention.minutes) or were reset or deleted, and rolling process {process}'s \
             transaction forward would write its outputs again. Restore the group's offsets, or remove the directory to start over on purpose",
            dir.display(),
            super::graph_txn::COMMITTED_MARK
        );
    }
    let watch = TxnWatch::start(TXN_TIMEOUT + Duration::from_secs(30));
    producer.begin_transaction().context("beginning a roll-forward")?;
    for r in &wal.records {
        send(producer, r)?;
    }
    let mut offsets = TopicPartitionList::new();
    for (topic, partition, next) in &wal.positions {
        offsets.add_partition_offset(topic, *partition as i32, Offset::Offset(*next))?;
        if let Some(e) = offsets.find_partition(topic, *partition as i32).as_mut() {
            e.set_metadata(marker(epoch));
        }
    }
    let meta = consumer.group_metadata().context("the consumer group's metadata")?;
    retrying(&watch, "send_offsets_to_transaction", || producer.send_offsets_to_transaction(&offsets, &meta, TXN_TIMEOUT))
        .with_context(|| format!("rolling process {process}'s transaction of checkpoint {epoch} forward"))?;
    retrying(&watch, "commit_transaction", || producer.commit_transaction(TXN_TIMEOUT))
        .with_context(|| format!("rolling process {process}'s transaction of checkpoint {epoch} forward"))?;
    tracing::info!(
        process,
        epoch,
        records = wal.records.len(),
        "rolled forward: process {process}'s transaction of checkpoint {epoch} had not committed; its {} records and positions are committed now",
        wal.records.len()
    );
    Ok(())
}

/// Whether any partition of `topics` has offsets an exactly-once run committed
/// (read without waiting for other producers' open transactions).
fn any_committed(opts: &KafkaOptions, group: &str, topics: &BTreeMap<&str, u32>) -> Result<bool> {
    let consumer: rdkafka::consumer::BaseConsumer = opts
        .consumer_config_with(&[("isolation.level", "read_uncommitted")])
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .context("creating a Kafka consumer")?;
    let consumer = &consumer;
    for topic in topics.keys() {
        let partitions = super::partition_count(consumer, topic, Duration::from_secs(30))?;
        if super::committed_list(consumer, topic, partitions)?.elements().iter().any(|e| epoch_of(e.metadata()).is_some()) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Sends one logged record as the run wrote it (its epoch in `vigil-epoch`).
fn send<C: ProducerContext<DeliveryOpaque = usize> + 'static>(producer: &ThreadedProducer<C>, r: &Held) -> Result<()> {
    let stamp = r.epoch.to_string();
    let headers = OwnedHeaders::new().insert(Header { key: "vigil-epoch", value: Some(stamp.as_bytes()) });
    let mut record = BaseRecord::<[u8], [u8], usize>::with_opaque_to(&r.topic, r.epoch as usize).key(&r.key[..]).headers(headers);
    if let Some(p) = &r.payload {
        record = record.payload(&p[..]);
    }
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err((e, _)) => return Err(e).with_context(|| format!("rolling a record to {} forward", r.topic)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_old_producer_is_answered_for_by_one_process() {
        assert_eq!(answers_for(0, 3, 1), vec![0]);
        assert_eq!(answers_for(1, 3, 3), vec![1]);
        // 5 processes -> 2: process 0 answers for 2 and 4, process 1 for 3
        assert_eq!(answers_for(0, 2, 5), vec![0, 2, 4]);
        assert_eq!(answers_for(1, 2, 5), vec![1, 3]);
        assert_eq!(answers_for(0, 1, 3), vec![0, 1, 2]);
    }

    #[test]
    fn a_log_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("epoch-4")).unwrap();
        let held = Held { topic: "scores".into(), key: b"k".to_vec(), payload: None, epoch: 3 };
        let wal = WalFile { epoch: 4, process: 1, from: Some(2), positions: vec![("t".into(), 0, 17)], records: vec![held] };
        write(dir.path(), &wal).unwrap();
        let back: WalFile = bincode::deserialize(&std::fs::read(wal_path(dir.path(), 4, 1)).unwrap()).unwrap();
        assert_eq!((back.epoch, back.process, back.from, back.positions), (4, 1, Some(2), vec![("t".to_owned(), 0, 17)]));
        assert_eq!((back.records[0].topic.as_str(), back.records[0].payload.is_none()), ("scores", true));
    }
}
