//! The job: what to read, how to decode it, which features to keep, how to score,
//! where to write. [`JobBuilder`] is the Rust API; [`JobSpec::from_toml`] is a thin
//! front end that reads a TOML file and drives the same builder.
//!
//! ```
//! use std::time::Duration;
//! use vigil::spec::{FieldType, JobBuilder};
//! use vigil_operators::Agg;
//! let job = JobBuilder::new("fraud")
//!     .source_topic("transactions")
//!     .key_field("card_id")
//!     .event_time_field("ts")
//!     .field("amount", FieldType::F64)
//!     .window_feature("tx_count_1m", Agg::Count, None, Duration::from_secs(60))
//!     .window_feature("amount_sum_1m", Agg::Sum, Some("amount"), Duration::from_secs(60))
//!     .bias(-3.0)
//!     .weight("tx_count_1m", 0.5)
//!     .build()
//!     .unwrap();
//! assert_eq!(job.features.len(), 2);
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use vigil_operators::{Agg, DecayKind, Emit, FeatureDef, IntervalJoin, LogisticModel, Transform};

/// The type a declared field must have in the JSON record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    F64,
    I64,
    Str,
    Bool,
}

impl FieldType {
    fn parse(s: &str) -> Option<FieldType> {
        Some(match s {
            "f64" | "float" | "double" => FieldType::F64,
            "i64" | "int" | "integer" => FieldType::I64,
            "str" | "string" => FieldType::Str,
            "bool" | "boolean" => FieldType::Bool,
            _ => return None,
        })
    }
    /// Numeric fields can feed window aggregates and the model.
    pub fn is_numeric(self) -> bool {
        matches!(self, FieldType::F64 | FieldType::I64)
    }
}

/// A field of the source's schema.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldSpec {
    pub name: String,
    pub ty: FieldType,
    pub optional: bool,
}

/// Where events come from and how they are read.
#[derive(Clone, Debug)]
pub struct SourceSpec {
    pub topic: String,
    pub key_field: String,
    pub event_time_field: String,
    /// Field carrying a unique event id; `topic-partition-offset` when absent.
    pub event_id_field: Option<String>,
    pub allowed_lateness: Duration,
    /// A partition with no record for this long stops holding progress back.
    pub idle_timeout: Duration,
    /// How far beyond `max(partition max event time, wall clock)` a timestamp may be.
    pub max_future: Duration,
    /// Records larger than this are rejected as `oversize` before parsing.
    pub max_message_bytes: usize,
    pub fields: Vec<FieldSpec>,
    /// How the record bytes are encoded (JSON unless the job says otherwise).
    pub format: SourceFormat,
    /// Record-level data-quality expectations on declared fields.
    pub expectations: Vec<Expectation>,
}

/// One model input: a feature or a numeric event field, by name.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInput {
    pub name: String,
    pub weight: f64,
    pub transform: Transform,
}

/// The scoring model.
#[derive(Clone, Debug)]
pub struct ModelSpec {
    pub name: String,
    pub version: String,
    pub bias: f64,
    /// The model's inputs, in order (their weights are the fixed model's).
    pub inputs: Vec<ModelInput>,
    /// Online training from delayed labels; `None`: the fixed weights score.
    pub online: Option<online::OnlineSpec>,
}

/// Output topics.
#[derive(Clone, Debug)]
pub struct SinkSpec {
    pub scores: String,
    pub dlq: String,
    /// Optional `features` topic: each scored event's features, upsert by key.
    pub features: Option<String>,
    /// Optional shadow topic: the challengers' scores of every event.
    pub shadow: Option<String>,
    /// Optional `drift` topic: drift, quality and fairness findings (`[monitor]`).
    pub drift: Option<String>,
    /// Optional `windows` topic: the final value of every window of the features
    /// that emit on close.
    pub windows: Option<String>,
    /// Optional `joins` topic: the output of the interval joins.
    pub joins: Option<String>,
    /// How `scores`, `features` and `drift` are written (JSON by default).
    pub format: format::OutputFormat,
}

