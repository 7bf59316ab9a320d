//! The Kafka connector, all of vigil's Kafka I/O through rdkafka in one folder:
//! client settings, offset commits and partition metadata (this file), the
//! partition-owning source ([`source`]), the producer sink of the TOML jobs'
//! pipeline ([`sink`]), graphs run on Kafka ([`graph_run`]: [`KafkaRun`], the
//! graph's [`crate::graph::connector::Connector`] to Kafka), and whole-topic
//! reads for checks and tools ([`read`]).

pub mod coordinator;
pub mod drift_sink;
pub mod graph_run;
pub mod graph_txn;
pub mod graph_wal;
pub mod read;
pub mod sink;
pub mod source;
pub mod table;
pub mod txn_watch;

pub use graph_run::{KafkaOutputs, KafkaRun};

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

/// How to reach the cluster: bootstrap servers plus librdkafka settings passed
/// through unchanged (`-X key=value`, e.g. TLS and SASL settings).
#[derive(Clone, Debug, Default)]
pub struct KafkaOptions {
    pub brokers: String,
    pub extra: Vec<(String, String)>,
    /// Settings for consumers only (producers would warn about them).
    pub consumer_extra: Vec<(String, String)>,
}

impl KafkaOptions {
    pub fn new(brokers: &str) -> Self {
        KafkaOptions { brokers: brokers.to_owned(), extra: Vec::new(), consumer_extra: Vec::new() }
    }
    /// A client config with the bootstrap servers and the pass-through settings.
    pub fn client_config(&self) -> ClientConfig {
        self.client_config_with(&[])
    }
    /// A client config with vigil's `defaults` for this client, overridden by the
    /// pass-through settings.
    pub fn client_config_with(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        for (k, v) in defaults {
            c.set(*k, *v);
        }
        for (k, v) in &self.extra {
            c.set(k, v);
        }
        c
    }
    /// A consumer's config: `client_config_with` plus the consumer-only settings.
    pub fn consumer_config_with(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut c = self.client_config_with(defaults);
        for (k, v) in &self.consumer_extra {
            c.set(k, v);
        }
        c
    }
    /// A consumer for metadata, offsets and commits (never subscribed).
    pub fn admin_consumer(&self, group_id: &str) -> Result<BaseConsumer> {
        self.consumer_config_with(&[]).set("group.id", group_id).set("enable.auto.commit", "false").create().context("creating a Kafka consumer")
    }
}

/// Number of partitions of `topic`, waiting up to `timeout` for it to exist.
pub fn partition_count(consumer: &BaseConsumer, topic: &str, timeout: Duration) -> Result<u32> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(5));
        let detail = match &md {
            Ok(md) => match md.topics().iter().find(|t| t.name() == topic) {
                Some(t) if t.error().is_none() && !t.partitions().is_empty() => return Ok(t.partitions().len() as u32),
                Some(t) => t.error().map(|e| format!("{:?}", rdkafka::types::RDKafkaErrorCode::from(e))),
                None => None,
            },
            Err(e) => Some(format!("metadata request failed: {e}")),
        };
        if std::time::Instant::now() >= deadline {
            bail!("{}", missing_topic_message(topic, detail.as_deref(), timeout));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What a job says when its topic is missing: the topic, what the cluster
/// answered (when it said more than "unknown topic") and how to create it.
pub fn missing_topic_message(topic: &str, detail: Option<&str>, waited: Duration) -> String {
    let detail = match detail {
        None | Some("UnknownTopicOrPartition") => String::new(),
        Some(d) => format!(" ({d})"),
    };
    format!(
        "topic `{topic}` not found on the cluster after {} s{detail}; create it with \
         `kafka-topics.sh --bootstrap-server HOST:PORT --create --topic {topic} --partitions N`, \
         or for a local embedded broker `vigil broker --topic {topic}:N` (repeat --topic for each topic the job reads and writes)",
        waited.as_secs()
    )
}

/// The group's committed next offset for each partition that has one. A
/// coordinator that is not ready yet (a broker loading or electing the group's
/// coordinator: `NotCoordinator`, `CoordinatorLoadInProgress`,
/// `CoordinatorNotAvailable`), or offsets held by a transaction not yet
/// settled (`UnstableOffsetCommit`), is asked again for up to 60 s.
pub fn committed_offsets(consumer: &BaseConsumer, topic: &str, partitions: u32) -> Result<HashMap<u32, i64>> {
    let committed = committed_list(consumer, topic, partitions)?;
    Ok((0..partitions)
        .filter_map(|p| match committed.find_partition(topic, p as i32).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => Some((p, o)),
            _ => None,
        })
        .collect())
}

