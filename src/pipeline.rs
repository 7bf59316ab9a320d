//! The job as a timely dataflow, one instance per worker:
//!
//! ```text
//! source (owned partitions) -> decode/validate/watermark -> exchange by key
//!     -> features as of each event -> score -> sink
//! ```
//!
//! * Ingest runs on the worker that owns the partition, so every per-partition
//!   decision (accepted, late, bad timestamp) follows offset order.
//! * Events move to the worker owning their key's hash. Timely channels are FIFO per
//!   (sender, receiver) pair and the scoring operator reads its input in arrival
//!   order, so each key's events are scored in partition offset order: features do
//!   not depend on the number of workers or processes.
//! * Nothing waits for the watermark: an event is scored as soon as every earlier
//!   checkpoint epoch is complete, normally in the activation that receives it.
//! * The timely time of a record is its checkpoint epoch (see `epoch`): sources
//!   follow the process's epoch clock and report their cut at every step; the
//!   scoring operator processes epochs in order and reports its state each time its
//!   input frontier passes an epoch, so a checkpoint is exactly "every record of
//!   epochs up to e, and none later".
//! * Rejected records go to the DLQ from the ingest worker; scores from the scoring
//!   worker. Both through the process's [`OutputSink`], tagged with their epoch so
//!   that offsets are committed only after their outputs are delivered.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus::IntCounter;
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::operator::source as timely_source;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::{Scope, Stream};
use timely::worker::Worker;
use vigil_operators::{FeatureState, JoinState};

use crate::checkpoint::restore::Restored;
use crate::checkpoint::{PartitionCut, Report};
use crate::decode::{Decoder, Reason, Rejection};
use crate::epoch::EpochClock;
use crate::learner::{ModelSnapshot, Pending};
use crate::metrics::Metrics;
use crate::output::{encode_dlq, OutputSink, ScoreContext, ScoreEncoder, Topic};
use crate::source::{PollStatus, RecordSource};
use crate::spec::{InputSource, JobSpec};
use crate::store::{FeatureStore, StoredFeatures};
use crate::watermark::{PartitionClock, SourceProgress, TimePolicy};

/// Records read per source activation.
const POLL_BATCH: usize = 4096;
/// How long an idle source waits before polling again; after a second without
/// records the wait grows to `IDLE_POLL_MAX` (an idle job costs ~nothing). A
/// source that wakes the worker itself when records arrive (Kafka) only needs
/// `IDLE_TICK`, to follow the epoch clock and report metrics.
const IDLE_POLL: Duration = Duration::from_millis(5);
const IDLE_POLL_MAX: Duration = Duration::from_millis(20);
const IDLE_TICK: Duration = Duration::from_millis(50);

/// Shared between the workers of a process and whoever drives them.
#[derive(Default)]
pub struct Control {
    shutdown: AtomicBool,
    positions: Mutex<Vec<(u32, i64)>>,
}

impl Control {
    pub fn new() -> Arc<Control> {
        Arc::new(Control::default())
    }
    /// Asks every source to stop reading; the dataflow then drains and ends.
    pub fn request_shutdown(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
    }
    pub fn shutdown_requested(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }
    /// The flag itself, for loops outside the dataflow (generators) that stop with the job.
    pub fn shutdown_flag(&self) -> &AtomicBool {
        &self.shutdown
    }
    /// Next offsets of every partition read by this process's workers, recorded as
    /// each source stopped.
    pub fn positions(&self) -> Vec<(u32, i64)> {
        let mut p = self.positions.lock().unwrap_or_else(|e| e.into_inner()).clone();
        p.sort();
        p
    }
}

/// An accepted event on its way to its key's worker.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Event {
    pub key: String,
    pub event_id: Option<String>,
    pub time_ms: i64,
    pub partition: u32,
    pub offset: i64,
    /// The partition's watermark after this event (no later event of the partition is older).
    pub watermark: i64,
    pub numeric: Vec<f64>,
    /// The string fields the job keeps for monitoring (`JobSpec::kept_strings`).
    pub strings: Vec<Option<String>>,
    /// Wall clock at consumption, microseconds since the Unix epoch.
    pub consumed_us: u64,
}

