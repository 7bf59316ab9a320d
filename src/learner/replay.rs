//! Deterministic replay of online learning over a recorded stream: the learner's
//! own logic (join, train, validate, select, publish) driven in a fixed order
//! instead of by threads and arrival times, so that runs are reproducible.
//! Benchmarks (the River comparison) and the drift-recovery test use it.
//!
//! Events are scored in blocks of `block` with the snapshot current at the block's
//! start, as the job's scorers do between snapshots; after each block the labels
//! of events at least `label_delay` events old are revealed, predictions past
//! their timeout expire, a chunk trains and a snapshot is published.

use anyhow::{anyhow, Result};

use super::pending::Pending;
use super::runs::RunLog;
use super::service::{LearnerSummary, Service};
use super::{ModelNames, OnlineSpec};
use crate::gpu::open_trainer;
use crate::metrics::Metrics;
use crate::model::{ModelHandle, ModelSnapshot};

/// One recorded event.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayEvent {
    /// Hash of the event id.
    pub id: u64,
    /// Hash of the entity key (A/B arms are assigned by it).
    pub key: u64,
    pub time_ms: i64,
    /// Raw model inputs after their transforms (NaN = missing).
    pub x: Vec<f32>,
    /// `None`: never labeled.
    pub label: Option<bool>,
}

/// What a replay produced.
pub struct ReplayOutcome {
    /// The served score of every event, in order.
    pub served: Vec<f32>,
    /// The serving slot's run id for every event (changes when the champion does).
    pub served_run: Vec<u64>,
    /// The inputs every event was scored with (imputed as served).
    pub served_x: Vec<Vec<f32>>,
    /// Per labeled event, the share of variants whose decision at 0.5 (on each
    /// variant's scale) disagrees with the label (what the concept-drift monitor
    /// watches); NaN when unlabeled.
    pub population_error: Vec<f32>,
    pub summary: LearnerSummary,
    pub device: String,
}

pub fn replay(spec: OnlineSpec, events: &[ReplayEvent], label_delay: usize, block: usize) -> Result<ReplayOutcome> {
    let d = events.first().map_or(0, |e| e.x.len());
    let names = ModelNames { job: "replay".into(), model: "replay".into(), inputs: (0..d).map(|j| format!("x{j}")).collect() };
    let state = crate::learner::initial_state(&spec, &names.inputs)?;
    let trainer = open_trainer(spec.device, state.clone()).map_err(|e| anyhow!("{e}"))?;
    let device = trainer.device();
    let model = ModelHandle::new(ModelSnapshot::new(0, state, 0, None, (1..=spec.variants as u64).collect()));
    let log = spec.runs_dir.as_deref().map(|dir| RunLog::create(dir, "replay")).transpose()?;
    let spec_ab_share = spec.ab_share;
    let mut service = Service::new(spec, trainer, model.clone(), Metrics::new(), log, names);
    let mut served = Vec::with_capacity(events.len());
    let mut served_run = Vec::with_capacity(events.len());
    let mut served_x = Vec::with_capacity(events.len());
    let mut population_error = Vec::with_capacity(events.len());
    let (mut x, mut preds) = (Vec::with_capacity(d), Vec::new());
    let ab = (spec_ab_share * 10_000.0) as u64;
    let mut revealed = 0;
    for (b, chunk) in events.chunks(block.max(1)).enumerate() {
        let snap = model.current();
        let thresholds = super::service::weighted_thresholds(&snap.state, 0.5);
        let mut pending = Vec::with_capacity(chunk.len());
        for e in chunk {
            x.clear();
            x.extend_from_slice(&e.x);
            let (slot, arm) = snap.serve(&mut x, &mut preds, e.key % 10_000 < ab);
            served.push(preds[slot]);
            served_run.push(snap.run_ids[slot]);
            served_x.push(x.clone());
            population_error.push(e.label.map_or(f32::NAN, |y| {
                let wrong = preds.iter().zip(&thresholds).filter(|(p, t)| (**p as f64 >= **t) != y).count();
                wrong as f32 / preds.len().max(1) as f32
            }));
            pending.push(Pending {
                id: e.id,
                time_ms: e.time_ms,
                x: x.clone(),
                preds: preds.clone(),
                served: preds[slot],
                arm,
                version: snap.version,
                epoch: 0,
                weight: 1.0,
                group: 0,
            });
        }
        service.admit_all(pending);
        let end = (b * block.max(1) + chunk.len()).saturating_sub(label_delay);
        while revealed < end {
            if let Some(label) = events[revealed].label {
                service.on_label(events[revealed].id, label, 0);
            }
            revealed += 1;
        }
        service.expire();
        service.periodic(true)?;
    }
    for e in &events[revealed..] {
        if let Some(label) = e.label {
            service.on_label(e.id, label, 0);
        }
    }
    let summary = service.end()?;
    Ok(ReplayOutcome { served, served_run, served_x, population_error, summary, device })
}

/// ROC-AUC and PR-AUC of `preds` over the labeled events in `[a, b)`.
pub fn window_quality(preds: &[f32], events: &[ReplayEvent], a: usize, b: usize) -> (Option<f64>, Option<f64>) {
    use vigil_operators::learn::quality::{average_precision, roc_auc};
    let items: Vec<(f32, bool, f32)> = (a..b.min(events.len())).filter_map(|i| events[i].label.map(|y| (preds[i], y, 1.0))).collect();
    (roc_auc(&items), average_precision(&items))
}

/// A logistic regression fitted offline (5 epochs of Adam) on the first `n`
/// events, then frozen; missing inputs imputed with the fit's means.
pub fn offline_baseline(events: &[ReplayEvent], n: usize) -> Result<Vec<f32>> {
    use vigil_operators::learn::{CpuTrainer, Hyper, ModelKind, ModelState, Shape, Trainer};
    let d = events[0].x.len();
    let fit = &events[..n.min(events.len())];
    let means: Vec<f32> = (0..d)
        .map(|j| {
            let v: Vec<f32> = fit.iter().map(|e| e.x[j]).filter(|v| v.is_finite()).collect();
            v.iter().sum::<f32>() / v.len().max(1) as f32
        })
        .collect();
    let impute = |x: &[f32]| -> Vec<f32> { x.iter().zip(&means).map(|(v, m)| if v.is_finite() { *v } else { *m }).collect() };
    let shape = Shape { kind: ModelKind::Logistic, d: d as u32, hidden_max: 0, batch: 256 };
    let mut t = CpuTrainer::new(ModelState::new(shape, vec![Hyper::adam(0.01, 0.0, 1.0)], 1).map_err(|e| anyhow!("{e}"))?).map_err(|e| anyhow!("{e}"))?;
    let (mut x, mut l) = (Vec::new(), Vec::new());
    for e in fit {
        if let Some(y) = e.label {
            x.extend(impute(&e.x));
            l.extend([if y { 1.0 } else { 0.0 }, 1.0]);
        }
    }
    for _ in 0..5 {
        t.train(&x, &l).map_err(|e| anyhow!("{e}"))?;
    }
    let state = t.model().clone();
    Ok(events.iter().map(|e| state.score(0, &impute(&e.x))).collect())
}
