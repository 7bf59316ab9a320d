//! One worker's scoring: the keyed state (features, joins) and everything a batch
//! of events does, in two phases.
//!
//! 1. In arrival order, each event updates its key's features and joins, looks up
//!    tables, and writes what does not depend on the model (the `features` topic,
//!    the offline log, the feature store).
//! 2. Scoring, with the model that event may see: the fixed weights, the online
//!    learner's current model, or (event-time consistency) the model of the event's
//!    step, which may not be built yet: the event is then held, with its features,
//!    until the learner builds it ([`Scorer::process`] releases it first thing).
//!
//! The epoch bookkeeping (which epochs are complete, checkpoint reports) is the
//! operator's, in `score.rs`; this file knows nothing of timely.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use vigil_operators::{FeatureState, JoinState, LogisticModel};

use super::WorkerContext;
use crate::learner::{LearnerLink, Pending};
use crate::model::gate::Gate;
use crate::model::ModelSnapshot;
use crate::monitor::interner::LocalIds;
use crate::monitor::{MonitorLink, NumericSource, Observations};
use crate::offline::OfflineRows;
use crate::output::{OutputSink, ScoreContext, ScoreEncoder, Topic};
use crate::spec::{InputSource, JobSpec};
use crate::store::StoredFeatures;
use crate::table::SharedTable;
use crate::types::{now_us, Event};

/// An event whose score waits for the model of its event time (event-time
/// consistency): its features, computed on arrival, and the epoch it came in.
struct Held {
    e: Event,
    features: Box<[Option<f64>]>,
    model_in: Box<[Option<f64>]>,
    epoch: u64,
}

/// Events held for their model, by (boundary, arrival), and how many per epoch.
#[derive(Default)]
struct Holding {
    events: BTreeMap<(i64, u64), Held>,
    seq: u64,
    per_epoch: BTreeMap<u64, usize>,
}

impl Holding {
    fn hold(&mut self, boundary: i64, held: Held) {
        *self.per_epoch.entry(held.epoch).or_default() += 1;
        self.events.insert((boundary, self.seq), held);
        self.seq += 1;
    }

    /// Takes the events whose boundary is at most `ready`, in (boundary, arrival) order.
    fn release(&mut self, ready: i64) -> Vec<Held> {
        let rest = match ready.checked_add(1) {
            Some(after) => self.events.split_off(&(after, 0)),
            None => BTreeMap::new(),
        };
        let released: Vec<Held> = std::mem::replace(&mut self.events, rest).into_values().collect();
        for h in &released {
            if let Some(n) = self.per_epoch.get_mut(&h.epoch) {
                *n -= 1;
                if *n == 0 {
                    self.per_epoch.remove(&h.epoch);
                }
            }
        }
        released
    }
}

/// A lookup feature: (slot in the vector, table, column, key field).
type Lookup = (usize, Arc<SharedTable>, usize, Option<usize>);

/// The scoring state of one worker; see the module docs.
pub(super) struct Scorer {
    job: Arc<JobSpec>,
    sink: Arc<dyn OutputSink>,
    ctx: Arc<WorkerContext>,
    pub(super) state: FeatureState,
    pub(super) joins: JoinState,
    inputs: Vec<InputSource>,
    transforms: Vec<vigil_operators::Transform>,
    model: LogisticModel,
    model_name: String,
    encoder: ScoreEncoder,
    encoder_b: ScoreEncoder,
    lookups: Vec<Lookup>,
    // scratch, reused across events
    features: Vec<Option<f64>>,
    model_in: Vec<Option<f64>>,
    tags: Vec<u64>,
    buf: Vec<u8>,
    features_buf: Vec<u8>,
    window_buf: Vec<u8>,
    closed: Vec<vigil_operators::ClosedWindow>,
    joined: Vec<vigil_operators::Joined>,
    join_emitter: crate::join_output::JoinEmitter,
    /// Phase 1's output for the events scored in this batch: one row of
    /// features and model inputs per event of `prepared`.
    flat_features: Vec<Option<f64>>,
    flat_inputs: Vec<Option<f64>>,
    prepared: Vec<Event>,
    // what the outputs need
    features_topic: bool,
    shadow_topic: bool,
    closes_windows: bool,
    /// The latest features of every key scored since the last publication (store on).
    pub(super) latest: Option<HashMap<String, StoredFeatures>>,
    /// Keys that left state since the last publication.
    pub(super) expired: Vec<String>,
    // online learning
    learner: Option<LearnerLink>,
    gate: Option<Arc<Gate>>,
    snapshot: Option<Arc<ModelSnapshot>>,
    encoded_version: Option<u64>,
    snap_boundary: Option<i64>,
    x: Vec<f32>,
    preds: Vec<f32>,
    pending: Vec<Pending>,
    holding: Holding,
    // monitoring
    monitor: Option<MonitorLink>,
    observations: Observations,
    category_ids: Vec<LocalIds>,
    fairness_attribute: Option<usize>,
    offline: Option<crate::offline::OfflineLink>,
}

