//! Sources: a topic, its format and schema, its key and event-time fields, and its
//! lateness; read into a [`Stream`] of [`Record`]s.
//!
//! Every byte is untrusted. Each payload is decoded against the source's schema
//! (the same decoder as the TOML jobs: size, UTF-8, JSON, types, required fields,
//! key, event time); a record that fails goes to `dlq` with its reason, and one
//! older than its partition's watermark (its maximum event time minus the allowed
//! lateness) goes there as `late`. So every offset of every source is accepted or
//! in `dlq`, counted per source ([`super::SourceCounts`]).
//!
//! Partitions are spread over workers (`(partition + source index) % workers`);
//! each is read in offset order by its one worker. In the in-memory runner the
//! epoch (timely time) of a record is `offset / epoch_records`: the same records
//! share an epoch at any worker count, which makes per-epoch outputs (views)
//! reproducible.
//!
//! ```
//! use std::time::Duration;
//! use vigil::graph::Source;
//! use vigil::spec::FieldType;
//! let tx = Source::json("transactions")
//!     .key("card_id")
//!     .event_time("ts")
//!     .lateness(Duration::from_secs(5))
//!     .field("amount", FieldType::F64)
//!     .optional("country", FieldType::Str);
//! assert_eq!(tx.topic(), "transactions");
//! ```

use std::sync::Arc;
use std::time::Duration;

use timely::dataflow::operators::generic::operator::source as timely_source;

use super::checkpoint::Part;
use super::keyed::Origin;
use super::record::{Record, Schema};
use super::run::{DeadLetter, MemoryTopic, SourceCounts};
use super::stream::{Mark, Msg, Rec, Stream};
use super::GraphBuilder;
use crate::checkpoint::PartitionCut;
use crate::decode::Decoder;
use crate::spec::{AvroSchemas, FieldSpec, FieldType, ProtobufSchema, SourceFormat, SourceSpec};
use crate::types::now_us;
use crate::types::{Reason, Rejection};
use crate::watermark::{PartitionClock, TimePolicy};
use serde::de::DeserializeOwned;

/// A source's declaration; see the module docs.
#[derive(Clone, Debug)]
pub struct Source {
    spec: SourceSpec,
    /// The string fields records keep (`None`: all of them).
    kept: Option<Vec<String>>,
}

impl Source {
    /// A topic of JSON objects. Defaults: key field `key`, event-time field `ts`
    /// (epoch milliseconds or RFC 3339), no lateness, 64 KiB per record.
    pub fn json(topic: &str) -> Self {
        Source {
            kept: None,
            spec: SourceSpec {
                topic: topic.to_owned(),
                key_field: "key".into(),
                event_time_field: "ts".into(),
                event_id_field: None,
                allowed_lateness: Duration::ZERO,
                idle_timeout: Duration::from_secs(30),
                max_future: Duration::from_secs(3600),
                max_message_bytes: 64 * 1024,
                fields: Vec::new(),
                format: SourceFormat::Json,
                expectations: Vec::new(),
            },
        }
    }
    /// A topic of Avro records, their writer schemas from a registry (Confluent wire
    /// format) or one schema file (`AvroSchemas`); declare its fields as for JSON:
    /// the writer's record fields are matched to them by name.
    pub fn avro(topic: &str, schemas: AvroSchemas) -> Self {
        let mut s = Source::json(topic);
        s.spec.format = SourceFormat::Avro(schemas);
        s
    }
    /// A source of Protobuf messages of one type (bare, one message per record).
    pub fn protobuf(topic: &str, schema: ProtobufSchema) -> Self {
        let mut s = Source::json(topic);
        s.spec.format = SourceFormat::Protobuf(schema);
        s
    }
    /// A source declared as a job's `[source]` (TOML or `JobBuilder`).
    pub fn from_spec(spec: SourceSpec) -> Self {
        Source { spec, kept: None }
    }
    pub fn topic(&self) -> &str {
        &self.spec.topic
    }
    pub fn spec(&self) -> &SourceSpec {
        &self.spec
    }
    /// The field whose value (a string or an integer) is the record's key.
    pub fn key(mut self, field: &str) -> Self {
        self.spec.key_field = field.to_owned();
        self
    }
    /// The field holding the event time.
    pub fn event_time(mut self, field: &str) -> Self {
        self.spec.event_time_field = field.to_owned();
        self
    }
    /// A field with a unique id per event.
    pub fn event_id(mut self, field: &str) -> Self {
        self.spec.event_id_field = Some(field.to_owned());
        self
    }
    /// How far behind its partition's maximum event time a record may be.
    pub fn lateness(mut self, d: Duration) -> Self {
        self.spec.allowed_lateness = d;
        self
    }
    /// How far ahead of `max(partition maximum, wall clock)` a timestamp may be.
    pub fn max_future(mut self, d: Duration) -> Self {
        self.spec.max_future = d;
        self
    }
    pub fn max_message_bytes(mut self, n: usize) -> Self {
        self.spec.max_message_bytes = n;
        self
    }
    /// A required field of the schema.
    pub fn field(mut self, name: &str, ty: FieldType) -> Self {
        self.spec.fields.push(FieldSpec { name: name.to_owned(), ty, optional: false });
        self
    }
    /// A field that may be absent or null.
    pub fn optional(mut self, name: &str, ty: FieldType) -> Self {
        self.spec.fields.push(FieldSpec { name: name.to_owned(), ty, optional: true });
        self
    }
    /// A data-quality expectation on a declared field (see
    /// [`crate::spec::Expectation`]); checked when the graph is built.
    pub fn expect(mut self, e: crate::spec::Expectation) -> Self {
        self.spec.expectations.push(e);
        self
    }

