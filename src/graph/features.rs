//! Per-key features on a stream: `stream.features("name", Features::new()...)`.
//!
//! Each event of a [`Record`] stream goes to its key's worker and comes out as
//! the same record extended with its features ([`Record::extend`]), computed as
//! of itself: the key's earlier events (in offset order) and itself, within the
//! window that ends at its own time. The definitions and their semantics are the
//! TOML job's (`[[feature]]`, [`vigil_operators::FeatureDef`]): sliding, tumbling,
//! hopping and session windows, time since the previous event, decayed sums,
//! previous values, ratios to a long mean, exact and approximate distinct counts.
//! A job's features ([`Features::of_job`]) give the same values through the graph
//! as through the job's own pipeline (the golden tests check it byte for byte).
//!
//! Ordering and finality: an event's features are final when it leaves (later
//! events never change them). Features that emit on close (`emit = "on_close"`)
//! leave on the second stream of [`Stream::features_and_windows`] once their
//! partition's watermark passes the window's end, and all at the end of the input.
//! Keys idle longer than the longest feature's reach leave the state.
//!
//! Lookups ([`Features::lookup`], TOML `[[table]]` and `agg = "lookup"`): a
//! column of the row a [`SharedTable`] holds for the event's key (or a string
//! field's value) as the table stands when the event is featured, as in the
//! pipeline (Flink's lookup join): `vigil run` loads each table from its
//! compacted topic before the first event and follows it live, so a change
//! reaches the events featured after it. For an answer that does not depend on
//! timing, join the table's stream as of event time ([`Stream::join_as_of`]).
//!
//! State: every key's history, checkpointed under the operator's name as of the
//! end of each checkpoint epoch, restored by key into any number of workers.
//!
//! ```
//! use std::time::Duration;
//! use vigil::graph::{Features, LocalRun, Source};
//! use vigil::spec::FieldType;
//! use vigil_operators::Agg;
//!
//! let t0 = 1_700_000_000_000i64;
//! let tx = |card: &str, s: i64, amount: f64| format!(r#"{{"card":"{card}","ts":{},"amount":{amount}}}"#, t0 + s * 1000).into_bytes();
//! let out = LocalRun::new(2)
//!     .topic("tx", vec![vec![tx("a", 0, 5.0), tx("b", 1, 7.0), tx("a", 30, 10.0), tx("a", 90, 1.0)]])
//!     .run(|g| {
//!         let minute = Duration::from_secs(60);
//!         let features = Features::new().window("n_1m", Agg::Count, None, minute).window("sum_1m", Agg::Sum, Some("amount"), minute);
//!         g.source(Source::json("tx").key("card").field("amount", FieldType::F64))
//!             .features("card_features", features)
//!             .map(|r| (r.f64("n_1m").unwrap_or(0.0), r.f64("sum_1m").unwrap_or(0.0)))
//!             .sink("features");
//!         Ok(())
//!     })
//!     .unwrap();
//! let a: Vec<_> = out.sink("features").into_iter().filter(|r| r.key == "a").filter_map(|r| r.value.as_deref()).collect();
//! assert_eq!(a, vec!["[1.0,5.0]", "[2.0,15.0]", "[1.0,1.0]"]);
//! ```

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use vigil_operators::distinct::{tag_of, ABSENT};
use vigil_operators::{Agg, ClosedWindow, FeatureDef, FeatureState, WindowFeature};

use super::gated::{gated, Gated};
use super::keyed::Origin;
use super::record::{FieldReader, Record, Schema};
use super::sink::Written;
use super::stream::{Msg, Rec, Stream};
use crate::spec::JobSpec;
use crate::table::SharedTable;
use crate::types::key_hash;

/// The version of the operator's checkpointed state ([`FeatureState`] in bincode).
const STATE_VERSION: u32 = 1;