/// Everything a worker needs to run the job.
pub struct WorkerContext {
    pub job: Arc<JobSpec>,
    pub sink: Arc<dyn OutputSink>,
    pub metrics: Arc<Metrics>,
    pub control: Arc<Control>,
    pub epochs: Arc<EpochClock>,
    /// Where cuts and states go (the checkpoint coordinator); none for local runs.
    pub reports: Option<Sender<Report>>,
    /// Whether scoring operators encode their state at every epoch.
    pub snapshot_state: bool,
    /// The checkpoint this run resumes from.
    pub restored: Option<Arc<Restored>>,
    /// Where the latest feature vector of every key is published for lookups.
    pub store: Option<Arc<FeatureStore>>,
    /// The online learner (model snapshots in, pending predictions out).
    pub learner: Option<crate::learner::LearnerLink>,
    /// The drift monitor (watched values of every scored event out).
    pub monitor: Option<crate::monitor::MonitorLink>,
    /// The offline log (every scored event's features, to Parquet).
    pub offline: Option<crate::offline::OfflineLink>,
    /// The job's tables, for lookup features (in `JobSpec::tables` order).
    pub tables: Vec<Arc<crate::table::SharedTable>>,
}

impl WorkerContext {
    /// A context for a run without checkpoints or commits (tests, benchmarks).
    pub fn local(job: Arc<JobSpec>, sink: Arc<dyn OutputSink>, metrics: Arc<Metrics>, control: Arc<Control>) -> Self {
        WorkerContext {
            job,
            sink,
            metrics,
            control,
            epochs: Arc::new(EpochClock::default()),
            reports: None,
            snapshot_state: false,
            restored: None,
            store: None,
            learner: None,
            monitor: None,
            offline: None,
            tables: Vec::new(),
        }
    }
    /// The first epoch of this run: one past the restored checkpoint.
    pub fn start_epoch(&self) -> u64 {
        self.restored.as_ref().map_or(0, |r| r.epoch() + 1)
    }
    fn report(&self, report: Report) {
        if let Some(tx) = &self.reports {
            let _ = tx.send(report);
        }
    }
}

/// Builds the job's dataflow on `worker` and runs it until the source ends (bounded
/// input) or shutdown is requested and everything in flight is scored.
pub fn run_worker(worker: &mut Worker, ctx: &Arc<WorkerContext>, source: Box<dyn RecordSource>) -> anyhow::Result<()> {
    let built = worker.dataflow::<u64, _, _>(|scope| {
        let events = ingest(scope, ctx, source);
        score(events, ctx)
    });
    if let Err(e) = &built {
        // Every worker must build the same dataflow: stop the job instead of leaving
        // the others waiting.
        ctx.control.request_shutdown();
        tracing::error!(error = %e, "worker cannot restore its state");
    }
    while worker.has_dataflows() {
        worker.step_or_park(None);
    }
    built
}

pub fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