/// A validated job.
#[derive(Clone, Debug)]
pub struct JobSpec {
    pub name: String,
    pub source: SourceSpec,
    pub features: Vec<FeatureDef>,
    pub model: ModelSpec,
    pub sinks: SinkSpec,
    /// Drift, quality and fairness monitoring, names resolved against this job.
    pub monitor: Option<monitor::ResolvedMonitor>,
    /// The string fields the decoder keeps with each event: the monitor's, then
    /// those of distinct-count and lookup features (whose indices point here).
    pub strings: Vec<String>,
    /// Tables kept from compacted topics, for lookup features.
    pub tables: Vec<TableSpec>,
    /// Stream-stream interval joins between sub-streams of the source (string
    /// field indices point into `strings`).
    pub joins: Vec<IntervalJoin>,
    /// The job's other topics (`[[source]]` after the first): read, checked
    /// and dead-lettered like the main one, for the joins between topics.
    /// Such a job runs on the graph (`graph::job::job_graph`).
    pub sources: Vec<SourceSpec>,
    /// Interval joins between two of the job's topics (`[[topic_join]]`).
    pub topic_joins: Vec<TopicJoin>,
}

/// An interval join between two topics of a job (`[[topic_join]]`): each pair of
/// same-key events, one of each, with `right.time - left.time` in
/// `[-before, after]`, written to `sink` as `{"join","left":{..},"right":{..}}`
/// (each side's fields).
#[derive(Clone, Debug, PartialEq)]
pub struct TopicJoin {
    pub name: String,
    pub left: String,
    pub right: String,
    pub before: Duration,
    pub after: Duration,
    pub sink: String,
}

impl JobSpec {
    /// Whether the job reads several topics (it then runs on the graph).
    pub fn several_topics(&self) -> bool {
        !self.sources.is_empty() || !self.topic_joins.is_empty()
    }
    /// Why the job runs on the graph only, if it does: it reads several topics,
    /// or a source has window-level expectations (judged on the graph's stream).
    pub fn graph_only(&self) -> Option<&'static str> {
        if self.several_topics() {
            return Some("reads several topics ([[source]], [[topic_join]])");
        }
        let windowed = std::iter::once(&self.source).chain(&self.sources).any(|s| s.window_expectations().next().is_some());
        windowed.then_some("has window-level expectations (not_null_rate, unique, freshness, volume)")
    }
}

/// Where a model input's value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputSource {
    Feature(usize),
    /// Index into the event's numeric values.
    Field(usize),
}

impl JobSpec {
    /// Parses and validates a TOML job spec (see `examples/fraud_job.toml`).
    pub fn from_toml(text: &str) -> Result<JobSpec> {
        let raw: toml_front::RawJob = toml::from_str(text).context("invalid job spec")?;
        raw.into_builder()?.build()
    }

    /// The numeric fields in schema order: the values passed with every event.
    pub fn numeric_fields(&self) -> Vec<&FieldSpec> {
        self.source.fields.iter().filter(|f| f.ty.is_numeric()).collect()
    }

    /// String fields the decoder keeps with each event (for monitoring), in order.
    pub fn kept_strings(&self) -> Vec<String> {
        self.strings.clone()
    }

    /// Resolves each model input to a feature or numeric field.
    pub fn model_inputs(&self) -> Vec<InputSource> {
        let numeric = self.numeric_fields();
        self.model
            .inputs
            .iter()
            .map(|i| match self.features.iter().position(|f| f.name() == i.name) {
                Some(p) => InputSource::Feature(p),
                None => InputSource::Field(numeric.iter().position(|f| f.name == i.name).expect("validated by the builder")),
            })
            .collect()
    }

    /// A hash of everything that shapes operator state (schema, features,
    /// lateness): a checkpoint is only restored into a job with the same one.
    pub fn state_fingerprint(&self) -> String {
        let mut shape = format!("{:?}|{:?}|{:?}|{:?}", self.source.fields, self.features, self.source.allowed_lateness, self.source.topic);
        if !self.joins.is_empty() {
            shape.push_str(&format!("|joins {:?}", self.joins));
        }
        if let Some(o) = &self.model.online {
            // the learner's state is part of the checkpoint: its shape too
            let inputs: Vec<&str> = self.model.inputs.iter().map(|i| i.name.as_str()).collect();
            shape.push_str(&format!("|online {:?} {inputs:?} {} {}", o.kind, o.variants, o.hidden_max()));
        }
        format!("{:016x}", crate::types::key_hash(&shape))
    }

    pub fn logistic_model(&self) -> LogisticModel {
        LogisticModel {
            bias: self.model.bias,
            weights: self.model.inputs.iter().map(|i| i.weight).collect(),
            transforms: self.model.inputs.iter().map(|i| i.transform).collect(),
        }
    }
}

