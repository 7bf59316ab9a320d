//! Running a graph on Kafka: every source reads its topic, every sink writes the
//! topic of its name, dead letters go to the DLQ topic (`dlq` by default), in the
//! same contract as the TOML jobs.
//!
//! - Partitions are assigned directly (no consumer-group rebalancing): partition
//!   `p` of the graph's `i`-th source is read by worker `(p + i) % workers`.
//! - Epochs (the timely time) follow a clock that moves every `epoch_interval`;
//!   upsert sinks write a key's change once its epoch is complete.
//! - A partition with no record for the source's idle timeout stops holding the
//!   stream's watermark back (as Flink's idleness); its later records are judged
//!   late or not by its own watermark, as always.
//! - `until_end()`: read every topic up to its end as of the start, then stop
//!   (backfills, tests); otherwise run until [`KafkaRun::control`] asks to stop.
//! - Checkpoints ([`KafkaRun::checkpoints`]): a checkpoint of epoch E is
//!   written once every output of epochs up to E is acknowledged by the
//!   brokers, so a restore from it loses no output; outputs after it are written
//!   again (at-least-once). Offsets are not committed to the group: the
//!   checkpoint holds the positions. With [`KafkaRun::exactly_once`], each
//!   checkpoint's outputs are one transaction, committed with the positions
//!   as the group's offsets ([`super::graph_txn`]).
//! - A cluster ([`KafkaRun::cluster`]): several processes, each with its
//!   producer, its coordinator and the same checkpoint directory (shared);
//!   exactly-once there too ([`super::graph_wal`]).
//!
//! Every record written carries the header `vigil-epoch`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use super::graph_txn::Transactions;
use super::source::KafkaSource;
use super::KafkaOptions;
use crate::epoch::EpochClock;
use crate::graph::connector::{Connector, TopicRange};
use crate::graph::coordinator::{Commit, Participation};
use crate::graph::run::{run_processes, Collector, DeadLetter, Inputs, SinkRecord, SourceCounts};
use crate::graph::GraphBuilder;
use crate::metrics::Metrics;
use crate::output::avro::AvroOutputs;
use crate::output::encode_dlq;
use crate::types::{Control, Reason, Rejection};

/// The outputs in flight per epoch, and the first epoch with an output the
/// brokers did not take: a checkpoint of epoch E is written only once every
/// output of epochs up to E is delivered (see [`crate::graph::coordinator`]).
#[derive(Default)]
struct Outstanding {
    /// Whether anyone asks (a run with checkpoints): else only failures count.
    tracking: bool,
    pending: Mutex<BTreeMap<u64, u64>>,
    failed: AtomicU64,
    /// The least epoch of a failed output (`u64::MAX`: none).
    failed_from: AtomicU64,
}

impl Outstanding {
    fn new(tracking: bool) -> Arc<Self> {
        Arc::new(Outstanding { tracking, failed_from: AtomicU64::new(u64::MAX), ..Default::default() })
    }
    /// `n` records of `epoch` handed to the producer (counted once per batch).
    fn sent(&self, epoch: u64, n: u64) {
        if self.tracking && n > 0 {
            *self.pending.lock().unwrap_or_else(|e| e.into_inner()).entry(epoch).or_default() += n;
        }
    }
    /// A record left the producer's hands: delivered (`ok`) or not.
    fn settled(&self, epoch: u64, ok: bool) {
        if self.tracking {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = pending.get_mut(&epoch) {
                *n -= 1;
                if *n == 0 {
                    pending.remove(&epoch);
                }
            }
        }
        if !ok {
            self.fail(epoch);
        }
    }
    /// An output that will never be delivered: no checkpoint from its epoch on.
    fn fail(&self, epoch: u64) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.failed_from.fetch_min(epoch, Ordering::SeqCst);
    }
    /// Whether every output of epochs up to `epoch` is delivered.
    fn delivered_through(&self, epoch: u64) -> bool {
        self.failed_from.load(Ordering::SeqCst) > epoch && self.pending.lock().unwrap_or_else(|e| e.into_inner()).range(..=epoch).next().is_none()
    }
}

/// Settles each output record's delivery.
struct Delivery {
    outstanding: Arc<Outstanding>,
}

impl ClientContext for Delivery {}

