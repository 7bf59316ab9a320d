//! The Kafka sink: one producer per process shared by its workers. librdkafka
//! batches, compresses and retries in its own threads; a worker only enqueues.
//! When librdkafka's queue is full the worker waits for room (backpressure reaches
//! the source instead of memory growing).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::ClientContext;

use super::KafkaOptions;
use crate::delivery::InFlight;
use crate::metrics::Metrics;
use crate::output::{OutputSink, Topic};

struct DeliveryCounter {
    metrics: Arc<Metrics>,
    inflight: Arc<InFlight>,
}

impl ClientContext for DeliveryCounter {}

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

pub struct KafkaSink {
    producer: ThreadedProducer<DeliveryCounter>,
    scores: String,
    dlq: String,
    inflight: Arc<InFlight>,
}

impl KafkaSink {
    pub fn new(opts: &KafkaOptions, scores: &str, dlq: &str, metrics: Arc<Metrics>, inflight: Arc<InFlight>) -> Result<Self> {
        let producer = opts
            .client_config()
            .set("linger.ms", "5")
            .set("queue.buffering.max.messages", "1000000")
            .set("queue.buffering.max.kbytes", "1048576")
            .set("enable.idempotence", "true")
            .set("compression.type", "lz4")
            .create_with_context(DeliveryCounter { metrics, inflight: inflight.clone() })
            .context("creating the producer")?;
        Ok(KafkaSink { producer, scores: scores.to_owned(), dlq: dlq.to_owned(), inflight })
    }

    /// Waits until every enqueued record is delivered (or `timeout` passes).
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        self.producer.flush(timeout).context("flushing the producer")
    }
}

impl OutputSink for KafkaSink {
    fn send(&self, topic: Topic, key: &[u8], payload: &[u8], epoch: u64) {
        let name = match topic {
            Topic::Scores => &self.scores,
            Topic::Dlq => &self.dlq,
        };
        self.inflight.sent(epoch);
        let mut record = BaseRecord::with_opaque_to(name, epoch as usize).key(key).payload(payload);
        loop {
            match self.producer.send(record) {
                Ok(()) => return,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
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
