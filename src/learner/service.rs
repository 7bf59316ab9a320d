//! The learner thread: joins labels with pending predictions, trains, validates,
//! selects variants and publishes snapshots. See the module docs of `learner`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use vigil_operators::learn::quality::{Quality, QualityWindow};
use vigil_operators::learn::search::{exploit, rng};
use vigil_operators::learn::{SplitMix, Trainer};

use super::checkpoint::{CheckpointRequest, Counts, LearnerCheckpoint};
use super::export::{champion_path, ChampionFile};
use super::pending::{Pending, PendingStore};
use super::runs::{RunLog, RunRecord};
use super::{ModelNames, OnlineSpec};
use crate::gpu::open_trainer;
use crate::metrics::Metrics;
use crate::model::gate::Gate;
use crate::model::{ModelHandle, ModelSnapshot};
use crate::monitor::{ConceptAction, LabeledMonitors, Outcome};

mod checkpointing;
mod drift_actions;
mod event_time;
mod main_loop;
use crate::source::RecordSource;
pub(super) use drift_actions::weighted_thresholds;

/// Rows trained per call at most (a GPU call amortizes its fixed cost over them).
const TRAIN_CHUNK: usize = 8192;
/// A partial chunk is trained after this long.
const TRAIN_EVERY: Duration = Duration::from_millis(20);
/// Snapshots are published at most this often.
const PUBLISH_EVERY: Duration = Duration::from_millis(50);
/// Ids remembered after their prediction left (to tell expired labels from orphans).
const REMEMBERED_IDS: usize = 1 << 20;
/// Labels waiting for their prediction at most; past it a label is an orphan at once
/// (bounds memory when a restarted job re-reads a long labels topic).
const EARLY_LABELS: usize = 1 << 21;
/// Label positions are committed this often (and at the end).
const COMMIT_LABELS_EVERY: Duration = Duration::from_secs(5);

/// What scorers hold: the current snapshot and the way to the learner.
#[derive(Clone)]
pub struct LearnerLink {
    pub model: Arc<ModelHandle>,
    pub tx: Sender<Vec<Pending>>,
    pub ab_share: f64,
    /// Event-time consistency: where scorers get the model of an event's time.
    pub gate: Option<Arc<Gate>>,
}

/// A running learner.
pub struct Learner {
    pub link: LearnerLink,
    pub device: String,
    /// Where the checkpoint coordinator asks for the learner's state (when the job
    /// keeps checkpoints).
    pub checkpoints: Option<Sender<CheckpointRequest>>,
    finish: Arc<AtomicBool>,
    thread: JoinHandle<Result<LearnerSummary>>,
}

/// Totals of a learner's run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LearnerSummary {
    pub device: String,
    /// Label outcomes and volumes (they continue across restores).
    pub counts: Counts,
    pub unlabeled_at_end: u64,
    pub champion: usize,
    pub champion_quality: Quality,
    /// Quality of the served predictions of the whole run, per arm (A, B).
    pub served_quality: [Quality; 2],
    pub run_log: Option<std::path::PathBuf>,
    /// The checkpoint epoch the learner resumed from.
    pub restored_epoch: Option<u64>,
    /// Joined samples still waiting for their epoch to be sealed at the end.
    pub held_at_end: u64,
    /// Labels still waiting for their prediction at the end (kept in the final
    /// checkpoint when there are checkpoints; else counted as orphans).
    pub early_at_end: u64,
    /// Every trained sample, when `record_training` is set.
    pub training_log: Vec<TrainedSample>,
}

/// One sample as it was trained on.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainedSample {
    pub id: u64,
    pub x: Vec<f32>,
    pub label: bool,
    pub weight: f32,
}

impl Learner {
    /// Waits for the scorers' last predictions and the labels still readable, then
    /// ends the learner. Call after the workers have stopped.
    pub fn finish(self) -> Result<LearnerSummary> {
        self.finish.store(true, Ordering::SeqCst);
        drop(self.link);
        self.thread.join().map_err(|_| anyhow!("the learner thread panicked"))?
    }
}

/// A source of label records, opened on the learner thread.
pub type LabelSourceFactory = Box<dyn FnOnce() -> Result<Box<dyn RecordSource>> + Send>;

