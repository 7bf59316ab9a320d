//! The TOML shape of a job: read by serde, then replayed onto [`JobBuilder`], so
//! the TOML is a thin front end onto the builder, not a second implementation.

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJob {
    #[serde(default)]
    job: RawJobMeta,
    /// `[source]`, or `[[source]]` for several topics (the first is the one the
    /// features and the model read).
    source: RawSources,
    #[serde(default, rename = "topic_join")]
    topic_joins: Vec<RawTopicJoin>,
    #[serde(default, rename = "feature")]
    features: Vec<RawFeature>,
    #[serde(default, rename = "table")]
    tables: Vec<RawTable>,
    #[serde(default, rename = "join")]
    joins: Vec<RawJoin>,
    #[serde(default)]
    model: Option<RawModel>,
    #[serde(default)]
    sinks: Option<RawSinks>,
    #[serde(default)]
    monitor: Option<crate::spec::monitor::MonitorSpec>,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJobMeta {
    name: String,
}
impl Default for RawJobMeta {
    fn default() -> Self {
        RawJobMeta { name: "vigil-job".into() }
    }
}
enum RawSources {
    One(RawSource),
    Many(Vec<RawSource>),
}

/// `[source]` or `[[source]]`, with the error of the form used (an untagged
/// enum would hide which field is wrong).
impl<'de> Deserialize<'de> for RawSources {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = toml::Value::deserialize(d)?;
        match v {
            toml::Value::Array(_) => Vec::<RawSource>::deserialize(v).map(RawSources::Many).map_err(|e| serde::de::Error::custom(format!("[[source]]: {e}"))),
            other => RawSource::deserialize(other).map(RawSources::One).map_err(|e| serde::de::Error::custom(format!("[source]: {e}"))),
        }
    }
}
/// `[[topic_join]]`: an interval join between two of the job's topics.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTopicJoin {
    name: String,
    /// The left and right topics.
    left: String,
    right: String,
    /// `"10m"`: the right event at most 10 minutes after the left one.
    within: Option<String>,
    /// `["-10m", "0s"]`: `lower <= right - left <= upper` (lower at most 0, upper at least 0).
    between: Option<[String; 2]>,
    /// The output topic.
    sink: String,
}
impl RawTopicJoin {
    fn into_join(self) -> Result<TopicJoin> {
        let name = self.name;
        let (lower, upper) = match (&self.within, &self.between) {
            (Some(w), None) => (0, parse_duration(w).with_context(|| format!("topic_join `{name}`: within"))?.as_millis() as i64),
            (None, Some([l, u])) => (
                parse_signed_ms(l).with_context(|| format!("topic_join `{name}`: between"))?,
                parse_signed_ms(u).with_context(|| format!("topic_join `{name}`: between"))?,
            ),
            _ => bail!("topic_join `{name}`: give its interval as `within` or as `between`, one of the two"),
        };
        if lower > 0 || upper < 0 {
            bail!("topic_join `{name}`: between = [{lower} ms, {upper} ms] must contain 0 (the right event before or after the left one by up to a bound)");
        }
        let ms = |v: i64| Duration::from_millis(v.unsigned_abs());
        Ok(TopicJoin { name, left: self.left, right: self.right, before: ms(lower), after: ms(upper), sink: self.sink })
    }
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    topic: String,
    key: String,
    event_time: String,
    event_id: Option<String>,
    allowed_lateness: Option<String>,
    idle_timeout: Option<String>,
    max_future: Option<String>,
    max_message_bytes: Option<usize>,
    /// `json` (default), `avro` or `protobuf`.
    format: Option<String>,
    /// `[source.avro]`: where an Avro source's writer schemas come from.
    avro: Option<RawAvro>,
    /// `[source.protobuf]`: a Protobuf source's message type.
    protobuf: Option<RawProtobuf>,
    #[serde(default)]
    schema: toml::Table,
    /// `[[source.expect]]`: data-quality expectations.
    #[serde(default)]
    expect: Vec<RawExpect>,
}

