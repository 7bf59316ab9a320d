//! Scoring with a model trained online from late labels:
//! `stream.score_online(OnlineModel::logistic("fraud", labels).input(..))`.
//!
//! One learner per model and process (the job's online learner: variants trained
//! side by side on the GPU or its CPU twin, population-based training, champion
//! and challengers) reads the labels topic itself, joins each label with the
//! prediction its event got (by event id), and trains. Each event is scored where
//! it is, with the inputs read by name from the record (fields and features, as
//! [`super::Model`]), and its prediction goes to the learner. Only events with an
//! event id (the source's `event_id` field) are learned from.
//!
//! Which model scores an event (`consistency`, as in a TOML job):
//! - `event_time`: the model trained on exactly the labels revealed before the
//!   event's step of event time began (`model::gate`). The score waits for it:
//!   the event is held until the learner has built that model, which needs this
//!   stream's watermark past the step on every worker and the labels' watermark
//!   too. The same events and labels give the same scores at any speed and any
//!   worker count (the golden test checks them against the TOML job's, byte for
//!   byte). Marks leave no later than the oldest held event, so what follows
//!   sees held events on time.
//! - `latest`: the newest model, at once (scores depend on timing).
//!
//! Monitoring ([`OnlineModel::monitored`]): the learner runs concept drift and
//! fairness on the labeled outcomes, and each scored event carries its inputs
//! and its challengers' scores, so that [`super::Stream::monitor`] re-scores
//! them with the current champion and [`super::Stream::sink_shadow`] writes
//! the shadow topic.
//!
//! In a cluster of processes each process runs a replica of the learner that
//! gets every scorer's predictions and reports ([`super::learn_route`]).
//!
//! Checkpoints hold the learner's state (see [`super::checkpoint`]): with
//! checkpoints on, `consistency` is `latest` (as in a TOML job), a labeled
//! prediction trains the model only once a checkpoint covers its epoch, and each
//! scorer tells the coordinator (in a cluster: every replica) when it has sent
//! the predictions of an epoch.
//!
//! Not yet on the graph: reading back-pressure while many events are held.
//!
//! ```
//! use std::time::Duration;
//! use vigil::graph::{LocalRun, OnlineModel, Source};
//! use vigil::learner::LabelSpec;
//! use vigil::spec::FieldType;
//! use vigil_operators::Transform;
//!
//! let t0 = 1_700_000_000_000i64;
//! let tx: Vec<Vec<u8>> = (0..400)
//!     .map(|i| format!(r#"{{"id":"e{i}","card":"c{}","ts":{},"amount":{}}}"#, i % 7, t0 + i * 100, if i % 5 == 0 { 900 } else { 10 }).into_bytes())
//!     .collect();
//! // big amounts are fraud; labels are known 2 s after their event
//! let labels: Vec<Vec<u8>> = (0..400)
//!     .map(|i| format!(r#"{{"id":"e{i}","y":{},"at":{}}}"#, i % 5 == 0, t0 + i * 100 + 2_000).into_bytes())
//!     .collect();
//! let label_spec = LabelSpec::new("labels", "id", "y", Duration::from_secs(60), None).revealed_at("at", Duration::from_secs(1));
//! let out = LocalRun::new(2)
//!     .topic("tx", vec![tx])
//!     .topic("labels", vec![labels])
//!     .run(move |g| {
//!         let model = OnlineModel::logistic("fraud", label_spec.clone())
//!             .input("amount", Transform::Log1p)
//!             .configure(|s| s.variants = 2);
//!         g.source(Source::json("tx").key("card").event_id("id").field("amount", FieldType::F64))
//!             .score_online(model)
//!             .sink_scores("scores");
//!         Ok(())
//!     })
//!     .unwrap();
//! assert_eq!(out.values("scores").len(), 400);
//! assert_eq!(out.learners["fraud"].counts.joined, 400);
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{bail, Result};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use vigil_operators::Transform;

