//! The dataflow API: typed streams a user composes in Rust, over timely.
//!
//! ```text
//! sources (topics) -> decode/validate (dlq) -> watermark per (topic, partition)
//!    -> map / filter / flat_map / key_by (user closures)
//!    -> keyed operators (user state + event-time timers), interval joins
//!    -> sinks
//!    \-> views (differential collections: count, distinct, join; upsert tables)
//!        -> upsert sinks (a record per changed key, a tombstone per deleted one)
//! ```
//!
//! A graph is built by a closure that runs on every worker (as with timely):
//! [`GraphBuilder::source`] gives a [`Stream`] of decoded [`Record`]s, and the
//! methods of [`Stream`] and [`View`] add operators. [`LocalRun`] runs it on
//! in-memory topics, with any number of workers or processes;
//! [`crate::kafka::KafkaRun`] on Kafka topics (through [`connector`]).
//!
//! Files, one operator per file: [`stream`] (the stream, its envelope and
//! watermarks), [`source`], [`record`], [`map`], [`keyed`] (the user operator
//! trait and its runtime) with [`stateful`] (it on a stream), [`interval_join`],
//! [`view`] (differential collections), [`upsert_sink`], [`sink`]; runners:
//! [`run`] (in memory) and [`connector`] with [`connector_source`] (what
//! `crate::kafka::KafkaRun` plugs into).
//!
//! ```
//! use std::time::Duration;
//! use vigil::graph::{LocalRun, Source};
//! use vigil::spec::FieldType;
//!
//! let t0 = 1_700_000_000_000i64;
//! let json = |s: String| s.into_bytes();
//! let tx = (0..6).map(|i| json(format!(r#"{{"card":"c{}","ts":{},"merchant":"m{}"}}"#, i % 2, t0 + i * 1000, i % 3))).collect();
//! let logins = vec![json(format!(r#"{{"card":"c0","ts":{}}}"#, t0 + 500))];
//! let out = LocalRun::new(2)
//!     .topic("tx", vec![tx])
//!     .topic("logins", vec![logins])
//!     .run(|g| {
//!         let tx = g.source(Source::json("tx").key("card").field("merchant", FieldType::Str));
//!         let logins = g.source(Source::json("logins").key("card"));
//!         // transactions within 2 s after a login of the same card
//!         tx.interval_join("tx_after_login", &logins, Duration::from_secs(2), Duration::ZERO)
//!             .map(|(t, _login)| t.str("merchant").unwrap_or("?").to_owned())
//!             .sink("after_login");
//!         // transactions per merchant, as an upsert view
//!         tx.view("tx_merchants", |r| r.value.str("merchant").unwrap_or("?").to_owned()).count().sink_upsert("per_merchant");
//!         Ok(())
//!     })
//!     .unwrap();
//! // c0's transactions at t0 (before the login) and t0+2000 (within 2 s after it) and t0+4000 (too late)
//! assert_eq!(out.values("after_login"), vec![r#""m2""#]);
//! assert_eq!(out.values("per_merchant"), vec!["2", "2", "2"]);
//! ```

pub mod as_of_join;
pub mod checkpoint;
pub mod connector;
pub mod connector_source;
pub mod coordinator;
pub mod epochs;
pub mod features;
pub(crate) mod gated;
pub mod interval_join;
pub mod job;
pub mod keyed;
pub mod learn_route;
pub mod map;
pub mod monitor;
pub mod offline_sink;
pub mod online;
pub mod quality;
pub mod record;
pub mod run;
pub mod score;
pub mod sink;
pub mod source;
pub mod stateful;
pub mod store_sink;
pub mod stream;
pub mod sub_joins;
pub mod upsert_sink;
pub mod values_source;
pub mod view;

use std::rc::Rc;

use timely::dataflow::Scope;

pub use features::{ClosedWindowRecord, FeatureOutput, Features};
pub use keyed::{KeyContext, KeyedOperator, Origin};
pub use monitor::Monitor;
pub use online::OnlineModel;
pub use record::Record;
pub use run::{DeadLetter, LocalRun, MemoryTopic, Outputs, SinkRecord, SourceCounts};
pub use score::{Challenger, Model, ModelVersion, Scored};
pub use sink::Written;
pub use source::{serde_rejection, Decoded, Source};
pub use stream::{Rec, Stream};
pub use sub_joins::{JoinPair, SubJoins};
pub use view::View;