impl Scorer {
    /// The scorer of one worker, from `state` (restored or empty).
    pub(super) fn new(ctx: &Arc<WorkerContext>, state: FeatureState, joins: JoinState) -> Scorer {
        let job = ctx.job.clone();
        let names: Vec<String> = job.features.iter().map(|f| f.name().to_owned()).collect();
        let monitor = ctx.monitor.clone();
        let lookups = job
            .features
            .iter()
            .enumerate()
            .filter_map(|(i, f)| match f {
                vigil_operators::FeatureDef::Lookup(l) => ctx.tables.get(l.table).map(|t| (i, t.clone(), l.column, l.on)),
                _ => None,
            })
            .collect();
        Scorer {
            sink: ctx.sink.clone(),
            ctx: ctx.clone(),
            state,
            joins,
            inputs: job.model_inputs(),
            transforms: job.model.inputs.iter().map(|i| i.transform).collect(),
            model: job.logistic_model(),
            model_name: job.model.name.clone(),
            encoder: ScoreEncoder::new(&job.source.topic, &job.model.name, &job.model.version, &names),
            encoder_b: ScoreEncoder::new(&job.source.topic, &job.model.name, &job.model.version, &names),
            lookups,
            features: Vec::with_capacity(names.len()),
            model_in: Vec::new(),
            tags: Vec::new(),
            buf: Vec::with_capacity(512),
            features_buf: Vec::with_capacity(256),
            window_buf: Vec::with_capacity(256),
            closed: Vec::new(),
            joined: Vec::new(),
            join_emitter: crate::join_output::JoinEmitter::new(&job, &ctx.metrics),
            flat_features: Vec::new(),
            flat_inputs: Vec::new(),
            prepared: Vec::new(),
            features_topic: job.sinks.features.is_some(),
            shadow_topic: job.sinks.shadow.is_some(),
            closes_windows: job.features.iter().any(|f| matches!(f, vigil_operators::FeatureDef::Window(w) if w.emit == vigil_operators::Emit::OnClose)),
            latest: ctx.store.as_ref().map(|_| HashMap::new()),
            expired: Vec::new(),
            learner: ctx.learner.clone(),
            gate: ctx.learner.as_ref().and_then(|l| l.gate.clone()),
            snapshot: None,
            encoded_version: None,
            snap_boundary: None,
            x: Vec::new(),
            preds: Vec::new(),
            pending: Vec::new(),
            holding: Holding::default(),
            category_ids: monitor.iter().flat_map(|m| m.interners.iter().map(|i| LocalIds::new(i.clone()))).collect(),
            fairness_attribute: monitor.as_ref().and_then(|m| m.spec.fairness_attribute),
            monitor,
            observations: Observations::default(),
            offline: ctx.offline.clone(),
            job,
        }
    }

    /// The oldest epoch with an event held for its model: that epoch's outputs are
    /// not all out.
    pub(super) fn held_min_epoch(&self) -> Option<u64> {
        self.holding.per_epoch.keys().next().copied()
    }