    /// Records keep only these string fields (the others are still checked):
    /// less to copy per event when the graph reads few of them.
    pub fn keep_strings<S: AsRef<str>>(mut self, names: &[S]) -> Self {
        self.kept = Some(names.iter().map(|n| n.as_ref().to_owned()).collect());
        self
    }

    /// The names a [`Record`] of this source answers to.
    fn schema(&self) -> Schema {
        let fields = |numeric: bool| self.spec.fields.iter().filter(move |f| f.ty.is_numeric() == numeric && f.ty != FieldType::Bool);
        // window-level expectations read their fields on the stream
        let judged = |name: &String| self.spec.window_expectations().any(|e| &e.field == name);
        let kept = |name: &String| self.kept.as_ref().is_none_or(|k| k.contains(name)) || judged(name);
        let strings = fields(false).map(|f| &f.name).filter(|n| kept(n)).cloned().collect();
        Schema { topic: self.spec.topic.clone(), numeric: fields(true).map(|f| f.name.clone()).collect(), strings }
    }
}

/// What a source makes of a payload: a [`Record`] decoded against the source's
/// schema and turned into a `V` (a failure is the record's rejection), or the
/// user's own decoding ([`GraphBuilder::source_decoded`]).
pub(super) enum MakeValue<V> {
    Schema(Box<dyn FnMut(Record, &[u8]) -> Result<V, Rejection>>),
    Custom(Box<dyn FnMut(&[u8]) -> Result<Decoded<V>, Rejection>>),
}

/// What a user's decoder makes of one payload
/// ([`GraphBuilder::source_decoded`]): the record's key, its event time
/// (epoch milliseconds) and its value.
#[derive(Clone, Debug, PartialEq)]
pub struct Decoded<T> {
    pub key: String,
    pub time_ms: i64,
    pub value: T,
}

/// A source of [`Record`]s.
pub(super) fn records() -> MakeValue<Record> {
    MakeValue::Schema(Box::new(|r, _| Ok(r)))
}

/// A source of `T`s: each accepted payload deserialized as a `T` (serde); one
/// that does not deserialize is rejected (`missing_field`, `duplicate_field` or
/// `wrong_type`, naming the type).
pub(super) fn typed<T: DeserializeOwned>() -> MakeValue<T> {
    let name = std::any::type_name::<T>().rsplit("::").next().unwrap_or("?").to_owned();
    MakeValue::Schema(Box::new(move |_, payload| serde_json::from_slice::<T>(payload).map_err(|e| serde_rejection(&name, &e))))
}

/// The rejection of a payload that serde could not read as the type `name`:
/// `missing_field`, `duplicate_field`, `not_json` (not JSON at all) or
/// `wrong_type`, the detail naming the type.
pub fn serde_rejection(name: &str, e: &serde_json::Error) -> Rejection {
    let text = e.to_string();
    let reason = match () {
        _ if text.starts_with("missing field") => Reason::MissingField,
        _ if text.starts_with("duplicate field") => Reason::DuplicateField,
        _ if e.is_syntax() || e.is_eof() => Reason::NotJson,
        _ => Reason::WrongType,
    };
    Rejection::new(reason, format!("does not read as `{name}`: {text}"))
}

