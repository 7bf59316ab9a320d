//! The Kafka sink: one producer per process shared by its workers. librdkafka
//! batches, compresses and retries in its own threads; a worker only enqueues.
//! When librdkafka's queue (200,000 records / 64 MiB) is full the worker waits for
//! room: backpressure reaches the source instead of memory growing.
//!
//! Every record carries two headers, `vigil-run` (this process's run id) and
//! `vigil-epoch` (the checkpoint epoch of its input), so that any consumer can tell
//! which transaction or checkpoint a record belongs to.
//!
//! In transactional mode the producer's transaction holds exactly the outputs of
//! the epochs since the last commit: a record of an epoch that is not open yet waits
//! in a small buffer until the coordinator commits the previous epochs (outputs and
//! input offsets in one transaction) and opens the next.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::txn_watch::TxnWatch;
use super::KafkaOptions;
use crate::delivery::InFlight;
use crate::metrics::Metrics;
use crate::output::avro::AvroOutputs;
use crate::output::{OutputSink, Topic};

/// How long a blocking transactional call may take before the job gives up.
pub(super) const TXN_TIMEOUT: Duration = Duration::from_secs(60);

struct DeliveryCounter {
    metrics: Arc<Metrics>,
    inflight: Arc<InFlight>,
}

impl ClientContext for DeliveryCounter {
    fn error(&self, error: KafkaError, reason: &str) {
        self.metrics.kafka_errors.with_label_values(&["producer"]).inc();
        tracing::warn!(%error, reason, "producer: Kafka client error; retrying");
    }
}

impl ProducerContext for DeliveryCounter {
    /// The record's checkpoint epoch.
    type DeliveryOpaque = usize;
    fn delivery(&self, result: &DeliveryResult<'_>, epoch: usize) {
        if let Err((e, _)) = result {
            self.metrics.producer_errors.inc();
            tracing::error!(error = %e, "an output record could not be delivered");
        }
        self.inflight.settled(epoch as u64, result.is_ok());
    }
}

/// A record waiting for its epoch's transaction.
struct Pending {
    epoch: u64,
    topic: Topic,
    key: Vec<u8>,
    payload: Vec<u8>,
}

struct Transactions {
    /// Highest epoch whose records go into the open transaction.
    open_through: AtomicU64,
    waiting: Mutex<Vec<Pending>>,
    /// Ends the process when a blocking call outlives its timeout.
    watch: TxnWatch,
}

/// How long past its start a blocking transactional call may run before the
/// process gives up on it (the call's own timeout, and a margin).
const TXN_STALL: Duration = Duration::from_secs(TXN_TIMEOUT.as_secs() + 30);

pub struct KafkaSink {
    producer: ThreadedProducer<DeliveryCounter>,
    scores: String,
    dlq: String,
    features: String,
    shadow: String,
    windows: String,
    joins: String,
    run: String,
    inflight: Arc<InFlight>,
    txn: Option<Transactions>,
    /// Topics re-encoded as Avro (`[sinks] format = "avro"`).
    avro: Option<Arc<AvroOutputs>>,
}

/// Fences every earlier producer with `transactional_id` and aborts its open
/// transaction (a crashed run's, or a zombie's), so that the group's committed
/// offsets are stable before a restart reads them: a transaction that already
/// holds offsets would otherwise keep them pending until it times out.
pub fn fence_earlier(opts: &KafkaOptions, transactional_id: &str) -> Result<()> {
    let producer: rdkafka::producer::BaseProducer = opts
        .client_config_with(&[("enable.idempotence", "true")])
        .set("transactional.id", transactional_id)
        .create()
        .context("creating the fencing producer")?;
    producer.init_transactions(TXN_TIMEOUT).with_context(|| format!("fencing earlier producers of `{transactional_id}`"))
}

