//! The Kafka source: one consumer per worker, assigned the worker's partitions
//! directly (no group rebalancing: ownership is `partition % workers`), read with
//! zero-timeout polls so that the worker never blocks.

use std::collections::HashMap;
use std::ffi::CString;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::KafkaOptions;
use crate::metrics::Metrics;
use crate::source::{PollStatus, RecordRef, RecordSource};

/// Offsets at which a bounded run stops, per partition; set before or during the run.
pub type EndOffsets = Arc<Mutex<Option<HashMap<u32, i64>>>>;

pub struct KafkaSource {
    consumer: BaseConsumer,
    errors: prometheus::IntCounter,
    topic: String,
    owned: Vec<u32>,
    next: Vec<i64>,
    end: EndOffsets,
    /// `end` once set.
    ends: Option<HashMap<u32, i64>>,
    last_error: Option<std::time::Instant>,
    /// Records delivered again below a partition's next offset, skipped.
    redelivered: u64,
    last_redelivery: Option<std::time::Instant>,
}

impl KafkaSource {
    /// `start[p]` is where partition `p` starts (committed offset or beginning).
    pub fn new(opts: &KafkaOptions, group_id: &str, topic: &str, owned: Vec<u32>, start: &[i64], end: EndOffsets, metrics: &Metrics) -> Result<Self> {
        let consumer: BaseConsumer = opts
            .consumer_config_with(&[
                // A real broker answers as soon as data arrives; this bounds idle wakeups.
                ("fetch.wait.max.ms", "100"),
                // Large fetches keep the worker fed; the prefetch queue stays bounded.
                ("max.partition.fetch.bytes", "8388608"),
                ("queued.min.messages", "200000"),
                ("queued.max.messages.kbytes", "65536"),
            ])
            .set("group.id", group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .create()
            .context("creating the source consumer")?;
        let mut tpl = TopicPartitionList::new();
        for p in &owned {
            tpl.add_partition_offset(topic, *p as i32, Offset::Offset(start[*p as usize])).context("building the assignment")?;
        }
        consumer.assign(&tpl).context("assigning partitions")?;
        let next = owned.iter().map(|p| start[*p as usize]).collect();
        Ok(KafkaSource {
            consumer,
            errors: metrics.kafka_errors.with_label_values(&["consumer"]),
            topic: topic.to_owned(),
            owned,
            next,
            end,
            ends: None,
            last_error: None,
            redelivered: 0,
            last_redelivery: None,
        })
    }

    fn reached_end(&self) -> bool {
        let end = self.end.lock().unwrap_or_else(|e| e.into_inner());
        match end.as_ref() {
            None => false,
            Some(end) => self.owned.iter().zip(&self.next).all(|(p, n)| *n >= end.get(p).copied().unwrap_or(0)),
        }
    }

    /// Stops fetching `partition` (it reached its end).
    fn pause(&self, partition: u32) {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&self.topic, partition as i32);
        if let Err(e) = self.consumer.pause(&tpl) {
            tracing::debug!(topic = %self.topic, partition, error = %e, "pausing a partition at its end");
        }
    }

    /// High watermark as last seen by the consumer's fetches (no broker round trip).
    fn cached_high_watermark(&self, partition: u32) -> Option<i64> {
        let topic = CString::new(self.topic.as_str()).ok()?;
        let (mut low, mut high) = (0i64, 0i64);
        // SAFETY: the handle is alive for `self`'s lifetime; the out-pointers are valid.
        let err = unsafe {
            rdkafka::bindings::rd_kafka_get_watermark_offsets(self.consumer.client().native_ptr(), topic.as_ptr(), partition as i32, &mut low, &mut high)
        };
        (err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0).then_some(high)
    }
}

impl KafkaSource {
    /// Counts a record delivered again, and says so at most every 10 s.
    fn skip_redelivered(&mut self, partition: u32, offset: i64, next: i64) {
        self.redelivered += 1;
        let now = std::time::Instant::now();
        if self.last_redelivery.is_none_or(|t| now.duration_since(t) > Duration::from_secs(10)) {
            tracing::warn!(topic = %self.topic, partition, offset, next, skipped = self.redelivered, "the consumer delivers records read already (its position was reset); they are skipped");
            self.last_redelivery = Some(now);
        }
    }
}

impl RecordSource for KafkaSource {
    fn topic(&self) -> &str {
        &self.topic
    }
    fn partitions(&self) -> &[u32] {
        &self.owned
    }

