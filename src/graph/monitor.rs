//! Drift monitoring of a scored stream: `scored.monitor(name, Monitor::..)` is
//! the stream of the monitor's findings (`DriftRecord`s: feature drift of the
//! watched numeric and string values, prediction drift of the served scores and
//! of the positive rate), and `findings.sink_drift("drift")` writes the `drift`
//! topic's contract (key `kind/name`, the record as JSON) as a TOML job does.
//!
//! Every worker reduces its events to the watched values; one monitor (on
//! worker 0) takes them in event-time order: values wait until the stream's
//! watermark (the least over every worker) passes their time, and are then fed
//! in the order of [`watched_order`]: event time, then the values themselves. So the windows, the evaluations (every
//! `interval` of event time) and the verdicts are the same at any speed, worker
//! count or batching, and equal to feeding the sorted values to the monitor by
//! hand (`tests/graph_monitor.rs`). A finding's time is its evaluation's.
//!
//! A stream scored by a model trained online ([`super::Stream::score_online`],
//! `Monitor::of_job` of such a job, or [`Monitor::rescored_by`]): the current
//! champion re-scores the reference's inputs and the current window's at each
//! evaluation (a model that learns moves its served scores; that is not drift).
//! Concept drift and fairness gaps need the labeled outcomes the learner sees:
//! give the monitor to the model too ([`super::OnlineModel::monitored`]); a
//! `fairness` section on a monitor of fixed-weight scores is refused. The
//! monitor's windows are not in checkpoints: after a restore they start over
//! with a new reference, as the pipeline's do.
//!
//! ```
//! use std::time::Duration;
//! use vigil::graph::{Features, LocalRun, Model, Monitor, Source};
//! use vigil::monitor::MonitorSpec;
//! use vigil::spec::FieldType;
//! use vigil_operators::Transform;
//!
//! let t0 = 1_700_000_000_000i64;
//! // amounts around 10 for 10 minutes, then around 1000
//! let tx: Vec<Vec<u8>> = (0..1200)
//!     .map(|i| {
//!         let amount = if i < 600 { 10.0 + (i % 7) as f64 } else { 1000.0 + (i % 7) as f64 };
//!         format!(r#"{{"card":"c{}","ts":{},"amount":{amount}}}"#, i % 13, t0 + i * 1000).into_bytes()
//!     })
//!     .collect();
//! let spec = MonitorSpec { interval: Duration::from_secs(60), window: 200, numeric: Some(vec!["amount".into()]), ..MonitorSpec::default() };
//! let out = LocalRun::new(2)
//!     .topic("tx", vec![tx])
//!     .run(move |g| {
//!         let model = Model::logistic("lr", "1").weight("amount", 0.01, Transform::Log1p);
//!         g.source(Source::json("tx").key("card").field("amount", FieldType::F64))
//!             .score(model)
//!             .monitor("drift_monitor", Monitor::new(spec.clone())?)
//!             .sink_drift("drift");
//!         Ok(())
//!     })
//!     .unwrap();
//! let drift = out.values("drift");
//! assert!(drift.iter().any(|r| r.contains(r#""name":"amount""#) && r.contains(r#""drift":true"#)));
//! ```

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;

use super::keyed::Origin;
use super::record::FieldReader;
use super::score::Scored;
use super::sink::Written;
use super::stream::{Mark, Msg, Rec, Stream, Watermarks};
use crate::monitor::distribution::DistributionMonitors;
use crate::monitor::interner::Interner;
use crate::monitor::{DriftEmitter, DriftRecord, MemoryDriftSink, MonitorSpec, NumericSource, Observations, ResolvedMonitor};
use crate::spec::JobSpec;
use vigil_operators::drift::Reference;

/// What a monitor watches; see the module docs.
#[derive(Clone, Debug)]
pub struct Monitor {
    resolved: ResolvedMonitor,
    /// The online model whose champion re-scores the watched inputs.
    online: Option<String>,
}

impl Monitor {
    /// A monitor of the numeric values named in `spec.numeric` (fields or
    /// features of the records) and the string fields in `spec.categorical`.
    pub fn new(spec: MonitorSpec) -> Result<Monitor> {
        let Some(numeric) = spec.numeric.clone() else {
            bail!("monitor: `numeric` must name the values to watch (on a graph there is no job to take its features from)")
        };
        spec.check_sizes()?;
        let numeric = numeric.into_iter().enumerate().map(|(i, n)| (n, NumericSource::Field(i))).collect();
        let categorical = spec.categorical.iter().cloned().enumerate().map(|(i, n)| (n, i)).collect();
        let reference = spec.reference.clone().unwrap_or(Reference::First { skip: 0, events: spec.window });
        Ok(Monitor { resolved: ResolvedMonitor { spec, numeric, categorical, fairness_attribute: None, reference }, online: None })
    }

    /// Predictions are watched as `model` (trained online, scoring the stream)
    /// scores them now: see the module docs.
    pub fn rescored_by(mut self, model: &super::OnlineModel) -> Self {
        self.online = Some(model.name.clone());
        self
    }

    pub(crate) fn resolved(&self) -> &ResolvedMonitor {
        &self.resolved
    }