impl KafkaSink {
    /// `transactional_id`: `Some` for exactly-once output (the id must be stable
    /// across restarts of the same job); `start_epoch`: first epoch of this run.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        opts: &KafkaOptions,
        sinks: &crate::spec::SinkSpec,
        metrics: Arc<Metrics>,
        inflight: Arc<InFlight>,
        run: &str,
        transactional_id: Option<&str>,
        start_epoch: u64,
        avro: Option<Arc<AvroOutputs>>,
    ) -> Result<Self> {
        let mut config = opts.client_config_with(&[
            ("linger.ms", "5"),
            // Bounded: a slow broker fills this and then slows the workers down.
            ("queue.buffering.max.messages", "200000"),
            ("queue.buffering.max.kbytes", "65536"),
            ("compression.type", "lz4"),
        ]);
        config.set("enable.idempotence", "true");
        if let Some(id) = transactional_id {
            config.set("transactional.id", id).set("transaction.timeout.ms", "600000");
        }
        let producer: ThreadedProducer<DeliveryCounter> =
            config.create_with_context(DeliveryCounter { metrics, inflight: inflight.clone() }).context("creating the producer")?;
        let txn = match transactional_id {
            Some(id) => {
                // Fences any earlier producer with this id and aborts its open transaction.
                producer.init_transactions(TXN_TIMEOUT).with_context(|| format!("initializing transactions for `{id}`"))?;
                producer.begin_transaction().context("beginning a transaction")?;
                Some(Transactions { open_through: AtomicU64::new(start_epoch), waiting: Mutex::new(Vec::new()), watch: TxnWatch::start(TXN_STALL) })
            }
            None => None,
        };
        let optional = |t: &Option<String>| t.clone().unwrap_or_default();
        Ok(KafkaSink {
            producer,
            scores: sinks.scores.clone(),
            dlq: sinks.dlq.clone(),
            features: optional(&sinks.features),
            shadow: optional(&sinks.shadow),
            windows: optional(&sinks.windows),
            joins: optional(&sinks.joins),
            run: run.to_owned(),
            inflight,
            txn,
            avro,
        })
    }

    /// Waits until every enqueued record is delivered (or `timeout` passes).
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        self.producer.flush(timeout).context("flushing the producer")
    }

    /// Commits the open transaction with the outputs of every epoch up to `through`
    /// and the input `offsets`, then opens the next one. Call only when every output
    /// of epochs `..=through` has been handed to the sink.
    pub fn commit_through(&self, through: u64, topic: &str, offsets: &[(u32, i64)], group: &ConsumerGroupMetadata) -> Result<()> {
        let txn = self.txn.as_ref().context("the sink is not transactional")?;
        {
            let mut waiting = txn.waiting.lock().unwrap_or_else(|e| e.into_inner());
            let (now, later): (Vec<Pending>, Vec<Pending>) = waiting.drain(..).partition(|p| p.epoch <= through);
            *waiting = later;
            for p in now {
                self.produce(p.topic, &p.key, &p.payload, p.epoch);
            }
        }
        let mut tpl = TopicPartitionList::new();
        for (p, o) in offsets {
            tpl.add_partition_offset(topic, *p as i32, Offset::Offset(*o))?;
        }
        let watch = &txn.watch;
        let result = retrying(watch, "send_offsets_to_transaction", || self.producer.send_offsets_to_transaction(&tpl, group, TXN_TIMEOUT)).and_then(|_| {
            // a crash here leaves the offsets pending in an open transaction
            crate::crash_point!("txn-after-offsets");
            retrying(watch, "commit_transaction", || self.producer.commit_transaction(TXN_TIMEOUT))
        });
        if let Err(e) = result {
            // Nothing of this transaction is visible to read_committed consumers; a
            // restart resumes from the last committed offsets.
            let _ = watch.call("abort_transaction", || self.producer.abort_transaction(TXN_TIMEOUT));
            return Err(e).context("committing the output transaction");
        }
        watch.call("begin_transaction", || self.producer.begin_transaction()).context("beginning the next transaction")?;
        let mut waiting = txn.waiting.lock().unwrap_or_else(|e| e.into_inner());
        let (now, later): (Vec<Pending>, Vec<Pending>) = waiting.drain(..).partition(|p| p.epoch <= through + 1);
        *waiting = later;
        for p in now {
            self.produce(p.topic, &p.key, &p.payload, p.epoch);
        }
        txn.open_through.store(through + 1, Ordering::SeqCst);
        Ok(())
    }

    /// Runs `f`, a blocking Kafka call named `what`, under the transactional
    /// watchdog (see [`super::txn_watch`]); without transactions, as it is.
    pub fn watched<T>(&self, what: &'static str, f: impl FnOnce() -> T) -> T {
        match &self.txn {
            Some(txn) => txn.watch.call(what, f),
            None => f(),
        }
    }

    /// At a clean shutdown, after the final commit: aborts the (empty) transaction
    /// that the last commit opened, so that none is left dangling on the broker.
    pub fn close(&self) -> Result<()> {
        if self.txn.is_some() {
            self.producer.abort_transaction(TXN_TIMEOUT).context("closing the last transaction")?;
        }
        Ok(())
    }

    fn produce(&self, topic: Topic, key: &[u8], payload: &[u8], epoch: u64) {
        let name = match topic {
            Topic::Scores => &self.scores,
            Topic::Dlq => &self.dlq,
            Topic::Features => &self.features,
            Topic::Shadow => &self.shadow,
            Topic::Windows => &self.windows,
            Topic::Joins => &self.joins,
        };
        self.inflight.sent(epoch);
        let avro = match self.avro.as_ref().map(|a| a.encode(name, payload)) {
            None | Some(Ok(None)) => None,
            Some(Ok(Some(avro))) => Some(avro),
            Some(Err(e)) => {
                // the engine's own record: a bug, so the job must not commit past it
                self.producer.context().metrics.producer_errors.inc();
                tracing::error!(error = %format!("{e:#}"), topic = %name, "an output record could not be written as Avro");
                self.inflight.settled(epoch, false);
                return;
            }
        };
        let payload = avro.as_deref().unwrap_or(payload);
        let epoch_text = epoch.to_string();
        let headers = OwnedHeaders::new_with_capacity(2)
            .insert(Header { key: "vigil-run", value: Some(self.run.as_str()) })
            .insert(Header { key: "vigil-epoch", value: Some(epoch_text.as_str()) });
        let mut record = BaseRecord::<[u8], [u8], usize>::with_opaque_to(name, epoch as usize).key(key).headers(headers);
        if !payload.is_empty() {
            record = record.payload(payload); // an empty one is a tombstone: a null value
        }
        let mut waiting = None;
        loop {
            match self.producer.send(record) {
                Ok(()) => return,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    waiting.get_or_insert_with(|| self.producer.context().metrics.output_wait());
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => {
                    tracing::error!(error = %e, "enqueueing an output record failed");
                    self.inflight.settled(epoch, false);
                    return;
                }
            }
        }
    }
}