use stream::Shared;

/// Builds one worker's share of a graph; see the module docs.
pub struct GraphBuilder<'s> {
    pub(crate) scope: Scope<'s, u64>,
    pub(crate) shared: Rc<Shared>,
    pub(crate) sources: u32,
    /// Each source with window-level expectations, and their findings.
    pub(crate) quality: Vec<(crate::spec::SourceSpec, Stream<'s, crate::monitor::DriftRecord>)>,
}

impl<'s> GraphBuilder<'s> {
    /// Reads a topic: its records decoded and checked against `source`'s schema
    /// (failures to `dlq`), keyed and timed by its key and event-time fields.
    /// A source with window-level expectations (not-null rate, duplicates,
    /// freshness, volume) is judged per window; [`GraphBuilder::quality`] gives
    /// the findings.
    pub fn source(&mut self, source: Source) -> Stream<'s, Record> {
        let spec = source.spec().clone();
        let stream = self.source_with(source, source::records());
        if spec.window_expectations().next().is_some() {
            let earlier = self.quality.iter().map(|(s, _)| s);
            if let Err(e) = crate::spec::expect::check_window_names(earlier.chain([&spec])) {
                self.shared.errors.borrow_mut().push(format!("{e:#}"));
            }
            let findings = stream.quality(&format!("quality-{}", spec.topic), &spec);
            self.quality.push((spec, findings));
        }
        stream
    }

    /// The findings of the window-level expectations of the source of `topic`
    /// (`kind = "quality"` drift records, see [`quality`]), or `None` when it
    /// declares none. Write them with `sink_drift`.
    pub fn quality(&self, topic: &str) -> Option<Stream<'s, crate::monitor::DriftRecord>> {
        self.quality.iter().find(|(s, _)| s.topic == topic).map(|(_, findings)| findings.clone())
    }

    /// Reads a topic as values of your type: each record is checked as by
    /// [`GraphBuilder::source`] (size, JSON, key, event time, declared fields,
    /// lateness), then deserialized as a `T` (serde); one that does not read as
    /// a `T` goes to `dlq` (`missing_field`, `duplicate_field` or `wrong_type`,
    /// the detail naming the type) and counts as rejected.
    ///
    /// ```
    /// use serde::{Deserialize, Serialize};
    /// use vigil::graph::{LocalRun, Source};
    ///
    /// #[derive(Clone, Serialize, Deserialize)]
    /// struct Tx { card: String, amount: f64 }
    ///
    /// let out = LocalRun::new(1)
    ///     .topic("tx", vec![vec![
    ///         br#"{"card":"c1","ts":1700000000000,"amount":12.5}"#.to_vec(),
    ///         br#"{"card":"c2","ts":1700000000001,"amount":"lots"}"#.to_vec(),
    ///     ]])
    ///     .run(|g| {
    ///         g.source_typed::<Tx>(Source::json("tx").key("card")).map(|t| t.amount * 2.0).sink("doubled");
    ///         Ok(())
    ///     })
    ///     .unwrap();
    /// assert_eq!(out.values("doubled"), vec!["25.0"]);
    /// assert_eq!(out.dead[0].reason, "wrong_type");
    /// assert!(out.dead[0].detail.starts_with("does not read as `Tx`"));
    /// ```
    pub fn source_typed<T: serde::de::DeserializeOwned + Clone + 'static>(&mut self, source: Source) -> Stream<'s, T> {
        self.source_with(source, source::typed::<T>())
    }

    /// Reads a topic in a format of your own: `decode` turns each payload into
    /// its key, event time and value, or rejects it (the record goes to `dlq`
    /// with the reason you give). Everything else is as for
    /// [`GraphBuilder::source`]: the size limit, the lateness and
    /// future-timestamp checks, watermarks, per-topic counts and checkpoints.
    /// The source's field declarations are not used. For payloads of nested
    /// JSON, of a binary format, or to decode straight into your type.
    ///
    /// ```
    /// use vigil::graph::{Decoded, LocalRun, Source};
    /// use vigil::types::{Reason, Rejection};
    ///
    /// // "card,millis,amount" lines
    /// fn decode(b: &[u8]) -> Result<Decoded<f64>, Rejection> {
    ///     let bad = |why: &str| Rejection::new(Reason::WrongType, why.to_string());
    ///     let text = std::str::from_utf8(b).map_err(|_| bad("not UTF-8"))?;
    ///     let f: Vec<&str> = text.split(',').collect();
    ///     let [card, ts, amount] = f[..] else { return Err(bad("three fields")) };
    ///     Ok(Decoded {
    ///         key: card.to_string(),
    ///         time_ms: ts.parse().map_err(|_| bad("time"))?,
    ///         value: amount.parse().map_err(|_| bad("amount"))?,
    ///     })
    /// }
    /// let out = LocalRun::new(1)
    ///     .topic("tx", vec![vec![b"c1,1700000000000,12.5".to_vec(), b"c2,soon,1".to_vec()]])
    ///     .run(|g| {
    ///         g.source_decoded(Source::json("tx"), decode).map(|a| a * 2.0).sink("doubled");
    ///         Ok(())
    ///     })
    ///     .unwrap();
    /// assert_eq!(out.values("doubled"), vec!["25.0"]);
    /// assert_eq!((out.dead[0].reason, out.dead[0].detail.as_str()), ("wrong_type", "time"));
    /// ```
    pub fn source_decoded<T, F>(&mut self, source: Source, decode: F) -> Stream<'s, T>
    where
        T: Clone + 'static,
        F: FnMut(&[u8]) -> Result<Decoded<T>, crate::types::Rejection> + 'static,
    {
        self.source_with(source, source::MakeValue::Custom(Box::new(decode)))
    }

    /// Notes that this graph reads `name`; a second reader is an error.
    fn claim_source(&mut self, name: &str) {
        if self.shared.sources.borrow().iter().any(|t| t == name) {
            self.shared.errors.borrow_mut().push(format!("topic `{name}` is read by two sources: read it once and use the stream twice"));
        }
        self.shared.sources.borrow_mut().push(name.to_owned());
    }

    fn source_with<V: Clone + 'static>(&mut self, source: Source, make: source::MakeValue<V>) -> Stream<'s, V> {
        let index = self.sources;
        self.sources += 1;
        let collector = self.shared.collector.clone();
        self.claim_source(source.topic());
        if let Err(e) = crate::spec::check_expectations(source.spec()) {
            self.shared.errors.borrow_mut().push(format!("{e:#}"));
        }
        if std::any::TypeId::of::<V>() != std::any::TypeId::of::<Record>() && source.spec().window_expectations().next().is_some() {
            self.shared.errors.borrow_mut().push(format!(
                "source `{}`: window-level expectations (not_null_rate, unique, freshness, volume) need a source of records (`GraphBuilder::source`)",
                source.topic()
            ));
        }
        if matches!(make, source::MakeValue::Custom(_)) && !source.spec().expectations.is_empty() {
            self.shared.errors.borrow_mut().push(format!(
                "source `{}`: expectations are judged by vigil's decoder; a source with its own decoder (`source_decoded`) cannot have them",
                source.topic()
            ));
        }
        match &collector.inputs {
            run::Inputs::Memory { topics, epoch_records, .. } => {
                let data = topics.get(source.topic()).cloned().unwrap_or_else(|| {
                    self.shared.errors.borrow_mut().push(format!("source `{}`: the runner has no input for this topic", source.topic()));
                    Vec::new()
                });
                source::memory_source(self, index, source, data, *epoch_records, make)
            }
            run::Inputs::Connector(io) => connector_source::connector_source(self, index, source, io.clone(), make),
        }
    }
    /// Reads values of your type that the runner holds in memory (no bytes, no
    /// decoding); see [`values_source`].
    pub fn source_values<T: serde::Serialize + Clone + Send + 'static>(&mut self, values: values_source::Values<T>) -> Stream<'s, T> {
        let index = self.sources;
        self.sources += 1;
        self.claim_source(values.name());
        let (given, per_epoch) = match &self.shared.collector.inputs {
            run::Inputs::Memory { values: given, epoch_records, .. } => (given.get(values.name()).cloned(), *epoch_records),
            run::Inputs::Connector(_) => (None, 1024),
        };
        values_source::values_source(self, index, values, given, per_epoch)
    }
    /// This worker's index among all workers of all processes.
    pub fn index(&self) -> usize {
        self.scope.index()
    }
    /// The number of workers of all processes.
    pub fn peers(&self) -> usize {
        self.scope.peers()
    }
}
