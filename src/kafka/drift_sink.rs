//! The drift topic on Kafka: [`crate::monitor::DriftSink`] with an idempotent
//! producer (the pipeline's monitor writes its findings through it).

use std::time::Duration;

use anyhow::{Context, Result};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

use super::KafkaOptions;
use crate::monitor::DriftSink;

/// Writes to a Kafka topic with an idempotent producer.
pub struct KafkaDriftSink {
    topic: String,
    producer: ThreadedProducer<DefaultProducerContext>,
}

impl KafkaDriftSink {
    pub fn new(kafka: &KafkaOptions, topic: &str) -> Result<KafkaDriftSink> {
        let producer = kafka.client_config_with(&[("enable.idempotence", "true"), ("linger.ms", "20")]).create().context("creating the drift producer")?;
        Ok(KafkaDriftSink { topic: topic.to_owned(), producer })
    }
}

impl DriftSink for KafkaDriftSink {
    fn send(&self, key: &str, payload: &[u8]) {
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