impl ProducerContext for Delivery {
    /// The record's epoch.
    type DeliveryOpaque = usize;
    fn delivery(&self, result: &DeliveryResult<'_>, epoch: usize) {
        if let Err((e, _)) = result {
            if self.outstanding.failed.load(Ordering::Relaxed) == 0 {
                tracing::error!(error = %e, epoch, "an output record could not be delivered; no checkpoint from its epoch on");
            }
        }
        self.outstanding.settled(epoch as u64, result.is_ok());
    }
}

/// What the workers of a Kafka run share: the graph's [`Connector`] to Kafka.
struct KafkaIo {
    opts: KafkaOptions,
    group: String,
    bounded: bool,
    dlq_topic: String,
    clock: Arc<EpochClock>,
    control: Arc<Control>,
    metrics: Arc<Metrics>,
    /// Pacing: records per source and worker per epoch, at most.
    per_epoch: Option<usize>,
    /// Where topics start and end by time (epoch ms), see [`KafkaRun::start_at`].
    start_at: Option<i64>,
    until: Option<i64>,
    topics: Mutex<HashMap<String, TopicRange>>,
    out: Arc<Output>,
    produced: Mutex<BTreeMap<String, u64>>,
    /// An exactly-once run: the checkpoint it resumes from (`None`: a fresh
    /// start), which every source topic's committed offsets must name.
    resumes: Option<Option<u64>>,
}

/// The producer and what writing a record takes: shared by the workers and,
/// in an exactly-once run, the coordinator's commits.
struct Output {
    producer: ThreadedProducer<Delivery>,
    outstanding: Arc<Outstanding>,
    metrics: Arc<Metrics>,
    /// Topics re-encoded as Avro (a job's `[sinks] format = "avro"`).
    avro: Option<Arc<AvroOutputs>>,
    /// An exactly-once run's transactions.
    txn: Option<Transactions>,
}

impl Connector for KafkaIo {
    fn bounded(&self) -> bool {
        self.bounded
    }
    /// A reader of every partition of the labels topic from its start (to its
    /// end offsets in a bounded run), for an online model's learner.
    fn label_source(&self, topic: &str, from: &[(u32, i64)]) -> Result<crate::learner::service::LabelSourceFactory> {
        let mut range = self.topic(topic)?;
        for (p, offset) in from {
            match range.start.get_mut(*p as usize) {
                Some(slot) => *slot = *offset,
                None => tracing::warn!(topic, partition = p, "the restored learner read labels partition {p}, which the topic no longer has"),
            }
        }
        let (opts, group, topic, metrics) = (self.opts.clone(), self.group.clone(), topic.to_owned(), self.metrics.clone());
        let end: super::source::EndOffsets = Arc::new(Mutex::new(range.end.clone()));
        Ok(Box::new(move || {
            let source = KafkaSource::new(&opts, &group, &topic, (0..range.partitions).collect(), &range.start, end, &metrics)?;
            Ok(Box::new(source) as Box<dyn crate::source::RecordSource>)
        }))
    }
    /// One consumer per worker for its share of the partitions.
    fn reader(&self, topic: &str, partitions: Vec<u32>, start: &[i64], end: Option<HashMap<u32, i64>>) -> Result<Box<dyn crate::source::RecordSource>> {
        let source = KafkaSource::new(&self.opts, &self.group, topic, partitions, start, Arc::new(Mutex::new(end)), &self.metrics)?;
        Ok(Box::new(source))
    }
    fn clock(&self) -> &EpochClock {
        &self.clock
    }
    fn control(&self) -> &Control {
        &self.control
    }
    fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }
    fn per_epoch(&self) -> Option<usize> {
        self.per_epoch
    }
    /// The range of `topic`, the same for every worker (read once, then cached).
    fn topic(&self, topic: &str) -> Result<TopicRange> {
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = topics.get(topic) {
            return Ok(r.clone());
        }
        let consumer = self.opts.admin_consumer(&self.group)?;
        let partitions = super::partition_count(&consumer, topic, Duration::from_secs(30))?;
        if let Some(resumes) = self.resumes {
            super::graph_txn::check_committed(&consumer, &self.group, topic, partitions, resumes)?;
        }
        let mut range = TopicRange { partitions, start: Vec::new(), end: self.bounded.then(HashMap::new) };
        let at = self.start_at.map(|t| super::offsets_for_time(&consumer, topic, partitions, t)).transpose()?;
        let until = self.until.map(|t| super::offsets_for_time(&consumer, topic, partitions, t)).transpose()?;
        for p in 0..partitions {
            let (low, high) =
                consumer.fetch_watermarks(topic, p as i32, Duration::from_secs(30)).with_context(|| format!("reading the offsets of {topic}/{p}"))?;
            range.start.push(at.as_ref().map_or(low, |at| at[p as usize]));
            if let Some(end) = range.end.as_mut() {
                end.insert(p, until.as_ref().map_or(high, |u| u[p as usize].min(high)));
            }
        }
        topics.insert(topic.to_owned(), range.clone());
        Ok(range)
    }

    fn produce(&self, sink: &str, records: &mut Vec<SinkRecord>) {
        let n = records.len() as u64;
        for run in records.chunk_by(|a, b| a.epoch == b.epoch) {
            self.out.outstanding.sent(run[0].epoch, run.len() as u64);
        }
        for r in records.drain(..) {
            self.out.send(sink, r.key.as_bytes(), r.value.as_deref().map(str::as_bytes), r.epoch);
        }
        *self.produced.lock().unwrap_or_else(|e| e.into_inner()).entry(sink.to_owned()).or_default() += n;
    }

    fn dead_letters(&self, dead: &[DeadLetter], epoch: u64) {
        self.out.outstanding.sent(epoch, dead.len() as u64);
        for d in dead {
            let reason = Reason::ALL.into_iter().find(|r| r.as_str() == d.reason).unwrap_or(Reason::NotJson);
            let payload = encode_dlq(&d.topic, d.partition, d.offset, d.payload.as_deref(), &Rejection::new(reason, d.detail.clone()));
            let key = format!("{}-{}-{}", d.topic, d.partition, d.offset);
            self.out.send(&self.dlq_topic, key.as_bytes(), Some(&payload), epoch);
            self.metrics.dlq.with_label_values(&[d.reason]).inc();
        }
        *self.produced.lock().unwrap_or_else(|e| e.into_inner()).entry(self.dlq_topic.clone()).or_default() += dead.len() as u64;
    }
}