/// Feature definitions over a record's fields; see the module docs.
#[derive(Clone, Debug, Default)]
pub struct Features {
    defs: Vec<FeatureDef>,
    /// The numeric fields the definitions read (their `field` indices point here).
    fields: Vec<String>,
    /// The string fields distinct counts read (their `tag` indices point here).
    tags: Vec<String>,
    /// Lookup features: where each writes and what it reads.
    lookups: Vec<LookupSlot>,
    /// Misconfigurations found while building, reported when the graph starts.
    errors: Vec<String>,
}

/// A lookup feature's slot among the features, its table and column, and the
/// string field holding the table key (`None`: the event's key).
#[derive(Clone, Debug)]
struct LookupSlot {
    slot: usize,
    table: Arc<SharedTable>,
    column: usize,
    on: Option<String>,
}

impl Features {
    pub fn new() -> Self {
        Features::default()
    }

    /// A sliding window of `len` ending at each event: `agg` of `field` (or of
    /// the events, for a count).
    pub fn window(mut self, name: &str, agg: Agg, field: Option<&str>, len: Duration) -> Self {
        let field = field.map(|f| self.field(f));
        self.defs.push(FeatureDef::Window(WindowFeature::sliding(name, agg, field, len.as_millis() as i64)));
        self
    }

    /// Seconds since the key's previous event (null for the first, or beyond `ttl`).
    pub fn time_since_prev(mut self, name: &str, ttl: Duration) -> Self {
        self.defs.push(FeatureDef::TimeSincePrev { name: name.to_owned(), ttl_ms: ttl.as_millis() as i64 });
        self
    }

    /// `field`'s value at the key's previous event (null for the first, or beyond `ttl`).
    pub fn prev_value(mut self, name: &str, field: &str, ttl: Duration) -> Self {
        let field = self.field(field);
        self.defs.push(FeatureDef::PrevValue { name: name.to_owned(), field, ttl_ms: ttl.as_millis() as i64 });
        self
    }

    /// A column of the row `table` holds for the event's key, or for the value
    /// of the string field `on` (null for an unknown key or column value); see
    /// the module docs. An unknown column is an error when the graph starts.
    ///
    /// ```
    /// use vigil::graph::{Features, LocalRun, Source};
    /// use vigil::metrics::Metrics;
    /// use vigil::spec::{FieldType, TableSpec};
    /// use vigil::table::SharedTable;
    ///
    /// let spec = TableSpec { name: "merchants".into(), topic: "merchant_risk".into(), columns: vec!["risk".into()] };
    /// let rows = vec![(Some(b"m1".to_vec()), Some(br#"{"risk":0.9}"#.to_vec())), (Some(b"m2".to_vec()), None)];
    /// let merchants = SharedTable::from_records(&spec, &rows, &Metrics::new());
    /// let tx = |m: &str| format!(r#"{{"card":"c1","ts":1700000000000,"merchant":"{m}"}}"#).into_bytes();
    /// let out = LocalRun::new(1)
    ///     .topic("tx", vec![vec![tx("m1"), tx("m2")]])
    ///     .run(move |g| {
    ///         let features = Features::new().lookup("merchant_risk", &merchants, "risk", Some("merchant"));
    ///         g.source(Source::json("tx").key("card").field("merchant", FieldType::Str))
    ///             .features("f", features)
    ///             .map(|r| r.f64("merchant_risk"))
    ///             .sink("risk");
    ///         Ok(())
    ///     })
    ///     .unwrap();
    /// assert_eq!(out.values("risk"), vec!["0.9", "null"]);
    /// ```
    pub fn lookup(mut self, name: &str, table: &Arc<SharedTable>, column: &str, on: Option<&str>) -> Self {
        let slot = self.defs.len();
        let index = table.column(column).unwrap_or_else(|| {
            self.errors.push(format!("feature `{name}`: table `{}` has no column `{column}`", table.name()));
            0
        });
        self.defs.push(FeatureDef::Lookup(vigil_operators::Lookup { name: name.to_owned(), table: 0, column: index, on: None }));
        self.lookups.push(LookupSlot { slot, table: table.clone(), column: index, on: on.map(str::to_owned) });
        self
    }

