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
        let windowed = std::iter::once(&self.source).chain(&self.sources).any(|s| s.expectations.iter().any(|e| e.check.is_window()));
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

/// Builds a [`JobSpec`] step by step; `build` validates the whole job.
pub struct JobBuilder {
    name: String,
    topic: String,
    key_field: String,
    event_time_field: String,
    event_id_field: Option<String>,
    allowed_lateness: Duration,
    idle_timeout: Duration,
    max_future: Duration,
    max_message_bytes: usize,
    fields: Vec<FieldSpec>,
    format: SourceFormat,
    expectations: Vec<Expectation>,
    features: Vec<PendingFeature>,
    model_name: String,
    model_version: String,
    bias: f64,
    inputs: Vec<ModelInput>,
    online: Option<online::OnlineSpec>,
    sinks: SinkSpec,
    monitor: Option<monitor::MonitorSpec>,
    tables: Vec<TableSpec>,
    joins: Vec<IntervalJoinDecl>,
    sources: Vec<SourceSpec>,
    topic_joins: Vec<TopicJoin>,
}

impl JobBuilder {
    /// Another topic the job reads (for joins between topics).
    pub fn extra_source(mut self, source: SourceSpec) -> Self {
        self.sources.push(source);
        self
    }
    /// An interval join between two of the job's topics.
    pub fn topic_join(mut self, join: TopicJoin) -> Self {
        self.topic_joins.push(join);
        self
    }
    /// The main source, declared whole.
    pub fn source(self, s: SourceSpec) -> Self {
        let mut b = self
            .source_topic(&s.topic)
            .key_field(&s.key_field)
            .event_time_field(&s.event_time_field)
            .allowed_lateness(s.allowed_lateness)
            .idle_timeout(s.idle_timeout)
            .max_future(s.max_future)
            .max_message_bytes(s.max_message_bytes);
        b.event_id_field = s.event_id_field;
        b.format = s.format;
        b.expectations.extend(s.expectations);
        for f in s.fields {
            b = if f.optional { b.optional_field(&f.name, f.ty) } else { b.field(&f.name, f.ty) };
        }
        b
    }
    pub fn new(name: &str) -> Self {
        JobBuilder {
            name: name.to_owned(),
            topic: "transactions".into(),
            key_field: "key".into(),
            event_time_field: "ts".into(),
            event_id_field: None,
            allowed_lateness: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(10),
            max_future: Duration::from_secs(3600),
            max_message_bytes: 64 * 1024,
            fields: Vec::new(),
            format: SourceFormat::Json,
            expectations: Vec::new(),
            features: Vec::new(),
            model_name: "logistic".into(),
            model_version: "1".into(),
            bias: 0.0,
            inputs: Vec::new(),
            online: None,
            sinks: SinkSpec { scores: "scores".into(), dlq: "dlq".into(), features: None, shadow: None, drift: None, windows: None, joins: None },
            monitor: None,
            tables: Vec::new(),
            joins: Vec::new(),
            sources: Vec::new(),
            topic_joins: Vec::new(),
        }
    }
    pub fn source_topic(mut self, topic: &str) -> Self {
        self.topic = topic.to_owned();
        self
    }
    pub fn key_field(mut self, field: &str) -> Self {
        self.key_field = field.to_owned();
        self
    }
    pub fn event_time_field(mut self, field: &str) -> Self {
        self.event_time_field = field.to_owned();
        self
    }
    pub fn event_id_field(mut self, field: &str) -> Self {
        self.event_id_field = Some(field.to_owned());
        self
    }
    pub fn allowed_lateness(mut self, d: Duration) -> Self {
        self.allowed_lateness = d;
        self
    }
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout = d;
        self
    }
    pub fn max_future(mut self, d: Duration) -> Self {
        self.max_future = d;
        self
    }
    pub fn max_message_bytes(mut self, n: usize) -> Self {
        self.max_message_bytes = n;
        self
    }
    /// How the main source's records are encoded (JSON by default).
    pub fn format(mut self, format: SourceFormat) -> Self {
        self.format = format;
        self
    }
    /// A data-quality expectation on a declared field of the main source
    /// (see [`Expectation`]).
    pub fn expect(mut self, e: Expectation) -> Self {
        self.expectations.push(e);
        self
    }
    /// Declares a required field.
    pub fn field(mut self, name: &str, ty: FieldType) -> Self {
        self.fields.push(FieldSpec { name: name.to_owned(), ty, optional: false });
        self
    }
    /// Declares a field that may be absent or null.
    pub fn optional_field(mut self, name: &str, ty: FieldType) -> Self {
        self.fields.push(FieldSpec { name: name.to_owned(), ty, optional: true });
        self
    }
    /// A sliding-window aggregate of `field` (none for `count`) over `window`.
    pub fn window_feature(mut self, name: &str, agg: Agg, field: Option<&str>, window: Duration) -> Self {
        self.features.push(PendingFeature::Window {
            name: name.to_owned(),
            agg,
            field: field.map(str::to_owned),
            window: Window::Sliding(window),
            emit: Emit::OnUpdate,
        });
        self
    }
    /// An aggregate over a sliding, tumbling, hopping or session window; with
    /// `Emit::OnClose` each window's final value also goes to the `windows` sink.
    pub fn windowed_feature(mut self, name: &str, agg: Agg, field: Option<&str>, window: Window, emit: Emit) -> Self {
        self.features.push(PendingFeature::Window { name: name.to_owned(), agg, field: field.map(str::to_owned), window, emit });
        self
    }
    /// Seconds since the key's previous event, null past `ttl`.
    /// An exponentially time-decayed count, sum or average with a half-life (an
    /// engagement score); the key's state leaves after `ttl` idle (default 16 half-lives).
    pub fn decayed_feature(mut self, name: &str, kind: DecayKind, field: Option<&str>, half_life: Duration, ttl: Option<Duration>) -> Self {
        self.features.push(PendingFeature::Decayed { name: name.to_owned(), kind, field: field.map(str::to_owned), half_life, ttl });
        self
    }
    /// The field's value at the key's previous event (null past `ttl`).
    pub fn prev_value_feature(mut self, name: &str, field: &str, ttl: Duration) -> Self {
        self.features.push(PendingFeature::PrevValue { name: name.to_owned(), field: field.to_owned(), ttl });
        self
    }
    /// The field's value over its mean in the key's last `window`, kept in panes
    /// of `pane` (e.g. amount vs its 30-day average, 1-hour panes).
    pub fn ratio_to_mean_feature(mut self, name: &str, field: &str, window: Duration, pane: Duration) -> Self {
        self.features.push(PendingFeature::RatioToMean { name: name.to_owned(), field: field.to_owned(), window, pane });
        self
    }
    /// The exact number of distinct values of the string `field` over a sliding `window`.
    pub fn distinct_count_feature(mut self, name: &str, field: &str, window: Duration) -> Self {
        self.features.push(PendingFeature::Distinct { name: name.to_owned(), field: field.to_owned(), window });
        self
    }
    /// The approximate number of distinct values of the string `field` over a long
    /// `window` (HyperLogLog with `2^precision` registers, panes of `pane`).
    pub fn approx_distinct_feature(mut self, name: &str, field: &str, window: Duration, pane: Duration, precision: u8) -> Self {
        self.features.push(PendingFeature::ApproxDistinct { name: name.to_owned(), field: field.to_owned(), window, pane, precision });
        self
    }
    /// A table kept from the compacted `topic` (record key = table key; JSON
    /// object payloads with numeric `columns` upsert, null payloads delete).
    pub fn table(mut self, name: &str, topic: &str, columns: &[&str]) -> Self {
        self.tables.push(TableSpec { name: name.to_owned(), topic: topic.to_owned(), columns: columns.iter().map(|c| c.to_string()).collect() });
        self
    }
    /// A column of `table`'s row for the event's key, or for the value of the
    /// string field `on` (a stream-table join, looked up at the event).
    pub fn lookup_feature(mut self, name: &str, table: &str, column: &str, on: Option<&str>) -> Self {
        self.features.push(PendingFeature::Lookup { name: name.to_owned(), table: table.to_owned(), column: column.to_owned(), on: on.map(str::to_owned) });
        self
    }
    pub fn time_since_prev_feature(mut self, name: &str, ttl: Duration) -> Self {
        self.features.push(PendingFeature::TimeSincePrev { name: name.to_owned(), ttl });
        self
    }
    pub fn model_name(mut self, name: &str, version: &str) -> Self {
        self.model_name = name.to_owned();
        self.model_version = version.to_owned();
        self
    }
    pub fn bias(mut self, bias: f64) -> Self {
        self.bias = bias;
        self
    }
    /// A weight on a feature or numeric field, used as it is.
    pub fn weight(self, input: &str, weight: f64) -> Self {
        self.weight_with(input, weight, Transform::Identity)
    }
    /// A weight on a transformed feature or numeric field.
    pub fn weight_with(mut self, input: &str, weight: f64, transform: Transform) -> Self {
        self.inputs.push(ModelInput { name: input.to_owned(), weight, transform });
        self
    }
    /// Trains the model online from delayed labels (see `learner`); the inputs are
    /// the ones declared with `weight`/`weight_with` (their weights then unused).
    pub fn online(mut self, spec: online::OnlineSpec) -> Self {
        self.online = Some(spec);
        self
    }
    /// Watches features, predictions, the error stream and fairness for drift.
    pub fn monitor(mut self, spec: monitor::MonitorSpec) -> Self {
        self.monitor = Some(spec);
        self
    }
    /// Writes drift findings to `topic` (see `monitor`).
    pub fn drift_sink(mut self, topic: &str) -> Self {
        self.sinks.drift = Some(topic.to_owned());
        self
    }
    /// Writes the challengers' scores of every event to `topic`.
    pub fn shadow_sink(mut self, topic: &str) -> Self {
        self.sinks.shadow = Some(topic.to_owned());
        self
    }
    pub fn sinks(mut self, scores: &str, dlq: &str) -> Self {
        self.sinks.scores = scores.to_owned();
        self.sinks.dlq = dlq.to_owned();
        self
    }
    /// Also writes every scored event's features to `topic` (keyed by entity, for
    /// a compacted topic: the latest record per key is the key's current vector).
    pub fn features_sink(mut self, topic: &str) -> Self {
        self.sinks.features = Some(topic.to_owned());
        self
    }
    /// Where closed windows go (features with `Emit::OnClose`).
    pub fn windows_sink(mut self, topic: &str) -> Self {
        self.sinks.windows = Some(topic.to_owned());
        self
    }
    /// A stream-stream interval join between two sub-streams of the source.
    pub fn interval_join(mut self, join: IntervalJoinDecl) -> Self {
        self.joins.push(join);
        self
    }
    /// Where the interval joins' pairs (and unmatched lefts) go.
    pub fn joins_sink(mut self, topic: &str) -> Self {
        self.sinks.joins = Some(topic.to_owned());
        self
    }

    /// Validates names and references and returns the job.
    pub fn build(self) -> Result<JobSpec> {
        if let Some(o) = &self.online {
            o.check()?;
        }
        let mut seen = std::collections::HashSet::new();
        for f in &self.fields {
            if !seen.insert(f.name.as_str()) {
                bail!("field `{}` is declared twice", f.name);
            }
            if [&self.key_field, &self.event_time_field].contains(&&f.name) || self.event_id_field.as_ref() == Some(&f.name) {
                bail!("field `{}` is the key, event time or event id and must not be in the schema", f.name);
            }
        }
        let numeric: Vec<&FieldSpec> = self.fields.iter().filter(|f| f.ty.is_numeric()).collect();
        let mut features = Vec::new();
        // kept string fields: the monitor's first (its indices), then distinct counts'
        let mut kept: Vec<String> = self.monitor.as_ref().map(|m| m.string_fields()).unwrap_or_default();
        let ctx = features::Context { fields: &self.fields, numeric: &numeric, tables: &self.tables, windows_sink: self.sinks.windows.is_some() };
        for p in self.features {
            let def = p.resolve(&ctx, &mut kept)?;
            if features.iter().any(|f: &FeatureDef| f.name() == def.name()) || numeric.iter().any(|n| n.name == def.name()) {
                bail!("feature `{}`: the name is already used", def.name());
            }
            features.push(def);
        }
        let joins = join::resolve(self.joins, &self.fields, &mut kept, self.sinks.joins.is_some())?;
        check_model(&self.inputs, self.online.as_ref(), &features, &numeric, self.event_id_field.is_some())?;
        if self.topic.is_empty() {
            bail!("the source topic is empty");
        }
        let mut job = JobSpec {
            name: self.name,
            source: SourceSpec {
                topic: self.topic,
                key_field: self.key_field,
                event_time_field: self.event_time_field,
                event_id_field: self.event_id_field,
                allowed_lateness: self.allowed_lateness,
                idle_timeout: self.idle_timeout,
                max_future: self.max_future,
                max_message_bytes: self.max_message_bytes,
                fields: self.fields,
                format: self.format,
                expectations: self.expectations,
            },
            features,
            model: ModelSpec { name: self.model_name, version: self.model_version, bias: self.bias, inputs: self.inputs, online: self.online },
            sinks: self.sinks,
            monitor: None,
            strings: kept,
            tables: self.tables,
            joins,
            sources: self.sources,
            topic_joins: self.topic_joins,
        };
        check_topics(&job)?;
        let mut windowed = std::collections::HashMap::new();
        for s in std::iter::once(&job.source).chain(&job.sources) {
            check_expectations(s)?;
            // their quality records and series are keyed by name alone
            for e in s.expectations.iter().filter(|e| e.check.is_window()) {
                if let Some(other) = windowed.insert(e.name.as_str(), s.topic.as_str()) {
                    bail!(
                        "expectation `{}` is declared by sources `{other}` and `{}`: window-level expectations need names unique in the job",
                        e.name,
                        s.topic
                    );
                }
            }
        }
        if let Some(m) = self.monitor {
            job.monitor = Some(m.resolve(&job)?);
        }
        Ok(job)
    }
}

