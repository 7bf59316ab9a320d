//! Prometheus metrics of the monitors: the latest value, threshold and state of
//! every (kind, name, method), alarm counts, and fairness rates and gaps.

use prometheus::{GaugeVec, IntCounterVec, Opts, Registry};

pub struct DriftMetrics {
    pub value: GaugeVec,
    pub threshold: GaugeVec,
    pub active: GaugeVec,
    pub alarms: IntCounterVec,
    pub fairness_rate: GaugeVec,
    pub fairness_gap: GaugeVec,
}

impl DriftMetrics {
    pub fn new() -> DriftMetrics {
        let finding = ["kind", "name", "method"];
        let gauge = |name: &str, help: &str, labels: &[&str]| GaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
        DriftMetrics {
            value: gauge("vigil_drift_value", "Latest drift statistic per monitored value and method", &finding),
            threshold: gauge("vigil_drift_threshold", "Threshold of each drift statistic", &finding),
            active: gauge("vigil_drift_active", "1 while the latest evaluation is past its threshold", &finding),
            alarms: IntCounterVec::new(
                Opts::new("vigil_drift_alarms_total", "Drift alarms: a finding crossing its threshold, or a concept-drift detection"),
                &finding,
            )
            .expect("valid metric"),
            fairness_rate: gauge(
                "vigil_fairness_rate",
                "Per-group decision rates over the fairness window (positive_rate, tpr, fpr)",
                &["attribute", "group", "rate"],
            ),
            fairness_gap: gauge(
                "vigil_fairness_gap",
                "Demographic-parity difference and equalized-odds gap over the fairness window",
                &["attribute", "metric"],
            ),
        }
    }

    pub fn register(&self, r: &Registry) {
        for c in [&self.value, &self.threshold, &self.active, &self.fairness_rate, &self.fairness_gap] {
            r.register(Box::new(c.clone())).expect("unique metric");
        }
        r.register(Box::new(self.alarms.clone())).expect("unique metric");
    }
}

impl Default for DriftMetrics {
    fn default() -> Self {
        DriftMetrics::new()
    }
}