    /// Every feature of a job (`[[feature]]` in TOML, or `JobBuilder`), over its
    /// source's fields. A job with lookup features needs its tables:
    /// [`Features::of_job_with_tables`].
    pub fn of_job(job: &JobSpec) -> Result<Features> {
        Features::of_job_with_tables(job, &[])
    }

    /// [`Features::of_job`], its lookups reading `tables` (found by name: the
    /// job's `[[table]]`s, loaded by `vigil run` or [`SharedTable::from_records`]).
    pub fn of_job_with_tables(job: &JobSpec, tables: &[Arc<SharedTable>]) -> Result<Features> {
        let mut lookups = Vec::new();
        for (slot, def) in job.features.iter().enumerate() {
            let FeatureDef::Lookup(l) = def else { continue };
            let spec = &job.tables[l.table];
            let Some(table) = tables.iter().find(|t| t.name() == spec.name) else {
                bail!("feature `{}` looks up table `{}`, which was not given (topic `{}`)", l.name, spec.name, spec.topic);
            };
            let column = &spec.columns[l.column];
            let Some(column) = table.column(column) else { bail!("feature `{}`: table `{}` has no column `{column}`", l.name, spec.name) };
            lookups.push(LookupSlot { slot, table: table.clone(), column, on: l.on.map(|k| job.strings[k].clone()) });
        }
        Ok(Features {
            defs: job.features.clone(),
            fields: job.numeric_fields().iter().map(|f| f.name.clone()).collect(),
            tags: job.strings.clone(),
            lookups,
            errors: Vec::new(),
        })
    }

    /// The features' names, in the order they are computed.
    pub fn names(&self) -> Vec<String> {
        self.defs.iter().map(|d| d.name().to_owned()).collect()
    }

    fn field(&mut self, name: &str) -> usize {
        match self.fields.iter().position(|f| f == name) {
            Some(i) => i,
            None => {
                self.fields.push(name.to_owned());
                self.fields.len() - 1
            }
        }
    }
}

/// A window of a feature that emits on close (the `windows` topic's record):
/// `{"key","feature","window","window_start","window_end","value","count"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClosedWindowRecord {
    pub key: String,
    pub feature: String,
    pub window: String,
    pub window_start: i64,
    pub window_end: i64,
    pub value: Option<f64>,
    pub count: u64,
}

/// Everything the features operator emits, in one stream (so that a key's
/// records keep their order): featured events, closed windows, and keys that
/// left the state (their `features` record becomes a tombstone).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum FeatureOutput {
    Event(Record),
    Window(ClosedWindowRecord),
    /// The key (the envelope's) left the state: idle past every feature's reach.
    Expired,
}

/// Which outputs an operator keeps, as what.
struct Emit<O> {
    event: Box<dyn FnMut(Record) -> O>,
    window: fn(ClosedWindowRecord) -> Option<O>,
    expired: Option<fn() -> O>,
}