/// How a learner starts with respect to checkpoints.
#[derive(Default)]
pub struct Resume {
    /// The job keeps checkpoints: samples train only once their epoch is sealed.
    pub checkpointing: bool,
    /// The learner's state in the checkpoint the job restores.
    pub from: Option<LearnerCheckpoint>,
    /// Source workers feeding the scorers (event-time consistency waits for each; 0 counts as 1).
    pub sources: usize,
}

/// Opens the trainer on the configured device (failing clearly when `--device gpu`
/// finds no adapter) and starts the learner thread.
/// Starts the learner thread; `monitor` (concept drift, fairness) is fed every
/// labeled prediction.
pub fn start(
    spec: OnlineSpec,
    names: ModelNames,
    metrics: Arc<Metrics>,
    labels: LabelSourceFactory,
    resume: Resume,
    monitor: Option<LabeledMonitors>,
) -> Result<Learner> {
    let fresh = crate::learner::initial_state(&spec, &names.inputs)?;
    let state = match &resume.from {
        Some(c) if c.model.shape != fresh.shape || c.model.k() != fresh.k() => {
            bail!("the checkpoint's model ({:?}, {} variants) does not fit the job's ({:?}, {} variants)", c.model.shape, c.model.k(), fresh.shape, fresh.k())
        }
        Some(c) => c.model.clone(),
        None => fresh,
    };
    let trainer = open_trainer(spec.device, state.clone()).map_err(|e| anyhow!("{e}"))?;
    let device = trainer.device();
    let kind = format!("{:?}", spec.kind).to_lowercase();
    metrics.model.device.with_label_values(&[&device, &kind]).set(1);
    tracing::info!(%device, variants = spec.variants, "online learning starts");
    let k = spec.variants;
    let first = match &resume.from {
        Some(c) => ModelSnapshot::new(c.version, state, c.champion, c.challenger.filter(|_| spec.ab_share > 0.0), c.run_ids.clone()),
        None => ModelSnapshot::new(0, state, 0, None, (1..=k as u64).collect()),
    };
    let model = ModelHandle::new(first);
    let gate = match spec.consistency {
        // with checkpoints the runner has resolved it to `latest` (see `resolve_consistency`)
        super::Consistency::EventTime if !resume.checkpointing => {
            Some(Gate::new(spec.step.as_millis().max(1) as i64, spec.hold_limit, resume.sources.max(1), model.current()))
        }
        _ => None,
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let (checkpoints, requests) = match resume.checkpointing {
        true => {
            let (t, r) = std::sync::mpsc::channel();
            (Some(t), Some(r))
        }
        false => (None, None),
    };
    let finish = Arc::new(AtomicBool::new(false));
    let log = match &spec.runs_dir {
        Some(dir) => Some(RunLog::create(dir, &names.job).context("opening the experiment log")?),
        None => None,
    };
    if let Some(g) = &gate {
        model.attach(g);
    }
    let link = LearnerLink { model: model.clone(), tx, ab_share: spec.ab_share, gate: gate.clone() };
    let mut service = Service::new(spec, trainer, model, metrics, log, names);
    service.gate_et = gate;
    service.monitor = monitor;
    service.gate = resume.checkpointing;
    if let Some(c) = resume.from {
        service.restore(c);
    }
    let done = finish.clone();
    let thread = std::thread::Builder::new().name("vigil-learner".into()).spawn(move || {
        let gate = service.gate_et.clone();
        let result = labels().and_then(|labels| service.run(rx, requests, labels, &done));
        // scorers never wait for a learner that is gone
        if let Some(g) = gate {
            g.force();
        }
        if let Err(e) = &result {
            // scoring goes on with the last published model; the run ends with this error
            tracing::error!(error = %format!("{e:#}"), "online learning stopped");
        }
        result
    })?;
    Ok(Learner { link, device, checkpoints, finish, thread })
}

/// A bounded set of ids, forgetting the oldest.
struct Remembered {
    set: HashSet<u64>,
    order: VecDeque<u64>,
}

impl Remembered {
    fn new() -> Self {
        Remembered { set: HashSet::new(), order: VecDeque::new() }
    }
    fn insert(&mut self, id: u64) {
        if self.set.insert(id) {
            self.order.push_back(id);
            if self.order.len() > REMEMBERED_IDS {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }
    fn contains(&self, id: u64) -> bool {
        self.set.contains(&id)
    }
}

pub(super) struct Service {
    spec: OnlineSpec,
    trainer: Box<dyn Trainer + Send>,
    model: Arc<ModelHandle>,
    metrics: Arc<Metrics>,
    log: Option<RunLog>,
    names: ModelNames,
    k: usize,
    pending: PendingStore,
    /// Labels that arrived before their prediction: id -> (label, arrival).
    early: HashMap<u64, (bool, Instant, u32)>,
    early_order: VecDeque<(Instant, u64)>,
    expired_ids: Remembered,
    sampled_ids: Remembered,
    windows: Vec<QualityWindow>,
    /// Served predictions per arm: a sliding window, and the whole run.
    arm_windows: [QualityWindow; 2],
    run_served: [Vec<(f32, bool, f32)>; 2],
    replaced_at: Vec<u64>,
    run_ids: Vec<u64>,
    parents: Vec<Option<u64>>,
    next_run_id: u64,
    version: u64,
    champion: usize,
    challenger: Option<usize>,
    chunk_x: Vec<f32>,
    chunk_labels: Vec<f32>,
    last_train: Instant,
    last_publish: Instant,
    dirty: bool,
    labels_since_select: u64,
    round: u64,
    rng: SplitMix,
    summary: LearnerSummary,
    /// Checkpoints are on: a sample changes the model only once its epoch is sealed.
    gate: bool,
    /// The newest epoch covered by a checkpoint.
    sealed: Option<u64>,
    /// Samples of epochs not sealed yet: prediction, label, and the labels
    /// partition the label came from (`None`: the default of a timed-out prediction).
    held: Vec<(Pending, bool, Option<u32>)>,
    /// The newest prediction epoch a trained sample came from.
    trained_through: Option<u64>,
    /// Per labels partition: the newest event time a label of it joined, and when
    /// it last delivered a label. Predictions time out against the slowest active
    /// partition (see `labels_progress`).
    label_clock: HashMap<u32, (i64, Instant)>,
    /// Concept drift and fairness, fed every labeled prediction.
    pub(super) monitor: Option<LabeledMonitors>,
    /// A concept-drift action to apply at the next periodic step.
    action: Option<ConceptAction>,
    /// While the learning rates are boosted: the joined-label count that ends it.
    boost_until: Option<u64>,
    /// Per variant: the monitor's decision threshold on that variant's own scale
    /// (a variant trained with positive-class weight w inflates the odds w times).
    variant_thresholds: Vec<f64>,
    /// Event-time consistency (`model::gate`): the gate, the labels' clock and
    /// queue, predictions received per step, and the newest boundary built.
    pub(super) gate_et: Option<Arc<Gate>>,
    label_clock_et: Option<event_time::LabelClock>,
    received: std::collections::BTreeMap<i64, u64>,
    built: i64,
}

impl Service {
    pub(super) fn new(
        spec: OnlineSpec,
        trainer: Box<dyn Trainer + Send>,
        model: Arc<ModelHandle>,
        metrics: Arc<Metrics>,
        log: Option<RunLog>,
        names: ModelNames,
    ) -> Service {
        let d = names.inputs.len();
        let k = spec.variants;
        let timeout = spec.labels.timeout.as_millis() as i64;
        Service {
            pending: PendingStore::new(d, k, timeout, spec.pending_budget, spec.keep_above),
            early: HashMap::new(),
            early_order: VecDeque::new(),
            expired_ids: Remembered::new(),
            sampled_ids: Remembered::new(),
            windows: (0..k).map(|_| QualityWindow::new(spec.window)).collect(),
            arm_windows: [QualityWindow::new(spec.window), QualityWindow::new(spec.window)],
            run_served: [Vec::new(), Vec::new()],
            replaced_at: vec![0; k],
            run_ids: (1..=k as u64).collect(),
            parents: vec![None; k],
            next_run_id: k as u64 + 1,
            version: 0,
            champion: 0,
            challenger: None,
            chunk_x: Vec::new(),
            chunk_labels: Vec::new(),
            last_train: Instant::now(),
            last_publish: Instant::now(),
            dirty: false,
            labels_since_select: 0,
            round: 0,
            rng: rng(spec.seed ^ 0x5EED),
            summary: LearnerSummary { device: trainer.device(), run_log: log.as_ref().map(|l| l.path().to_owned()), ..Default::default() },
            gate: false,
            sealed: None,
            held: Vec::new(),
            trained_through: None,
            label_clock: HashMap::new(),
            monitor: None,
            action: None,
            boost_until: None,
            variant_thresholds: Vec::new(),
            gate_et: None,
            label_clock_et: None,
            received: std::collections::BTreeMap::new(),
            built: i64::MIN,
            spec,
            trainer,
            model,
            metrics,
            log,
            names,
            k,
        }
    }

    /// Trains a full or stale chunk, runs a selection round when due, publishes
    /// when dirty (the loop's periodic work, also driven by replays).
    pub(super) fn periodic(&mut self, force: bool) -> Result<()> {
        self.concept_drift_actions()?;
        if self.chunk_labels.len() / 2 >= TRAIN_CHUNK || (!self.chunk_labels.is_empty() && (force || self.last_train.elapsed() >= TRAIN_EVERY)) {
            self.train()?;
        }
        if self.labels_since_select >= self.spec.select_every {
            self.select()?;
        }
        if self.dirty && (force || self.last_publish.elapsed() >= PUBLISH_EVERY) {
            self.publish()?;
        }
        Ok(())
    }

    pub(super) fn admit_all(&mut self, batch: Vec<Pending>) {
        let mut evicted = Vec::new();
        for p in batch {
            let id = p.id;
            if let Some(gate) = &self.gate_et {
                *self.received.entry(gate.step_of(p.time_ms)).or_default() += 1;
            }
            if let Some((label, _, partition)) = self.early.remove(&id) {
                self.joined(p, label, partition);
                continue;
            }
            if let Err(_sampled) = self.pending.admit(p, &mut evicted) {
                self.sampled_ids.insert(id);
            }
        }
        for p in evicted {
            self.timed_out(p);
        }
    }

    pub(super) fn on_label(&mut self, id: u64, label: bool, partition: u32) {
        self.label_clock.entry(partition).or_insert((i64::MIN, Instant::now())).1 = Instant::now();
        if let Some(p) = self.pending.take(id) {
            self.joined(p, label, partition);
        } else if self.expired_ids.contains(id) {
            self.count("expired");
        } else if self.sampled_ids.contains(id) {
            self.count("sampled_out");
        } else if self.early.len() >= EARLY_LABELS {
            self.count("orphan");
        } else {
            let now = Instant::now();
            self.early.insert(id, (label, now, partition));
            self.early_order.push_back((now, id));
        }
    }

    /// How far the labels have come in event time: over the labels partitions that
    /// delivered a label within the label grace, the slowest one's newest joined
    /// event time (idle partitions do not hold it back); the newest of all when
    /// none is active.
    fn labels_progress(&self) -> i64 {
        let grace = self.spec.label_grace;
        let active = self.label_clock.values().filter(|(t, seen)| *t > i64::MIN && seen.elapsed() < grace).map(|(t, _)| *t).min();
        active.unwrap_or_else(|| self.label_clock.values().map(|(t, _)| *t).max().unwrap_or(i64::MIN))
    }

    fn count(&mut self, outcome: &str) {
        self.metrics.model.labels.with_label_values(&[outcome]).inc();
        match outcome {
            "expired" => self.summary.counts.expired += 1,
            "sampled_out" => self.summary.counts.sampled_out += 1,
            "orphan" => self.summary.counts.orphan += 1,
            _ => self.summary.counts.joined += 1,
        }
    }

    /// A label met its prediction: validate with the predictions made before this
    /// label was known, then queue the stored inputs for training.
    fn joined(&mut self, p: Pending, label: bool, partition: u32) {
        self.count("joined");
        let clock = self.label_clock.entry(partition).or_insert((i64::MIN, Instant::now()));
        clock.0 = clock.0.max(p.time_ms);
        self.learn_or_hold(p, label, Some(partition));
    }

    fn is_sealed(&self, epoch: u64) -> bool {
        !self.gate || self.sealed.is_some_and(|s| epoch <= s)
    }

    fn learn_or_hold(&mut self, p: Pending, label: bool, from_topic: Option<u32>) {
        if self.is_sealed(p.epoch) {
            self.learn_from(p, label);
        } else {
            self.held.push((p, label, from_topic));
        }
    }

    fn learn_from(&mut self, p: Pending, label: bool) {
        self.trained_through = self.trained_through.max(Some(p.epoch));
        for (k, w) in self.windows.iter_mut().enumerate() {
            if p.version >= self.replaced_at[k] {
                w.push(p.preds[k], label, p.weight);
            }
        }
        let arm = (p.arm as usize).min(1);
        if let Some(m) = &mut self.monitor {
            if self.variant_thresholds.len() != p.preds.len() {
                self.variant_thresholds = weighted_thresholds(&self.model.current().state, m.decision_threshold());
            }
            let wrong = p.preds.iter().zip(&self.variant_thresholds).filter(|(q, t)| (**q as f64 >= **t) != label).count();
            let population_error = wrong as f32 / p.preds.len().max(1) as f32;
            let outcome = Outcome { time_ms: p.time_ms, served: p.served, label, population_error, group: p.group };
            if let Some(action) = m.observe(outcome) {
                self.action = Some(action);
            }
        }
        self.arm_windows[arm].push(p.served, label, p.weight);
        self.run_served[arm].push((p.served, label, p.weight));
        if self.spec.record_training {
            self.summary.training_log.push(TrainedSample { id: p.id, x: p.x.clone(), label, weight: p.weight });
        }
        self.chunk_x.extend_from_slice(&p.x);
        self.chunk_labels.push(if label { 1.0 } else { 0.0 });
        self.chunk_labels.push(p.weight);
        self.labels_since_select += 1;
    }

    fn timed_out(&mut self, p: Pending) {
        self.summary.counts.timed_out += 1;
        self.metrics.model.timed_out.inc();
        self.expired_ids.insert(p.id);
        if let Some(default) = self.spec.labels.default {
            self.learn_or_hold(p, default, None);
        }
    }

    pub(super) fn expire(&mut self) {
        let mut out = Vec::new();
        let progress = self.labels_progress();
        self.pending.expire(progress, &mut out);
        for p in out {
            self.timed_out(p);
        }
    }

    /// Labels that waited longer than the grace for their prediction (all of them
    /// at the end) are orphans.
    fn orphan_early(&mut self, all: bool) {
        let grace = self.spec.label_grace;
        while let Some(&(t, id)) = self.early_order.front() {
            if !all && t.elapsed() < grace {
                break;
            }
            self.early_order.pop_front();
            if let Some((_, arrived, _)) = self.early.get(&id).copied() {
                if arrived == t {
                    self.early.remove(&id);
                    self.count("orphan");
                }
            }
        }
    }

    pub(super) fn train(&mut self) -> Result<()> {
        let rows = self.chunk_labels.len() / 2;
        if rows == 0 {
            return Ok(());
        }
        self.trainer.train(&self.chunk_x, &self.chunk_labels).map_err(|e| anyhow!("training: {e}"))?;
        self.summary.counts.trained += rows as u64;
        self.metrics.model.trained_samples.inc_by(rows as u64);
        self.chunk_x.clear();
        self.chunk_labels.clear();
        self.last_train = Instant::now();
        self.dirty = true;
        Ok(())
    }

    pub(super) fn publish(&mut self) -> Result<()> {
        let state = self.trainer.state().map_err(|e| anyhow!("reading the model back: {e}"))?;
        if let Some(m) = &self.monitor {
            self.variant_thresholds = weighted_thresholds(&state, m.decision_threshold());
        }
        self.version += 1;
        let challenger = if self.spec.ab_share > 0.0 { self.challenger } else { None };
        self.model.publish(ModelSnapshot::new(self.version, state, self.champion, challenger, self.run_ids.clone()));
        self.last_publish = Instant::now();
        self.dirty = false;
        Ok(())
    }

    fn qualities(&self) -> Vec<Quality> {
        self.windows.iter().map(|w| w.quality()).collect()
    }

    fn ranked_score(&self, q: &Quality) -> Option<f64> {
        q.roc_auc.filter(|_| q.labels >= self.spec.min_labels && q.positives >= 5)
    }

    /// A population-based-training round: rank by progressive ROC-AUC, crown the
    /// champion, log every variant, replace the worst half with perturbed copies
    /// of the best half.
    pub(super) fn select(&mut self) -> Result<()> {
        self.train()?;
        self.labels_since_select = 0;
        self.round += 1;
        self.summary.counts.selections += 1;
        self.metrics.model.selections.inc();
        let qualities = self.qualities();
        let scores: Vec<Option<f64>> = qualities.iter().map(|q| self.ranked_score(q)).collect();
        let mut order: Vec<usize> = (0..self.k).filter(|k| scores[*k].is_some()).collect();
        order.sort_by(|a, b| scores[*b].unwrap_or(0.0).total_cmp(&scores[*a].unwrap_or(0.0)).then(a.cmp(b)));
        if let Some(best) = order.first() {
            self.champion = *best;
        }
        self.challenger = order.get(1).copied();
        let mut state = self.trainer.state().map_err(|e| anyhow!("reading the model back: {e}"))?;
        if let Some(log) = &mut self.log {
            for k in 0..self.k {
                log.append(&RunRecord::new(
                    self.round,
                    self.summary.counts.joined,
                    k,
                    self.run_ids[k],
                    self.parents[k],
                    &state.hyper[k],
                    &qualities[k],
                    k == self.champion,
                ))?;
            }
        }
        let pairs = if self.k >= 2 { exploit(&scores) } else { Vec::new() };
        if !pairs.is_empty() {
            for (from, to) in pairs {
                let h = self.spec.space.perturb(&state.hyper[from], &mut self.rng);
                state.copy_variant(from, to, h);
                self.windows[to].clear();
                self.replaced_at[to] = self.version + 1;
                self.parents[to] = Some(self.run_ids[from]);
                self.run_ids[to] = self.next_run_id;
                self.next_run_id += 1;
            }
            self.trainer.set_state(&state).map_err(|e| anyhow!("updating the variants: {e}"))?;
        }
        self.dirty = true;
        self.publish()?;
        if let Some(log) = &self.log {
            // the champion is never among the replaced: the published snapshot holds it
            let snap = self.model.current();
            let n = &self.names;
            let version = snap.model_version(self.champion).to_owned();
            let file = ChampionFile::from_state(&n.job, &n.model, version, n.inputs.clone(), &snap.state, self.champion, scores[self.champion]);
            file.write(&champion_path(log.path()))?;
        }
        self.gauges();
        Ok(())
    }

    fn gauges(&self) {
        let m = &self.metrics.model;
        m.pending.set(self.pending.len() as i64);
        m.pending_bytes.set(self.pending.bytes() as i64);
        m.pending_sample_rate.set(self.pending.sample_rate());
        m.champion.set(self.champion as i64);
        let model = self.model.current();
        for (k, q) in self.qualities().iter().enumerate() {
            let slot = k.to_string();
            if let Some(a) = q.roc_auc {
                m.variant_auc.with_label_values(&[&slot]).set(a);
            }
            if let Some(a) = q.pr_auc {
                m.variant_pr_auc.with_label_values(&[&slot]).set(a);
            }
            m.variant_log_loss.with_label_values(&[&slot]).set(q.log_loss);
            if let Some(e) = q.ece {
                m.variant_ece.with_label_values(&[&slot]).set(e);
            }
            if let Some(p) = q.precision_at_k {
                m.variant_precision_at_k.with_label_values(&[&slot]).set(p);
            }
            m.variant_lr.with_label_values(&[&slot]).set(model.state.hyper[k].lr as f64);
        }
        for (arm, w) in ["a", "b"].iter().zip(&self.arm_windows) {
            if let Some(a) = w.quality().roc_auc {
                m.arm_auc.with_label_values(&[arm]).set(a);
            }
        }
    }

    pub(super) fn end(mut self) -> Result<LearnerSummary> {
        self.expire();
        if self.gate {
            // saved with the final checkpoint: they join after a restart
            self.summary.early_at_end = self.early.len() as u64;
        } else {
            self.orphan_early(true);
        }
        self.train()?;
        if let Some(m) = &mut self.monitor {
            m.finish();
        }
        if self.summary.counts.joined > 0 {
            self.select()?;
        } else if self.dirty {
            self.publish()?;
        }
        self.gauges();
        self.summary.unlabeled_at_end = self.pending.drain().len() as u64;
        self.summary.held_at_end = self.held.len() as u64;
        self.summary.champion = self.champion;
        self.summary.champion_quality = self.windows[self.champion].quality();
        for arm in 0..2 {
            self.summary.served_quality[arm] = Quality::of(&self.run_served[arm]);
        }
        if let Some(log) = &mut self.log {
            log.flush()?;
        }
        Ok(self.summary)
    }
}