/// The group's committed offsets of `topic`'s partitions, with their metadata
/// (asked again as [`committed_offsets`] says).
pub fn committed_list(consumer: &BaseConsumer, topic: &str, partitions: u32) -> Result<TopicPartitionList> {
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p as i32);
    }
    committed_of(consumer, tpl)
}

/// The group's committed offsets of the partitions in `tpl`, with their
/// metadata (asked again while the coordinator loads or a transaction's
/// offsets are pending). A partition whose offsets are in a transaction still
/// open is answered only once that transaction ends: ask for those you need.
pub fn committed_of(consumer: &BaseConsumer, tpl: TopicPartitionList) -> Result<TopicPartitionList> {
    use rdkafka::error::KafkaError;
    use rdkafka::types::RDKafkaErrorCode as Code;
    let topic = tpl.elements().first().map(|e| e.topic().to_owned()).unwrap_or_default();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let committed = loop {
        match consumer.committed_offsets(tpl.clone(), Duration::from_secs(10)) {
            Err(KafkaError::MetadataFetch(code) | KafkaError::OffsetFetch(code))
                // (a pending transaction's partitions time out: librdkafka asked again until then)
                if matches!(
                    code,
                    Code::NotCoordinator | Code::CoordinatorLoadInProgress | Code::CoordinatorNotAvailable | Code::UnstableOffsetCommit | Code::OperationTimedOut
                )
                    && std::time::Instant::now() < deadline =>
            {
                tracing::debug!("reading committed offsets of {topic}: {code:?}; asking again");
                std::thread::sleep(Duration::from_millis(250));
            }
            other => break other.context("reading committed offsets")?,
        }
    };
    Ok(committed)
}

/// Where each partition starts: the group's committed offset, else the beginning.
pub fn start_offsets(consumer: &BaseConsumer, topic: &str, partitions: u32, committed: &HashMap<u32, i64>) -> Result<Vec<i64>> {
    (0..partitions)
        .map(|p| match committed.get(&p) {
            Some(o) => Ok(*o),
            None => Ok(consumer.fetch_watermarks(topic, p as i32, Duration::from_secs(10)).context("reading watermarks")?.0),
        })
        .collect()
}

/// Per partition, the first offset whose record timestamp is at or after
/// `time_ms` (Kafka's offsets-for-times, as Flink's `timestamp` initializer);
/// a partition with no such record yet gets its high watermark. Records after
/// that offset stamped earlier are not skipped: Kafka timestamps are ordered
/// only as far as the producers ordered them.
pub fn offsets_for_time(consumer: &BaseConsumer, topic: &str, partitions: u32, time_ms: i64) -> Result<Vec<i64>> {
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p as i32, Offset::Offset(time_ms)).context("building the offsets-for-times request")?;
    }
    // the ends first: a record written between the two lookups is after both
    let mut out = end_offsets(consumer, topic, partitions)?;
    let found = consumer.offsets_for_times(tpl, Duration::from_secs(30)).with_context(|| format!("looking up the offsets of {topic} at {time_ms} ms"))?;
    for e in found.elements() {
        if let Err(err) = e.error() {
            bail!("looking up the offset of {topic}/{} at {time_ms} ms: {err}", e.partition());
        }
        if let (Offset::Offset(o), Some(slot)) = (e.offset(), out.get_mut(e.partition() as usize)) {
            *slot = o;
        }
    }
    Ok(out)
}