    /// A job's `[monitor]` (names checked against the job, every feature watched
    /// unless it names some).
    pub fn of_job(job: &JobSpec) -> Result<Monitor> {
        let resolved = job.monitor.clone().with_context(|| format!("job `{}` has no [monitor]", job.name))?;
        resolved.spec.check_sizes()?;
        Ok(Monitor { resolved, online: job.model.online.as_ref().map(|_| job.model.name.clone()) })
    }
}

/// One worker's watched values since its last batch, or its watermark.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Watched {
    Rows(Rows),
    Mark(Mark),
}

/// Watched values, row-major.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Rows {
    time_ms: Vec<i64>,
    numeric: Vec<f64>,
    categorical: Vec<Option<String>>,
    score: Vec<f32>,
    /// The model's inputs (a model trained online), row-major.
    inputs: Vec<f32>,
}

impl<'s> Stream<'s, Scored> {
    /// The findings of `monitor` over this stream; see the module docs.
    pub fn monitor(&self, name: &str, monitor: Monitor) -> Stream<'s, DriftRecord> {
        // the name is claimed (unique) though the state is not checkpointed
        self.shared.claim_unsaved(name);
        let m = monitor.resolved;
        let numeric: Vec<String> = m.numeric.iter().map(|(n, _)| n.clone()).collect();
        let strings: Vec<String> = m.categorical.iter().map(|(n, _)| n.clone()).collect();
        let me = self.scope().index() as u32;
        let peers = self.scope().peers();
        let watched = self.watched(&format!("Watch({name})"), numeric, strings.clone(), me);
        let sink = MemoryDriftSink::new();
        let metrics = self.shared.collector.metrics();
        let emitter = DriftEmitter::new(Some(sink.clone()), metrics, m.spec.patience);
        let model = match &monitor.online {
            Some(online) => {
                let handle = self.shared.collector.learner_model(online);
                if handle.is_none() {
                    self.shared.errors.borrow_mut().push(format!("monitor `{name}`: the online model `{online}` scores nothing before it in this graph"));
                }
                let lock = OnceLock::new();
                if let Some(h) = handle {
                    let _ = lock.set(h);
                }
                Some(Arc::new(lock))
            }
            None => {
                if m.spec.fairness.is_some() {
                    self.shared.errors.borrow_mut().push(format!("monitor `{name}`: fairness gaps need labeled outcomes: monitor a model trained online"));
                }
                None
            }
        };
        let mut state = MonitorState {
            monitors: DistributionMonitors::new(&m, emitter, model),
            waiting: BTreeMap::new(),
            interners: strings.iter().map(|_| Interner::new()).collect(),
            sink,
        };
        let inner = watched.unary_frontier::<timely::container::CapacityContainerBuilder<Vec<Msg<DriftRecord>>>, _, _, _>(
            Exchange::new(|_: &Watched| 0),
            name,
            move |cap, _| {
                let mut cap = Some(cap);
                let mut marks = Watermarks::exchanged(peers);
                let mut out: Vec<Msg<DriftRecord>> = Vec::new();
                move |(input, frontier), output| {
                    let mut moved = None;
                    input.for_each(|_, data| {
                        for w in data.drain(..) {
                            match w {
                                Watched::Rows(rows) => state.push(rows),
                                Watched::Mark(mark) => moved = marks.observe(&mark).or(moved),
                            }
                        }
                    });
                    let f = frontier.frontier().as_option().copied();
                    let Some(c) = cap.as_mut() else { return };
                    if let Some(wm) = moved {
                        state.feed_before(wm, &mut out);
                        out.push(Msg::Mark(Mark { watermark: wm, from: me, to: me }));
                    }
                    match f {
                        Some(f) => {
                            if *c.time() < f {
                                c.downgrade(&f);
                            }
                            output.session(&*c).give_container(&mut out);
                        }
                        None => {
                            state.finish(&mut out);
                            out.push(Msg::Mark(Mark { watermark: i64::MAX, from: me, to: me }));
                            output.session(&*c).give_container(&mut out);
                            cap = None;
                        }
                    }
                }
            },
        );
        Stream::new(inner, self.shared.clone())
    }

    /// Each worker's watched values, a batch per input batch, and its marks.
    fn watched(&self, name: &str, numeric: Vec<String>, strings: Vec<String>, me: u32) -> timely::dataflow::Stream<'s, u64, Vec<Watched>> {
        let mut reader = FieldReader::new(&numeric);
        let mut values = Vec::new();
        self.inner.clone().unary::<timely::container::CapacityContainerBuilder<Vec<Watched>>, _, _, _>(Pipeline, name, move |_, _| {
            move |input, output| {
                input.for_each(|time, data| {
                    let mut rows = Rows::default();
                    let mut session = output.session(&time);
                    for m in data.drain(..) {
                        match m {
                            Msg::Event(r) => {
                                rows.time_ms.push(r.time_ms);
                                reader.read_nan(&r.value.record, &mut values);
                                rows.numeric.extend_from_slice(&values);
                                rows.categorical.extend(strings.iter().map(|s| r.value.record.str(s).map(str::to_owned)));
                                rows.score.push(r.value.score as f32);
                                rows.inputs.extend(r.value.inputs.iter().flatten());
                            }
                            Msg::Mark(mark) => {
                                if !rows.time_ms.is_empty() {
                                    session.give(Watched::Rows(std::mem::take(&mut rows)));
                                }
                                session.give(Watched::Mark(Mark { watermark: mark.watermark, from: me, to: 0 }));
                            }
                        }
                    }
                    if !rows.time_ms.is_empty() {
                        session.give(Watched::Rows(rows));
                    }
                });
            }
        })
    }
}

