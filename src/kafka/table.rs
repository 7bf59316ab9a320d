//! The Kafka loader of the job's tables ([`crate::table`]): one thread per table
//! and process reads every partition of its compacted topic, first to the end
//! offsets seen at start (the job waits for it), then live.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::KafkaOptions;
use crate::metrics::Metrics;
use crate::table::{decode, Change, SharedTable, TableSpec};

/// The running loaders of a job's tables.
pub struct Tables {
    pub tables: Vec<Arc<SharedTable>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Tables {
    /// Starts one loader per table and waits until each has read its topic up to
    /// the end offsets seen at start (at most `bootstrap_timeout`).
    pub fn start(specs: &[TableSpec], kafka: &KafkaOptions, metrics: &Arc<Metrics>, bootstrap_timeout: Duration) -> Result<Tables> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut tables = Vec::new();
        let mut threads = Vec::new();
        for spec in specs {
            let table = SharedTable::new(spec);
            let consumer = consumer(kafka, &spec.topic)?;
            let (spec, shared, stop, metrics) = (spec.clone(), table.clone(), stop.clone(), metrics.clone());
            threads
                .push(std::thread::Builder::new().name(format!("vigil-table-{}", spec.name)).spawn(move || load(consumer, &spec, &shared, &stop, &metrics))?);
            tables.push(table);
        }
        let tables = Tables { tables, stop, threads };
        let deadline = Instant::now() + bootstrap_timeout;
        for (table, spec) in tables.tables.iter().zip(specs) {
            while !table.ready.load(Ordering::SeqCst) {
                if Instant::now() > deadline {
                    bail!("table `{}`: topic `{}` not read to its end within {bootstrap_timeout:?}", spec.name, spec.topic);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(tables)
    }

    /// Stops the loaders (also on drop, so that an early return leaves no thread behind).
    pub fn finish(self) {}
}

impl Drop for Tables {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A consumer of every partition of `topic` from the beginning; the end offsets seen now.
fn consumer(kafka: &KafkaOptions, topic: &str) -> Result<(BaseConsumer, Vec<i64>)> {
    let consumer: BaseConsumer = kafka
        .consumer_config_with(&[("fetch.wait.max.ms", "100")])
        .set("group.id", "vigil-table")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .context("creating a table consumer")?;
    let partitions = super::partition_count(&consumer, topic, Duration::from_secs(30)).with_context(|| format!("the table topic `{topic}`"))?;
    let ends = super::end_offsets(&consumer, topic, partitions)?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p as i32, Offset::Beginning).map_err(|e| anyhow!("{e}"))?;
    }
    consumer.assign(&tpl).context("assigning the table topic")?;
    Ok((consumer, ends))
}

fn load((consumer, ends): (BaseConsumer, Vec<i64>), spec: &TableSpec, table: &SharedTable, stop: &AtomicBool, metrics: &Metrics) {
    let rejected = metrics.table_records.with_label_values(&[&spec.name, "rejected"]);
    // next offset per partition, to know when the bootstrap is done
    let mut next: Vec<i64> = vec![0; ends.len()];
    let mut batch: Vec<Change> = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let deadline = Instant::now() + Duration::from_millis(50);
        while batch.len() < 4096 && Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(10)) {
                Some(Ok(m)) => {
                    if let Some(n) = next.get_mut(m.partition() as usize) {
                        *n = m.offset() + 1;
                    }
                    match decode(m.key(), m.payload(), &spec.columns) {
                        Ok(change) => batch.push(change),
                        Err(reason) => {
                            rejected.inc();
                            tracing::warn!(table = %spec.name, partition = m.partition(), offset = m.offset(), reason, "table record skipped");
                        }
                    }
                }
                Some(Err(e)) => {
                    metrics.kafka_errors.with_label_values(&["table"]).inc();
                    tracing::warn!(table = %spec.name, error = %e, "table consumer error");
                }
                None => break,
            }
        }
        if !batch.is_empty() {
            table.apply(&mut batch, metrics);
        }
        if !table.ready.load(Ordering::SeqCst) && next.iter().zip(&ends).all(|(n, e)| n >= e) {
            table.ready.store(true, Ordering::SeqCst);
            tracing::info!(table = %spec.name, rows = table.len(), "table loaded");
        }
    }
}