/// Decoding and admission of one worker's share of a source: the same verdicts
/// for a record whichever runner reads it; `V` is what it hands on.
pub(super) struct Admission<V> {
    topic: String,
    index: u32,
    schema: Arc<Schema>,
    make: MakeValue<V>,
    decoder: Decoder,
    policy: TimePolicy,
    clocks: std::collections::HashMap<u32, PartitionClock>,
    pub(super) counts: SourceCounts,
    pub(super) dead: Vec<DeadLetter>,
    /// `vigil_events_in_total` of the topic, once given the metrics.
    events_in: Option<prometheus::IntCounter>,
}

impl<V> Admission<V> {
    /// Counts the records read (`vigil_events_in_total`) and the expectation
    /// failures in `metrics`.
    pub(super) fn count_expectations(&mut self, metrics: &crate::metrics::Metrics) {
        self.decoder.count_expectations(metrics);
        self.events_in = Some(metrics.events_in.with_label_values(&[&self.topic]));
    }

    pub(super) fn new(index: u32, source: &Source, make: MakeValue<V>) -> Self {
        let schema = Arc::new(source.schema());
        Admission {
            topic: source.spec.topic.clone(),
            index,
            make,
            decoder: Decoder::for_source(&source.spec, &schema.strings),
            schema,
            policy: TimePolicy {
                allowed_lateness_ms: source.spec.allowed_lateness.as_millis() as i64,
                max_future_ms: source.spec.max_future.as_millis() as i64,
            },
            clocks: Default::default(),
            counts: SourceCounts::default(),
            dead: Vec::new(),
            events_in: None,
        }
    }

    /// One record read at (partition, offset): an event, or a dead letter.
    pub(super) fn take(&mut self, partition: u32, offset: i64, payload: Option<&[u8]>, now_ms: i64) -> Option<Msg<V>> {
        self.counts.read += 1;
        if let Some(c) = &self.events_in {
            c.inc();
        }
        let clock = self.clocks.entry(partition).or_default();
        let (schema, policy) = (&self.schema, &self.policy);
        let decoded = match &mut self.make {
            MakeValue::Schema(make) => self.decoder.decode(payload, &mut |_| {}).and_then(|d| {
                let record = Record::new(schema.clone(), d.event_id, d.numeric, d.strings);
                let value = make(record, payload.unwrap_or_default())?;
                Ok(Decoded { key: d.key, time_ms: d.time_ms, value })
            }),
            MakeValue::Custom(decode) => self.decoder.check_size(payload).and_then(|bytes| decode(bytes)),
        };
        let admitted = decoded.and_then(|d| clock.admit(d.time_ms, now_ms, policy).map(|wm| (d.key, d.time_ms, d.value, wm)));
        match admitted {
            Ok((key, time_ms, value, watermark)) => {
                self.counts.accepted += 1;
                let origin = Origin { source: self.index, partition };
                Some(Msg::Event(Rec { key, time_ms, origin, offset, watermark, value }))
            }
            Err(r) => {
                *self.counts.rejected.entry(r.reason.as_str()).or_default() += 1;
                self.dead.push(DeadLetter {
                    topic: self.topic.clone(),
                    partition,
                    offset,
                    reason: r.reason.as_str(),
                    detail: r.detail,
                    payload: payload.map(<[u8]>::to_vec),
                });
                None
            }
        }
    }

    /// A partition's watermark (`i64::MIN` before its first accepted record).
    pub(super) fn watermark(&self, partition: u32) -> i64 {
        self.clocks.get(&partition).and_then(|c| c.watermark(&self.policy)).unwrap_or(i64::MIN)
    }

    /// Resumes a partition's event-time clock from a checkpoint.
    pub(super) fn restore_clock(&mut self, partition: u32, clock: PartitionClock) {
        self.clocks.insert(partition, clock);
    }

    /// A partition's position for a checkpoint: the next offset and its clock.
    pub(super) fn cut(&self, partition: u32, next_offset: i64) -> PartitionCut {
        PartitionCut { partition, next_offset, clock: self.clocks.get(&partition).cloned().unwrap_or_default() }
    }