fn ingest<'s>(scope: Scope<'s, u64>, ctx: &Arc<WorkerContext>, mut source: Box<dyn RecordSource>) -> Stream<'s, u64, Vec<Event>> {
    let ctx = ctx.clone();
    let worker = scope.index();
    timely_source::<_, timely::container::CapacityContainerBuilder<Vec<Event>>, _, _>(scope, "Ingest", move |mut capability, info| {
        let activator = scope.activator_for(info.address.clone());
        let wakeup = scope.worker().sync_activator_for(info.address.to_vec());
        let woken = source.set_wakeup(Box::new(move || {
            let _ = wakeup.activate();
        }));
        let start_epoch = ctx.start_epoch();
        if start_epoch > 0 {
            capability.downgrade(&start_epoch);
        }
        let mut cap = Some(capability);
        let job = ctx.job.clone();
        let metrics = ctx.metrics.clone();
        let decoder = Decoder::new(&job);
        let policy =
            TimePolicy { allowed_lateness_ms: job.source.allowed_lateness.as_millis() as i64, max_future_ms: job.source.max_future.as_millis() as i64 };
        let topic = source.topic().to_owned();
        let partitions = source.partitions().to_vec();
        let slot_of: HashMap<u32, usize> = partitions.iter().enumerate().map(|(i, p)| (*p, i)).collect();
        let mut clocks: Vec<PartitionClock> = match &ctx.restored {
            Some(r) => partitions.iter().map(|p| r.clock(*p)).collect(),
            None => vec![PartitionClock::default(); partitions.len()],
        };
        let mut progress = SourceProgress::new(partitions.len(), job.source.idle_timeout);
        let events_in = metrics.events_in.with_label_values(&[&topic]);
        let dlq: HashMap<Reason, IntCounter> = Reason::ALL.iter().map(|r| (*r, metrics.dlq.with_label_values(&[r.as_str()]))).collect();
        let mut unknown: HashMap<String, IntCounter> = HashMap::new();
        let watermark_gauges: Vec<_> = partitions.iter().map(|p| metrics.watermark.with_label_values(&[&p.to_string()])).collect();
        let mut last_report = Instant::now();
        let mut last_record = Instant::now();
        let mut batch: Vec<Event> = Vec::with_capacity(POLL_BATCH);
        // event-time-consistent scoring: accepted events per step and the strict
        // low watermark go to the gate; reading pauses while scorers hold too much
        let gate = ctx.learner.as_ref().and_then(|l| l.gate.clone());
        if let Some(g) = &gate {
            let wake = scope.worker().sync_activator_for(info.address.to_vec());
            g.on_ready(Box::new(move || {
                let _ = wake.activate();
            }));
        }
        let mut accepted: std::collections::BTreeMap<i64, u64> = std::collections::BTreeMap::new();
        let mut gate_low = i64::MIN;

        move |output| {
            let Some(c) = cap.as_mut() else { return };
            let epoch = *c.time();
            let stopping = ctx.control.shutdown_requested();
            let now = Instant::now();
            let status = if stopping {
                PollStatus::Finished
            } else if gate.as_ref().is_some_and(|g| !g.may_read(gate_low)) {
                PollStatus::Idle
            } else {
                let consumed_us = now_us();
                let now_ms = (consumed_us / 1000) as i64;
                let sink = &ctx.sink;
                let reject = |partition: u32, offset: i64, payload: Option<&[u8]>, r: Rejection| {
                    dlq[&r.reason].inc();
                    let key = format!("{topic}-{partition}-{offset}");
                    sink.send(Topic::Dlq, key.as_bytes(), &encode_dlq(&topic, partition, offset, payload, &r), epoch);
                };
                let status = source.poll(POLL_BATCH, &mut |rec| {
                    let Some(slot) = slot_of.get(&rec.partition).copied() else {
                        return;
                    }; // not ours: cannot happen with assign()
                    progress.touch(slot, now);
                    let mut note_unknown = |name: &str| match unknown.get(name) {
                        Some(counter) => counter.inc(),
                        None if unknown.len() < 1024 => {
                            let counter = metrics.unknown_field(name);
                            counter.inc();
                            unknown.insert(name.to_owned(), counter);
                        }
                        None => metrics.unknown_field(name).inc(),
                    };
                    let decoded = match decoder.decode(rec.payload, &mut note_unknown) {
                        Ok(d) => d,
                        Err(r) => return reject(rec.partition, rec.offset, rec.payload, r),
                    };
                    match clocks[slot].admit(decoded.time_ms, now_ms, &policy) {
                        Ok(watermark) => {
                            // counted for the gate (only events with an id reach the learner)
                            if let (Some(g), Some(_)) = (&gate, &decoded.event_id) {
                                *accepted.entry(g.step_of(decoded.time_ms)).or_default() += 1;
                            }
                            batch.push(Event {
                                key: decoded.key,
                                event_id: decoded.event_id,
                                time_ms: decoded.time_ms,
                                partition: rec.partition,
                                offset: rec.offset,
                                watermark,
                                numeric: decoded.numeric,
                                strings: decoded.strings,
                                consumed_us,
                            })
                        }
                        Err(r) => reject(rec.partition, rec.offset, rec.payload, r),
                    }
                });
                if let PollStatus::Records(n) = status {
                    events_in.inc_by(n as u64);
                }
                if !batch.is_empty() {
                    output.session(&*c).give_iterator(batch.drain(..));
                }
                status
            };

            // Follow the epoch clock one epoch at a time, reporting each cut; at the
            // end, stop the clock so that every source ends in the same epoch.
            let finished = status == PollStatus::Finished;
            let target = if finished { ctx.epochs.freeze() } else { ctx.epochs.target() };
            let cut = |clocks: &[PartitionClock]| -> Vec<PartitionCut> {
                source
                    .positions()
                    .into_iter()
                    .zip(clocks)
                    .map(|((partition, next_offset), clock)| PartitionCut { partition, next_offset, clock: clock.clone() })
                    .collect()
            };
            while *c.time() < target {
                ctx.report(Report::Cut { worker, epoch: *c.time(), partitions: cut(&clocks) });
                let next = *c.time() + 1;
                c.downgrade(&next);
            }
            if finished {
                ctx.report(Report::Cut { worker, epoch: *c.time(), partitions: cut(&clocks) });
                if let Some(g) = &gate {
                    g.report_source(worker, i64::MAX, &mut accepted);
                }
                finish(&mut cap, &*source, &ctx.control);
                return;
            }

            if let Some(g) = &gate {
                gate_low = progress.strict_low(clocks.iter().map(|c| c.watermark(&policy)), now);
                g.report_source(worker, gate_low, &mut accepted);
            }
            let low = progress.advance(clocks.iter().map(|c| c.watermark(&policy)), now);
            if now.duration_since(last_report) >= Duration::from_secs(1) {
                last_report = now;
                source.report(&metrics);
                for (gauge, clock) in watermark_gauges.iter().zip(&clocks) {
                    gauge.set(clock.watermark(&policy).unwrap_or(0) as f64 / 1000.0);
                }
                metrics.source_progress.set(low as f64 / 1000.0);
            }
            match status {
                PollStatus::Records(_) => {
                    last_record = now;
                    activator.activate()
                }
                PollStatus::Idle if woken => activator.activate_after(IDLE_TICK),
                PollStatus::Idle if now.duration_since(last_record) > Duration::from_secs(1) => activator.activate_after(IDLE_POLL_MAX),
                _ => activator.activate_after(IDLE_POLL),
            }
        }
    })
}

