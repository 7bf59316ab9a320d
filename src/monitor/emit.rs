//! Where findings go: the `drift` topic (DESIGN.md's record), the Prometheus
//! gauges, and a log line when something starts drifting.
//!
//! Drift records are observations about the stream, not results of one input
//! record, so they are written by their own idempotent producer outside the
//! epoch transactions (at-least-once: a restart may repeat an evaluation).

use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use vigil_operators::drift::{Evidence, Streak};

use crate::metrics::Metrics;

/// One finding, as written to the `drift` topic (keyed by `kind/name`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DriftRecord {
    /// Event time of the evaluation, epoch milliseconds.
    pub ts: i64,
    /// `feature`, `prediction`, `concept`, `fairness` or `quality` (window-level expectations).
    pub kind: String,
    pub name: String,
    pub method: String,
    pub value: f64,
    pub threshold: f64,
    pub drift: bool,
}

impl DriftRecord {
    pub fn new(ts: i64, kind: &str, name: &str, method: &str, value: f64, threshold: f64, drift: bool) -> DriftRecord {
        DriftRecord { ts, kind: kind.into(), name: name.into(), method: method.into(), value, threshold, drift }
    }
}

/// An event time (epoch ms) in RFC 3339, for logs and summaries.
pub fn format_ts(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(|| ms.to_string(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// Where drift records are written.
pub trait DriftSink: Send + Sync {
    fn send(&self, key: &str, payload: &[u8]);
    /// Waits until what was sent is delivered (or fails).
    fn flush(&self) -> Result<()> {
        Ok(())
    }
}

/// Keeps records in memory (tests, examples).
#[derive(Default)]
pub struct MemoryDriftSink {
    records: Mutex<Vec<DriftRecord>>,
}

impl MemoryDriftSink {
    pub fn new() -> Arc<MemoryDriftSink> {
        Arc::new(MemoryDriftSink::default())
    }
    pub fn records(&self) -> Vec<DriftRecord> {
        self.records.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    /// The records so far, leaving none.
    pub fn take(&self) -> Vec<DriftRecord> {
        std::mem::take(&mut *self.records.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl DriftSink for MemoryDriftSink {
    fn send(&self, _key: &str, payload: &[u8]) {
        if let Ok(r) = serde_json::from_slice(payload) {
            self.records.lock().unwrap_or_else(|e| e.into_inner()).push(r);
        }
    }
}

/// Sends findings to the sink and the metrics. A periodic finding is drift when
/// its value stays past the threshold for `patience` evaluations in a row and,
/// for findings over a sliding window, across evaluations whose windows share no
/// value ([`Streak`]): the same reference is tested every interval over heavily
/// overlapping windows, so one unlucky stretch of values would be seen again and
/// again, while a real shift persists into fresh values.
/// An alarm is counted and logged when drift starts, not at every evaluation.
pub struct DriftEmitter {
    sink: Option<Arc<dyn DriftSink>>,
    metrics: Arc<Metrics>,
    /// Consecutive evaluations a finding must be past its threshold to be drift.
    patience: u32,
    /// Per (kind, name, method): the run of evaluations past the threshold.
    streaks: Mutex<HashMap<(String, String, String), Streak>>,
    alarms: Mutex<Vec<DriftRecord>>,
}

/// Most alarms kept for the run's summary.
const KEPT_ALARMS: usize = 1000;

impl DriftEmitter {
    pub fn new(sink: Option<Arc<dyn DriftSink>>, metrics: Arc<Metrics>, patience: u32) -> Arc<DriftEmitter> {
        Arc::new(DriftEmitter { sink, metrics, patience: patience.max(1), streaks: Mutex::new(HashMap::new()), alarms: Mutex::new(Vec::new()) })
    }

    /// A periodic finding (`drift` says whether its value is past the threshold):
    /// it is drift once that holds for `patience` evaluations in a row; updates
    /// the gauges; an alarm when drift starts.
    pub fn finding(&self, r: &DriftRecord) {
        self.finding_at(r, None);
    }

    /// A finding over a sliding window that ends at `at`: drift once past the
    /// threshold for `patience` evaluations in a row spanning a fresh window.
    pub fn finding_at(&self, r: &DriftRecord, at: Option<Evidence>) {
        let mut r = r.clone();
        let key = (r.kind.clone(), r.name.clone(), r.method.clone());
        let (was, now) = {
            let mut streaks = self.streaks.lock().unwrap_or_else(|e| e.into_inner());
            let streak = streaks.entry(key).or_default();
            let was = streak.drift();
            (was, streak.update(r.drift, at, self.patience))
        };
        r.drift = now;
        let r = &r;
        let labels = [r.kind.as_str(), r.name.as_str(), r.method.as_str()];
        let m = &self.metrics.drift;
        m.value.with_label_values(&labels).set(r.value);
        m.threshold.with_label_values(&labels).set(r.threshold);
        m.active.with_label_values(&labels).set(if r.drift { 1.0 } else { 0.0 });
        // the alarm series exists from the first finding (at 0), so that rate() and increase() see its first alarm
        m.alarms.with_label_values(&labels);
        if now && !was {
            self.alarm(r);
        }
        self.send(r);
    }

    /// A detection (concept drift): always an alarm.
    pub fn detection(&self, r: &DriftRecord) {
        let labels = [r.kind.as_str(), r.name.as_str(), r.method.as_str()];
        self.metrics.drift.value.with_label_values(&labels).set(r.value);
        self.metrics.drift.threshold.with_label_values(&labels).set(r.threshold);
        self.alarm(r);
        self.send(r);
    }

    fn alarm(&self, r: &DriftRecord) {
        self.metrics.drift.alarms.with_label_values(&[r.kind.as_str(), r.name.as_str(), r.method.as_str()]).inc();
        tracing::warn!(kind = %r.kind, name = %r.name, method = %r.method, value = r.value, threshold = r.threshold, ts = r.ts, "drift");
        let mut kept = self.alarms.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() < KEPT_ALARMS {
            kept.push(r.clone());
        }
    }

    fn send(&self, r: &DriftRecord) {
        if let Some(sink) = &self.sink {
            match serde_json::to_vec(r) {
                Ok(payload) => sink.send(&format!("{}/{}", r.kind, r.name), &payload),
                Err(e) => tracing::error!(error = %e, "cannot encode a drift record"),
            }
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The alarms so far (at most 1000), in order.
    pub fn alarms(&self) -> Vec<DriftRecord> {
        self.alarms.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn flush(&self) -> Result<()> {
        self.sink.as_ref().map_or(Ok(()), |s| s.flush())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finding_is_drift_after_patience_evaluations_and_alarms_once() {
        let metrics = Metrics::new();
        let sink = MemoryDriftSink::new();
        let e = DriftEmitter::new(Some(sink.clone() as Arc<dyn DriftSink>), metrics.clone(), 2);
        let at = |ts: i64, value: f64| DriftRecord::new(ts, "feature", "amount", "psi", value, 0.25, value > 0.25);
        for (ts, v) in [(1, 0.3), (2, 0.1), (3, 0.3), (4, 0.4), (5, 0.5), (6, 0.1), (7, 0.3), (8, 0.3)] {
            e.finding(&at(ts, v));
        }
        let flags: Vec<bool> = sink.records().iter().map(|r| r.drift).collect();
        assert_eq!(flags, vec![false, false, false, true, true, false, false, true]);
        // two alarms: at 4 and at 8
        assert_eq!(e.alarms().iter().map(|a| a.ts).collect::<Vec<_>>(), vec![4, 8]);
        assert_eq!(metrics.drift.alarms.with_label_values(&["feature", "amount", "psi"]).get(), 2);
        assert_eq!(metrics.drift.active.with_label_values(&["feature", "amount", "psi"]).get(), 1.0);
        assert_eq!(metrics.drift.value.with_label_values(&["feature", "amount", "psi"]).get(), 0.3);
        // over sliding windows of 100 values evaluated every 40: drift once the
        // window at the first crossing (ending at 100) has been left entirely
        let sink = MemoryDriftSink::new();
        let e = DriftEmitter::new(Some(sink.clone() as Arc<dyn DriftSink>), metrics.clone(), 2);
        for seen in [100u64, 140, 180, 200, 240] {
            e.finding_at(&DriftRecord::new(seen as i64, "feature", "x", "ks", 0.2, 0.1, true), Some(Evidence { seen, window: 100 }));
        }
        let flags: Vec<bool> = sink.records().iter().map(|r| r.drift).collect();
        assert_eq!(flags, vec![false, false, false, true, true]);
        assert_eq!(e.alarms().iter().map(|a| a.ts).collect::<Vec<_>>(), vec![200]);
        let e = DriftEmitter::new(Some(sink.clone() as Arc<dyn DriftSink>), metrics.clone(), 2);
        for (ts, v) in [(1, 0.3), (2, 0.1), (3, 0.3), (4, 0.4), (5, 0.5), (6, 0.1), (7, 0.3), (8, 0.3)] {
            e.finding(&at(ts, v));
        }
        // a detection is an alarm at once
        e.detection(&DriftRecord::new(9, "concept", "population", "adwin", 1.2, 1.0, true));
        assert_eq!(e.alarms().len(), 3);
        assert!(format_ts(1_767_225_600_000).starts_with("2026-01-01T00:00:00"));
    }
}