impl<'s> Stream<'s, Record> {
    /// Each event with its features as of itself, under `name`; see the module
    /// docs. (Windows of features that emit on close are not written: see
    /// [`Stream::features_and_windows`].)
    pub fn features(&self, name: &str, features: Features) -> Stream<'s, Record> {
        self.feature_operator(name, features, Emit { event: Box::new(|r| r), window: |_| None, expired: None })
    }

    /// [`Stream::features`] then [`Stream::score`] in one operator: the same
    /// output, one step less per event.
    pub fn features_scored(&self, name: &str, features: Features, model: super::Model) -> Stream<'s, super::Scored> {
        self.feature_operator(name, features, Emit { event: Box::new(model.scorer()), window: |_| None, expired: None })
    }

    /// [`Stream::features`], and the windows of features that emit on close.
    pub fn features_and_windows(&self, name: &str, features: Features) -> (Stream<'s, Record>, Stream<'s, ClosedWindowRecord>) {
        let out = self.features_all(name, features);
        let events = out.flat_map(|o| match o {
            FeatureOutput::Event(r) => Some(r),
            _ => None,
        });
        let windows = out.flat_map(|o| match o {
            FeatureOutput::Window(w) => Some(w),
            _ => None,
        });
        (events, windows)
    }

    /// Every output of the features operator in one stream: featured events,
    /// closed windows and keys that left the state, each key's in order (what
    /// [`Stream::sink_features`] writes).
    pub fn features_all(&self, name: &str, features: Features) -> Stream<'s, FeatureOutput> {
        let emit = Emit { event: Box::new(FeatureOutput::Event), window: |w| Some(FeatureOutput::Window(w)), expired: Some(|| FeatureOutput::Expired) };
        self.feature_operator(name, features, emit)
    }

    fn feature_operator<O: Clone + 'static>(&self, name: &str, features: Features, emit: Emit<O>) -> Stream<'s, O> {
        self.shared.claim(name, STATE_VERSION);
        self.shared.errors.borrow_mut().extend(features.errors.iter().map(|e| format!("features `{name}`: {e}")));
        let mut op = FeatureOp::new(&features, emit);
        self.shared.restore_each::<FeatureState>(name, "features", |old| {
            let shared = self.shared.clone();
            if let Err(e) = op.state.absorb(old, |k| shared.owns(key_hash(k))) {
                self.shared.errors.borrow_mut().push(format!("features `{name}`: {e}"));
            }
        });
        gated(self, name, op)
    }
}

impl<'s> Stream<'s, FeatureOutput> {
    /// The `features` topic of a job, byte for byte: per event
    /// `{"key","event_time","features":{..}}` (upsert by key), and a tombstone
    /// when a key leaves the state.
    pub fn sink_features(&self, name: &str) {
        // the encoder of the latest layout (schema objects: the added names)
        let mut encoders: Option<(Record, crate::output::ScoreEncoder)> = None;
        let mut values = Vec::new();
        self.sink_with(name, move |r, buf| {
            let record = match &r.value {
                FeatureOutput::Event(record) => record,
                FeatureOutput::Expired => return Written::Tombstone,
                FeatureOutput::Window(_) => return Written::Nothing,
            };
            let (names, added) = record.added().unwrap_or((&[], &[]));
            if encoders.as_ref().is_none_or(|(layout, _)| !layout.same_layout(record)) {
                encoders = Some((record.clone(), crate::output::ScoreEncoder::new("", "", "", names)));
            }
            values.clear();
            values.extend(added.iter().map(|v| Some(*v).filter(|v| !v.is_nan())));
            if let Some((_, e)) = &encoders {
                e.encode_features(buf, &r.key, r.time_ms, &values);
            }
            Written::Value
        })
    }
}

/// The operator's work on one worker, without timely; `O` is what it emits.
struct FeatureOp<O> {
    state: FeatureState,
    features: Features,
    emit: Emit<O>,
    fields: FieldReader,
    /// The names the features add to a record.
    added: Arc<Schema>,
    /// Which origin each of the state's partition numbers stands for.
    origins: Vec<Origin>,
    // scratch, reused across events
    values: Vec<f64>,
    tags: Vec<u64>,
    out: Vec<Option<f64>>,
    closed: Vec<ClosedWindow>,
}

impl<O> FeatureOp<O> {
    fn new(features: &Features, emit: Emit<O>) -> Self {
        let added = Arc::new(Schema { topic: String::new(), numeric: features.names(), strings: Vec::new() });
        FeatureOp {
            state: FeatureState::new(features.defs.clone(), features.fields.len()),
            features: features.clone(),
            emit,
            fields: FieldReader::new(&features.fields),
            added,
            origins: Vec::new(),
            values: Vec::new(),
            tags: Vec::new(),
            out: Vec::new(),
            closed: Vec::new(),
        }
    }

    /// The state's partition number of an origin: watermarks (and so window
    /// closes and expiry) are per (source, partition).
    fn partition(origin: Origin) -> u32 {
        (origin.source << 20) ^ origin.partition
    }