    /// Processes `events` of `epoch` (after the held events whose model is now
    /// built); returns how many events were scored.
    pub(super) fn process(&mut self, epoch: u64, events: &mut Vec<Event>) -> u64 {
        let released = match &self.gate {
            Some(g) => {
                let released = self.holding.release(g.ready());
                g.unhold(released.len());
                released
            }
            None => Vec::new(),
        };
        let rows_epoch = released.iter().map(|h| h.epoch).min().map_or(epoch, |e| e.min(epoch));
        let mut offline_rows = self.offline.as_ref().map(|o| OfflineRows { epoch: rows_epoch, ..o.rows() });
        if let (Some(link), None) = (&self.learner, &self.gate) {
            let current = link.model.current();
            if self.snapshot.as_ref().is_none_or(|s| s.version != current.version) {
                self.snapshot = Some(current);
            }
        }
        for e in events.drain(..) {
            self.features_of(epoch, e, offline_rows.as_mut());
        }
        if self.gate.is_some() {
            self.ctx.metrics.model.held_events.set(self.holding.events.len() as i64);
        }
        let n = (self.prepared.len() + released.len()) as u64;
        self.score_all(epoch, released);
        self.after_batch(epoch, offline_rows);
        n
    }

    /// Phase 1 for one event: features, joins, lookups and the outputs that do not
    /// depend on the model; then the event waits for its score (held or prepared).
    fn features_of(&mut self, epoch: u64, e: Event, offline_rows: Option<&mut OfflineRows>) {
        let state = &mut self.state;
        if state.tags() > 0 {
            self.tags.clear();
            self.tags
                .extend(e.strings.iter().take(state.tags()).map(|s| s.as_deref().map_or(vigil_operators::distinct::ABSENT, vigil_operators::distinct::tag_of)));
        }
        state.observe_tagged(&e.key, e.partition, e.watermark, e.time_ms, &e.numeric, &self.tags, &mut self.features);
        if !self.job.joins.is_empty() {
            let input = vigil_operators::interval_join::JoinInput {
                time: e.time_ms,
                partition: e.partition,
                offset: e.offset,
                event_id: e.event_id.as_deref(),
                values: &e.numeric,
                strings: &e.strings,
            };
            self.joins.observe(&e.key, e.partition, e.watermark, &input, &mut self.joined);
        }
        for (slot, table, column, on) in &self.lookups {
            let key = match on {
                Some(k) => e.strings.get(*k).and_then(|s| s.as_deref()),
                None => Some(e.key.as_str()),
            };
            self.features[*slot] = key.and_then(|k| table.get(k, *column));
        }
        let features = &self.features;
        self.model_in.clear();
        self.model_in.extend(self.inputs.iter().map(|i| match *i {
            InputSource::Feature(f) => features[f],
            InputSource::Field(n) => Some(e.numeric[n]).filter(|v| !v.is_nan()),
        }));
        if self.features_topic {
            self.encoder.encode_features(&mut self.features_buf, &e.key, e.time_ms, features);
            self.sink.send(Topic::Features, e.key.as_bytes(), &self.features_buf, epoch);
        }
        if let Some(rows) = offline_rows {
            rows.push(&e.key, e.event_id.as_deref(), e.time_ms, e.partition, e.offset, features);
        }
        if let Some(latest) = self.latest.as_mut() {
            latest.insert(e.key.clone(), StoredFeatures { event_time_ms: e.time_ms, values: features.clone() });
        }
        match &self.gate {
            Some(g) if g.boundary(e.time_ms) > g.ready() => {
                g.hold(1);
                let held = Held { features: features.as_slice().into(), model_in: self.model_in.as_slice().into(), epoch, e };
                self.holding.hold(g.boundary(held.e.time_ms), held);
            }
            _ => {
                self.flat_features.extend_from_slice(features);
                self.flat_inputs.extend_from_slice(&self.model_in);
                self.prepared.push(e);
            }
        }
    }

