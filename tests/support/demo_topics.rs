//! The demo generator's records for a test's topics: its transactions and their
//! labels, produced to an embedded or real broker.
#![allow(dead_code)]

use std::time::Duration;

use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use vigil::demo::generator::{GenConfig, Generated, Generator};
use vigil::kafka::KafkaOptions;

/// `events` transactions of seed `seed` (1 % malformed, labels due one event
/// later) and all their labels, in the order the demo publishes them.
pub fn transactions_and_labels(seed: u64, events: usize) -> (Vec<Generated>, Vec<Generated>) {
    let mut gen = Generator::new(GenConfig { bad_ratio: 0.01, seed, label_delay: 1, ..GenConfig::default() });
    let (mut transactions, mut labels) = (Vec::new(), Vec::new());
    for _ in 0..events {
        transactions.push(gen.next_transaction());
        labels.extend(gen.due_labels());
    }
    labels.extend(gen.remaining_labels());
    (transactions, labels)
}

/// A producer that [`produce`] writes with.
pub fn producer(kafka: &KafkaOptions) -> BaseProducer {
    kafka.client_config_with(&[]).create().unwrap()
}

/// Writes `records` to `topic` by their keys (waiting whenever the producer's
/// queue is full), then flushes.
pub fn produce(producer: &BaseProducer, topic: &str, records: &[Generated]) {
    for r in records {
        while let Err((e, _)) = producer.send(BaseRecord::to(topic).key(r.key.as_bytes()).payload(&r.payload)) {
            assert!(matches!(e, rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull)), "{e}");
            producer.poll(Duration::from_millis(10));
        }
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}