impl Output {
    /// Writes one record (counted as sent by the caller): now, or once the
    /// transaction of its epoch opens (exactly-once).
    fn send(&self, topic: &str, key: &[u8], payload: Option<&[u8]>, epoch: u64) {
        match &self.txn {
            Some(t) => t.send(topic, key, payload, epoch, || self.enqueue(topic, key, payload, epoch)),
            None => self.enqueue(topic, key, payload, epoch),
        }
    }

    /// Enqueues one record; waits for room while librdkafka's queue is full.
    fn enqueue(&self, topic: &str, key: &[u8], payload: Option<&[u8]>, epoch: u64) {
        let avro = match (&self.avro, payload) {
            (Some(a), Some(p)) => match a.encode(topic, p) {
                Ok(avro) => avro,
                Err(e) => {
                    // the engine's own record: a bug, counted as a failed output
                    self.outstanding.settled(epoch, false);
                    tracing::error!(error = %format!("{e:#}"), topic, "an output record could not be written as Avro");
                    return;
                }
            },
            _ => None,
        };
        let payload = avro.as_deref().or(payload);
        if let Some(t) = &self.txn {
            t.log(topic, key, payload, epoch);
        }
        let stamp = epoch.to_string();
        let headers = OwnedHeaders::new().insert(Header { key: "vigil-epoch", value: Some(stamp.as_bytes()) });
        let mut record = BaseRecord::<[u8], [u8], usize>::with_opaque_to(topic, epoch as usize).key(key).headers(headers);
        if let Some(p) = payload {
            record = record.payload(p);
        }
        let mut waiting = None;
        loop {
            match self.producer.send(record) {
                Ok(()) => return,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    waiting.get_or_insert_with(|| self.metrics.output_wait());
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => {
                    self.outstanding.settled(epoch, false);
                    tracing::error!(error = %e, topic, "enqueueing an output record failed");
                    return;
                }
            }
        }
    }
}

/// An exactly-once run's commits of its checkpoints (see [`super::graph_txn`]).
struct TxnCommit(Arc<Output>);

impl Commit for TxnCommit {
    fn prepare(&self, epoch: u64, positions: &[(String, u32, i64)]) -> Result<()> {
        let out = &self.0;
        out.txn.as_ref().expect("a run with transactions").prepare(&out.producer, epoch, positions)
    }
    fn commit(&self, epoch: u64) -> Result<()> {
        let out = &self.0;
        out.txn.as_ref().expect("a run with transactions").commit(&out.producer, epoch, |h| out.enqueue(&h.topic, &h.key, h.payload.as_deref(), h.epoch))
    }
    fn seal(&self) {
        let out = &self.0;
        out.txn.as_ref().expect("a run with transactions").seal(|h| out.enqueue(&h.topic, &h.key, h.payload.as_deref(), h.epoch))
    }
}

