//! A model trained online (`[model.online]`): where its labels come from, how
//! event time and the learner's steps relate (consistency), and the search
//! space of its variants. The learner (`crate::learner`) runs it.

use std::path::PathBuf;
use std::time::Duration;

use vigil_operators::learn::{ModelKind, SearchSpace};

use crate::gpu::DeviceChoice;

/// Where labels come from and how they are read.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelSpec {
    pub topic: String,
    /// Field holding the event id (joined with the events' `event_id`).
    pub id: String,
    /// Field holding the label (boolean, 0/1, or "true"/"false").
    pub field: String,
    /// Event time after which a prediction without a label times out.
    pub timeout: Duration,
    /// The label a timed-out prediction trains with; `None`: it is not trained on.
    pub default: Option<bool>,
    /// Field of the label holding a time (epoch ms or RFC 3339): the labeled
    /// event's time, or when the label became known. Event-time consistency
    /// needs it.
    pub time: Option<String>,
    /// Added to `time`: when the label counts as revealed (a label known 10 s
    /// after its event, with `time` the event's time: `delay = 10s`).
    pub delay: Duration,
    /// Event-time consistency: a labels partition that delivered nothing for this
    /// long does not hold scoring back (the labels are taken to be all in).
    pub idle: Duration,
    /// Event-time consistency: how far out of order labels of one partition may
    /// come (by reveal time); a label later than that is trained one step late.
    pub lateness: Duration,
}

impl LabelSpec {
    /// Labels read from `topic`, joined on `id`, `field` the label; no time.
    pub fn new(topic: &str, id: &str, field: &str, timeout: Duration, default: Option<bool>) -> LabelSpec {
        LabelSpec {
            topic: topic.into(),
            id: id.into(),
            field: field.into(),
            timeout,
            default,
            time: None,
            delay: Duration::ZERO,
            idle: Duration::from_secs(2),
            lateness: Duration::from_secs(5),
        }
    }

    /// Labels carry a time (`field`), and count as revealed `delay` after it.
    pub fn revealed_at(mut self, field: &str, delay: Duration) -> LabelSpec {
        self.time = Some(field.to_owned());
        self.delay = delay;
        self
    }
}

/// Which model scores an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Consistency {
    /// `event_time` for bounded runs (`--until-end`, `vigil replay`, in-memory
    /// runs) when labels carry a time and the job keeps no checkpoints; `latest`
    /// otherwise.
    #[default]
    Auto,
    /// The newest published snapshot (lowest latency; scores depend on how fast
    /// labels and events arrive).
    Latest,
    /// The model trained on exactly the labels revealed before the start of the
    /// event's step of event time (see `model::gate`): the same events and
    /// labels give the same scores at any speed (live, backfill, replay).
    EventTime,
}

/// Online training of a job's model.
#[derive(Clone, Debug, PartialEq)]
pub struct OnlineSpec {
    pub kind: ModelKind,
    pub labels: LabelSpec,
    pub device: DeviceChoice,
    /// Mini-batch size.
    pub batch: u32,
    /// Variants trained side by side.
    pub variants: usize,
    pub space: SearchSpace,
    /// Labels between population-based-training rounds.
    pub select_every: u64,
    /// Progressive-validation window, in labels.
    pub window: usize,
    /// Labels a variant's window needs before it is ranked.
    pub min_labels: usize,
    /// Memory budget of pending predictions, in bytes.
    pub pending_budget: usize,
    /// Predictions served at or above this score are never downsampled.
    pub keep_above: f32,
    /// Where the experiment log goes (`None`: not written).
    pub runs_dir: Option<PathBuf>,
    pub seed: u64,
    /// Share of keys (by key hash) served by the best challenger (A/B); 0 = none.
    pub ab_share: f64,
    /// How long a label may wait for its prediction before it counts as orphan.
    pub label_grace: Duration,
    /// Keep every trained sample (event id hash, inputs, label, weight) in the
    /// summary: for tests and audits of point-in-time correctness, not production.
    pub record_training: bool,
    /// A champion file (`vigil model export`) every variant starts from.
    pub init: Option<PathBuf>,
    /// Which model scores an event.
    pub consistency: Consistency,
    /// Event-time consistency: the step of event time between two models (an
    /// event is scored by the model of the labels revealed before its step began).
    pub step: Duration,
    /// Event-time consistency: events held for their model at most (past it the
    /// source stops reading, unless it is what holds the model back).
    pub hold_limit: usize,
}