/// Runs the transactional call `what` under the watchdog, again while it fails
/// with an error librdkafka marks retriable (a group or transaction
/// coordinator still loading after a broker came back: "Coordinator load in
/// progress"), for up to [`TXN_TIMEOUT`] in all; librdkafka's documentation
/// says such a call may simply be repeated.
pub(super) fn retrying(watch: &TxnWatch, what: &'static str, call: impl Fn() -> rdkafka::error::KafkaResult<()>) -> rdkafka::error::KafkaResult<()> {
    let start = std::time::Instant::now();
    loop {
        match watch.call(what, &call) {
            Err(KafkaError::Transaction(e)) if e.is_retriable() && start.elapsed() < TXN_TIMEOUT => {
                tracing::warn!(call = what, error = %e, "a transactional call failed with a retriable error: retrying");
                std::thread::sleep(Duration::from_millis(200));
            }
            result => return result,
        }
    }
}

impl OutputSink for KafkaSink {
    fn send(&self, topic: Topic, key: &[u8], payload: &[u8], epoch: u64) {
        if let Some(txn) = &self.txn {
            if epoch > txn.open_through.load(Ordering::SeqCst) {
                let mut waiting = txn.waiting.lock().unwrap_or_else(|e| e.into_inner());
                // Re-check under the lock: the coordinator drains, then opens.
                if epoch > txn.open_through.load(Ordering::SeqCst) {
                    waiting.push(Pending { epoch, topic, key: key.to_vec(), payload: payload.to_vec() });
                    return;
                }
            }
        }
        self.produce(topic, key, payload, epoch);
    }
}