/// `[[source.expect]]`: one expectation, exactly one of its checks.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    name: String,
    /// The field judged (not for `freshness` and `volume`).
    #[serde(default)]
    field: String,
    range: Option<[f64; 2]>,
    one_of: Option<Vec<String>>,
    regex: Option<String>,
    max_length: Option<usize>,
    /// `dlq` (default) or `warn`: record-level checks.
    mode: Option<String>,
    /// Window-level: the least fraction of records carrying `field`.
    not_null_rate: Option<f64>,
    /// Window-level: `field`'s values are unique within a window.
    unique: Option<bool>,
    /// Window-level: a record later than this after its event time is stale.
    freshness: Option<String>,
    /// Window-level: `[min, max]` records per window.
    volume: Option<[u64; 2]>,
    /// `unique`, `freshness`: the largest fraction of duplicates or stale records (default 0).
    max_rate: Option<f64>,
    /// Window-level: the tumbling event-time window ("1m" unless set).
    window: Option<String>,
}

impl RawExpect {
    fn into_expectation(self, topic: &str) -> Result<crate::spec::Expectation> {
        use crate::spec::{Check, ExpectMode};
        let at = format!("[[source.expect]] `{}` of source `{topic}`", self.name);
        let max_rate = self.max_rate.unwrap_or(0.0);
        let mut checks = Vec::new();
        if let Some([min, max]) = self.range {
            checks.push(Check::Range { min, max });
        }
        if let Some(v) = self.one_of {
            checks.push(Check::OneOf(v));
        }
        if let Some(r) = self.regex {
            checks.push(Check::Regex(r));
        }
        if let Some(n) = self.max_length {
            checks.push(Check::MaxLength(n));
        }
        if let Some(min) = self.not_null_rate {
            checks.push(Check::NotNullRate { min });
        }
        match self.unique {
            Some(true) => checks.push(Check::Unique { max_rate }),
            Some(false) => bail!("{at}: `unique = false` checks nothing; leave it out"),
            None => {}
        }
        if let Some(lag) = &self.freshness {
            let max_lag = super::parse_duration(lag).with_context(|| format!("{at}: `freshness`"))?;
            checks.push(Check::Freshness { max_lag, max_rate });
        }
        if let Some([min, max]) = self.volume {
            checks.push(Check::Volume { min, max });
        }
        if checks.len() != 1 {
            bail!("{at}: set exactly one of `range`, `one_of`, `regex`, `max_length`, `not_null_rate`, `unique`, `freshness`, `volume` ({} set)", checks.len());
        }
        let check = checks.remove(0);
        if self.max_rate.is_some() && !matches!(check, Check::Unique { .. } | Check::Freshness { .. }) {
            bail!("{at}: `max_rate` applies to `unique` and `freshness` only");
        }
        if !check.is_window() && self.field.is_empty() {
            bail!("{at}: `field` is missing");
        }
        if check.is_window() && self.mode.is_some() {
            bail!("{at}: `mode` applies to record-level checks; `{}` is judged per window and writes `quality` records", check.method());
        }
        let window = match (&self.window, check.is_window()) {
            (Some(w), true) => super::parse_duration(w).with_context(|| format!("{at}: `window`"))?,
            (Some(_), false) => bail!("{at}: `window` applies to window-level checks (not_null_rate, unique, freshness, volume)"),
            (None, _) => crate::spec::DEFAULT_WINDOW,
        };
        let mode = match self.mode.as_deref() {
            None | Some("dlq") => ExpectMode::Dlq,
            Some("warn") => ExpectMode::Warn,
            Some(other) => bail!("{at}: `mode` is `{other}`; it must be \"dlq\" or \"warn\""),
        };
        Ok(crate::spec::Expectation { name: self.name, field: self.field, check, mode, window })
    }
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProtobuf {
    /// A `.proto` file (imports looked up beside it).
    schema_file: Option<String>,
    /// Or a compiled `FileDescriptorSet` (`protoc --include_imports --descriptor_set_out`).
    descriptor_set: Option<String>,
    /// Or a Confluent-compatible Schema Registry's base URL (Confluent wire format).
    registry: Option<String>,
    /// The message's full name; may be left out when the file defines one message.
    message: Option<String>,
    registry_user: Option<String>,
    registry_password_env: Option<String>,
    registry_timeout: Option<String>,
    registry_max_wait: Option<String>,
}
impl RawProtobuf {
    fn into_schema(self) -> Result<ProtobufSchema> {
        let message = self.message.as_deref();
        let registry = RawRegistry {
            table: "[source.protobuf]",
            user: self.registry_user,
            password_env: self.registry_password_env,
            timeout: self.registry_timeout,
            max_wait: self.registry_max_wait,
        };
        match (self.registry, self.schema_file, self.descriptor_set) {
            (Some(url), None, None) => Ok(ProtobufSchema::from_registry(registry.settings(&url)?, message)),
            (None, Some(path), None) => registry.none_for("schema_file").map(|()| ProtobufSchema::from_file(path, message)),
            (None, None, Some(path)) => registry.none_for("descriptor_set").and_then(|()| ProtobufSchema::from_descriptor_set_file(&path, message)),
            _ => bail!("[source.protobuf]: give one of `schema_file` (a .proto file), `descriptor_set` (a compiled FileDescriptorSet) or `registry` (a Schema Registry URL)"),
        }
    }
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAvro {
    /// A Confluent-compatible Schema Registry's base URL (Confluent wire format).
    registry: Option<String>,
    /// Or one `.avsc` file: every record is a bare datum of that schema.
    schema_file: Option<String>,
    registry_user: Option<String>,
    /// The environment variable holding the registry password.
    registry_password_env: Option<String>,
    registry_timeout: Option<String>,
    registry_max_wait: Option<String>,
}
impl RawAvro {
    fn into_schemas(self) -> Result<AvroSchemas> {
        let registry = RawRegistry {
            table: "[source.avro]",
            user: self.registry_user,
            password_env: self.registry_password_env,
            timeout: self.registry_timeout,
            max_wait: self.registry_max_wait,
        };
        match (self.registry, self.schema_file) {
            (Some(url), None) => Ok(AvroSchemas::Registry(registry.settings(&url)?)),
            (None, Some(path)) => registry.none_for("schema_file").and_then(|()| AvroSchemas::from_file(&path)),
            _ => bail!("[source.avro]: give either `registry` (a Schema Registry URL) or `schema_file` (an .avsc file), one of the two"),
        }
    }
}
/// The `registry_*` keys of a format's table.
struct RawRegistry {
    table: &'static str,
    user: Option<String>,
    /// The environment variable holding the registry password.
    password_env: Option<String>,
    timeout: Option<String>,
    max_wait: Option<String>,
}
impl RawRegistry {
    fn settings(self, url: &str) -> Result<RegistrySettings> {
        let table = self.table;
        let mut r = RegistrySettings::new(url);
        match (self.user, self.password_env) {
            (Some(user), Some(env)) => r = r.basic_auth_from_env(&user, &env)?,
            (None, None) => {}
            _ => bail!("{table}: give `registry_user` and `registry_password_env` together"),
        }
        if let Some(t) = &self.timeout {
            r = r.timeout(parse_duration(t).with_context(|| format!("{table} registry_timeout"))?);
        }
        if let Some(t) = &self.max_wait {
            r = r.max_wait(parse_duration(t).with_context(|| format!("{table} registry_max_wait"))?);
        }
        Ok(r)
    }
    /// Refuses `registry_*` keys on a source that reads its schema from `key`.
    fn none_for(&self, key: &str) -> Result<()> {
        let set = [
            ("registry_user", self.user.is_some()),
            ("registry_password_env", self.password_env.is_some()),
            ("registry_timeout", self.timeout.is_some()),
            ("registry_max_wait", self.max_wait.is_some()),
        ];
        match set.iter().find(|(_, set)| *set) {
            Some((name, _)) => bail!("{}: `{name}` applies to a registry, and this source reads its schema from `{key}`", self.table),
            None => Ok(()),
        }
    }
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFeature {
    name: String,
    agg: String,
    field: Option<String>,
    window: Option<String>,
    /// `on_update` (default) or `on_close`.
    emit: Option<String>,
    ttl: Option<String>,
    half_life: Option<String>,
    /// Pane of a `ratio_to_mean` or `approx_distinct` feature.
    pane: Option<String>,
    /// Register bits of an `approx_distinct` feature (default 10).
    precision: Option<u8>,
    /// The table of a `lookup` feature (`field` names its column).
    join: Option<String>,
    /// The string field holding a lookup's table key (default: the event key).
    on: Option<String>,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    name: String,
    topic: String,
    columns: Vec<String>,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    #[serde(default = "logistic")]
    kind: String,
    name: Option<String>,
    version: Option<String>,
    #[serde(default)]
    bias: f64,
    #[serde(default)]
    weights: BTreeMap<String, RawWeight>,
    weights_file: Option<String>,
    labels: Option<RawLabels>,
    online: Option<RawOnline>,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLabels {
    topic: String,
    #[serde(default = "event_id")]
    id: String,
    field: String,
    timeout: String,
    default: Option<bool>,
    time: Option<String>,
    delay: Option<String>,
    idle: Option<String>,
    lateness: Option<String>,
}
fn event_id() -> String {
    "event_id".into()
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOnline {
    device: Option<crate::gpu::DeviceChoice>,
    batch: Option<u32>,
    variants: Option<usize>,
    lr: Option<Vec<f32>>,
    l2: Option<Vec<f32>>,
    pos_weight: Option<Vec<f32>>,
    hidden: Option<Vec<u32>>,
    optimizer: Option<vigil_operators::learn::OptimizerKind>,
    momentum: Option<f32>,
    select_every: Option<u64>,
    window: Option<usize>,
    min_labels: Option<usize>,
    pending_budget_mb: Option<usize>,
    keep_above: Option<f32>,
    runs_dir: Option<String>,
    seed: Option<u64>,
    ab_share: Option<f64>,
    label_grace: Option<String>,
    init: Option<String>,
    consistency: Option<crate::spec::online::Consistency>,
    step: Option<String>,
    hold_limit: Option<usize>,
}
fn logistic() -> String {
    "logistic".into()
}
#[derive(Deserialize)]
#[serde(untagged)]
enum RawWeight {
    Plain(f64),
    Transformed { weight: f64, transform: Transform },
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSinks {
    scores: String,
    dlq: String,
    features: Option<String>,
    shadow: Option<String>,
    drift: Option<String>,
    windows: Option<String>,
    joins: Option<String>,
    /// `json` (default) or `avro`: how `scores`, `features` and `drift` are written.
    format: Option<String>,
    avro: Option<RawSinkAvro>,
}
/// `[sinks.avro]`: the registry the output schemas are registered in.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSinkAvro {
    registry: String,
    registry_user: Option<String>,
    registry_password_env: Option<String>,
    registry_timeout: Option<String>,
    registry_max_wait: Option<String>,
}
impl RawSource {
    fn into_spec(self) -> Result<SourceSpec> {
        let topic = self.topic;
        let context = || format!("source `{topic}`");
        let d = |v: &Option<String>, default: Duration| v.as_deref().map(parse_duration).transpose().map(|d| d.unwrap_or(default));
        let mut fields = Vec::new();
        for (name, ty) in &self.schema {
            let ty = ty.as_str().with_context(|| format!("schema type of `{name}` must be a string")).with_context(context)?;
            let (ty_name, optional) = match ty.strip_suffix('?') {
                Some(t) => (t, true),
                None => (ty, false),
            };
            let ty = FieldType::parse(ty_name).with_context(|| format!("unknown type `{ty}` for `{name}`")).with_context(context)?;
            fields.push(FieldSpec { name: name.clone(), ty, optional });
        }
        let format = match (self.format.as_deref(), self.avro, self.protobuf) {
            (None | Some("json"), None, None) => SourceFormat::Json,
            (Some("avro"), Some(avro), None) => SourceFormat::Avro(avro.into_schemas().with_context(context)?),
            (Some("avro"), None, None) => bail!("source `{topic}`: format = \"avro\" needs [source.avro] with `registry` or `schema_file`"),
            (Some("protobuf"), None, Some(p)) => SourceFormat::Protobuf(p.into_schema().with_context(context)?),
            (Some("protobuf"), None, None) => {
                bail!("source `{topic}`: format = \"protobuf\" needs [source.protobuf] with `schema_file`, `descriptor_set` or `registry`")
            }
            (Some("json" | "avro" | "protobuf") | None, avro, _) => {
                let table = if avro.is_some() { "avro" } else { "protobuf" };
                bail!("source `{topic}`: [source.{table}] is set but `format` is not \"{table}\"")
            }
            (Some(other), _, _) => bail!("source `{topic}`: unknown format `{other}` (json, avro or protobuf)"),
        };
        let spec = SourceSpec {
            format,
            key_field: self.key,
            event_time_field: self.event_time,
            event_id_field: self.event_id,
            // the builder's defaults (`JobBuilder::new`)
            allowed_lateness: d(&self.allowed_lateness, Duration::from_secs(5)).with_context(context)?,
            idle_timeout: d(&self.idle_timeout, Duration::from_secs(10)).with_context(context)?,
            max_future: d(&self.max_future, Duration::from_secs(3600)).with_context(context)?,
            max_message_bytes: self.max_message_bytes.unwrap_or(64 * 1024),
            fields,
            expectations: self.expect.into_iter().map(|e| e.into_expectation(&topic)).collect::<Result<_>>()?,
            topic: topic.clone(),
        };
        crate::decode::avro::check_fixed_schema(&spec).with_context(context)?;
        crate::decode::protobuf::check_schema(&spec).with_context(context)?;
        Ok(spec)
    }
}

/// `[[join]]`: a stream-stream interval join (see `IntervalJoinDecl`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJoin {
    name: String,
    left: Option<RawSide>,
    right: Option<RawSide>,
    /// `"10m"`: the right event at most 10 minutes after the left one.
    within: Option<String>,
    /// `["-1m", "10m"]`: `lower <= right - left <= upper`.
    between: Option<[String; 2]>,
    on: Option<String>,
    #[serde(default)]
    unmatched: bool,
}
/// `{ field = "action", equals = "view" }`
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSide {
    field: String,
    equals: String,
}
impl RawJoin {
    fn into_decl(self) -> Result<IntervalJoinDecl> {
        let mut d = IntervalJoinDecl::new(&self.name);
        if let Some(s) = &self.left {
            d = d.left(&s.field, &s.equals);
        }
        if let Some(s) = &self.right {
            d = d.right(&s.field, &s.equals);
        }
        d = match (&self.within, &self.between) {
            (Some(w), None) => d.within(parse_duration(w).with_context(|| format!("join `{}`: within", self.name))?),
            (None, Some([lower, upper])) => d.between_ms(
                parse_signed_ms(lower).with_context(|| format!("join `{}`: between", self.name))?,
                parse_signed_ms(upper).with_context(|| format!("join `{}`: between", self.name))?,
            ),
            _ => bail!("join `{}`: give its interval as `within` or as `between`, one of the two", self.name),
        };
        if let Some(on) = &self.on {
            d = d.on(on);
        }
        if self.unmatched {
            d = d.emit_unmatched();
        }
        Ok(d)
    }
}
/// The JSON of a weights file: `{"bias": b, "weights": {"name": w | {"weight", "transform"}}}`.
#[derive(Deserialize)]
struct WeightsFile {
    #[serde(default)]
    bias: f64,
    weights: BTreeMap<String, RawWeight>,
}

impl RawOnline {
    fn into_spec(self, kind: vigil_operators::learn::ModelKind, labels: crate::spec::online::LabelSpec) -> Result<crate::spec::online::OnlineSpec> {
        let mut o = crate::spec::online::OnlineSpec::new(kind, labels);
        let sp = &mut o.space;
        sp.lr = self.lr.unwrap_or(std::mem::take(&mut sp.lr));
        sp.l2 = self.l2.unwrap_or(std::mem::take(&mut sp.l2));
        sp.pos_weight = self.pos_weight.unwrap_or(std::mem::take(&mut sp.pos_weight));
        if kind == vigil_operators::learn::ModelKind::Mlp {
            sp.hidden = self.hidden.unwrap_or(std::mem::take(&mut sp.hidden));
        }
        sp.optimizer = self.optimizer.unwrap_or(sp.optimizer);
        sp.momentum = self.momentum.unwrap_or(sp.momentum);
        o.device = self.device.unwrap_or(o.device);
        o.batch = self.batch.unwrap_or(o.batch);
        o.variants = self.variants.unwrap_or(o.variants);
        o.select_every = self.select_every.unwrap_or(o.select_every).max(1);
        o.window = self.window.unwrap_or(o.window).max(100);
        o.min_labels = self.min_labels.unwrap_or(o.min_labels);
        o.pending_budget = self.pending_budget_mb.map_or(o.pending_budget, |mb| mb.saturating_mul(1 << 20));
        o.keep_above = self.keep_above.unwrap_or(o.keep_above);
        o.runs_dir = self.runs_dir.map(std::path::PathBuf::from);
        o.seed = self.seed.unwrap_or(o.seed);
        o.ab_share = self.ab_share.unwrap_or(o.ab_share);
        o.init = self.init.map(std::path::PathBuf::from);
        if let Some(g) = self.label_grace.as_deref() {
            o.label_grace = parse_duration(g)?;
        }
        o.consistency = self.consistency.unwrap_or(o.consistency);
        if let Some(step) = self.step.as_deref() {
            o.step = parse_duration(step)?;
        }
        o.hold_limit = self.hold_limit.unwrap_or(o.hold_limit).max(1);
        Ok(o)
    }
}

impl RawJob {
    pub fn into_builder(self) -> Result<JobBuilder> {
        let mut sources = match self.source {
            RawSources::One(s) => vec![s],
            RawSources::Many(v) => v,
        }
        .into_iter();
        let main = sources.next().context("[[source]]: a job reads at least one topic")?;
        let mut b = JobBuilder::new(&self.job.name).source(main.into_spec()?);
        for s in sources {
            b = b.extra_source(s.into_spec()?);
        }
        for j in self.topic_joins {
            b = b.topic_join(j.into_join()?);
        }
        for t in &self.tables {
            b = b.table(&t.name, &t.topic, &t.columns.iter().map(String::as_str).collect::<Vec<_>>());
        }
        for j in self.joins {
            b = b.interval_join(j.into_decl()?);
        }
        for f in self.features {
            b = f.add_to(b)?;
        }
        if let Some(m) = self.model {
            b = m.add_to(b)?;
        }
        if let Some(s) = self.sinks {
            b = s.add_to(b)?;
        }
        if let Some(m) = self.monitor {
            b = b.monitor(m);
        }
        Ok(b)
    }
}

impl RawFeature {
    /// Declares this feature on `b` (checked when the job is built).
    fn add_to(self, b: JobBuilder) -> Result<JobBuilder> {
        let f = self;
        let decayed = match f.agg.as_str() {
            "decayed_count" => Some(DecayKind::Count),
            "decayed_sum" => Some(DecayKind::Sum),
            "decayed_avg" | "decayed_mean" => Some(DecayKind::Avg),
            _ => None,
        };
        let b = if f.agg == "prev_value" {
            let field = f.field.as_deref().with_context(|| format!("feature `{}` needs a field", f.name))?;
            let ttl = f.ttl.as_deref().map(parse_duration).transpose()?.unwrap_or(Duration::from_secs(86_400));
            b.prev_value_feature(&f.name, field, ttl)
        } else if let Some(kind) = decayed {
            let half_life = f.half_life.as_deref().with_context(|| format!("feature `{}` needs a half_life", f.name))?;
            let ttl = f.ttl.as_deref().map(parse_duration).transpose()?;
            b.decayed_feature(&f.name, kind, f.field.as_deref(), parse_duration(half_life)?, ttl)
        } else if f.agg == "ratio_to_mean" {
            let field = f.field.as_deref().with_context(|| format!("feature `{}` needs a field", f.name))?;
            let window = f.window.as_deref().with_context(|| format!("feature `{}` needs a window", f.name))?;
            let pane = f.pane.as_deref().with_context(|| format!("feature `{}` needs a pane (e.g. \"1h\")", f.name))?;
            b.ratio_to_mean_feature(&f.name, field, parse_duration(window)?, parse_duration(pane)?)
        } else if f.agg == "lookup" {
            let table = f.join.as_deref().with_context(|| format!("feature `{}`: a lookup needs `join = \"TABLE\"`", f.name))?;
            let column = f.field.as_deref().with_context(|| format!("feature `{}`: a lookup needs `field` (the column)", f.name))?;
            b.lookup_feature(&f.name, table, column, f.on.as_deref())
        } else if f.agg == "approx_distinct" {
            let field = f.field.as_deref().with_context(|| format!("feature `{}` needs a field", f.name))?;
            let window = f.window.as_deref().with_context(|| format!("feature `{}` needs a window", f.name))?;
            let pane = f.pane.as_deref().with_context(|| format!("feature `{}` needs a pane (e.g. \"1h\")", f.name))?;
            b.approx_distinct_feature(&f.name, field, parse_duration(window)?, parse_duration(pane)?, f.precision.unwrap_or(10))
        } else if f.agg == "distinct_count" || f.agg == "count_distinct" {
            let field = f.field.as_deref().with_context(|| format!("feature `{}` needs a field", f.name))?;
            let window = f.window.as_deref().with_context(|| format!("feature `{}` needs a window", f.name))?;
            match Window::parse(window)? {
                Window::Sliding(w) => b.distinct_count_feature(&f.name, field, w),
                _ => bail!("feature `{}`: distinct counts are over sliding windows", f.name),
            }
        } else if f.agg == "time_since_prev" {
            let ttl = f.ttl.as_deref().map(parse_duration).transpose()?.unwrap_or(Duration::from_secs(86_400));
            b.time_since_prev_feature(&f.name, ttl)
        } else {
            let agg = Agg::parse(&f.agg).with_context(|| format!("feature `{}`: unknown agg `{}`", f.name, f.agg))?;
            let window = f.window.as_deref().with_context(|| format!("feature `{}` needs a window", f.name))?;
            let emit = match f.emit.as_deref() {
                None | Some("on_update") => Emit::OnUpdate,
                Some("on_close") => Emit::OnClose,
                Some(e) => bail!("feature `{}`: emit is `on_update` or `on_close`, not `{e}`", f.name),
            };
            b.windowed_feature(&f.name, agg, f.field.as_deref(), Window::parse(window).with_context(|| format!("feature `{}`", f.name))?, emit)
        };
        Ok(b)
    }
}

impl RawModel {
    /// Declares the model (weights, or online training and its labels) on `b`.
    fn add_to(self, mut b: JobBuilder) -> Result<JobBuilder> {
        let m = self;
        let kind = match m.kind.as_str() {
            "logistic" => vigil_operators::learn::ModelKind::Logistic,
            "mlp" => vigil_operators::learn::ModelKind::Mlp,
            k => bail!("model kind `{k}` is not supported (`logistic` or `mlp`)"),
        };
        if kind == vigil_operators::learn::ModelKind::Mlp && m.online.is_none() {
            bail!("an `mlp` model is trained online: add [model.online] and labels");
        }
        match (m.labels, m.online) {
            (Some(l), Some(o)) => {
                let mut labels = crate::spec::online::LabelSpec::new(&l.topic, &l.id, &l.field, parse_duration(&l.timeout)?, l.default);
                labels.time = l.time;
                if let Some(d) = l.delay.as_deref() {
                    labels.delay = parse_duration(d)?;
                }
                if let Some(d) = l.idle.as_deref() {
                    labels.idle = parse_duration(d)?;
                }
                if let Some(d) = l.lateness.as_deref() {
                    labels.lateness = parse_duration(d)?;
                }
                b = b.online(o.into_spec(kind, labels)?);
            }
            (None, Some(_)) => {
                bail!("[model.online] needs `labels = {{ topic, field, timeout }}`")
            }
            (Some(_), None) => {
                bail!("`labels` are only read by online training: add [model.online]")
            }
            (None, None) => {}
        }
        b = b.model_name(m.name.as_deref().unwrap_or("logistic"), m.version.as_deref().unwrap_or("1"));
        let (bias, weights) = match m.weights_file {
            Some(path) => {
                let text = std::fs::read_to_string(&path).with_context(|| format!("reading weights file {path}"))?;
                let w: WeightsFile = serde_json::from_str(&text).with_context(|| format!("parsing weights file {path}"))?;
                (w.bias, w.weights)
            }
            None => (m.bias, m.weights),
        };
        b = b.bias(bias);
        for (name, w) in weights {
            b = match w {
                RawWeight::Plain(w) => b.weight(&name, w),
                RawWeight::Transformed { weight, transform } => b.weight_with(&name, weight, transform),
            };
        }
        Ok(b)
    }
}

impl RawSinks {
    /// Names the job's output topics on `b`, and how they are written.
    fn add_to(self, mut b: JobBuilder) -> Result<JobBuilder> {
        let s = self;
        b = b.sinks(&s.scores, &s.dlq);
        match (s.format.as_deref(), s.avro) {
            (None | Some("json"), None) => {}
            (Some("avro"), Some(a)) => {
                let registry = RawRegistry {
                    table: "[sinks.avro]",
                    user: a.registry_user,
                    password_env: a.registry_password_env,
                    timeout: a.registry_timeout,
                    max_wait: a.registry_max_wait,
                };
                b = b.avro_outputs(registry.settings(&a.registry)?);
            }
            (Some("avro"), None) => {
                bail!("[sinks]: format = \"avro\" needs [sinks.avro] with `registry` (a Schema Registry URL: the output schemas are registered there)")
            }
            (None | Some("json"), Some(_)) => bail!("[sinks]: [sinks.avro] is set but `format` is not \"avro\""),
            (Some(other), _) => bail!("[sinks]: unknown format `{other}` (json or avro)"),
        }
        if let Some(f) = &s.features {
            b = b.features_sink(f);
        }
        if let Some(f) = &s.shadow {
            b = b.shadow_sink(f);
        }
        if let Some(f) = &s.drift {
            b = b.drift_sink(f);
        }
        if let Some(f) = &s.windows {
            b = b.windows_sink(f);
        }
        if let Some(f) = &s.joins {
            b = b.joins_sink(f);
        }
        Ok(b)
    }
}
