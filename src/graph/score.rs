//! Scoring a stream with a model: `stream.score(Model::logistic(..)...)`, and the
//! `scores` topic's records: `scored.sink_scores("scores")`.
//!
//! The model reads its inputs by name from each record: fields of the source or
//! features added by [`super::Features`] (a feature shadows a field of the same
//! name, as in a TOML job). A missing or non-finite input adds nothing (its
//! weighted term is left out). Scoring is per event and stateless: each event is
//! scored where it is, in the stream's order, and its score is final.
//!
//! `sink_scores` writes the job contract's record, byte for byte what a TOML job
//! writes: `{"event_id","key","event_time","source_partition","source_offset",
//! "score","model","model_version","features":{..}}`, the features being those the
//! newest `features` operator added (the event id is `topic-partition-offset`
//! where the source has no event-id field).
//!
//! ```
//! use std::time::Duration;
//! use vigil::graph::{Features, LocalRun, Model, Source};
//! use vigil::spec::FieldType;
//! use vigil_operators::{Agg, Transform};
//!
//! let t0 = 1_700_000_000_000i64;
//! let tx = |s: i64, amount: f64| format!(r#"{{"card":"c1","ts":{},"amount":{amount}}}"#, t0 + s * 1000).into_bytes();
//! let out = LocalRun::new(1)
//!     .topic("tx", vec![vec![tx(0, 20.0), tx(10, 900.0)]])
//!     .run(|g| {
//!         let features = Features::new().window("n_1m", Agg::Count, None, Duration::from_secs(60));
//!         let model = Model::logistic("fraud-lr", "1").bias(-3.0).weight("amount", 0.5, Transform::Log1p).weight("n_1m", 0.2, Transform::Identity);
//!         g.source(Source::json("tx").key("card").field("amount", FieldType::F64))
//!             .features("card_features", features)
//!             .score(model)
//!             .sink_scores("scores");
//!         Ok(())
//!     })
//!     .unwrap();
//! let first = &out.values("scores")[0];
//! assert!(first.starts_with(r#"{"event_id":"tx-0-0","key":"c1","event_time":1700000000000,"source_partition":0,"source_offset":0,"score":0.2"#));
//! assert!(first.ends_with(r#","model":"fraud-lr","model_version":"1","features":{"n_1m":1.0}}"#));
//! ```

use std::sync::Arc;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use vigil_operators::{LogisticModel, Transform};

use super::record::{FieldReader, Record};
use super::sink::Written;
use super::stream::{Msg, Rec, Stream};
use crate::output::{ScoreContext, ScoreEncoder};
use crate::spec::JobSpec;

/// A logistic model with fixed weights over named inputs; see the module docs.
#[derive(Clone, Debug)]
pub struct Model {
    name: String,
    version: String,
    bias: f64,
    inputs: Vec<(String, f64, Transform)>,
}

impl Model {
    /// A model with no inputs yet and a bias of 0.
    pub fn logistic(name: &str, version: &str) -> Self {
        Model { name: name.to_owned(), version: version.to_owned(), bias: 0.0, inputs: Vec::new() }
    }
    pub fn bias(mut self, bias: f64) -> Self {
        self.bias = bias;
        self
    }
    /// An input (a field or feature of the record) with its weight.
    pub fn weight(mut self, input: &str, weight: f64, transform: Transform) -> Self {
        self.inputs.push((input.to_owned(), weight, transform));
        self
    }
    /// The model as a function from a record to its score.
    pub(crate) fn scorer(self) -> impl FnMut(Record) -> Scored {
        let tag = Arc::new(ModelVersion { name: self.name.clone(), version: self.version.clone() });
        let logistic =
            LogisticModel { bias: self.bias, weights: self.inputs.iter().map(|i| i.1).collect(), transforms: self.inputs.iter().map(|i| i.2).collect() };
        let names: Vec<String> = self.inputs.into_iter().map(|i| i.0).collect();
        let mut reader = FieldReader::new(&names);
        let mut x = Vec::with_capacity(names.len());
        move |record| {
            reader.read(&record, &mut x);
            Scored { score: logistic.score(&x), record, model: tag.clone(), challengers: None, inputs: None }
        }
    }