    /// Phase 2: scores the released events (with the epoch they came in), then the
    /// prepared ones, and sends the monitor's observations and the learner's
    /// predictions.
    fn score_all(&mut self, epoch: u64, released: Vec<Held>) {
        enum Row {
            Held(Box<[Option<f64>]>, Box<[Option<f64>]>),
            Flat(usize),
        }
        let (nf, ni) = (self.job.features.len(), self.inputs.len());
        // taken for the loop (score_one borrows self), given back with their capacity
        let mut prepared = std::mem::take(&mut self.prepared);
        let flat_features = std::mem::take(&mut self.flat_features);
        let flat_inputs = std::mem::take(&mut self.flat_inputs);
        let now = now_us();
        let old = released.into_iter().map(|h| (h.e, h.epoch, Row::Held(h.features, h.model_in)));
        let fresh = prepared.drain(..).enumerate().map(|(i, e)| (e, epoch, Row::Flat(i)));
        for (e, epoch, row) in old.chain(fresh) {
            let (features, model_in): (&[Option<f64>], &[Option<f64>]) = match &row {
                Row::Held(f, m) => (f, m),
                Row::Flat(i) => (&flat_features[i * nf..(i + 1) * nf], &flat_inputs[i * ni..(i + 1) * ni]),
            };
            self.score_one(&e, epoch, features, model_in, now);
        }
        self.prepared = prepared;
        self.flat_features = flat_features;
        self.flat_features.clear();
        self.flat_inputs = flat_inputs;
        self.flat_inputs.clear();
        // observations before predictions: once the learner has a batch's
        // predictions, the monitor can have its observations (`monitor::reorder`)
        if let (Some(m), false) = (&self.monitor, self.observations.is_empty()) {
            let _ = m.tx.send(std::mem::take(&mut self.observations));
        }
        if let (Some(link), false) = (&self.learner, self.pending.is_empty()) {
            // the learner may be gone at shutdown: its predictions are then moot
            let _ = link.tx.send(std::mem::take(&mut self.pending));
        }
    }

    /// Sets `snapshot` to the model `e` is scored with (`None`: the job's fixed
    /// weights), and the encoders' model version when it changes.
    fn model_for(&mut self, e: &Event) {
        if let Some(g) = &self.gate {
            // the model of the event's step (looked up once per step)
            let boundary = g.boundary(e.time_ms).min(g.ready());
            if self.snap_boundary != Some(boundary) {
                self.snap_boundary = Some(boundary);
                self.snapshot = Some(g.model_at(boundary));
            }
        }
        let Some(s) = &self.snapshot else { return };
        if self.encoded_version != Some(s.version) {
            self.encoder.set_model(&self.model_name, s.model_version(s.champion));
            if let Some(c) = s.challenger {
                self.encoder_b.set_model(&self.model_name, s.model_version(c));
            }
            self.encoded_version = Some(s.version);
        }
    }

    /// Scores one event: the score record, and what the learner, the shadow topic
    /// and the monitor get from it.
    fn score_one(&mut self, e: &Event, epoch: u64, features: &[Option<f64>], model_in: &[Option<f64>], now: u64) {
        self.model_for(e);
        // taken for the call (no reference count per event), put back at the end
        let snap = self.snapshot.take();
        let (value, arm) = match (&snap, &self.learner) {
            (Some(snap), Some(link)) => {
                self.x.clear();
                self.x.extend(model_in.iter().zip(&self.transforms).map(|(v, t)| v.map_or(f32::NAN, |v| t.apply(v) as f32)));
                let arm_b = crate::learner::pending::arm_b(&e.key, link.ab_share);
                let (slot, arm) = snap.serve(&mut self.x, &mut self.preds, arm_b);
                if self.shadow_topic {
                    encode_shadow(&mut self.features_buf, e, &self.model_name, snap, slot, &self.preds);
                    self.sink.send(Topic::Shadow, e.key.as_bytes(), &self.features_buf, epoch);
                }
                if let Some(id) = &e.event_id {
                    let group = self.fairness_attribute.map_or(0, |k| self.category_ids[k].id(e.strings.get(k).and_then(|s| s.as_deref())));
                    self.pending.push(Pending::served(id, e.time_ms, &self.x, &self.preds, slot, arm, snap.version, epoch, group));
                }
                (self.preds[slot] as f64, arm)
            }
            _ => (self.model.score(model_in), 0),
        };
        if let Some(m) = &self.monitor {
            let o = &mut self.observations;
            o.time_ms.push(e.time_ms);
            for (_, source) in &m.spec.numeric {
                o.numeric.push(match *source {
                    NumericSource::Feature(f) => features[f].unwrap_or(f64::NAN),
                    NumericSource::Field(n) => e.numeric[n],
                });
            }
            for (_, k) in &m.spec.categorical {
                o.categorical.push(self.category_ids[*k].id(e.strings.get(*k).and_then(|s| s.as_deref())));
            }
            o.score.push(value as f32);
            if snap.is_some() {
                o.inputs.extend_from_slice(&self.x);
            }
        }
        let score =
            ScoreContext { event_id: e.event_id.as_deref(), key: &e.key, event_time_ms: e.time_ms, partition: e.partition, offset: e.offset, score: value };
        if arm == 1 { &self.encoder_b } else { &self.encoder }.encode(&mut self.buf, &score, features);
        self.sink.send(Topic::Scores, e.key.as_bytes(), &self.buf, epoch);
        self.ctx.metrics.latency.observe(now.saturating_sub(e.consumed_us) as f64 / 1e6);
        self.snapshot = snap;
    }