/// Runs graphs on Kafka; see the module docs.
pub struct KafkaRun {
    opts: KafkaOptions,
    workers: usize,
    group: String,
    bounded: bool,
    dlq_topic: String,
    epoch_interval: Duration,
    control: Arc<Control>,
    metrics: Arc<Metrics>,
    checkpoints: Option<(std::path::PathBuf, u64)>,
    /// This process's place in a timely cluster (one process by default).
    cluster: Option<(usize, Vec<String>)>,
    per_epoch: Option<usize>,
    start_at: Option<i64>,
    until: Option<i64>,
    avro: Option<Arc<AvroOutputs>>,
    /// The transactional id of an exactly-once run.
    exactly_once: Option<String>,
}

/// What a Kafka run did.
#[derive(Debug)]
pub struct KafkaOutputs {
    /// Per source topic: records read, accepted and rejected by reason.
    pub sources: BTreeMap<String, SourceCounts>,
    /// Records written per output topic (sinks and the DLQ topic).
    pub produced: BTreeMap<String, u64>,
    pub warnings: Vec<String>,
    /// The epochs checkpointed during the run.
    pub checkpoints: Vec<u64>,
    /// What each online model's learner did.
    pub learners: BTreeMap<String, crate::learner::LearnerSummary>,
}

impl KafkaRun {
    pub fn new(opts: KafkaOptions) -> Self {
        KafkaRun {
            opts,
            workers: 1,
            group: "vigil-graph".into(),
            bounded: false,
            dlq_topic: "dlq".into(),
            epoch_interval: Duration::from_secs(1),
            control: Control::new(),
            metrics: Metrics::new(),
            checkpoints: None,
            cluster: None,
            per_epoch: None,
            start_at: None,
            until: None,
            avro: None,
            exactly_once: None,
        }
    }
    /// Exactly-once output (see [`super::graph_txn`]): each checkpoint's
    /// outputs and dead letters in one Kafka transaction of the producer
    /// `transactional_id` (stable across restarts of the job), committed with
    /// the sources' positions as the group's offsets; a restart resumes from
    /// the checkpoint committed last. Needs [`KafkaRun::checkpoints`]; in a
    /// [`KafkaRun::cluster`], process `P > 0` uses `transactional_id-pP`
    /// (see [`super::graph_wal`]).
    pub fn exactly_once(mut self, transactional_id: &str) -> Self {
        self.exactly_once = Some(transactional_id.to_owned());
        self
    }
    /// Writes the topics `avro` names as Confluent-framed Avro: each record the
    /// graph writes there as JSON (a job's `scores`, `features`, `drift`
    /// contracts) is re-encoded with the topic's registered schema.
    pub fn avro_outputs(mut self, avro: Arc<AvroOutputs>) -> Self {
        self.avro = Some(avro);
        self
    }
    /// Starts each partition of every source at its first record stamped at or
    /// after `time_ms` (Kafka's offsets-for-times) instead of its beginning; a
    /// restored checkpoint's positions win over it.
    pub fn start_at(mut self, time_ms: i64) -> Self {
        self.start_at = Some(time_ms);
        self
    }
    /// Stops each partition at its first record stamped at or after `time_ms`
    /// (or its end as of the start, if earlier), then ends the run.
    pub fn until(mut self, time_ms: i64) -> Self {
        self.until = Some(time_ms);
        self.bounded = true;
        self
    }
    /// Paces reading: each worker reads at most `n` records of each source per
    /// epoch (a backfill that should not outrun its outputs; tests).
    pub fn max_records_per_epoch(mut self, n: usize) -> Self {
        self.per_epoch = Some(n.max(1));
        self
    }
    /// Checkpoints under `dir` at the end of every `every`-th epoch; a run
    /// resumes from the newest one there (see [`crate::graph::checkpoint`]).
    pub fn checkpoints(mut self, dir: &std::path::Path, every: u64) -> Self {
        self.checkpoints = Some((dir.to_owned(), every));
        self
    }
    /// Worker threads in this process.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }
    /// Runs as process `process` of a timely cluster whose processes listen at
    /// `addresses` (`host:port`, one per process, in order), each with the same
    /// [`KafkaRun::workers`]: sources' partitions and keys are spread over every
    /// worker of every process. With checkpoints, every process must be given
    /// the same directory on a volume they all share (see
    /// [`crate::graph::coordinator`]).
    pub fn cluster(mut self, process: usize, addresses: Vec<String>) -> Self {
        self.cluster = (addresses.len() > 1).then_some((process, addresses));
        self
    }
    /// The consumer group id (used for metadata; offsets are committed to it
    /// only by an exactly-once run, with its checkpoints).
    pub fn group(mut self, id: &str) -> Self {
        self.group = id.to_owned();
        self
    }
    /// Reads every topic to its end as of the start, then stops.
    pub fn until_end(mut self) -> Self {
        self.bounded = true;
        self
    }
    pub fn dlq_topic(mut self, topic: &str) -> Self {
        self.dlq_topic = topic.to_owned();
        self
    }
    pub fn epoch_interval(mut self, d: Duration) -> Self {
        self.epoch_interval = d.max(Duration::from_millis(10));
        self
    }
    /// Stops the run (sources stop reading, the graph drains) once asked.
    pub fn control(&self) -> Arc<Control> {
        self.control.clone()
    }
    /// The run's Prometheus metrics (DLQ counts by reason, consumer errors).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Builds the graph with `build` on every worker and runs it.
    pub fn run<F>(&self, build: F) -> Result<KafkaOutputs>
    where
        F: Fn(&mut GraphBuilder<'_>) -> Result<()> + Send + Sync + 'static,
    {
        self.control.health().expect_workers(self.workers);
        let outstanding = Outstanding::new(self.checkpoints.is_some());
        let (process, processes) = self.cluster.as_ref().map_or((0, 1), |(p, a)| (*p, a.len()));
        let mut config = self.opts.client_config_with(&[("linger.ms", "5"), ("enable.idempotence", "true"), ("compression.type", "lz4")]);
        if let Some(id) = &self.exactly_once {
            if self.checkpoints.is_none() {
                bail!("exactly-once output needs checkpoints: each checkpoint's outputs are one transaction (give a checkpoint directory)");
            }
            let span = self.epoch_interval.as_secs_f64() * self.checkpoints.as_ref().map_or(1, |c| c.1.max(1)) as f64;
            if span > 300.0 {
                bail!("exactly-once: checkpoints {span:.0} s apart hold a transaction open longer than half its 600 s timeout (the broker would abort it); checkpoint at least every 300 s");
            }
            config.set("transactional.id", super::graph_wal::txn_id(id, process)).set("transaction.timeout.ms", "600000");
        }
        let producer: ThreadedProducer<Delivery> =
            config.create_with_context(Delivery { outstanding: outstanding.clone() }).context("creating the producer")?;
        let (txn, committed) = match (&self.exactly_once, &self.checkpoints) {
            (Some(id), Some((dir, every))) => {
                // fences any earlier instance and aborts its open transaction
                producer.init_transactions(super::sink::TXN_TIMEOUT).with_context(|| format!("initializing transactions for `{id}`"))?;
                std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
                let make = |q: usize| -> Result<ThreadedProducer<Delivery>> {
                    let mut c = config.clone();
                    c.set("transactional.id", super::graph_wal::txn_id(id, q));
                    c.create_with_context(Delivery { outstanding: Outstanding::new(false) }).context("creating a producer")
                };
                let committed = match super::graph_wal::recover(&self.opts, &self.group, dir, (process, processes), &producer, make)? {
                    Some(logged) => Some(logged),
                    None => {
                        let committed = super::graph_txn::committed_epoch(&self.opts, &self.group, dir)?;
                        super::graph_txn::discard_uncommitted(dir, &self.group, committed)?;
                        committed
                    }
                };
                let group = self.opts.admin_consumer(&self.group)?.group_metadata().context("the consumer group's metadata")?;
                let cluster = (processes > 1).then_some(process);
                (Some(Transactions::begin(&producer, group, *every, committed, dir, cluster)?), committed)
            }
            _ => (None, None),
        };
        let out = Arc::new(Output { producer, outstanding, metrics: self.metrics.clone(), avro: self.avro.clone(), txn });
        let cluster = match &self.cluster {
            Some((process, addresses)) => crate::run::Cluster { workers: self.workers, process: *process, addresses: addresses.clone() },
            None => crate::run::Cluster::threads(self.workers),
        };
        let delivered = {
            let o = out.outstanding.clone();
            Arc::new(move |e: u64| o.delivered_through(e))
        };
        let control = self.control.clone();
        let on_failure = Arc::new(move || {
            control.request_shutdown();
            if processes > 1 {
                // a process of a cluster cannot end alone (its workers wait for the
                // others'): it exits, the others lose it and stop, and a supervisor
                // restarts the job from its last checkpoint
                eprintln!("vigil: this process's checkpoints stopped (see the error above): exiting so that the cluster restarts");
                std::process::exit(75);
            }
        });
        let commit = out.txn.as_ref().map(|_| Arc::new(TxnCommit(out.clone())) as Arc<dyn Commit>);
        let undeliverable = {
            let o = out.outstanding.clone();
            Arc::new(move || o.failed.load(Ordering::SeqCst) > 0)
        };
        let me = Participation { process: cluster.process, processes: cluster.processes(), delivered, on_failure, commit, undeliverable };
        let (checkpoints, coordinator) = crate::graph::checkpoint::configure(&self.checkpoints, me, out.txn.as_ref().map(|_| committed))?;
        let start = checkpoints.as_ref().map_or(0, |c| c.start_epoch());
        if out.txn.is_some() && start != committed.map_or(0, |e| e + 1) {
            bail!("exactly-once: the run would resume at epoch {start}, but the group committed checkpoint {committed:?}");
        }
        let io = Arc::new(KafkaIo {
            opts: self.opts.clone(),
            group: self.group.clone(),
            bounded: self.bounded,
            dlq_topic: self.dlq_topic.clone(),
            clock: Arc::new(EpochClock::starting_at(start)),
            control: self.control.clone(),
            metrics: self.metrics.clone(),
            per_epoch: self.per_epoch,
            start_at: self.start_at,
            until: self.until,
            topics: Mutex::default(),
            out: out.clone(),
            produced: Mutex::default(),
            resumes: out.txn.as_ref().map(|_| committed),
        });
        let done = Arc::new(AtomicBool::new(false));
        let ticker = {
            let (clock, done, every) = (io.clock.clone(), done.clone(), self.epoch_interval);
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    std::thread::sleep(every);
                    clock.advance();
                }
            })
        };
        let mut collector = Collector::new(Inputs::Connector(io.clone()), checkpoints);
        collector.process = cluster.process;
        collector.replicas = cluster.processes();
        let result = run_processes(Arc::new(collector), vec![cluster.timely_config()], build);
        done.store(true, Ordering::Relaxed);
        let _ = ticker.join();
        out.producer.flush(Duration::from_secs(60)).context("flushing the outputs")?;
        let written = crate::graph::checkpoint::finish(coordinator)?;
        let outputs = result?;
        if let Some(txn) = &out.txn {
            txn.close(&out.producer)?;
        }
        let failed = out.outstanding.failed.load(Ordering::Relaxed);
        if failed > 0 {
            bail!("{failed} output records could not be delivered");
        }
        let produced = io.produced.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Ok(KafkaOutputs { sources: outputs.sources, produced, warnings: outputs.warnings, checkpoints: written, learners: outputs.learners })
    }
}

