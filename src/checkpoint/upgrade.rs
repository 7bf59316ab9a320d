//! Upgrading a job from a savepoint: which state of the old job the changed
//! job keeps, by name.
//!
//! Every checkpoint records the shape of its state ([`StateShape`]): the topic,
//! the numeric and kept string fields by name, the feature and join
//! definitions, the online model's shape. Starting a changed job from it
//! ([`plan`]):
//! - a feature or join with the same name and the same definition (fields
//!   compared by name) keeps its state; an added one starts without state of
//!   its own; a removed one is dropped; each is said in the log;
//! - a feature or join whose definition changed (window length or kind,
//!   aggregate, field...) is refused with a message naming it, unless the run
//!   passes `--allow-state-reset NAME`: then it starts as if added;
//! - the online model (learner state: weights, optimizer moments, pending
//!   predictions, label positions) carries over when its inputs still fit: the
//!   same kind, inputs in the same order, variants, hidden size and labels topic;
//!   else the run is refused, naming what differs, unless
//!   `--allow-state-reset <model name>` starts it from its initial weights.
//!
//! State files are migrated as they are read ([`Upgrade::migrate`]), so the
//! worker count may change at the same time.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use vigil_operators::window::FeatureMigration;
use vigil_operators::{FeatureDef, FeatureState, IntervalJoin, JoinState};

use crate::spec::JobSpec;

/// What shapes a checkpoint's state, by name (kept in its manifest).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StateShape {
    pub topic: String,
    /// The field keying the state, and the event-time field.
    pub key: String,
    pub event_time: String,
    /// Numeric fields in order (the features' field indices point here).
    pub fields: Vec<String>,
    /// Kept string fields in order (tags and join fields point here).
    pub strings: Vec<String>,
    pub features: Vec<FeatureDef>,
    pub joins: Vec<IntervalJoin>,
    pub model: Option<ModelShape>,
}

/// The online model's shape: its state carries over only into the same one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelShape {
    pub name: String,
    pub kind: String,
    pub inputs: Vec<String>,
    pub variants: usize,
    pub hidden_max: u32,
    pub labels: String,
}

impl StateShape {
    pub fn of(job: &JobSpec) -> StateShape {
        StateShape {
            topic: job.source.topic.clone(),
            key: job.source.key_field.clone(),
            event_time: job.source.event_time_field.clone(),
            fields: job.numeric_fields().iter().map(|f| f.name.clone()).collect(),
            strings: job.kept_strings(),
            features: job.features.clone(),
            joins: job.joins.clone(),
            model: job.model.online.as_ref().map(|o| ModelShape {
                name: job.model.name.clone(),
                kind: format!("{:?}", o.kind),
                inputs: job.model.inputs.iter().map(|i| i.name.clone()).collect(),
                variants: o.variants,
                hidden_max: o.hidden_max(),
                labels: o.labels.topic.clone(),
            }),
        }
    }
}

/// How a savepoint's state becomes the changed job's.
#[derive(Clone, Debug)]
pub struct Upgrade {
    features: FeatureMigration,
    new_features: Vec<FeatureDef>,
    fields: usize,
    joins: Vec<Option<usize>>,
    new_joins: Vec<IntervalJoin>,
    /// Whether the learner's state carries over.
    pub carry_model: bool,
    /// What happens to each piece of state, one line each.
    pub report: Vec<String>,
}

impl Upgrade {
    /// One old worker's feature and join state in the new job's shape.
    pub fn migrate(&self, features: FeatureState, joins: JoinState) -> (FeatureState, JoinState) {
        let f = features.migrate(FeatureState::new(self.new_features.clone(), self.fields), &self.features);
        let j = joins.migrate(JoinState::new(self.new_joins.clone()), &self.joins);
        (f, j)
    }
}

