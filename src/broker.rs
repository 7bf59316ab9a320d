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
    /// Access to fault injection (broker down, request errors, round-trip time).
    pub fn cluster(&self) -> &MockCluster<'static, DefaultProducerContext> {
        &self.cluster
    }
}