use super::checkpoint::{Checkpoints, Part};
use super::learn_route::{LearnMsg, Outbox};
use super::record::{FieldReader, Record};
use super::score::{Challenger, ModelVersion, Scored};
use super::stream::{Mark, Msg, Rec, Stream};
use crate::learner::{LabelSpec, LearnerLink, ModelNames, OnlineSpec, Pending};
use crate::model::gate::Gate;
use crate::model::ModelSnapshot;
use crate::monitor::interner::Interner;
use crate::monitor::ResolvedMonitor;
use crate::spec::JobSpec;
use vigil_operators::learn::ModelKind;

/// A model trained online; see the module docs.
#[derive(Clone, Debug)]
pub struct OnlineModel {
    pub(crate) name: String,
    /// The job it belongs to (names its experiment log).
    job: String,
    inputs: Vec<(String, Transform)>,
    pub(crate) spec: OnlineSpec,
    /// Concept drift and fairness of the labeled outcomes, and the sink their
    /// findings go to (see [`OnlineModel::monitored`]).
    pub(crate) watch: Option<(ResolvedMonitor, Option<String>)>,
}

impl OnlineModel {
    /// A logistic model learning from `labels`, with the job defaults of
    /// `[model.online]` (8 variants, event-time consistency where labels carry a
    /// time).
    pub fn logistic(name: &str, labels: LabelSpec) -> Self {
        OnlineModel { name: name.to_owned(), job: "graph".into(), inputs: Vec::new(), spec: OnlineSpec::new(ModelKind::Logistic, labels), watch: None }
    }
    /// An input (a field or feature of the record) and its transform.
    pub fn input(mut self, name: &str, transform: Transform) -> Self {
        self.inputs.push((name.to_owned(), transform));
        self
    }
    /// Any setting of the learner (`[model.online]`).
    pub fn configure(mut self, f: impl FnOnce(&mut OnlineSpec)) -> Self {
        f(&mut self.spec);
        self
    }
    /// A job's online model (`[model]` with `[model.online]`).
    pub fn of_job(job: &JobSpec) -> Result<OnlineModel> {
        let Some(spec) = job.model.online.clone() else { bail!("model `{}` has fixed weights: score it with `Model::of_job`", job.model.name) };
        Ok(OnlineModel {
            name: job.model.name.clone(),
            job: job.name.clone(),
            inputs: job.model.inputs.iter().map(|i| (i.name.clone(), i.transform)).collect(),
            spec,
            watch: None,
        })
    }
    /// The learner also runs `monitor`'s label-driven part on every labeled
    /// prediction, as a TOML job's `[monitor]` does: concept drift on the
    /// population's errors (`[monitor.concept]`, whose action the learner
    /// applies) and the fairness gaps of the served decisions across the values
    /// of the string field `[monitor.fairness] attribute`. Their findings go to
    /// the sink `sink` in the `drift` contract (none: metrics and logs only), as
    /// the learner sees the labels; the distributions are
    /// [`super::Stream::monitor`]'s.
    pub fn monitored(mut self, monitor: &super::Monitor, sink: Option<&str>) -> Self {
        self.watch = Some((monitor.resolved().clone(), sink.map(str::to_owned)));
        self
    }
    pub(crate) fn names(&self) -> ModelNames {
        ModelNames { job: self.job.clone(), model: self.name.clone(), inputs: self.inputs.iter().map(|i| i.0.clone()).collect() }
    }
}