/// Releases the source's capability and records its positions for the commit.
fn finish(cap: &mut Option<timely::dataflow::operators::Capability<u64>>, source: &dyn RecordSource, control: &Control) {
    control.positions.lock().unwrap_or_else(|e| e.into_inner()).extend(source.positions());
    *cap = None;
}

/// `{"event_id", "key", "event_time", "model", "served_version", "challengers": [{"version", "score"}]}`:
/// the scores of every variant but the served one.
fn encode_shadow(buf: &mut Vec<u8>, e: &Event, model: &str, snap: &ModelSnapshot, served: usize, preds: &[f32]) {
    #[derive(Serialize)]
    struct Challenger<'a> {
        version: &'a str,
        score: f32,
    }
    #[derive(Serialize)]
    struct Shadow<'a> {
        event_id: Option<&'a str>,
        key: &'a str,
        event_time: i64,
        model: &'a str,
        served_version: &'a str,
        challengers: Vec<Challenger<'a>>,
    }
    buf.clear();
    let record = Shadow {
        event_id: e.event_id.as_deref(),
        key: &e.key,
        event_time: e.time_ms,
        model,
        served_version: snap.model_version(served),
        challengers: preds.iter().enumerate().filter(|(k, _)| *k != served).map(|(k, p)| Challenger { version: snap.model_version(k), score: *p }).collect(),
    };
    let _ = serde_json::to_writer(&mut *buf, &record);
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