/// High watermarks (next offset to be written) of every partition.
pub fn end_offsets(consumer: &BaseConsumer, topic: &str, partitions: u32) -> Result<Vec<i64>> {
    (0..partitions)
        .map(|p| {
            consumer.fetch_watermarks(topic, p as i32, Duration::from_secs(10)).map(|(_, high)| high).with_context(|| format!("reading the end of {topic}/{p}"))
        })
        .collect()
}

/// Commits `positions` (next offsets) for the group.
pub fn commit_positions(consumer: &BaseConsumer, topic: &str, positions: &[(u32, i64)]) -> Result<()> {
    if positions.is_empty() {
        return Ok(());
    }
    let mut tpl = TopicPartitionList::new();
    for (p, o) in positions {
        tpl.add_partition_offset(topic, *p as i32, Offset::Offset(*o)).context("building the commit")?;
    }
    // a group coordinator still loading after the brokers came back answers
    // "Coordinator load in progress" for a while: asking again is the cure
    let start = std::time::Instant::now();
    loop {
        match consumer.commit(&tpl, CommitMode::Sync) {
            Err(rdkafka::error::KafkaError::ConsumerCommit(
                code @ (rdkafka::types::RDKafkaErrorCode::CoordinatorLoadInProgress
                | rdkafka::types::RDKafkaErrorCode::CoordinatorNotAvailable
                | rdkafka::types::RDKafkaErrorCode::NotCoordinator),
            )) if start.elapsed() < Duration::from_secs(60) => {
                tracing::warn!(error = %code, "committing offsets: the group's coordinator is not ready; retrying");
                std::thread::sleep(Duration::from_millis(200));
            }
            result => return result.context("committing offsets"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_topic_is_named_with_the_commands_that_create_it() {
        let m = missing_topic_message("sea", Some("UnknownTopicOrPartition"), Duration::from_secs(30));
        assert_eq!(
            m,
            "topic `sea` not found on the cluster after 30 s; create it with \
             `kafka-topics.sh --bootstrap-server HOST:PORT --create --topic sea --partitions N`, \
             or for a local embedded broker `vigil broker --topic sea:N` (repeat --topic for each topic the job reads and writes)"
        );
        assert_eq!(m, missing_topic_message("sea", None, Duration::from_secs(30)), "nothing to add when the topic is simply unknown");
        assert!(!m.contains("None"));
        let m = missing_topic_message("sea", Some("metadata request failed: timed out"), Duration::from_secs(5));
        assert!(m.starts_with("topic `sea` not found on the cluster after 5 s (metadata request failed: timed out); create it with"), "{m}");
    }
}

/// Creates `topic` with `partitions` partitions (replication factor
/// `replication`) unless it exists; returns its partition count. A cluster
/// that cannot create topics (the embedded broker creates them on first use)
/// is fine as long as the topic then exists.
pub fn ensure_topic(opts: &KafkaOptions, topic: &str, partitions: u32, replication: i32) -> Result<u32> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let consumer = opts.admin_consumer("vigil-admin")?;
    if let Ok(n) = partition_count(&consumer, topic, Duration::ZERO) {
        return Ok(n);
    }
    let admin: AdminClient<DefaultClientContext> = opts.client_config().create().context("creating the admin client")?;
    let new = NewTopic::new(topic, partitions as i32, TopicReplication::Fixed(replication));
    let wait = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let created = runtime.block_on(admin.create_topics([&new], &wait));
    match created.as_ref().map(|r| r.first().cloned()) {
        Ok(Some(Ok(_))) => {}
        Ok(Some(Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)))) => {}
        other => tracing::debug!("creating topic {topic}: {other:?}; checking that it exists"),
    }
    partition_count(&consumer, topic, Duration::from_secs(30))
}