impl<'s> Stream<'s, Record> {
    /// Each event scored by the model trained online; see the module docs.
    pub fn score_online(&self, model: OnlineModel) -> Stream<'s, Scored> {
        let shared = self.shared.clone();
        let scope = self.scope();
        let replicas = shared.collector.replicas;
        if shared.collector.checkpoints.is_some() && shared.online.borrow().contains(&model.name) {
            // the coordinator counts one scorer per worker before it asks the learner
            shared
                .errors
                .borrow_mut()
                .push(format!("online model `{}` is scored twice in a graph with checkpoints: score once and use the scored stream twice", model.name));
        }
        shared.online.borrow_mut().push(model.name.clone());
        let mut scorer = match shared.collector.learner(&model, shared.peers) {
            Ok((link, groups)) => {
                // in a cluster, predictions and reports go to every process's learner
                let interner = groups.as_ref().map(|g| g.1.clone());
                let checkpoints = shared.collector.checkpoints.clone();
                let outbox =
                    (replicas > 1).then(|| super::learn_route::route(scope, &model.name, replicas, shared.peers, link.clone(), interner, checkpoints.clone()));
                Some(OnlineScorer::new(&model, link, groups, shared.worker, outbox, checkpoints))
            }
            Err(e) => {
                shared.errors.borrow_mut().push(format!("online model `{}`: {e:#}", model.name));
                None
            }
        };
        let inner = self.inner.clone().unary_frontier::<timely::container::CapacityContainerBuilder<Vec<Msg<Scored>>>, _, _, _>(
            Pipeline,
            &format!("ScoreOnline({})", model.name),
            move |cap, info| {
                drop(cap);
                if let Some(g) = scorer.as_ref().and_then(|s| s.gate.clone()) {
                    // held events are released when the learner builds more
                    let wake = scope.worker().sync_activator_for(info.address.to_vec());
                    g.on_ready(Box::new(move || {
                        let _ = wake.activate();
                    }));
                }
                let mut batch = Vec::new();
                move |(input, frontier), output| {
                    let Some(s) = scorer.as_mut() else {
                        input.for_each(|_, _| {});
                        return;
                    };
                    input.for_each(|cap, data| {
                        let epoch = cap.least().copied().unwrap_or_default();
                        for m in data.drain(..) {
                            match m {
                                Msg::Event(r) => s.arrive(r, epoch, &cap, &mut batch),
                                Msg::Mark(mark) => s.low = s.low.max(mark.watermark),
                            }
                        }
                        s.mark_out(&mut batch);
                        if !batch.is_empty() {
                            output.session(&cap).give_container(&mut batch);
                        }
                    });
                    let released = s.release();
                    let last = released.len().saturating_sub(1);
                    for (i, (cap, mut events)) in released.into_iter().enumerate() {
                        if i == last {
                            s.mark_out(&mut events);
                        }
                        output.session(&cap).give_iterator(events.into_iter());
                    }
                    let passed = frontier.frontier().iter().min().copied();
                    s.report(passed.is_none());
                    s.fed(passed);
                }
            },
        );
        Stream::new(inner, self.shared.clone())
    }
}

/// An event held for the model of its step, with the epoch it came in.
struct Held {
    r: Rec<Record>,
    epoch: u64,
}

/// One worker's online scoring, without timely.
struct OnlineScorer {
    link: LearnerLink,
    gate: Option<Arc<Gate>>,
    worker: usize,
    inputs: Vec<(String, Transform)>,
    model_name: String,
    /// This worker's share's watermark (marks in), and the one sent on.
    low: i64,
    low_out: i64,
    /// Events held, by (boundary, arrival), with a capability per epoch held
    /// and their event times (a multiset).
    held: BTreeMap<(i64, u64), Held>,
    seq: u64,
    caps: BTreeMap<u64, (Capability<u64>, usize)>,
    held_times: BTreeMap<i64, usize>,
    /// Events with an id seen since the last report, per step (for the gate).
    accepted: BTreeMap<i64, u64>,
    pending: Vec<Pending>,
    versions: BTreeMap<(u64, usize), Arc<ModelVersion>>,
    /// The fairness attribute (a string field) and the ids of its values.
    groups: Option<(String, Arc<Interner>)>,
    /// The inputs, read by name (resolved once per record layout).
    reader: FieldReader,
    read: Vec<Option<f64>>,
    x: Vec<f32>,
    preds: Vec<f32>,
    /// In a cluster: where predictions and reports go (see [`super::learn_route`]),
    /// and the watermark last reported there.
    outbox: Option<std::rc::Rc<Outbox>>,
    reported_low: i64,
    /// With checkpoints: where to say which epochs' predictions are all sent,
    /// and the newest epoch said.
    checkpoints: Option<Arc<Checkpoints>>,
    fed_through: Option<u64>,
}

