//! Prometheus metrics of online learning: device, label accounting, pending
//! predictions, training volume and progressive-validation quality per variant.

use prometheus::{Gauge, GaugeVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

pub struct ModelMetrics {
    /// 1, labelled with the device the learners run on and the model kind.
    pub device: IntGaugeVec,
    /// Labels by outcome: joined, expired, orphan, sampled_out, malformed.
    pub labels: IntCounterVec,
    /// Predictions that reached their label timeout without a label.
    pub timed_out: IntCounter,
    pub pending: IntGauge,
    pub pending_bytes: IntGauge,
    /// Share of low-score predictions kept pending (1 until the memory budget binds).
    pub pending_sample_rate: Gauge,
    pub trained_samples: IntCounter,
    pub selections: IntCounter,
    pub champion: IntGauge,
    pub variant_auc: GaugeVec,
    pub variant_pr_auc: GaugeVec,
    pub variant_log_loss: GaugeVec,
    pub variant_lr: GaugeVec,
    pub variant_ece: GaugeVec,
    pub variant_precision_at_k: GaugeVec,
    /// Served predictions' ROC-AUC per A/B arm.
    pub arm_auc: GaugeVec,
    /// Event-time consistency: labels that came after their step was built.
    pub labels_late: IntCounter,
    /// Event-time consistency: events whose score waits for its model.
    pub held_events: IntGauge,
    /// Event-time consistency: the newest boundary built (seconds of event time).
    pub model_ready: Gauge,
}

impl ModelMetrics {
    pub fn new() -> ModelMetrics {
        let gauges = |name: &str, help: &str, label: &str| GaugeVec::new(Opts::new(name, help), &[label]).expect("valid metric");
        ModelMetrics {
            device: IntGaugeVec::new(Opts::new("vigil_model_device_info", "1 for the device the learners run on"), &["device", "kind"]).expect("valid metric"),
            labels: IntCounterVec::new(
                Opts::new("vigil_labels_total", "Labels read, by outcome (joined, expired, orphan, sampled_out, malformed)"),
                &["outcome"],
            )
            .expect("valid metric"),
            timed_out: IntCounter::new("vigil_predictions_timed_out_total", "Predictions whose label did not arrive within the label timeout")
                .expect("valid metric"),
            pending: IntGauge::new("vigil_pending_predictions", "Scored events waiting for their label").expect("valid metric"),
            pending_bytes: IntGauge::new("vigil_pending_bytes", "Estimated memory of the pending predictions").expect("valid metric"),
            pending_sample_rate: Gauge::new("vigil_pending_sample_rate", "Share of low-score predictions kept for training (importance-weighted)")
                .expect("valid metric"),
            trained_samples: IntCounter::new("vigil_trained_samples_total", "Labeled samples trained on (every variant)").expect("valid metric"),
            selections: IntCounter::new("vigil_model_selections_total", "Population-based-training rounds").expect("valid metric"),
            champion: IntGauge::new("vigil_model_champion_variant", "Slot of the variant serving `scores`").expect("valid metric"),
            variant_auc: gauges("vigil_model_variant_roc_auc", "Progressive ROC-AUC per variant slot over the validation window", "variant"),
            variant_pr_auc: gauges("vigil_model_variant_pr_auc", "Progressive PR-AUC per variant slot", "variant"),
            variant_log_loss: gauges("vigil_model_variant_log_loss", "Progressive log loss per variant slot", "variant"),
            variant_ece: gauges("vigil_model_variant_ece", "Expected calibration error per variant slot (10 bins)", "variant"),
            variant_precision_at_k: gauges("vigil_model_variant_precision_at_k", "Precision among the top 1% of scores per variant slot", "variant"),
            variant_lr: gauges("vigil_model_variant_learning_rate", "Learning rate per variant slot", "variant"),
            arm_auc: gauges("vigil_model_arm_roc_auc", "ROC-AUC of the served predictions per A/B arm", "arm"),
            labels_late: IntCounter::new("vigil_labels_late_total", "Labels read after the model of their reveal time was built (trained one step late)")
                .expect("valid metric"),
            held_events: IntGauge::new("vigil_held_events", "Events whose score waits for the model of their event time").expect("valid metric"),
            model_ready: Gauge::new("vigil_model_ready_seconds", "Event time up to which models are built (event-time consistency)").expect("valid metric"),
        }
    }

    pub fn register(&self, r: &Registry) {
        r.register(Box::new(self.device.clone())).expect("unique metric");
        r.register(Box::new(self.labels.clone())).expect("unique metric");
        r.register(Box::new(self.timed_out.clone())).expect("unique metric");
        r.register(Box::new(self.pending.clone())).expect("unique metric");
        r.register(Box::new(self.pending_bytes.clone())).expect("unique metric");
        r.register(Box::new(self.pending_sample_rate.clone())).expect("unique metric");
        r.register(Box::new(self.trained_samples.clone())).expect("unique metric");
        r.register(Box::new(self.selections.clone())).expect("unique metric");
        r.register(Box::new(self.champion.clone())).expect("unique metric");
        r.register(Box::new(self.variant_auc.clone())).expect("unique metric");
        r.register(Box::new(self.variant_pr_auc.clone())).expect("unique metric");
        r.register(Box::new(self.variant_log_loss.clone())).expect("unique metric");
        r.register(Box::new(self.variant_lr.clone())).expect("unique metric");
        r.register(Box::new(self.variant_ece.clone())).expect("unique metric");
        r.register(Box::new(self.variant_precision_at_k.clone())).expect("unique metric");
        r.register(Box::new(self.arm_auc.clone())).expect("unique metric");
        r.register(Box::new(self.labels_late.clone())).expect("unique metric");
        r.register(Box::new(self.held_events.clone())).expect("unique metric");
        r.register(Box::new(self.model_ready.clone())).expect("unique metric");
    }

    pub fn label(&self, outcome: &str) -> u64 {
        self.labels.with_label_values(&[outcome]).get()
    }
}

impl Default for ModelMetrics {
    fn default() -> Self {
        Self::new()
    }
}