/// The model's inputs name features or numeric fields, and an online model's
/// settings hold together.
fn check_model(inputs: &[ModelInput], online: Option<&online::OnlineSpec>, features: &[FeatureDef], numeric: &[&FieldSpec], has_event_id: bool) -> Result<()> {
    for input in inputs {
        let known = features.iter().any(|f| f.name() == input.name) || numeric.iter().any(|n| n.name == input.name);
        if !known {
            bail!("model weight `{}` names neither a feature nor a numeric field", input.name);
        }
        if !input.weight.is_finite() {
            bail!("model weight `{}` is not finite", input.name);
        }
    }
    if let Some(o) = &online {
        if inputs.is_empty() {
            bail!("online training needs model inputs");
        }
        if o.variants == 0 || o.variants > 1024 {
            bail!("online training needs 1..=1024 variants");
        }
        if o.space.lr.is_empty() || o.space.l2.is_empty() || o.space.pos_weight.is_empty() {
            bail!("the search space needs at least one lr, l2 and pos_weight");
        }
        if o.kind == vigil_operators::learn::ModelKind::Mlp && o.space.hidden.is_empty() {
            bail!("an MLP needs hidden sizes");
        }
        if !has_event_id {
            bail!("online training joins labels by event id: set source.event_id");
        }
        if !(0.0..=1.0).contains(&o.ab_share) {
            bail!("ab_share must be in [0, 1]");
        }
    }
    Ok(())
}

/// Refuses two sources of one topic and joins between topics the job does not read.
fn check_topics(job: &JobSpec) -> Result<()> {
    let mut topics = vec![job.source.topic.as_str()];
    for s in &job.sources {
        if topics.contains(&s.topic.as_str()) {
            bail!("topic `{}` is read by two sources", s.topic);
        }
        topics.push(&s.topic);
    }
    for j in &job.topic_joins {
        for side in [&j.left, &j.right] {
            if !topics.contains(&side.as_str()) {
                bail!("topic_join `{}`: `{side}` is not one of the job's sources ({})", j.name, topics.join(", "));
            }
        }
        if j.left == j.right {
            bail!("topic_join `{}`: left and right are both `{}` (a topic's own sub-streams join in `[[join]]`)", j.name, j.left);
        }
    }
    Ok(())
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
pub use format::{AvroSchemas, ProtoDefinition, ProtobufSchema, RegistrySettings, SourceFormat};
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