impl<'s> Stream<'s, DriftRecord> {
    /// The `drift` topic's contract: key `kind/name`, the finding as JSON.
    pub fn sink_drift(&self, name: &str) {
        self.sink_with(name, |r, buf| match serde_json::to_writer(&mut *buf, &r.value) {
            Ok(()) => Written::Value,
            Err(_) => Written::Nothing,
        })
    }
}

/// The order the monitor takes events in: by event time, then by the watched
/// values (numeric in `f64::total_cmp` order, then the strings, then the
/// score), which makes it total: the same events in any arrival order are fed
/// alike.
pub fn watched_order(a: (i64, &[f64], &[Option<String>], f32), b: (i64, &[f64], &[Option<String>], f32)) -> Ordering {
    let numeric = || a.1.iter().zip(b.1).map(|(x, y)| x.total_cmp(y)).find(|o| o.is_ne()).unwrap_or(a.1.len().cmp(&b.1.len()));
    a.0.cmp(&b.0).then_with(numeric).then_with(|| a.2.cmp(b.2)).then_with(|| a.3.total_cmp(&b.3))
}

/// One row waiting for the watermark.
#[derive(Debug)]
struct Waiting {
    time_ms: i64,
    numeric: Vec<f64>,
    categorical: Vec<Option<String>>,
    score: f32,
    inputs: Box<[f32]>,
}

impl Waiting {
    fn key(&self) -> (i64, &[f64], &[Option<String>], f32) {
        (self.time_ms, &self.numeric, &self.categorical, self.score)
    }
}

/// The monitor on worker 0.
struct MonitorState {
    monitors: DistributionMonitors,
    /// Rows waiting for the watermark, by event time.
    waiting: BTreeMap<i64, Vec<Waiting>>,
    /// Category ids, assigned in the order values are fed (deterministic).
    interners: Vec<Arc<Interner>>,
    sink: Arc<MemoryDriftSink>,
}

impl MonitorState {
    fn push(&mut self, rows: Rows) {
        let n = rows.time_ms.len();
        let (nn, nc, ni) = (rows.numeric.len() / n.max(1), rows.categorical.len() / n.max(1), rows.inputs.len() / n.max(1));
        let mut categorical = rows.categorical.into_iter();
        for i in 0..n {
            self.waiting.entry(rows.time_ms[i]).or_default().push(Waiting {
                time_ms: rows.time_ms[i],
                numeric: rows.numeric[i * nn..(i + 1) * nn].to_vec(),
                categorical: categorical.by_ref().take(nc).collect(),
                score: rows.score[i],
                inputs: rows.inputs[i * ni..(i + 1) * ni].into(),
            });
        }
    }

    /// Feeds the rows before `watermark` in [`watched_order`].
    fn feed_before(&mut self, watermark: i64, out: &mut Vec<Msg<DriftRecord>>) {
        let rest = self.waiting.split_off(&watermark);
        let mut due: Vec<Waiting> = std::mem::replace(&mut self.waiting, rest).into_values().flatten().collect();
        if due.is_empty() {
            return;
        }
        let inputs =
            |a: &Waiting, b: &Waiting| a.inputs.iter().zip(b.inputs.iter()).map(|(x, y)| x.total_cmp(y)).find(|o| o.is_ne()).unwrap_or(Ordering::Equal);
        due.sort_unstable_by(|a, b| watched_order(a.key(), b.key()).then_with(|| inputs(a, b)));
        let mut batch = Observations::default();
        for row in due {
            batch.time_ms.push(row.time_ms);
            batch.numeric.extend_from_slice(&row.numeric);
            batch.categorical.extend(row.categorical.iter().zip(&self.interners).map(|(v, ids)| ids.id(v.as_deref())));
            batch.score.push(row.score);
            batch.inputs.extend_from_slice(&row.inputs);
        }
        self.monitors.observe(&batch);
        self.emit(watermark, out);
    }

    /// The end of the input: every row, then the last evaluation.
    fn finish(&mut self, out: &mut Vec<Msg<DriftRecord>>) {
        self.feed_before(i64::MAX, out);
        self.monitors.finish();
        self.emit(i64::MAX, out);
    }

    fn emit(&mut self, watermark: i64, out: &mut Vec<Msg<DriftRecord>>) {
        for r in self.sink.take() {
            let key = format!("{}/{}", r.kind, r.name);
            out.push(Msg::Event(Rec { key, time_ms: r.ts, origin: Origin { source: 0, partition: 0 }, offset: -1, watermark, value: r }));
        }
    }
}