/// Plans the upgrade of state of shape `old` into `job`; see the module docs.
/// `reset`: names whose changed state may start over.
pub fn plan(old: &StateShape, job: &JobSpec, reset: &[String]) -> Result<Upgrade> {
    let new = StateShape::of(job);
    if old.topic != new.topic {
        bail!("the savepoint read topic `{}`, this job reads `{}`: its offsets mean nothing here", old.topic, new.topic);
    }
    if old.key != new.key {
        bail!(
            "the savepoint's state is keyed by `{}`, this job's by `{}`: its per-key state is of other entities (start without the savepoint)",
            old.key,
            new.key
        );
    }
    if old.event_time != new.event_time {
        bail!(
            "the savepoint's event time is `{}`, this job's `{}`: its windows and watermarks are of another clock (start without the savepoint)",
            old.event_time,
            new.event_time
        );
    }
    let index = |names: &[String], of: &str| names.iter().position(|n| n == of);
    let field_map: Vec<Option<usize>> = new.fields.iter().map(|n| index(&old.fields, n)).collect();
    let tag_map: Vec<Option<usize>> = new.strings.iter().map(|n| index(&old.strings, n)).collect();
    let mut v = Verdicts { reset, report: Vec::new(), refused: Vec::new(), used: Vec::new() };
    // old definitions in the new job's field and tag indices
    let old_to_new_field = |f: usize| old.fields.get(f).and_then(|n| index(&new.fields, n));
    let old_to_new_tag = |t: usize| old.strings.get(t).and_then(|n| index(&new.strings, n));
    let mut features = Vec::new();
    for d in &new.features {
        let Some(o) = old.features.iter().position(|x| x.name() == d.name()) else {
            v.report.push(format!("feature `{}`: added, starts without state of its own", d.name()));
            features.push(None);
            continue;
        };
        if matches!(d, FeatureDef::Lookup(_)) {
            v.report.push(format!("feature `{}`: a table lookup, without state", d.name()));
            features.push(None);
            continue;
        }
        let then = old.features[o].remap_inputs(old_to_new_field, old_to_new_tag);
        let kept = v.decide("feature", d.name(), then.as_ref() == Some(d), describe_change(&old.features[o], d, &old.fields, &new.fields));
        features.push(kept.then_some(o));
    }
    for d in old.features.iter().filter(|d| !new.features.iter().any(|n| n.name() == d.name())) {
        v.report.push(format!("feature `{}`: removed, its state is dropped", d.name()));
    }
    // joins buffer whole events: kept only when the event layout is unchanged
    let same_events = old.fields == new.fields && old.strings == new.strings;
    let mut joins = Vec::new();
    for j in &new.joins {
        let Some(o) = old.joins.iter().position(|x| x.name == j.name) else {
            v.report.push(format!("join `{}`: added, starts empty", j.name));
            joins.push(None);
            continue;
        };
        let was = if same_events { "its definition".to_owned() } else { "the event's fields, which it buffers".to_owned() };
        let kept = v.decide("join", &j.name, same_events && old.joins[o] == *j, was);
        joins.push(kept.then_some(o));
    }
    for j in old.joins.iter().filter(|j| !new.joins.iter().any(|n| n.name == j.name)) {
        v.report.push(format!("join `{}`: removed, its state is dropped", j.name));
    }
    let carry_model = match (&old.model, &new.model) {
        (Some(a), Some(b)) => v.decide("model", &b.name, model_fits(a, b).is_none(), model_fits(a, b).unwrap_or_default()),
        (None, Some(b)) => {
            v.report.push(format!("model `{}`: trained online from now on, from its initial weights", b.name));
            false
        }
        (Some(a), None) => {
            v.report.push(format!("model `{}`: no longer trained online; the learner's state is dropped", a.name));
            false
        }
        (None, None) => false,
    };
    if !v.refused.is_empty() {
        bail!("the savepoint's state does not fit this job: {}", v.refused.join("; "));
    }
    let known: Vec<&str> =
        new.features.iter().map(|f| f.name()).chain(new.joins.iter().map(|j| j.name.as_str())).chain(new.model.iter().map(|m| m.name.as_str())).collect();
    for r in reset.iter().filter(|r| !v.used.contains(r)) {
        if known.contains(&r.as_str()) {
            v.report.push(format!("--allow-state-reset {r}: `{r}` is unchanged, and keeps its state"));
        } else {
            bail!("--allow-state-reset {r}: the job has no feature, join or model named `{r}`");
        }
    }
    Ok(Upgrade {
        features: FeatureMigration { fields: field_map, tags: tag_map, features },
        new_features: job.features.clone(),
        fields: new.fields.len(),
        joins,
        new_joins: job.joins.clone(),
        carry_model,
        report: v.report,
    })
}

