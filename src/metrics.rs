//! Prometheus metrics of a job, served as text at `/metrics` (see `http`).
//!
//! Label values that come from input (unknown field names) are capped: after
//! [`MAX_UNKNOWN_FIELD_NAMES`] distinct names, the rest count under `_other`, so
//! hostile input cannot blow up the number of series.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use prometheus::{Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

/// The drift monitor's metrics (`metrics/drift.rs`).
pub mod drift;
/// The online model's metrics (`metrics/model.rs`; the learner sets them).
pub mod model;

/// Distinct unknown field names tracked individually.
pub const MAX_UNKNOWN_FIELD_NAMES: usize = 100;

pub struct Metrics {
    pub registry: Registry,
    pub events_in: IntCounterVec,
    pub dlq: IntCounterVec,
    unknown_fields: IntCounterVec,
    unknown_admitted: Mutex<HashSet<String>>,
    pub scores_out: IntCounter,
    pub consumer_lag: IntGaugeVec,
    pub watermark: GaugeVec,
    pub source_progress: Gauge,
    pub latency: Histogram,
    pub workers: IntGauge,
    pub live_keys: IntGauge,
    pub producer_errors: IntCounter,
    pub checkpoints: IntCounter,
    pub kafka_errors: IntCounterVec,
    pub committed_epoch: IntGauge,
    /// Records failing a data-quality expectation, by expectation and mode.
    pub expectation_failures: IntCounterVec,
    /// Threads waiting for room in a producer's queue (output backpressure);
    /// `/healthz` does not call a worker stuck while this is above 0.
    pub output_blocked: IntGauge,
    pub offline_rows: IntCounter,
    pub offline_files: IntCounter,
    pub offline_errors: IntCounter,
    pub table_records: IntCounterVec,
    pub table_rows: IntGaugeVec,
    pub join_outputs: IntCounterVec,
    pub join_buffered: IntGaugeVec,
    /// Online learning (see `learner`).
    pub model: model::ModelMetrics,
    pub drift: drift::DriftMetrics,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let registry = Registry::new();
        let m = Metrics {
            events_in: IntCounterVec::new(Opts::new("vigil_events_in_total", "Records read from input topics"), &["topic"]).unwrap(),
            dlq: IntCounterVec::new(Opts::new("vigil_dlq_total", "Records sent to the dead-letter topic, by reason"), &["reason"]).unwrap(),
            unknown_fields: IntCounterVec::new(
                Opts::new("vigil_unknown_fields_total", "Undeclared fields seen in accepted or rejected records, by name (capped)"),
                &["field"],
            )
            .unwrap(),
            unknown_admitted: Mutex::new(HashSet::new()),
            scores_out: IntCounter::new("vigil_scores_out_total", "Score records written").unwrap(),
            consumer_lag: IntGaugeVec::new(
                Opts::new("vigil_consumer_lag", "High watermark minus position, per input topic and partition"),
                &["topic", "partition"],
            )
            .unwrap(),
            watermark: GaugeVec::new(Opts::new("vigil_watermark_seconds", "Event-time watermark per input partition (Unix seconds)"), &["partition"]).unwrap(),
            source_progress: Gauge::new("vigil_source_progress_seconds", "Source progress: minimum watermark over active partitions (Unix seconds)").unwrap(),
            latency: Histogram::with_opts(
                HistogramOpts::new("vigil_consume_to_score_seconds", "From a record's consumption to its score handed to the producer")
                    .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]),
            )
            .unwrap(),
            workers: IntGauge::new("vigil_workers", "Timely worker threads in this process").unwrap(),
            live_keys: IntGauge::new("vigil_feature_live_keys", "Keys holding feature state in this process").unwrap(),
            producer_errors: IntCounter::new("vigil_producer_errors_total", "Output records the producer failed to deliver").unwrap(),
            checkpoints: IntCounter::new("vigil_checkpoints_total", "Checkpoints written").unwrap(),
            kafka_errors: IntCounterVec::new(
                Opts::new("vigil_kafka_errors_total", "Kafka client errors (broker down, transport, request errors); the clients retry"),
                &["client"],
            )
            .unwrap(),
            committed_epoch: IntGauge::new("vigil_committed_epoch", "Newest epoch whose input offsets are committed").unwrap(),
            expectation_failures: IntCounterVec::new(
                Opts::new("vigil_expectation_failures_total", "Records failing a data-quality expectation (mode dlq: dead-lettered; warn: counted)"),
                &["topic", "expectation", "mode"],
            )
            .unwrap(),
            output_blocked: IntGauge::new("vigil_output_blocked", "Threads waiting for room in the producer's queue (output backpressure)").unwrap(),
            offline_rows: IntCounter::new("vigil_offline_rows_total", "Scored events' feature rows written to the offline log (Parquet)").unwrap(),
            offline_files: IntCounter::new("vigil_offline_files_total", "Parquet files written to the offline log").unwrap(),
            offline_errors: IntCounter::new("vigil_offline_write_errors_total", "Failed writes of the offline log (the job stops committing)").unwrap(),
            table_records: IntCounterVec::new(
                Opts::new("vigil_table_records_total", "Records read from table topics, by outcome (upsert, delete, rejected)"),
                &["table", "outcome"],
            )
            .unwrap(),
            table_rows: IntGaugeVec::new(Opts::new("vigil_table_rows", "Rows held per table"), &["table"]).unwrap(),
            join_outputs: IntCounterVec::new(
                Opts::new("vigil_join_outputs_total", "Interval join output records, by outcome (matched, unmatched)"),
                &["join", "outcome"],
            )
            .unwrap(),
            join_buffered: IntGaugeVec::new(Opts::new("vigil_join_buffered", "Events an interval join holds because they can still match"), &["join"]).unwrap(),
            model: model::ModelMetrics::new(),
            drift: drift::DriftMetrics::new(),
            registry,
        };
        let r = &m.registry;
        r.register(Box::new(m.offline_rows.clone())).unwrap();
        r.register(Box::new(m.table_records.clone())).unwrap();
        r.register(Box::new(m.table_rows.clone())).unwrap();
        r.register(Box::new(m.join_outputs.clone())).unwrap();
        r.register(Box::new(m.join_buffered.clone())).unwrap();
        r.register(Box::new(m.offline_files.clone())).unwrap();
        r.register(Box::new(m.offline_errors.clone())).unwrap();
        r.register(Box::new(m.events_in.clone())).unwrap();
        r.register(Box::new(m.dlq.clone())).unwrap();
        r.register(Box::new(m.unknown_fields.clone())).unwrap();
        r.register(Box::new(m.scores_out.clone())).unwrap();
        r.register(Box::new(m.consumer_lag.clone())).unwrap();
        r.register(Box::new(m.watermark.clone())).unwrap();
        r.register(Box::new(m.source_progress.clone())).unwrap();
        r.register(Box::new(m.latency.clone())).unwrap();
        r.register(Box::new(m.workers.clone())).unwrap();
        r.register(Box::new(m.live_keys.clone())).unwrap();
        r.register(Box::new(m.producer_errors.clone())).unwrap();
        r.register(Box::new(m.checkpoints.clone())).unwrap();
        r.register(Box::new(m.kafka_errors.clone())).unwrap();
        r.register(Box::new(m.committed_epoch.clone())).unwrap();
        r.register(Box::new(m.expectation_failures.clone())).unwrap();
        r.register(Box::new(m.output_blocked.clone())).unwrap();
        m.model.register(r);
        m.drift.register(r);
        Arc::new(m)
    }

    /// The counter for an unknown field name, or for `_other` past the cap.
    pub fn unknown_field(&self, name: &str) -> IntCounter {
        let mut admitted = self.unknown_admitted.lock().unwrap_or_else(|e| e.into_inner());
        if admitted.contains(name) || (admitted.len() < MAX_UNKNOWN_FIELD_NAMES && admitted.insert(name.to_owned())) {
            self.unknown_fields.with_label_values(&[name])
        } else {
            self.unknown_fields.with_label_values(&["_other"])
        }
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        TextEncoder::new().encode_to_string(&self.registry.gather()).unwrap_or_default()
    }

    /// Every metric as JSON, for the live page: `{"ts": epoch ms, "metrics":
    /// {name: [{"labels": {..}, "value": v} | {"labels", "count", "sum"}]}}`.
    pub fn to_json(&self) -> serde_json::Value {
        use prometheus::proto::MetricType;
        let mut out = serde_json::Map::new();
        for family in self.registry.gather() {
            let series: Vec<serde_json::Value> = family
                .get_metric()
                .iter()
                .map(|m| {
                    let labels: serde_json::Map<String, serde_json::Value> =
                        m.get_label().iter().map(|l| (l.name().to_owned(), serde_json::Value::from(l.value()))).collect();
                    match family.get_field_type() {
                        MetricType::COUNTER => serde_json::json!({ "labels": labels, "value": m.get_counter().get_value() }),
                        MetricType::GAUGE => serde_json::json!({ "labels": labels, "value": m.get_gauge().get_value() }),
                        MetricType::HISTOGRAM => {
                            let h = m.get_histogram();
                            serde_json::json!({ "labels": labels, "count": h.get_sample_count(), "sum": h.get_sample_sum() })
                        }
                        _ => serde_json::json!({ "labels": labels }),
                    }
                })
                .collect();
            out.insert(family.name().to_owned(), serde_json::Value::Array(series));
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        serde_json::json!({ "ts": now, "metrics": out })
    }

    /// Consumer lag summed over this process's partitions.
    pub fn total_lag(&self) -> i64 {
        use prometheus::core::Collector;
        self.consumer_lag.collect().iter().flat_map(|family| family.get_metric().iter().map(|m| m.get_gauge().get_value() as i64)).sum()
    }

    /// Counts the caller in `vigil_output_blocked` until the guard drops: a
    /// thread waiting for room in a producer's queue.
    pub fn output_wait(&self) -> OutputWait<'_> {
        self.output_blocked.inc();
        OutputWait(&self.output_blocked)
    }

    /// Consumer lag summed over this process's partitions; `None` before any
    /// partition's lag was measured (readiness waits for it).
    pub fn measured_lag(&self) -> Option<i64> {
        use prometheus::core::Collector;
        let families = self.consumer_lag.collect();
        let mut gauges = families.iter().flat_map(|family| family.get_metric().iter()).peekable();
        gauges.peek()?;
        Some(gauges.map(|m| m.get_gauge().get_value() as i64).sum())
    }

    /// Sum of a counter family over all labels (for summaries and progress lines).
    pub fn dlq_total(&self) -> u64 {
        crate::types::Reason::ALL.iter().map(|r| self.dlq.with_label_values(&[r.as_str()]).get()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_names_are_capped() {
        let m = Metrics::new();
        for i in 0..(MAX_UNKNOWN_FIELD_NAMES + 50) {
            m.unknown_field(&format!("f{i}")).inc();
        }
        let text = m.render();
        let series = text.lines().filter(|l| l.starts_with("vigil_unknown_fields_total{")).count();
        assert_eq!(series, MAX_UNKNOWN_FIELD_NAMES + 1);
        assert!(text.contains("vigil_unknown_fields_total{field=\"_other\"} 50"));
    }
}

/// A thread waiting for room in a producer's queue ([`Metrics::output_wait`]).
pub struct OutputWait<'a>(&'a IntGauge);

impl Drop for OutputWait<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}