impl OnlineSpec {
    /// The defaults the TOML front end starts from: 8 Adam variants over learning
    /// rates 0.003..0.1, L2 0 or 1e-4, positive weight 1 or 10 (MLP: 8, 16, 32
    /// hidden), mini-batches of 256, a selection round every 20,000 labels.
    pub fn new(kind: ModelKind, labels: LabelSpec) -> OnlineSpec {
        OnlineSpec {
            kind,
            labels,
            device: DeviceChoice::Auto,
            batch: 256,
            variants: 8,
            space: SearchSpace {
                lr: vec![0.003, 0.01, 0.03, 0.1],
                l2: vec![0.0, 1e-4],
                pos_weight: vec![1.0, 10.0],
                hidden: match kind {
                    ModelKind::Logistic => Vec::new(),
                    ModelKind::Mlp => vec![8, 16, 32],
                },
                optimizer: vigil_operators::learn::OptimizerKind::Adam,
                momentum: 0.9,
            },
            select_every: 20_000,
            window: 20_000,
            min_labels: 2_000,
            pending_budget: 512 << 20,
            keep_above: 0.5,
            runs_dir: None,
            seed: 1,
            ab_share: 0.0,
            label_grace: Duration::from_secs(30),
            record_training: false,
            init: None,
            consistency: Consistency::Auto,
            step: Duration::from_secs(1),
            hold_limit: 200_000,
        }
    }

    /// What `Auto` means for a run: bounded or live, with checkpoints or not.
    pub fn resolve_consistency(&mut self, bounded: bool, checkpoints: bool) {
        if self.consistency == Consistency::EventTime && checkpoints {
            tracing::warn!(
                "[model.online] consistency = \"event_time\" does not run with checkpoints yet (--checkpoint-dir): scoring with the newest model instead (consistency = \"latest\")"
            );
            self.consistency = Consistency::Latest;
        }
        if self.consistency == Consistency::Auto {
            let event_time = bounded && !checkpoints && self.labels.time.is_some();
            self.consistency = if event_time { Consistency::EventTime } else { Consistency::Latest };
            if bounded && self.labels.time.is_none() {
                tracing::warn!(
                    "labels carry no time ([model.online] labels.time): this bounded run scores with the newest model, so its scores depend on how fast it reads"
                );
            }
        }
    }

    /// Refuses settings that cannot work, naming the field.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.consistency == Consistency::EventTime {
            if self.labels.time.is_none() {
                anyhow::bail!(
                    "[model.online] consistency = \"event_time\" needs the labels' time: `labels = {{ .., time = \"<field>\", delay = \"<how long after it a label is known>\" }}`"
                );
            }
            if self.step.as_millis() == 0 {
                anyhow::bail!("[model.online] step must be at least 1ms");
            }
        }
        Ok(())
    }

    /// Hidden units allocated per variant: the largest the search may reach.
    pub fn hidden_max(&self) -> u32 {
        match self.kind {
            ModelKind::Logistic => 0,
            ModelKind::Mlp => self.space.hidden.iter().copied().max().unwrap_or(16),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(time: Option<&str>, c: Consistency) -> OnlineSpec {
        let mut labels = LabelSpec::new("labels", "event_id", "y", Duration::from_secs(60), None);
        labels.time = time.map(str::to_owned);
        OnlineSpec { consistency: c, ..OnlineSpec::new(ModelKind::Logistic, labels) }
    }

    #[test]
    fn auto_means_event_time_for_bounded_runs_with_timed_labels() {
        let resolved = |time, c, bounded, checkpoints| {
            let mut s = spec(time, c);
            s.resolve_consistency(bounded, checkpoints);
            s.consistency
        };
        assert_eq!(resolved(Some("t"), Consistency::Auto, true, false), Consistency::EventTime);
        assert_eq!(resolved(Some("t"), Consistency::Auto, false, false), Consistency::Latest, "live: latest unless asked");
        assert_eq!(resolved(None, Consistency::Auto, true, false), Consistency::Latest, "labels without a time");
        assert_eq!(resolved(Some("t"), Consistency::Auto, true, true), Consistency::Latest, "checkpoints");
        assert_eq!(resolved(Some("t"), Consistency::EventTime, false, false), Consistency::EventTime);
        assert_eq!(resolved(Some("t"), Consistency::EventTime, false, true), Consistency::Latest, "falls back with checkpoints");
    }

    #[test]
    fn event_time_without_a_label_time_is_refused_naming_the_field() {
        let err = spec(None, Consistency::EventTime).check().expect_err("no time").to_string();
        assert!(err.contains("consistency = \"event_time\"") && err.contains("time = "), "{err}");
        let mut zero = spec(Some("t"), Consistency::EventTime);
        zero.step = Duration::ZERO;
        assert!(zero.check().is_err());
        assert!(spec(Some("t"), Consistency::EventTime).check().is_ok());
    }
}
