//! Nexmark through Kafka: the events of one topic (the three kinds together, as
//! Flink's and Feldera's Kafka generators write them), published by
//! [`publish`] (`vigil nexmark gen`) and read back by a graph with
//! [`source`] and [`decode`] (`vigil nexmark run`).
//!
//! On the topic each record is one event as JSON (`{"bid":{...}}`, see
//! [`super::model`]), without a key. Its Kafka timestamp is the time it was
//! published, not the event time: the generator's clock starts in 2015, and a
//! broker deletes records whose timestamps are older than its retention. Event
//! `i` goes to partition `i % partitions`, so every partition holds a share of
//! the stream in event-time order, and a graph's watermark is the generator's
//! clock.
//!
//! ```
//! use vigil::graph::LocalRun;
//! use vigil::nexmark::{kafka, queries, Event, Generator, GeneratorConfig};
//!
//! let events: Vec<Event> = Generator::new(GeneratorConfig::default()).take(500).collect();
//! let mut payloads: Vec<Vec<u8>> = events.iter().map(|e| serde_json::to_vec(e).unwrap()).collect();
//! payloads.push(br#"{"bid":{"auction":1}}"#.to_vec());
//! let out = LocalRun::new(1)
//!     .topic("nexmark", vec![payloads])
//!     .run(|g| {
//!         let events = g.source_decoded(kafka::source("nexmark"), kafka::decode);
//!         queries::q0::query(&events).sink("q0");
//!         Ok(())
//!     })
//!     .unwrap();
//! assert_eq!(out.sink("q0").len(), events.iter().filter(|e| e.bid().is_some()).count());
//! assert_eq!(out.dead[0].reason, "missing_field");
//! ```

use std::time::Duration;

use anyhow::{Context, Result};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use super::Event;
use crate::graph::{serde_rejection, Decoded, Source};
use crate::kafka::KafkaOptions;
use crate::types::Rejection;

/// The source declaration of a Nexmark topic: events in order per partition
/// (no lateness), timestamps of any age (the generator's clock starts in 2015).
pub fn source(topic: &str) -> Source {
    Source::json(topic).max_future(Duration::from_secs(3600))
}

/// One payload as an [`Event`], timed by its `dateTime`; one that does not read
/// as an event is rejected (`not_json`, `missing_field`, `wrong_type`, ...).
pub fn decode(payload: &[u8]) -> Result<Decoded<Event>, Rejection> {
    let event: Event = serde_json::from_slice(payload).map_err(|e| serde_rejection("Event", &e))?;
    Ok(Decoded { key: String::new(), time_ms: event.date_time(), value: event })
}

/// Publishes `events` to `topic` (event `i` to partition `i % partitions`)
/// and waits until all are acknowledged.
/// Returns the number published.
pub fn publish(kafka: &KafkaOptions, topic: &str, partitions: u32, events: impl Iterator<Item = Event>) -> Result<u64> {
    let producer: BaseProducer = kafka
        .client_config_with(&[("linger.ms", "20"), ("batch.size", "1000000"), ("compression.type", "lz4"), ("queue.buffering.max.kbytes", "1048576")])
        .create()
        .context("creating the producer")?;
    let mut payload = Vec::with_capacity(1024);
    let mut n = 0u64;
    for (i, e) in events.enumerate() {
        payload.clear();
        serde_json::to_writer(&mut payload, &e)?;
        let partition = (i as u64 % partitions.max(1) as u64) as i32;
        let mut record = BaseRecord::<(), [u8]>::to(topic).partition(partition).payload(&payload);
        while let Err((err, r)) = producer.send(record) {
            anyhow::ensure!(
                matches!(err, rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull)),
                "publishing to {topic}: {err}"
            );
            producer.poll(Duration::from_millis(5));
            record = r;
        }
        producer.poll(Duration::ZERO);
        n += 1;
    }
    producer.flush(Duration::from_secs(120)).with_context(|| format!("publishing to {topic}: not all events were acknowledged"))?;
    Ok(n)
}