    fn poll(&mut self, max: usize, each: &mut dyn FnMut(RecordRef<'_>)) -> PollStatus {
        if self.owned.is_empty() || self.reached_end() {
            return PollStatus::Finished;
        }
        // a bounded run stops each partition at its own end (`--until` leaves
        // records after it): nothing at or past it is read
        if self.ends.is_none() {
            // set once, before or during the run
            self.ends = self.end.lock().unwrap_or_else(|e| e.into_inner()).clone();
        }
        let end = self.ends.take();
        let mut read = 0;
        while read < max {
            match self.consumer.poll(Duration::ZERO) {
                None => break,
                Some(Ok(msg)) => {
                    let partition = msg.partition() as u32;
                    if let Some(stop) = end.as_ref().and_then(|e| e.get(&partition)).filter(|stop| msg.offset() >= **stop) {
                        if let Some(slot) = self.owned.iter().position(|p| *p == partition) {
                            self.next[slot] = self.next[slot].max(*stop);
                        }
                        self.pause(partition);
                        continue;
                    }
                    if let Some(slot) = self.owned.iter().position(|p| *p == partition) {
                        // an offset below the next one was read in this run already:
                        // librdkafka delivers a partition again from an earlier offset
                        // when its fetch position is reset (`auto.offset.reset`, after a
                        // broker outage); reading it twice would score it twice
                        if msg.offset() < self.next[slot] {
                            self.skip_redelivered(partition, msg.offset(), self.next[slot]);
                            continue;
                        }
                        self.next[slot] = msg.offset() + 1;
                    }
                    each(RecordRef { partition, offset: msg.offset(), payload: msg.payload() });
                    read += 1;
                }
                Some(Err(e)) => {
                    self.errors.inc();
                    // Broker and transport errors: librdkafka retries by itself. Log
                    // at most once per 10 s so that an outage does not flood the log.
                    let now = std::time::Instant::now();
                    if self.last_error.is_none_or(|t| now.duration_since(t) > Duration::from_secs(10)) {
                        tracing::warn!(topic = %self.topic, error = %e, "consumer error; retrying");
                        self.last_error = Some(now);
                    }
                    break;
                }
            }
        }
        self.ends = end;
        if read > 0 {
            PollStatus::Records(read)
        } else {
            PollStatus::Idle
        }
    }

    fn set_wakeup(&mut self, wake: Box<dyn Fn() + Send + Sync>) -> bool {
        // librdkafka calls this when the consumer's queue turns non-empty.
        self.consumer.set_nonempty_callback(wake);
        true
    }

    fn report(&mut self, metrics: &Metrics) {
        for (p, next) in self.owned.iter().zip(&self.next) {
            if let Some(high) = self.cached_high_watermark(*p) {
                metrics.consumer_lag.with_label_values(&[&self.topic, &p.to_string()]).set((high - next).max(0));
            }
        }
    }

    fn positions(&self) -> Vec<(u32, i64)> {
        self.owned.iter().copied().zip(self.next.iter().copied()).collect()
    }

    fn commit(&mut self) -> anyhow::Result<()> {
        crate::kafka::commit_positions(&self.consumer, &self.topic, &self.positions())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::broker::EmbeddedBroker;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

    /// Reads what `source` delivers until `n` records or 20 s.
    fn read(source: &mut KafkaSource, n: usize) -> Vec<i64> {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut offsets = Vec::new();
        while offsets.len() < n && std::time::Instant::now() < deadline {
            source.poll(100, &mut |r| offsets.push(r.offset));
            std::thread::sleep(Duration::from_millis(5));
        }
        offsets
    }

    #[test]
    fn records_delivered_again_after_a_position_reset_are_skipped() {
        let broker = EmbeddedBroker::start(1).unwrap();
        broker.create_topic("t", 1).unwrap();
        let opts = broker.kafka_options();
        let producer: BaseProducer = opts.client_config().create().unwrap();
        let produce = |from: usize, to: usize| {
            for i in from..to {
                producer.send(BaseRecord::<[u8], [u8]>::to("t").partition(0).payload(format!("{i}").as_bytes())).unwrap();
            }
            producer.flush(Duration::from_secs(10)).unwrap();
        };
        produce(0, 10);
        let end: EndOffsets = Arc::new(Mutex::new(None));
        let mut source = KafkaSource::new(&opts, "g", "t", vec![0], &[0], end, &Metrics::new()).unwrap();
        assert_eq!(read(&mut source, 10), (0..10).collect::<Vec<_>>());
        // the client goes back to the beginning, as a reset to `earliest` does
        source.consumer.seek("t", 0, Offset::Beginning, Duration::from_secs(10)).unwrap();
        produce(10, 15);
        assert_eq!(read(&mut source, 5), (10..15).collect::<Vec<_>>(), "each offset once");
        assert_eq!(source.redelivered, 10);
        assert_eq!(source.positions(), vec![(0, 15)]);
    }
}
