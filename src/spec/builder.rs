//! [`JobBuilder`]: a [`JobSpec`] built step by step (the Rust API; the TOML
//! front end replays a job's file onto it), and `build`, which checks the
//! whole job: fields, features, the model, topics, expectations, the monitor.

use super::*;

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
            sinks: SinkSpec {
                scores: "scores".into(),
                dlq: "dlq".into(),
                features: None,
                shadow: None,
                drift: None,
                windows: None,
                joins: None,
                format: Default::default(),
            },
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
    /// Writes `scores`, `features` and `drift` as Confluent-framed Avro, their
    /// schemas registered in this registry when the job starts
    /// ([`crate::output::avro`]); the other topics stay JSON.
    pub fn avro_outputs(mut self, registry: RegistrySettings) -> Self {
        self.sinks.format = OutputFormat::Avro(registry);
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
        for s in std::iter::once(&job.source).chain(&job.sources) {
            check_expectations(s)?;
        }
        expect::check_window_names(std::iter::once(&job.source).chain(&job.sources))?;
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