    /// After a batch: windows that closed, joins that expired, keys that left
    /// state (a tombstone on the `features` topic unless the key came back), and
    /// the batch's offline rows.
    fn after_batch(&mut self, epoch: u64, offline_rows: Option<OfflineRows>) {
        if self.closes_windows {
            self.state.close_due(&mut self.closed);
            send_closed(&*self.sink, &self.job, &mut self.closed, epoch, &mut self.window_buf);
        }
        if !self.job.joins.is_empty() {
            self.joins.expire_due(&mut self.joined);
            self.join_emitter.send(&*self.sink, &mut self.joined, epoch);
        }
        let gone = self.state.take_expired();
        if self.features_topic {
            for (key, _) in gone.iter().filter(|(k, _)| !self.state.is_live(k)) {
                self.sink.send(Topic::Features, key.as_bytes(), &[], epoch);
            }
        }
        self.expired.extend(gone.into_iter().map(|(k, _)| k));
        if let (Some(o), Some(rows)) = (&self.offline, offline_rows.filter(|r| !r.is_empty())) {
            o.send(rows);
        }
    }

    /// The end of a bounded input (not a shutdown): every open window closes and
    /// unmatched lefts of the joins are final (no right event can come).
    pub(super) fn end_of_input(&mut self, epoch: u64) {
        self.state.close_all(&mut self.closed);
        send_closed(&*self.sink, &self.job, &mut self.closed, epoch, &mut self.window_buf);
        self.joins.flush_all(&mut self.joined);
        self.join_emitter.send(&*self.sink, &mut self.joined, epoch);
    }

    /// Publishes the latest features and the expired keys to the feature store.
    pub(super) fn publish_store(&mut self) {
        if let (Some(store), Some(latest)) = (&self.ctx.store, self.latest.as_mut()) {
            if !latest.is_empty() || !self.expired.is_empty() {
                store.publish(latest, &self.expired);
            }
        }
        self.expired.clear();
    }

    /// Join metrics (pairs, unmatched) since the last report.
    pub(super) fn report_joins(&self, reported: &mut Vec<i64>) {
        self.join_emitter.report(&self.joins, reported);
    }
}

/// The shadow topic's record of an event (`crate::output::encode_shadow`).
fn encode_shadow(buf: &mut Vec<u8>, e: &Event, model: &str, snap: &ModelSnapshot, served: usize, preds: &[f32]) {
    let challengers = preds.iter().enumerate().filter(|(k, _)| *k != served).map(|(k, p)| (snap.model_version(k), *p));
    crate::output::encode_shadow(buf, e.event_id.as_deref(), &e.key, e.time_ms, model, snap.model_version(served), challengers);
}

/// Sends closed windows (features that emit on close) to the `windows` topic.
fn send_closed(sink: &dyn OutputSink, job: &JobSpec, closed: &mut Vec<vigil_operators::ClosedWindow>, epoch: u64, buf: &mut Vec<u8>) {
    for c in closed.drain(..) {
        let vigil_operators::FeatureDef::Window(w) = &job.features[c.feature] else { continue };
        let value = w.agg.finish(c.span.count, w.field.map(|f| &c.span.fields[f]));
        crate::output::encode_window(buf, &c.key, &w.name, w.kind.name(), c.start, c.end, value, c.span.count);
        sink.send(Topic::Windows, c.key.as_bytes(), buf, epoch);
    }
}
