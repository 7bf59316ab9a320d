//! Reads a whole topic up to its current end: for the demo's accounting check,
//! integration tests and benchmarks (not for the job's hot path).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::KafkaOptions;

/// One record as read back.
#[derive(Clone, Debug)]
pub struct ReadRecord {
    pub partition: u32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    /// The record's Kafka timestamp (create time), epoch ms.
    pub timestamp: Option<i64>,
    /// Headers whose values are UTF-8.
    pub headers: Vec<(String, String)>,
}

impl ReadRecord {
    pub fn header(&self, key: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// Every record of `topic` from the beginning to the high watermarks observed at the
/// start of the call.
pub fn read_topic(opts: &KafkaOptions, topic: &str, timeout: Duration) -> Result<Vec<ReadRecord>> {
    // checks decide what is committed themselves
    read_topic_as(opts, topic, timeout, "read_uncommitted")
}

/// [`read_topic`] as a `read_committed` consumer sees it: the records of
/// committed transactions and non-transactional ones, not those of aborted or
/// open transactions (a broker that hides them: Apache Kafka, not the
/// embedded mock). Waits for open transactions to settle up to `timeout`.
pub fn read_topic_committed(opts: &KafkaOptions, topic: &str, timeout: Duration) -> Result<Vec<ReadRecord>> {
    read_topic_as(opts, topic, timeout, "read_committed")
}

fn read_topic_as(opts: &KafkaOptions, topic: &str, timeout: Duration, isolation: &str) -> Result<Vec<ReadRecord>> {
    let consumer: BaseConsumer = opts
        .consumer_config_with(&[])
        .set("group.id", "vigil-reader")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", isolation)
        .create()
        .context("creating a reader")?;
    let partitions = super::partition_count(&consumer, topic, timeout)?;
    let mut end = HashMap::new();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        let (low, high) = consumer.fetch_watermarks(topic, p as i32, Duration::from_secs(10))?;
        if high > low {
            end.insert(p, high);
            tpl.add_partition_offset(topic, p as i32, Offset::Offset(low))?;
        }
    }
    consumer.assign(&tpl)?;
    let mut out = Vec::new();
    let mut next: HashMap<u32, i64> = HashMap::new();
    let deadline = Instant::now() + timeout;
    while end.iter().any(|(p, e)| next.get(p).copied().unwrap_or(0) < *e) {
        if Instant::now() > deadline {
            bail!("timed out reading {topic}: read {} records", out.len());
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let p = m.partition() as u32;
                next.insert(p, m.offset() + 1);
                if m.offset() < end[&p] {
                    let headers = m
                        .headers()
                        .map(|h| h.iter().filter_map(|h| Some((h.key.to_owned(), String::from_utf8(h.value?.to_vec()).ok()?))).collect())
                        .unwrap_or_default();
                    out.push(ReadRecord {
                        partition: p,
                        offset: m.offset(),
                        key: m.key().map(<[u8]>::to_vec),
                        payload: m.payload().map(<[u8]>::to_vec),
                        timestamp: m.timestamp().to_millis(),
                        headers,
                    });
                }
            }
            Some(Err(e)) => tracing::debug!(error = %e, "reader error"),
            None => {
                // transaction markers and skipped aborted records hold offsets
                // no message reports: the consumer's position says how far it is
                if let Ok(positions) = consumer.position() {
                    for e in positions.elements() {
                        if let Offset::Offset(o) = e.offset() {
                            let n = next.entry(e.partition() as u32).or_default();
                            *n = (*n).max(o);
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}