    /// Hands what was counted and rejected since the last call to the runner:
    /// records read in `epoch` (their dead letters belong to it).
    pub(super) fn report(&mut self, collector: &super::run::Collector, epoch: u64) {
        collector.record_source(&self.topic, std::mem::take(&mut self.counts), std::mem::take(&mut self.dead), epoch);
    }
}

/// One owned partition of an in-memory topic.
/// At most this many records per activation of an in-memory source.
const ACTIVATION_RECORDS: usize = 1024;

struct Partition {
    number: u32,
    data: Arc<Vec<Option<Vec<u8>>>>,
    next: usize,
}

/// Builds the source operator of `source` (the graph's `index`-th) on the
/// worker behind `g`, reading the runner's in-memory topic.
pub(super) fn memory_source<'s, V: Clone + 'static>(
    g: &mut GraphBuilder<'s>,
    index: u32,
    source: Source,
    data: MemoryTopic,
    per_epoch: usize,
    make: MakeValue<V>,
) -> Stream<'s, V> {
    let scope = g.scope;
    let (worker, peers) = (scope.index(), scope.peers());
    let collector = g.shared.collector.clone();
    let topic = source.topic().to_owned();
    let mut admission = Admission::new(index, &source, make);
    admission.count_expectations(&collector.metrics());
    let restored = g.shared.checkpoints().and_then(|c| c.restored.clone());
    let mut parts: Vec<Partition> = Vec::new();
    for (p, data) in data.into_iter().enumerate().filter(|(p, _)| (p + index as usize) % peers == worker) {
        let mut next = 0;
        if let Some(cut) = restored.as_ref().and_then(|r| r.positions.get(&(topic.clone(), p as u32))) {
            next = cut.next_offset.clamp(0, data.len() as i64) as usize;
            admission.restore_clock(p as u32, cut.clock.clone());
        }
        parts.push(Partition { number: p as u32, data, next });
    }
    let checkpoints = g.shared.checkpoints().cloned();
    let start = g.shared.start_epoch();
    let me = worker as u32;
    let name = format!("Source({topic})");
    let inner = timely_source::<_, timely::container::CapacityContainerBuilder<Vec<Msg<V>>>, _, _>(scope, &name, move |mut cap, info| {
        let activator = scope.activator_for(info.address.clone());
        cap.downgrade(&start);
        let mut cap = Some(cap);
        // an activation's records leave as one batch
        let mut batch: Vec<Msg<V>> = Vec::new();
        move |output| {
            let Some(c) = cap.as_mut() else { return };
            let epoch = *c.time();
            if collector.crash_before(epoch) {
                return;
            }
            let end = (epoch as usize + 1).saturating_mul(per_epoch);
            let now_ms = (now_us() / 1000) as i64;
            // an epoch's records in slices that stay in the cache as they go through the graph
            let mut room = ACTIVATION_RECORDS;
            for part in parts.iter_mut() {
                while part.next < part.data.len().min(end) && room > 0 {
                    let offset = part.next as i64;
                    part.next += 1;
                    room -= 1;
                    if let Some(m) = admission.take(part.number, offset, part.data[offset as usize].as_deref(), now_ms) {
                        batch.push(m);
                    }
                }
            }
            if parts.iter().any(|p| p.next < p.data.len().min(end)) {
                // more of this epoch next time
                output.session(&*c).give_container(&mut batch);
                activator.activate();
                return;
            }
            let done = parts.iter().all(|p| p.next >= p.data.len());
            // this worker's share: the least watermark of its partitions (a finished one holds nothing back)
            let watermark = parts.iter().filter(|p| p.next < p.data.len()).map(|p| admission.watermark(p.number)).min().unwrap_or(i64::MAX);
            batch.push(Msg::Mark(Mark { watermark, from: me, to: me }));
            output.session(&*c).give_container(&mut batch);
            admission.report(&collector, epoch);
            if let Some(ck) = checkpoints.as_ref().filter(|ck| done || ck.is_checkpoint(epoch)) {
                let partitions = parts.iter().map(|p| admission.cut(p.number, p.next as i64)).collect();
                ck.send(Part::Cut { worker, topic: topic.clone(), epoch, partitions, last: done });
            }
            if done {
                cap = None;
            } else {
                c.downgrade(&(epoch + 1));
                activator.activate();
            }
        }
    });
    Stream::new(inner, g.shared.clone())
}