/// The verdicts of a plan as it goes.
struct Verdicts<'a> {
    reset: &'a [String],
    report: Vec<String>,
    refused: Vec<String>,
    /// The resets that applied.
    used: Vec<String>,
}

impl Verdicts<'_> {
    /// Whether `name`'s state carries over (`same`: unchanged; `was`: what changed).
    fn decide(&mut self, kind: &str, name: &str, same: bool, was: String) -> bool {
        if same {
            self.report.push(format!("{kind} `{name}`: unchanged, keeps its state"));
            true
        } else if self.reset.iter().any(|r| r == name) {
            self.used.push(name.to_owned());
            self.report.push(format!("{kind} `{name}`: changed ({was}); its state starts over (--allow-state-reset)"));
            false
        } else {
            self.refused.push(format!("{kind} `{name}` changed ({was}): its state cannot carry over; pass --allow-state-reset {name} to start it empty"));
            false
        }
    }
}

/// Why a model's state does not fit the new model (`None`: it fits).
fn model_fits(a: &ModelShape, b: &ModelShape) -> Option<String> {
    let differs = [
        (a.kind != b.kind, format!("kind {} -> {}", a.kind, b.kind)),
        (a.inputs != b.inputs, format!("inputs {:?} -> {:?}", a.inputs, b.inputs)),
        (a.variants != b.variants, format!("variants {} -> {}", a.variants, b.variants)),
        (a.hidden_max != b.hidden_max, format!("hidden size {} -> {}", a.hidden_max, b.hidden_max)),
        (a.labels != b.labels, format!("labels topic `{}` -> `{}`", a.labels, b.labels)),
    ];
    let why: Vec<String> = differs.into_iter().filter(|(d, _)| *d).map(|(_, w)| w).collect();
    (!why.is_empty()).then(|| why.join(", "))
}

/// What changed in a feature's definition, in words (fields by name).
fn describe_change(old: &FeatureDef, new: &FeatureDef, old_fields: &[String], new_fields: &[String]) -> String {
    let field_of = |d: &FeatureDef, names: &[String]| -> Option<String> {
        let i = match d {
            FeatureDef::Window(w) => w.field?,
            FeatureDef::Decayed(x) => x.field?,
            FeatureDef::PrevValue { field, .. } => *field,
            FeatureDef::RatioToMean(r) => r.field,
            _ => return None,
        };
        names.get(i).cloned()
    };
    let (a, b) = (field_of(old, old_fields), field_of(new, new_fields));
    match (old, new) {
        (FeatureDef::Window(a), FeatureDef::Window(b)) if a.kind != b.kind => format!("window kind {} -> {}", a.kind.name(), b.kind.name()),
        (FeatureDef::Window(a), FeatureDef::Window(b)) if a.window_ms != b.window_ms => format!("window length {} ms -> {} ms", a.window_ms, b.window_ms),
        (FeatureDef::Window(x), FeatureDef::Window(y)) if x.agg != y.agg => format!("aggregate {:?} -> {:?}", x.agg, y.agg),
        _ if a != b => format!("field {} -> {}", a.as_deref().unwrap_or("none"), b.as_deref().unwrap_or("none")),
        _ => format!("was {old:?}, now {new:?}"),
    }
}