/// The tag index of string field `field` for a distinct-count feature: its place
/// among the kept string fields (added if new).
pub(crate) fn string_tag(fields: &[FieldSpec], kept: &mut Vec<String>, owner: &str, field: &str) -> Result<usize> {
    if !fields.iter().any(|f| f.name == field && f.ty == FieldType::Str) {
        bail!("{owner}: `{field}` is not a string field of the schema");
    }
    Ok(kept.iter().position(|k| k == field).unwrap_or_else(|| {
        kept.push(field.to_owned());
        kept.len() - 1
    }))
}

/// The job builder and the checks of a whole job (`spec/builder.rs`).
mod builder;
pub use builder::JobBuilder;

/// Features as a job declares them, resolved against its schema (`spec/features.rs`).
mod features;
use features::PendingFeature;

/// Interval joins as a job declares them (`spec/join.rs`).
mod join;
pub use join::IntervalJoinDecl;

/// Windows and durations as a job writes them (`spec/time.rs`).
mod time;

pub use time::{parse_duration, parse_signed_ms, Window};

/// A source's wire format: JSON or Avro, and where Avro's schemas come from.
pub mod format;
pub use format::{AvroSchemas, OutputFormat, ProtoDefinition, ProtobufSchema, RegistrySettings, SourceFormat};
/// Record-level data-quality expectations (`spec/expect.rs`).
pub mod expect;
pub use expect::{check_expectations, Check, ExpectMode, Expectation, DEFAULT_WINDOW};

/// The TOML shape of a job (`spec/toml_front.rs`).
mod toml_front;

/// A model trained online (`spec/online.rs`; the learner runs it).
pub mod online;

/// Drift monitoring as a job declares it (`spec/monitor.rs`; `crate::monitor` runs it).
pub mod monitor;

/// A table from a compacted topic, as a job declares it (`crate::table` keeps it).
#[derive(Clone, Debug, PartialEq)]
pub struct TableSpec {
    pub name: String,
    pub topic: String,
    /// Numeric columns, in order (a lookup feature names one).
    pub columns: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_operators::interval_join::SideFilter;
    use vigil_operators::{Decayed, RatioToMean, WindowKind};

    #[test]
    fn decayed_features_parse_and_bad_ones_are_refused() {
        let job = |features: &str| {
            JobSpec::from_toml(&format!("[source]\ntopic = \"t\"\nkey = \"k\"\nevent_time = \"ts\"\n[source.schema]\nw = \"f64\"\n{features}"))
        };
        let ok = job("[[feature]]\nname = \"e\"\nagg = \"decayed_sum\"\nfield = \"w\"\nhalf_life = \"1h\"\n[[feature]]\nname = \"c\"\nagg = \"decayed_count\"\nhalf_life = \"10m\"\nttl = \"1d\"")
            .expect("valid");
        assert_eq!(
            ok.features[0],
            FeatureDef::Decayed(Decayed { name: "e".into(), kind: DecayKind::Sum, field: Some(0), half_life_ms: 3_600_000, ttl_ms: 16 * 3_600_000 })
        );
        assert!(matches!(&ok.features[1], FeatureDef::Decayed(d) if d.kind == DecayKind::Count && d.ttl_ms == 86_400_000));
        let err = |f: &str| format!("{:#}", job(f).expect_err(f));
        assert!(err("[[feature]]\nname = \"e\"\nagg = \"decayed_avg\"\nfield = \"w\"").contains("needs a half_life"));
        assert!(err("[[feature]]\nname = \"e\"\nagg = \"decayed_avg\"\nhalf_life = \"1h\"").contains("needs a field"));
        assert!(err("[[feature]]\nname = \"e\"\nagg = \"decayed_count\"\nfield = \"w\"\nhalf_life = \"1h\"").contains("takes no field"));
        assert!(err("[[feature]]\nname = \"e\"\nagg = \"decayed_sum\"\nfield = \"w\"\nhalf_life = \"0s\"").contains("positive"));
    }