impl OnlineScorer {
    fn new(
        model: &OnlineModel,
        link: LearnerLink,
        groups: Option<(String, Arc<Interner>)>,
        worker: usize,
        outbox: Option<std::rc::Rc<Outbox>>,
        checkpoints: Option<Arc<Checkpoints>>,
    ) -> Self {
        OnlineScorer {
            outbox,
            reported_low: i64::MIN,
            checkpoints,
            fed_through: None,
            groups,
            gate: link.gate.clone(),
            link,
            worker,
            inputs: model.inputs.clone(),
            model_name: model.name.clone(),
            low: i64::MIN,
            low_out: i64::MIN,
            held: BTreeMap::new(),
            seq: 0,
            caps: BTreeMap::new(),
            held_times: BTreeMap::new(),
            accepted: BTreeMap::new(),
            pending: Vec::new(),
            versions: BTreeMap::new(),
            reader: FieldReader::new(&model.inputs.iter().map(|i| i.0.as_str()).collect::<Vec<_>>()),
            read: Vec::new(),
            x: Vec::new(),
            preds: Vec::new(),
        }
    }

    /// An event: scored now, or held for its model (event-time consistency).
    fn arrive(&mut self, r: Rec<Record>, epoch: u64, cap: &timely::dataflow::operators::InputCapability<u64>, batch: &mut Vec<Msg<Scored>>) {
        let Some(g) = self.gate.clone() else {
            let snap = self.link.model.current();
            batch.push(Msg::Event(self.score(r, epoch, &snap)));
            return;
        };
        if r.value.event_id().is_some() {
            *self.accepted.entry(g.step_of(r.time_ms)).or_default() += 1;
        }
        let boundary = g.boundary(r.time_ms);
        if boundary > g.ready() {
            g.hold(1);
            self.caps.entry(epoch).or_insert_with(|| (cap.delayed(&epoch, 0), 0)).1 += 1;
            *self.held_times.entry(r.time_ms).or_default() += 1;
            self.held.insert((boundary, self.seq), Held { r, epoch });
            self.seq += 1;
        } else {
            let snap = g.model_at(boundary);
            batch.push(Msg::Event(self.score(r, epoch, &snap)));
        }
    }

    /// The held events whose model is built, in (boundary, arrival) order,
    /// grouped by the capability of their epoch.
    fn release(&mut self) -> Vec<(Capability<u64>, Vec<Msg<Scored>>)> {
        let Some(g) = self.gate.clone() else { return Vec::new() };
        let ready = g.ready();
        let mut out: Vec<(Capability<u64>, Vec<Msg<Scored>>)> = Vec::new();
        while let Some(entry) = self.held.first_entry() {
            if entry.key().0 > ready {
                break;
            }
            let boundary = entry.key().0;
            let Held { r, epoch } = entry.remove();
            g.unhold(1);
            if let Some(n) = self.held_times.get_mut(&r.time_ms) {
                *n -= 1;
                if *n == 0 {
                    self.held_times.remove(&r.time_ms);
                }
            }
            let snap = g.model_at(boundary);
            let scored = self.score(r, epoch, &snap);
            let Some((cap, n)) = self.caps.get_mut(&epoch) else { continue };
            match out.iter_mut().find(|(c, _)| c.time() == cap.time()) {
                Some((_, v)) => v.push(Msg::Event(scored)),
                None => out.push((cap.clone(), vec![Msg::Event(scored)])),
            }
            *n -= 1;
            if *n == 0 {
                self.caps.remove(&epoch);
            }
        }
        self.send();
        out
    }