#[cfg(test)]
mod tests {
    use super::Outstanding;

    #[test]
    fn an_epoch_is_delivered_once_every_output_up_to_it_is_acknowledged() {
        let o = Outstanding::new(true);
        assert!(o.delivered_through(5), "nothing sent");
        o.sent(3, 2);
        o.sent(0, 1); // a dead letter
        o.sent(7, 1);
        assert!(!o.delivered_through(3) && !o.delivered_through(0));
        o.settled(0, true);
        assert!(o.delivered_through(0) && !o.delivered_through(3));
        o.settled(3, true);
        assert!(!o.delivered_through(3), "one of epoch 3's two is still in flight");
        o.settled(3, true);
        assert!(o.delivered_through(3) && o.delivered_through(6) && !o.delivered_through(7));
        // a record the brokers refused: no epoch from its own on is ever delivered
        o.settled(7, false);
        assert!(o.delivered_through(6) && !o.delivered_through(7) && !o.delivered_through(100));
        assert_eq!(o.failed.load(std::sync::atomic::Ordering::Relaxed), 1);
    }

    #[test]
    fn without_checkpoints_only_failures_are_counted() {
        let o = Outstanding::new(false);
        o.sent(1, 10);
        assert!(o.pending.lock().unwrap().is_empty());
        o.settled(1, false);
        assert_eq!(o.failed.load(std::sync::atomic::Ordering::Relaxed), 1);
    }
}