    #[test]
    fn window_kinds_parse_and_bad_ones_are_refused() {
        let job = |features: &str, sinks: &str| {
            JobSpec::from_toml(&format!(
                "[source]\ntopic = \"t\"\nkey = \"k\"\nevent_time = \"ts\"\n[source.schema]\nw = \"f64\"\n{features}\n[sinks]\nscores = \"s\"\ndlq = \"d\"\n{sinks}"
            ))
        };
        let f = |name: &str, agg: &str, window: &str, emit: &str| {
            format!("[[feature]]\nname = \"{name}\"\nagg = \"{agg}\"\nfield = \"w\"\nwindow = \"{window}\"\n{emit}\n")
        };
        let text = [
            f("a", "sum", "tumbling 1d", "emit = \"on_close\""),
            f("b", "mean", "hopping 1h every 15m", ""),
            f("c", "max", "session 30m", "emit = \"on_close\""),
        ]
        .concat();
        let ok = job(&text, "windows = \"win\"").expect("valid");
        let w = |i: usize| match &ok.features[i] {
            FeatureDef::Window(w) => (w.kind, w.window_ms, w.emit),
            other => panic!("{other:?}"),
        };
        assert_eq!(w(0), (WindowKind::Tumbling, 86_400_000, Emit::OnClose));
        assert_eq!(w(1), (WindowKind::Hopping { hop_ms: 900_000 }, 3_600_000, Emit::OnUpdate));
        assert_eq!(w(2), (WindowKind::Session { gap_ms: 1_800_000 }, 0, Emit::OnClose));
        assert_eq!(ok.sinks.windows.as_deref(), Some("win"));
        let err = |features: &str, sinks: &str| format!("{:#}", job(features, sinks).expect_err(features));
        assert!(err(&f("a", "sum", "tumbling 1d", "emit = \"on_close\""), "").contains("[sinks] windows"));
        assert!(err(&f("a", "sum", "1h", "emit = \"on_close\""), "windows = \"win\"").contains("sliding window ends at every event"));
        assert!(err(&f("a", "sum", "tumbling 1d", "emit = \"sometimes\""), "").contains("on_update"));
        assert!(err(&f("a", "sum", "hopping 1m every 1h", ""), "").contains("hop"));
        let distinct = JobSpec::from_toml(
            "[source]\ntopic = \"t\"\nkey = \"k\"\nevent_time = \"ts\"\n[source.schema]\nw = \"f64\"\nm = \"str\"\n[[feature]]\nname = \"d\"\nagg = \"distinct_count\"\nfield = \"m\"\nwindow = \"1h\"\n",
        )
        .expect("valid");
        assert_eq!(distinct.features[0], FeatureDef::Distinct(vigil_operators::Distinct { name: "d".into(), tag: 0, window_ms: 3_600_000 }));
        assert_eq!(distinct.kept_strings(), vec!["m".to_string()]);
        assert!(err("[[feature]]\nname = \"d\"\nagg = \"distinct_count\"\nfield = \"w\"\nwindow = \"1h\"\n", "").contains("not a string field"));
        let approx = JobSpec::from_toml(
            "[source]\ntopic = \"t\"\nkey = \"k\"\nevent_time = \"ts\"\n[source.schema]\nm = \"str\"\n[[feature]]\nname = \"a\"\nagg = \"approx_distinct\"\nfield = \"m\"\nwindow = \"1d\"\npane = \"1h\"\nprecision = 12\n",
        )
        .expect("valid");
        assert_eq!(
            approx.features[0],
            FeatureDef::ApproxDistinct(vigil_operators::ApproxDistinct { name: "a".into(), tag: 0, window_ms: 86_400_000, pane_ms: 3_600_000, precision: 12 })
        );
        let lookup = JobSpec::from_toml(
            "[source]\ntopic = \"t\"\nkey = \"k\"\nevent_time = \"ts\"\n[source.schema]\nm = \"str\"\n[[table]]\nname = \"p\"\ntopic = \"profiles\"\ncolumns = [\"age\", \"limit\"]\n[[feature]]\nname = \"l\"\nagg = \"lookup\"\njoin = \"p\"\nfield = \"limit\"\non = \"m\"\n",
        )
        .expect("valid");
        assert_eq!(lookup.features[0], FeatureDef::Lookup(vigil_operators::Lookup { name: "l".into(), table: 0, column: 1, on: Some(0) }));
        assert_eq!(lookup.tables[0].topic, "profiles");
        let ratio = job("[[feature]]\nname = \"r\"\nagg = \"ratio_to_mean\"\nfield = \"w\"\nwindow = \"30d\"\npane = \"1h\"\n", "").expect("valid");
        assert_eq!(ratio.features[0], FeatureDef::RatioToMean(RatioToMean { name: "r".into(), field: 0, window_ms: 30 * 86_400_000, pane_ms: 3_600_000 }));
        assert!(err("[[feature]]\nname = \"r\"\nagg = \"ratio_to_mean\"\nfield = \"w\"\nwindow = \"30d\"\n", "").contains("needs a pane"));
        assert!(err("[[feature]]\nname = \"r\"\nagg = \"ratio_to_mean\"\nfield = \"w\"\nwindow = \"1h\"\npane = \"2h\"\n", "")
            .contains("no longer than the window"));
    }