/// Key hash for the exchange: FNV-1a, identical in every process.
pub fn key_hash(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

fn score(events: Stream<'_, u64, Vec<Event>>, ctx: &Arc<WorkerContext>) -> anyhow::Result<()> {
    // The operator is built even when restoring fails, so that every worker builds
    // the same dataflow; the error stops the job.
    let ctx = ctx.clone();
    let job = ctx.job.clone();
    let worker = events.scope().index();
    let peers = events.scope().peers();
    let empty = (FeatureState::new(job.features.clone(), job.numeric_fields().len()), JoinState::new(job.joins.clone()));
    let ((mut state, mut joins), restored) = match &ctx.restored {
        Some(r) => match r.worker_state(empty.clone(), |key| key_hash(key) % peers as u64 == worker as u64) {
            Ok(s) => (s, Ok(())),
            Err(e) => (empty, Err(e)),
        },
        None => (empty, Ok(())),
    };
    let names: Vec<String> = job.features.iter().map(|f| f.name().to_owned()).collect();
    let inputs = job.model_inputs();
    let transforms: Vec<vigil_operators::Transform> = job.model.inputs.iter().map(|i| i.transform).collect();
    let model = job.logistic_model();
    let mut encoder = ScoreEncoder::new(&job.source.topic, &job.model.name, &job.model.version, &names);
    let mut encoder_b = ScoreEncoder::new(&job.source.topic, &job.model.name, &job.model.version, &names);
    let start_epoch = ctx.start_epoch();
    let mut features = Vec::with_capacity(names.len());
    let mut model_in = Vec::with_capacity(inputs.len());
    let mut buf = Vec::with_capacity(512);
    let mut reported_keys = 0i64;
    let mut stash: BTreeMap<u64, Vec<Event>> = BTreeMap::new();
    let mut passed: Option<u64> = None;

    let sink = ctx.sink.clone();
    let metrics = ctx.metrics.clone();
    let publish_features = ctx.store.is_some();
    let features_topic = job.sinks.features.is_some();
    let shadow_topic = job.sinks.shadow.is_some();
    let mut features_buf = Vec::with_capacity(256);
    let mut latest: HashMap<String, StoredFeatures> = HashMap::new();
    // online learning: the snapshot scoring uses, refreshed at every batch
    let learner = ctx.learner.clone();
    let mut snapshot: Option<Arc<ModelSnapshot>> = None;
    let mut x: Vec<f32> = Vec::with_capacity(inputs.len());
    let mut preds: Vec<f32> = Vec::new();
    let mut pending: Vec<Pending> = Vec::new();
    let model_name = job.model.name.clone();
    // drift monitoring: the watched values of every scored event, sent per batch
    let monitor = ctx.monitor.clone();
    let mut observations = crate::monitor::Observations::default();
    let mut category_ids: Vec<crate::monitor::interner::LocalIds> =
        monitor.iter().flat_map(|m| m.interners.iter().map(|i| crate::monitor::interner::LocalIds::new(i.clone()))).collect();
    let fairness_attribute = monitor.as_ref().and_then(|m| m.spec.fairness_attribute);
    // the offline log: every scored event's features, sent per batch
    let offline = ctx.offline.clone();
    let closes_windows = job.features.iter().any(|f| matches!(f, vigil_operators::FeatureDef::Window(w) if w.emit == vigil_operators::Emit::OnClose));
    let mut closed = Vec::new();
    let mut window_buf = Vec::with_capacity(256);
    let mut tags: Vec<u64> = Vec::new();
    // lookup features: (slot in the vector, table, column, key field)
    let lookups: Vec<(usize, Arc<crate::table::SharedTable>, usize, Option<usize>)> = job
        .features
        .iter()
        .enumerate()
        .filter_map(|(i, f)| match f {
            vigil_operators::FeatureDef::Lookup(l) => ctx.tables.get(l.table).map(|t| (i, t.clone(), l.column, l.on)),
            _ => None,
        })
        .collect();
    let job_for_close = job.clone();
    // interval joins: pairs out as soon as complete, unmatched lefts once expired
    let has_joins = !job.joins.is_empty();
    let mut joined = Vec::new();
    let mut join_emitter = crate::join_output::JoinEmitter::new(&job, &ctx.metrics);
    // `expired` collects the keys that left state, for the feature store
    // event-time-consistent scoring: events whose model is not built yet wait here
    // (features computed, score not), by (boundary, arrival)
    let gate = learner.as_ref().and_then(|l| l.gate.clone());
    let mut held: BTreeMap<(i64, u64), Held> = BTreeMap::new();
    let mut held_seq = 0u64;
    let mut held_epochs: BTreeMap<u64, usize> = BTreeMap::new();
    let mut flat_features: Vec<Option<f64>> = Vec::new();
    let mut flat_inputs: Vec<Option<f64>> = Vec::new();
    let mut prepared: Vec<Event> = Vec::new();
    let mut encoded_version: Option<u64> = None;
    let mut snap_boundary: Option<i64> = None;
    let held_gauge = ctx.metrics.model.held_events.clone();
    let (nf, ni) = (names.len(), inputs.len());
    let mut process = move |epoch: u64,
                            events: &mut Vec<Event>,
                            state: &mut FeatureState,
                            joins: &mut JoinState,
                            latest: &mut HashMap<String, StoredFeatures>,
                            expired: &mut Vec<String>,
                            held_min_epoch: &mut Option<u64>|
          -> u64 {
        let now = now_us();
        let mut released: Vec<Held> = Vec::new();
        if let Some(g) = &gate {
            let ready = g.ready();
            let rest = match ready.checked_add(1) {
                Some(after) => held.split_off(&(after, 0)),
                None => BTreeMap::new(),
            };
            released.extend(std::mem::replace(&mut held, rest).into_values());
            for h in &released {
                if let Some(n) = held_epochs.get_mut(&h.epoch) {
                    *n -= 1;
                    if *n == 0 {
                        held_epochs.remove(&h.epoch);
                    }
                }
            }
            g.unhold(released.len());
        }
        let rows_epoch = released.iter().map(|h| h.epoch).min().map_or(epoch, |e| e.min(epoch));
        let mut offline_rows = offline.as_ref().map(|o| crate::offline::OfflineRows { epoch: rows_epoch, ..o.rows() });
        if let (Some(link), None) = (&learner, &gate) {
            let current = link.model.current();
            if snapshot.as_ref().is_none_or(|s| s.version != current.version) {
                snapshot = Some(current);
            }
        }
        // phase 1, in arrival order: features, joins, lookups, and what does not
        // depend on the model (the features topic, the offline log, the store)
        for e in events.drain(..) {
            if state.tags() > 0 {
                tags.clear();
                tags.extend(
                    e.strings.iter().take(state.tags()).map(|s| s.as_deref().map_or(vigil_operators::distinct::ABSENT, vigil_operators::distinct::tag_of)),
                );
            }
            state.observe_tagged(&e.key, e.partition, e.watermark, e.time_ms, &e.numeric, &tags, &mut features);
            if has_joins {
                let input = vigil_operators::interval_join::JoinInput {
                    time: e.time_ms,
                    partition: e.partition,
                    offset: e.offset,
                    event_id: e.event_id.as_deref(),
                    values: &e.numeric,
                    strings: &e.strings,
                };
                joins.observe(&e.key, e.partition, e.watermark, &input, &mut joined);
            }
            for (slot, table, column, on) in &lookups {
                let key = match on {
                    Some(k) => e.strings.get(*k).and_then(|s| s.as_deref()),
                    None => Some(e.key.as_str()),
                };
                features[*slot] = key.and_then(|k| table.get(k, *column));
            }
            model_in.clear();
            model_in.extend(inputs.iter().map(|i| match *i {
                InputSource::Feature(f) => features[f],
                InputSource::Field(n) => Some(e.numeric[n]).filter(|v| !v.is_nan()),
            }));
            if features_topic {
                encoder.encode_features(&mut features_buf, &e.key, e.time_ms, &features);
                sink.send(Topic::Features, e.key.as_bytes(), &features_buf, epoch);
            }
            if let Some(rows) = offline_rows.as_mut() {
                rows.push(&e.key, e.event_id.as_deref(), e.time_ms, e.partition, e.offset, &features);
            }
            if publish_features {
                latest.insert(e.key.clone(), StoredFeatures { event_time_ms: e.time_ms, values: features.clone() });
            }
            match &gate {
                Some(g) if g.boundary(e.time_ms) > g.ready() => {
                    let boundary = g.boundary(e.time_ms);
                    *held_epochs.entry(epoch).or_default() += 1;
                    g.hold(1);
                    held.insert((boundary, held_seq), Held { e, features: features.as_slice().into(), model_in: model_in.as_slice().into(), epoch });
                    held_seq += 1;
                }
                _ => {
                    flat_features.extend_from_slice(&features);
                    flat_inputs.extend_from_slice(&model_in);
                    prepared.push(e);
                }
            }
        }
        held_gauge.set(held.len() as i64);
        let n = (prepared.len() + released.len()) as u64;
        *held_min_epoch = held_epochs.keys().next().copied();
        // phase 2: scores (released events first, with the epoch they came in)
        let fresh = prepared.drain(..).enumerate().map(|(i, e)| (e, i, epoch, None));
        let old = released.into_iter().map(|h| (h.e, usize::MAX, h.epoch, Some((h.features, h.model_in))));
        for (e, i, epoch, boxed) in old.chain(fresh) {
            let (features, model_in): (&[Option<f64>], &[Option<f64>]) = match &boxed {
                Some((f, m)) => (f, m),
                None => (&flat_features[i * nf..(i + 1) * nf], &flat_inputs[i * ni..(i + 1) * ni]),
            };
            if let Some(g) = &gate {
                // the model of the event's step (looked up once per step)
                let boundary = g.boundary(e.time_ms).min(g.ready());
                if snap_boundary != Some(boundary) {
                    snap_boundary = Some(boundary);
                    snapshot = Some(g.model_at(boundary));
                }
            }
            let snap = &snapshot;
            if let Some(s) = snap.as_ref().filter(|s| encoded_version != Some(s.version)) {
                encoder.set_model(&model_name, s.model_version(s.champion));
                if let Some(c) = s.challenger {
                    encoder_b.set_model(&model_name, s.model_version(c));
                }
                encoded_version = Some(s.version);
            }
            let (value, arm) = match (snap, &learner) {
                (Some(snap), Some(link)) => {
                    x.clear();
                    x.extend(model_in.iter().zip(&transforms).map(|(v, t)| v.map_or(f32::NAN, |v| t.apply(v) as f32)));
                    let arm_b = (key_hash(&e.key) % 10_000) < (link.ab_share * 10_000.0) as u64;
                    let (slot, arm) = snap.serve(&mut x, &mut preds, arm_b);
                    if shadow_topic {
                        encode_shadow(&mut features_buf, &e, &model_name, snap, slot, &preds);
                        sink.send(Topic::Shadow, e.key.as_bytes(), &features_buf, epoch);
                    }
                    if let Some(id) = &e.event_id {
                        let group = fairness_attribute.map_or(0, |k| category_ids[k].id(e.strings.get(k).and_then(|s| s.as_deref())));
                        pending.push(Pending {
                            id: key_hash(id),
                            time_ms: e.time_ms,
                            x: x.clone(),
                            preds: preds.clone(),
                            served: preds[slot],
                            arm,
                            version: snap.version,
                            epoch,
                            weight: 1.0,
                            group,
                        });
                    }
                    (preds[slot] as f64, arm)
                }
                _ => (model.score(model_in), 0),
            };
            if let Some(m) = &monitor {
                let o = &mut observations;
                o.time_ms.push(e.time_ms);
                for (_, source) in &m.spec.numeric {
                    o.numeric.push(match *source {
                        crate::monitor::NumericSource::Feature(f) => features[f].unwrap_or(f64::NAN),
                        crate::monitor::NumericSource::Field(n) => e.numeric[n],
                    });
                }
                for (_, k) in &m.spec.categorical {
                    o.categorical.push(category_ids[*k].id(e.strings.get(*k).and_then(|s| s.as_deref())));
                }
                o.score.push(value as f32);
                if snap.is_some() {
                    o.inputs.extend_from_slice(&x);
                }
            }
            let score =
                ScoreContext { event_id: e.event_id.as_deref(), key: &e.key, event_time_ms: e.time_ms, partition: e.partition, offset: e.offset, score: value };
            if arm == 1 { &encoder_b } else { &encoder }.encode(&mut buf, &score, features);
            sink.send(Topic::Scores, e.key.as_bytes(), &buf, epoch);
            metrics.latency.observe(now.saturating_sub(e.consumed_us) as f64 / 1e6);
        }
        flat_features.clear();
        flat_inputs.clear();
        // observations before predictions: once the learner has a batch's
        // predictions, the monitor can have its observations (`monitor::reorder`)
        if let (Some(m), false) = (&monitor, observations.is_empty()) {
            let _ = m.tx.send(std::mem::take(&mut observations));
        }
        if let (Some(link), false) = (&learner, pending.is_empty()) {
            // the learner may be gone at shutdown: its predictions are then moot
            let _ = link.tx.send(std::mem::take(&mut pending));
        }
        if closes_windows {
            state.close_due(&mut closed);
            send_closed(&*sink, &job_for_close, &mut closed, epoch, &mut window_buf);
        }
        if has_joins {
            joins.expire_due(&mut joined);
            join_emitter.send(&*sink, &mut joined, epoch);
        }
        // keys that left state: a tombstone on the `features` topic, in this
        // epoch, unless the key came back since (then its new vector stands)
        let gone = state.take_expired();
        if features_topic {
            for key in gone.iter().filter(|k| !state.is_live(k)) {
                sink.send(Topic::Features, key.as_bytes(), &[], epoch);
            }
        }
        expired.extend(gone);
        if let (Some(o), Some(rows)) = (&offline, offline_rows.filter(|r| !r.is_empty())) {
            o.send(rows);
        }
        n
    };

    // at the end of a bounded input (not at a shutdown) every open window closes
    let mut last_epoch = start_epoch;
    let mut input_ended = false;
    let end_sink = ctx.sink.clone();
    let mut end_buf = Vec::new();
    let mut end_joins = crate::join_output::JoinEmitter::new(&job, &ctx.metrics);
    let mut expired: Vec<String> = Vec::new();
    let mut join_reported = Vec::new();
    let mut held_min: Option<u64> = None;
    // the newest epoch whose records changed the state (for `Report::Passed::since`)
    let mut changed_at = start_epoch.saturating_sub(1);
    let gate = ctx.learner.as_ref().and_then(|l| l.gate.clone());
    let scope = events.scope();
    let pact = Exchange::new(|e: &Event| key_hash(&e.key));
    let _ = events.unary_frontier::<timely::container::CapacityContainerBuilder<Vec<()>>, _, _, _>(pact, "FeaturesAndScore", move |cap, info| {
        drop(cap); // no output: nothing to hold
        if let Some(g) = &gate {
            // held scores are released when the learner builds more
            let wake = scope.worker().sync_activator_for(info.address.to_vec());
            g.on_ready(Box::new(move || {
                let _ = wake.activate();
            }));
        }
        move |(input, frontier), _output| {
            input.for_each(|cap, data| {
                let epoch = cap.least().copied().unwrap_or_default();
                stash.entry(epoch).or_default().append(data)
            });
            let current = frontier.frontier().as_option().copied(); // None: input ended
            let mut scored = 0;
            // Complete epochs first, in order; then say so (with the state, when
            // checkpointing); only then the current epoch's records.
            let complete_below = current.unwrap_or(u64::MAX);
            while let Some(entry) = stash.first_entry() {
                if *entry.key() >= complete_below {
                    break;
                }
                let epoch = *entry.key();
                last_epoch = last_epoch.max(epoch);
                changed_at = changed_at.max(epoch);
                scored += process(epoch, &mut entry.remove(), &mut state, &mut joins, &mut latest, &mut expired, &mut held_min);
            }
            // held scores whose model is built now; at the end of the input, all of them
            // (the learner builds every model once the sources end)
            if let Some(g) = &gate {
                let epoch = current.unwrap_or(last_epoch);
                if held_min.is_some() {
                    changed_at = changed_at.max(epoch);
                    scored += process(epoch, &mut Vec::new(), &mut state, &mut joins, &mut latest, &mut expired, &mut held_min);
                }
                while current.is_none() && held_min.is_some() {
                    if ctx.control.shutdown_requested() {
                        g.force();
                    }
                    std::thread::sleep(Duration::from_micros(100));
                    scored += process(epoch, &mut Vec::new(), &mut state, &mut joins, &mut latest, &mut expired, &mut held_min);
                }
            }
            // before the final state is reported, so that its snapshot has them closed
            if current.is_none() && !input_ended && !ctx.control.shutdown_requested() {
                input_ended = true;
                let mut closed = Vec::new();
                state.close_all(&mut closed);
                send_closed(&*end_sink, &ctx.job, &mut closed, last_epoch, &mut end_buf);
                // no right event can come: unmatched lefts are final
                let mut joined = Vec::new();
                joins.flush_all(&mut joined);
                end_joins.send(&*end_sink, &mut joined, last_epoch);
                changed_at = changed_at.max(last_epoch);
            }
            let through = match current {
                Some(f) => f.checked_sub(1).filter(|t| *t >= start_epoch),
                None => Some(u64::MAX),
            };
            // an epoch with held scores has not passed: its outputs are not all out
            let through = through.and_then(|t| match held_min {
                Some(h) if h <= t => h.checked_sub(1).filter(|x| *x >= start_epoch),
                _ => Some(t),
            });
            // a state that has records of later epochs is no checkpoint's state
            let state_fits = |t: &u64| !ctx.snapshot_state || *t >= changed_at;
            if let Some(t) = through.filter(|t| passed.is_none_or(|p| p < *t)).filter(state_fits) {
                let encoded = if ctx.snapshot_state {
                    match crate::checkpoint::format::encode_state(&state, &joins) {
                        Ok(bytes) => Some(bytes),
                        Err(e) => {
                            tracing::error!(error = %e, "cannot encode state for a checkpoint");
                            None
                        }
                    }
                } else {
                    None
                };
                if ctx.snapshot_state == encoded.is_some() {
                    ctx.report(Report::Passed { worker, since: changed_at.min(t), through: t, state: encoded });
                    passed = Some(t);
                }
            }
            if let Some(f) = current {
                if let Some(mut events) = stash.remove(&f) {
                    last_epoch = last_epoch.max(f);
                    changed_at = changed_at.max(f);
                    scored += process(f, &mut events, &mut state, &mut joins, &mut latest, &mut expired, &mut held_min);
                }
            }
            if let Some(store) = &ctx.store {
                if !latest.is_empty() || !expired.is_empty() {
                    store.publish(&mut latest, &expired);
                }
            }
            expired.clear();
            if scored > 0 {
                end_joins.report(&joins, &mut join_reported);
                ctx.metrics.scores_out.inc_by(scored);
                let live = state.live_keys() as i64;
                ctx.metrics.live_keys.add(live - reported_keys);
                reported_keys = live;
            }
        }
    });
    restored
}

/// An event whose score waits for the model of its event time (event-time
/// consistency): its features, computed on arrival, and the epoch it came in.
struct Held {
    e: Event,
    features: Box<[Option<f64>]>,
    model_in: Box<[Option<f64>]>,
    epoch: u64,
}
