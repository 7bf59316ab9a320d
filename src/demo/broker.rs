//! The embedded Kafka-protocol broker: librdkafka's mock cluster, listening on
//! 127.0.0.1, reachable by any Kafka client (kcat, other languages) while it runs.
//! For the demo, local development and tests; not durable storage.

use anyhow::{Context, Result};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

pub struct EmbeddedBroker {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl EmbeddedBroker {
    /// Starts a cluster of `brokers` brokers.
    pub fn start(brokers: i32) -> Result<Self> {
        let cluster = MockCluster::new(brokers).context("starting the embedded broker")?;
        Ok(EmbeddedBroker { cluster })
    }
    /// The `bootstrap.servers` string.
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }
    /// Client options for this broker. The mock broker answers an empty fetch only
    /// after the full `fetch.wait.max.ms` (a real broker answers when data
    /// arrives), so its clients poll with a short wait.
    pub fn kafka_options(&self) -> crate::kafka::KafkaOptions {
        let mut opts = crate::kafka::KafkaOptions::new(&self.bootstrap_servers());
        opts.consumer_extra.push(("fetch.wait.max.ms".into(), "10".into()));
        opts
    }
    /// Creates a topic (the mock cluster has no CreateTopics request).
    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<()> {
        self.cluster.create_topic(name, partitions, 1).with_context(|| format!("creating topic {name}"))
    }
    /// Makes `broker` (1-based) the leader of every partition of `topic`.
    pub fn set_leader(&self, topic: &str, partitions: i32, broker: i32) -> Result<()> {
        for p in 0..partitions {
            self.cluster.partition_leader(topic, p, Some(broker)).with_context(|| format!("moving {topic}/{p} to broker {broker}"))?;
        }
        Ok(())
    }
    /// Applies one fault-injection command: `down ID`, `up ID`, `rtt ID MS`,
    /// `produce-errors COUNT` (the next COUNT produce requests fail with a
    /// retriable error).
    pub fn apply(&self, command: &str) -> Result<()> {
        let words: Vec<&str> = command.split_whitespace().collect();
        let num = |i: usize| -> Result<i64> { words.get(i).context("missing argument")?.parse::<i64>().context("not a number") };
        match words.first().copied() {
            Some("down") => self.cluster.broker_down(num(1)? as i32)?,
            Some("up") => self.cluster.broker_up(num(1)? as i32)?,
            Some("rtt") => self.cluster.broker_round_trip_time(num(1)? as i32, std::time::Duration::from_millis(num(2)?.max(0) as u64))?,
            Some("produce-errors") => {
                let errors = vec![rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION; num(1)?.clamp(0, 10_000) as usize];
                self.cluster.request_errors(rdkafka::types::RDKafkaApiKey::Produce, &errors);
            }
            _ => anyhow::bail!("unknown command (down ID | up ID | rtt ID MS | produce-errors COUNT)"),
        }
        Ok(())
    }
    /// Access to fault injection (broker down, request errors, round-trip time).
    pub fn cluster(&self) -> &MockCluster<'static, DefaultProducerContext> {
        &self.cluster
    }
}
