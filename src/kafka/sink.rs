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
use crate::metrics::Metrics;
use crate::output::{OutputSink, Topic};

struct DeliveryCounter {
    metrics: Arc<Metrics>,
}

impl ClientContext for DeliveryCounter {}

impl ProducerContext for DeliveryCounter {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.metrics.producer_errors.inc();
            tracing::error!(error = %e, "an output record could not be delivered");
        }
    }
}

pub struct KafkaSink {
    producer: ThreadedProducer<DeliveryCounter>,
    scores: String,
    dlq: String,
}

impl KafkaSink {
    pub fn new(opts: &KafkaOptions, scores: &str, dlq: &str, metrics: Arc<Metrics>) -> Result<Self> {
        let producer = opts
            .client_config()
            .set("linger.ms", "5")
            .set("queue.buffering.max.messages", "1000000")
            .set("queue.buffering.max.kbytes", "1048576")
            .set("enable.idempotence", "true")
            .set("compression.type", "lz4")
            .create_with_context(DeliveryCounter { metrics })
            .context("creating the producer")?;
        Ok(KafkaSink { producer, scores: scores.to_owned(), dlq: dlq.to_owned() })
    }

    /// Waits until every enqueued record is delivered (or `timeout` passes).
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        self.producer.flush(timeout).context("flushing the producer")
    }
}

impl OutputSink for KafkaSink {
    fn send(&self, topic: Topic, key: &[u8], payload: &[u8]) {
        let name = match topic {
            Topic::Scores => &self.scores,
            Topic::Dlq => &self.dlq,
        };
        let mut record = BaseRecord::to(name).key(key).payload(payload);
        loop {
            match self.producer.send(record) {
                Ok(()) => return,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => {
                    tracing::error!(error = %e, "enqueueing an output record failed");
                    return;
                }
            }
        }
    }
}