    fn observe(&mut self, r: Rec<Record>, batch: &mut Vec<Msg<O>>) {
        self.fields.read_nan(&r.value, &mut self.values);
        self.tags.clear();
        let tags = self.features.tags.iter().take(self.state.tags());
        self.tags.extend(tags.map(|t| r.value.str(t).map_or(ABSENT, tag_of)));
        if self.origins.last() != Some(&r.origin) && !self.origins.contains(&r.origin) {
            self.origins.push(r.origin);
        }
        let p = Self::partition(r.origin);
        self.state.observe_tagged(&r.key, p, r.watermark, r.time_ms, &self.values, &self.tags, &mut self.out);
        for l in &self.features.lookups {
            let key = match &l.on {
                Some(field) => r.value.str(field),
                None => Some(r.key.as_str()),
            };
            self.out[l.slot] = key.and_then(|k| l.table.get(k, l.column));
        }
        let mut values = Vec::with_capacity(self.out.len());
        values.extend(self.out.iter().map(|v| v.unwrap_or(f64::NAN)));
        let Rec { key, time_ms, origin, offset, watermark, value } = r;
        let value = (self.emit.event)(value.extend(self.added.clone(), values));
        batch.push(Msg::Event(Rec { key, time_ms, origin, offset, watermark, value }));
    }

    /// The windows whose partition's watermark passed their end, and the keys
    /// that left the state (unless they came back since), each stamped with
    /// when it left by its partition's clock: after its last event, though the
    /// stream's watermark may lag that partition's.
    fn close_due(&mut self, batch: &mut Vec<Msg<O>>, watermark: i64) {
        self.state.close_due(&mut self.closed);
        self.emit_closed(batch, watermark);
        let gone = self.state.take_expired();
        let Some(expired) = self.emit.expired else { return };
        let origin = self.origins.first().copied().unwrap_or(Origin { source: 0, partition: 0 });
        for (key, left) in gone.into_iter().filter(|(k, _)| !self.state.is_live(k)) {
            batch.push(Msg::Event(Rec { key, time_ms: left.max(watermark), origin, offset: -1, watermark, value: expired() }));
        }
    }

    fn close_all(&mut self, batch: &mut Vec<Msg<O>>) {
        self.state.close_all(&mut self.closed);
        self.emit_closed(batch, i64::MAX);
    }

    fn emit_closed(&mut self, batch: &mut Vec<Msg<O>>, watermark: i64) {
        for c in self.closed.drain(..) {
            let Some(FeatureDef::Window(w)) = self.features.defs.get(c.feature) else { continue };
            let value = w.agg.finish(c.span.count, w.field.map(|f| &c.span.fields[f]));
            let record = ClosedWindowRecord {
                key: c.key.clone(),
                feature: w.name.clone(),
                window: w.kind.name().to_owned(),
                window_start: c.start,
                window_end: c.end,
                value: value.filter(|v| v.is_finite()),
                count: c.span.count,
            };
            let origin = self.origins.first().copied().unwrap_or(Origin { source: 0, partition: 0 });
            if let Some(value) = (self.emit.window)(record) {
                batch.push(Msg::Event(Rec { key: c.key, time_ms: c.end, origin, offset: -1, watermark, value }));
            }
        }
    }
}

impl<O: 'static> Gated for FeatureOp<O> {
    type In = Record;
    type Out = O;
    fn event(&mut self, r: Rec<Record>, out: &mut Vec<Msg<O>>) {
        self.observe(r, out)
    }
    fn batch_done(&mut self, watermark: i64, out: &mut Vec<Msg<O>>) {
        self.close_due(out, watermark)
    }
    /// The end of the input closes every window.
    fn finish(&mut self, out: &mut Vec<Msg<O>>) {
        self.close_all(out)
    }
    fn snapshot(&self) -> Result<Vec<u8>> {
        Ok(bincode::serialize(&self.state)?)
    }
}
