//! Publishes the synthetic generator's transactions and delayed labels to Kafka,
//! optionally paced to a rate. Used by `vigil gen`, the demo and the benchmarks.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

use crate::demo::generator::{GenConfig, Generated, Generator};
use crate::kafka::KafkaOptions;

/// What to publish and how fast.
#[derive(Clone, Debug)]
pub struct PublishOptions {
    pub topic: String,
    /// Labels topic; `None` publishes no labels.
    pub labels_topic: Option<String>,
    /// Logins topic (the cards' logins, see `Generator::take_logins`); `None`
    /// publishes none.
    pub logins_topic: Option<String>,
    pub events: u64,
    /// Events per second of wall time; `None` is as fast as the broker takes them.
    pub rate: Option<f64>,
}

/// Counts shared with progress displays.
#[derive(Default)]
pub struct PublishProgress {
    pub events: AtomicU64,
    pub labels: AtomicU64,
}

/// Publishes `opts.events` transactions (stopping early if `stop` is set), then the
/// labels still pending, and waits for delivery.
pub fn publish(kafka: &KafkaOptions, gen: GenConfig, opts: &PublishOptions, progress: &PublishProgress, stop: &AtomicBool) -> Result<()> {
    let producer: ThreadedProducer<DefaultProducerContext> = kafka
        .client_config()
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("enable.idempotence", "true")
        .set("compression.type", "lz4")
        .set("message.max.bytes", "1000000")
        .create()
        .context("creating the generator's producer")?;
    let mut generator = Generator::new(GenConfig { logins: opts.logins_topic.is_some(), ..gen });
    let started = Instant::now();
    for i in 0..opts.events {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if let Some(rate) = opts.rate {
            let due = started + Duration::from_secs_f64(i as f64 / rate);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        let tx = generator.next_transaction();
        send(&producer, &opts.topic, &tx)?;
        progress.events.fetch_add(1, Ordering::Relaxed);
        if let Some(logins) = &opts.logins_topic {
            for login in generator.take_logins() {
                send(&producer, logins, &login)?;
            }
        }
        if let Some(labels) = &opts.labels_topic {
            for label in generator.due_labels() {
                send(&producer, labels, &label)?;
                progress.labels.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    if let Some(labels) = &opts.labels_topic {
        for label in generator.remaining_labels() {
            send(&producer, labels, &label)?;
            progress.labels.fetch_add(1, Ordering::Relaxed);
        }
    }
    producer.flush(Duration::from_secs(60)).context("flushing the generator's producer")
}

fn send(producer: &ThreadedProducer<DefaultProducerContext>, topic: &str, record: &Generated) -> Result<()> {
    let mut r = BaseRecord::to(topic).key(record.key.as_bytes()).payload(&record.payload);
    loop {
        match producer.send(r) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                r = back;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err((e, _)) => return Err(e).context("publishing a generated record"),
        }
    }
}

/// A stop flag for `publish` that never fires.
pub fn never() -> Arc<AtomicBool> {
    Arc::new(AtomicBool::new(false))
}