    #[test]
    fn interval_joins_parse_like_the_builder_and_bad_ones_are_refused() {
        let job = |joins: &str, sinks: &str| {
            JobSpec::from_toml(&format!(
                "[source]\ntopic = \"t\"\nkey = \"k\"\nevent_time = \"ts\"\n[source.schema]\naction = \"str\"\nvideo = \"str\"\nw = \"f64\"\n{joins}\n[sinks]\nscores = \"s\"\ndlq = \"d\"\n{sinks}"
            ))
        };
        let text = "[[join]]\nname = \"like_after_view\"\nleft = { field = \"action\", equals = \"view\" }\nright = { field = \"action\", equals = \"like\" }\nwithin = \"10m\"\non = \"video\"\nunmatched = true\n\
                    [[join]]\nname = \"around\"\nbetween = [\"-1m\", \"30s\"]\n";
        let toml = job(text, "joins = \"j\"").expect("valid");
        let built = JobBuilder::new("vigil-job")
            .source_topic("t")
            .key_field("k")
            .event_time_field("ts")
            .field("action", FieldType::Str)
            .field("video", FieldType::Str)
            .field("w", FieldType::F64)
            .interval_join(
                IntervalJoinDecl::new("like_after_view")
                    .left("action", "view")
                    .right("action", "like")
                    .within(Duration::from_secs(600))
                    .on("video")
                    .emit_unmatched(),
            )
            .interval_join(IntervalJoinDecl::new("around").between_ms(-60_000, 30_000))
            .sinks("s", "d")
            .joins_sink("j")
            .build()
            .unwrap();
        assert_eq!(toml.joins, built.joins);
        assert_eq!(toml.kept_strings(), vec!["action".to_string(), "video".to_string()]);
        assert_eq!(
            toml.joins[0],
            IntervalJoin {
                name: "like_after_view".into(),
                left: Some(SideFilter { field: 0, value: "view".into() }),
                right: Some(SideFilter { field: 0, value: "like".into() }),
                lower_ms: 0,
                upper_ms: 600_000,
                on: Some(1),
                emit_unmatched: true
            }
        );
        assert_ne!(toml.state_fingerprint(), job("", "joins = \"j\"").unwrap().state_fingerprint(), "joins shape the checkpointed state");
        let err = |joins: &str, sinks: &str| format!("{:#}", job(joins, sinks).expect_err(joins));
        assert!(err(text, "").contains("[sinks] joins"));
        assert!(err("[[join]]\nname = \"x\"\n", "joins = \"j\"").contains("`within` or as `between`"));
        assert!(err("[[join]]\nname = \"x\"\nwithin = \"1m\"\nbetween = [\"0s\", \"1m\"]\n", "joins = \"j\"").contains("one of the two"));
        assert!(err("[[join]]\nname = \"x\"\nbetween = [\"1m\", \"-1m\"]\n", "joins = \"j\"").contains("lower bound"));
        assert!(err("[[join]]\nname = \"x\"\nwithin = \"1m\"\non = \"w\"\n", "joins = \"j\"").contains("join `x`: `w` is not a string field"));
        assert!(err("[[join]]\nname = \"x\"\nwithin = \"1m\"\n[[join]]\nname = \"x\"\nwithin = \"2m\"\n", "joins = \"j\"").contains("already used"));
        assert_eq!(parse_signed_ms("-5m").unwrap(), -300_000);
    }

    #[test]
    fn bad_references_are_refused() {
        let b = || JobBuilder::new("j").field("amount", FieldType::F64);
        assert!(b().window_feature("s", Agg::Sum, None, Duration::from_secs(1)).build().is_err());
        assert!(b().window_feature("s", Agg::Sum, Some("nope"), Duration::from_secs(1)).build().is_err());
        assert!(b().weight("nope", 1.0).build().is_err());
        assert!(b().window_feature("amount", Agg::Count, None, Duration::from_secs(1)).build().is_err());
        assert!(b().weight("amount", 1.0).build().is_ok());
    }
}
