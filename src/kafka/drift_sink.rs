//! The drift topic on Kafka: [`crate::monitor::DriftSink`] with an idempotent
//! producer (the pipeline's monitor writes its findings through it).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

use super::KafkaOptions;
use crate::monitor::DriftSink;
use crate::output::avro::AvroOutputs;

/// Writes to a Kafka topic with an idempotent producer.
pub struct KafkaDriftSink {
    topic: String,
    producer: ThreadedProducer<DefaultProducerContext>,
    /// Set when the topic is written as Avro (`[sinks] format = "avro"`).
    avro: Option<Arc<AvroOutputs>>,
}

impl KafkaDriftSink {
    pub fn new(kafka: &KafkaOptions, topic: &str, avro: Option<Arc<AvroOutputs>>) -> Result<KafkaDriftSink> {
        let producer = kafka.client_config_with(&[("enable.idempotence", "true"), ("linger.ms", "20")]).create().context("creating the drift producer")?;
        Ok(KafkaDriftSink { topic: topic.to_owned(), producer, avro })
    }
}

impl DriftSink for KafkaDriftSink {
    fn send(&self, key: &str, payload: &[u8]) {
        let avro = match self.avro.as_ref().map(|a| a.encode(&self.topic, payload)) {
            None | Some(Ok(None)) => None,
            Some(Ok(Some(avro))) => Some(avro),
            Some(Err(e)) => {
                tracing::error!(error = %format!("{e:#}"), topic = %self.topic, "a drift record could not be written as Avro");
                return;
            }
        };
        let payload = avro.as_deref().unwrap_or(payload);
        let mut record = BaseRecord::to(&self.topic).key(key).payload(payload);
        // a full queue is the only local failure: wait for room (records are few)
        for _ in 0..1000 {
            match self.producer.send(record) {
                Ok(()) => return,
                Err((_, r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        tracing::error!(topic = %self.topic, "the drift producer's queue stayed full: a drift record was not written");
    }

    fn flush(&self) -> Result<()> {
        self.producer.flush(Duration::from_secs(30)).context("flushing drift records")
    }
}