    /// Scores one event with `snap` and queues its prediction for the learner.
    fn score(&mut self, r: Rec<Record>, epoch: u64, snap: &ModelSnapshot) -> Rec<Scored> {
        self.reader.read(&r.value, &mut self.read);
        self.x.clear();
        self.x.extend(self.read.iter().zip(&self.inputs).map(|(v, (_, t))| v.map_or(f32::NAN, |v| t.apply(v) as f32)));
        let arm_b = crate::learner::pending::arm_b(&r.key, self.link.ab_share);
        let (slot, arm) = snap.serve(&mut self.x, &mut self.preds, arm_b);
        if let Some(id) = r.value.event_id() {
            let group = self.groups.as_ref().map_or(0, |(field, ids)| ids.id(r.value.str(field)));
            self.pending.push(Pending::served(id, r.time_ms, &self.x, &self.preds, slot, arm, snap.version, epoch, group));
        }
        let model = self.version(snap, slot);
        let challengers = (0..self.preds.len()).filter(|k| *k != slot).map(|k| Challenger { model: self.version(snap, k), score: self.preds[k] }).collect();
        let score = self.preds[slot] as f64;
        let Rec { key, time_ms, origin, offset, watermark, value } = r;
        let inputs = Some(self.x.as_slice().into());
        Rec { key, time_ms, origin, offset, watermark, value: Scored { record: value, score, model, challengers: Some(challengers), inputs } }
    }

    /// The name and version of variant `slot` of `snap` (shared between events).
    fn version(&mut self, snap: &ModelSnapshot, slot: usize) -> Arc<ModelVersion> {
        let name = &self.model_name;
        let model = self
            .versions
            .entry((snap.version, slot))
            .or_insert_with(|| Arc::new(ModelVersion { name: name.clone(), version: snap.model_version(slot).to_owned() }))
            .clone();
        if self.versions.len() > 256 {
            self.versions.pop_first();
        }
        model
    }

    /// Predictions to the learner (it may be gone at shutdown: they are moot then).
    fn send(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        match &self.outbox {
            Some(o) => {
                let mut names = BTreeMap::new();
                if let Some((_, ids)) = &self.groups {
                    for p in &pending {
                        names.entry(p.group).or_insert_with(|| ids.name(p.group));
                    }
                }
                o.push(LearnMsg::Predictions { pending, groups: names.into_iter().collect() })
            }
            None => drop(self.link.tx.send(pending)),
        }
    }

    /// Tells the gate this worker's watermark and what it accepted: after the
    /// predictions of what it scored, so the learner never waits for nothing.
    fn report(&mut self, ended: bool) {
        self.send();
        let low = if ended { i64::MAX } else { self.low };
        match (&self.gate, &self.outbox) {
            (Some(g), None) => g.report_source(self.worker, low, &mut self.accepted),
            (Some(_), Some(o)) if low != self.reported_low || !self.accepted.is_empty() => {
                self.reported_low = low;
                let accepted = std::mem::take(&mut self.accepted).into_iter().collect();
                o.push(LearnMsg::Report { worker: self.worker, low, accepted });
            }
            _ => {}
        }
        // held events still send their predictions once released
        if ended && self.held.is_empty() {
            if let Some(o) = &self.outbox {
                o.end();
            }
        }
    }

    /// With checkpoints, after [`Self::report`]: tells the coordinator (in a
    /// cluster, through the learner route, every process's) that every
    /// prediction of the epochs before the input frontier `passed` is sent to
    /// the learner (`None`: the input ended, so of every epoch).
    fn fed(&mut self, passed: Option<u64>) {
        let Some(ck) = &self.checkpoints else { return };
        let (epoch, last) = match passed {
            None => (u64::MAX, true),
            Some(0) => return,
            Some(f) => (f - 1, false),
        };
        if self.fed_through.is_some_and(|t| t >= epoch) {
            return;
        }
        self.fed_through = Some(epoch);
        match &self.outbox {
            Some(o) => o.push(LearnMsg::Fed { worker: self.worker, epoch, last }),
            None => ck.send(Part::Fed { worker: self.worker, model: self.model_name.clone(), epoch, last }),
        }
    }

    /// The watermark to send on, if it moved: the input's, but no later than the
    /// oldest held event.
    fn mark_out(&mut self, batch: &mut Vec<Msg<Scored>>) {
        let oldest = self.held_times.keys().next().copied().unwrap_or(i64::MAX);
        let wm = self.low.min(oldest);
        if wm > self.low_out {
            self.low_out = wm;
            let me = self.worker as u32;
            batch.push(Msg::Mark(Mark { watermark: wm, from: me, to: me }));
        }
    }
}