    /// A job's model (`[model]`), with its fixed weights (a model trained online
    /// is an [`super::OnlineModel`]).
    pub fn of_job(job: &JobSpec) -> Result<Model> {
        if job.model.online.is_some() {
            bail!("model `{}` trains online ([model.online]): the graph runs models with fixed weights", job.model.name);
        }
        let m = &job.model;
        Ok(Model {
            name: m.name.clone(),
            version: m.version.clone(),
            bias: m.bias,
            inputs: m.inputs.iter().map(|i| (i.name.clone(), i.weight, i.transform)).collect(),
        })
    }
}

/// The name and version of the model that scored an event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    pub name: String,
    pub version: String,
}

/// An event with its score.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Scored {
    pub record: Record,
    pub score: f64,
    pub model: Arc<ModelVersion>,
    /// For a model trained online, the scores of the variants that did not
    /// serve the event (challengers), for the shadow topic; `None` for a model
    /// with fixed weights.
    #[serde(default)]
    pub challengers: Option<Vec<Challenger>>,
    /// For a model trained online, the model's inputs as it scored them
    /// (transformed, imputed): the monitor re-scores them with the current
    /// champion (prediction drift). `None` for a model with fixed weights.
    #[serde(default)]
    pub inputs: Option<Box<[f32]>>,
}

/// A variant's score of an event it did not serve.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Challenger {
    pub model: Arc<ModelVersion>,
    pub score: f32,
}

impl<'s> Stream<'s, Record> {
    /// Each event with its score; see the module docs.
    pub fn score(&self, model: Model) -> Stream<'s, Scored> {
        let mut score = model.scorer();
        self.each("Score", move |r, out| {
            let Rec { key, time_ms, origin, offset, watermark, value } = r;
            out.push(Msg::Event(Rec { key, time_ms, origin, offset, watermark, value: score(value) }))
        })
    }
}

impl<'s> Stream<'s, Scored> {
    /// Writes the `scores` contract's record of every event to `name`; see the
    /// module docs.
    pub fn sink_scores(&self, name: &str) {
        // the encoder of the latest (topic, model, feature names): they seldom
        // change, and a record of the same layout (schema objects) has the same
        let mut current: Option<(Record, Arc<ModelVersion>, ScoreEncoder)> = None;
        let mut features: Vec<Option<f64>> = Vec::new();
        self.sink_with(name, move |r: &Rec<Scored>, buf| {
            let s = &r.value;
            let (names, values) = s.record.added().unwrap_or((&[], &[]));
            let fits = current.as_ref().is_some_and(|(layout, m, _)| Arc::ptr_eq(m, &s.model) && layout.same_layout(&s.record));
            if !fits {
                let encoder = ScoreEncoder::new(s.record.topic(), &s.model.name, &s.model.version, names);
                current = Some((s.record.clone(), s.model.clone(), encoder));
            }
            let Some((_, _, encoder)) = &current else { return Written::Nothing };
            features.clear();
            features.extend(values.iter().map(|v| Some(*v).filter(|v| !v.is_nan())));
            let ctx = ScoreContext {
                event_id: s.record.event_id(),
                key: &r.key,
                event_time_ms: r.time_ms,
                partition: r.origin.partition,
                offset: r.offset,
                score: s.score,
            };
            encoder.encode(buf, &ctx, &features);
            Written::Value
        })
    }

    /// Writes the shadow topic's record of every event scored by a model trained
    /// online, as a TOML job's `[sinks] shadow` does: the served version and
    /// every challenger's score (`{"event_id","key","event_time","model",
    /// "served_version","challengers":[{"version","score"}]}`). Events scored
    /// with fixed weights have no challengers and write nothing.
    pub fn sink_shadow(&self, name: &str) {
        self.sink_with(name, |r: &Rec<Scored>, buf| {
            let s = &r.value;
            let Some(challengers) = &s.challengers else { return Written::Nothing };
            let scores = challengers.iter().map(|c| (c.model.version.as_str(), c.score));
            crate::output::encode_shadow(buf, s.record.event_id(), &r.key, r.time_ms, &s.model.name, &s.model.version, scores);
            Written::Value
        })
    }
}
