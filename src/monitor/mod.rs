//! Drift, quality and fairness monitoring inside the job.
//!
//! ```text
//! scorers --Observations--> monitor thread: feature + prediction drift (distribution.rs)
//! learner --labeled outcomes--> LabeledMonitors: concept drift + fairness (labeled.rs)
//!                    both --> DriftEmitter: `drift` topic, Prometheus, log (emit.rs)
//! ```
//!
//! The statistics and detectors themselves live in `vigil_operators::drift`;
//! this module decides what is fed to them, when they are evaluated (every
//! `interval` of event time) and where their findings go. Model quality per
//! variant (ROC-AUC, PR-AUC, log loss, precision at the top 1%, calibration
//! error) is the learner's progressive validation (`learner::service`).

pub mod distribution;
pub mod emit;
pub mod interner;
pub mod labeled;
pub mod quality;
pub use crate::metrics::drift as metrics;
pub mod reorder;
pub use crate::spec::monitor as spec;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{anyhow, Result};

pub use distribution::Observations;
pub use emit::{DriftEmitter, DriftRecord, DriftSink, MemoryDriftSink};
pub use labeled::{LabeledMonitors, Outcome};
pub use spec::{ConceptAction, MonitorSpec, NumericSource, ResolvedMonitor};

use crate::metrics::Metrics;

/// What the scorers hold: where observations go and how to name categories.
#[derive(Clone)]
pub struct MonitorLink {
    pub tx: Sender<Observations>,
    /// The online model, once the learner runs (prediction drift re-scores with it).
    pub model: Arc<OnceLock<Arc<crate::model::ModelHandle>>>,
    pub spec: Arc<ResolvedMonitor>,
    /// One per kept string field (`JobSpec::kept_strings`).
    pub interners: Vec<Arc<interner::Interner>>,
}

/// The running monitor thread.
pub struct Monitor {
    pub link: MonitorLink,
    pub emitter: Arc<DriftEmitter>,
    finish: Arc<AtomicBool>,
    thread: JoinHandle<u64>,
}

/// What a run's monitoring found.
#[derive(Clone, Debug, Default)]
pub struct MonitorSummary {
    /// Feature and prediction records written.
    pub records: u64,
    /// Alarms (at most 1000), in order.
    pub alarms: Vec<DriftRecord>,
}

/// Starts the monitor thread of a job; `online`: the job trains its model online
/// (hand the learner's model over with [`Monitor::watch_model`]).
pub fn start(m: &ResolvedMonitor, sink: Option<Arc<dyn DriftSink>>, metrics: Arc<Metrics>, online: bool) -> Result<Monitor> {
    let emitter = DriftEmitter::new(sink, metrics, m.spec.patience);
    let (tx, rx) = std::sync::mpsc::channel();
    let finish = Arc::new(AtomicBool::new(false));
    let model = Arc::new(OnceLock::new());
    let monitors = distribution::DistributionMonitors::new(m, emitter.clone(), online.then(|| model.clone()));
    let stop = finish.clone();
    let watched = model.clone();
    let thread = std::thread::Builder::new().name("vigil-monitor".into()).spawn(move || run(monitors, rx, &stop, &watched))?;
    let link = MonitorLink { tx, model, spec: Arc::new(m.clone()), interners: distribution::interners(m) };
    Ok(Monitor { link, emitter, finish, thread })
}

fn run(
    mut monitors: distribution::DistributionMonitors,
    rx: Receiver<Observations>,
    finish: &AtomicBool,
    model: &OnceLock<Arc<crate::model::ModelHandle>>,
) -> u64 {
    // event-time consistency: observations in a fixed order (see `reorder`)
    let mut reorder = reorder::Reorder::default();
    let feed = |monitors: &mut distribution::DistributionMonitors, reorder: &mut reorder::Reorder, batch: Observations, ordered: bool| match ordered {
        true => reorder.push(batch),
        false => monitors.observe(&batch),
    };
    loop {
        // read before draining the channel: every observation before it is in there
        let ready = model.get().and_then(|m| m.gate()).map(|g| g.ready());
        let got = rx.recv_timeout(Duration::from_millis(100));
        match got {
            Ok(batch) => {
                feed(&mut monitors, &mut reorder, batch, ready.is_some());
                while let Ok(batch) = rx.try_recv() {
                    feed(&mut monitors, &mut reorder, batch, ready.is_some());
                }
            }
            Err(RecvTimeoutError::Timeout) if finish.load(Ordering::Acquire) => break,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if let Some(batch) = ready.and_then(|r| reorder.take_before(r)) {
            monitors.observe(&batch);
        }
    }
    let ordered = model.get().and_then(|m| m.gate()).is_some();
    while let Ok(batch) = rx.try_recv() {
        feed(&mut monitors, &mut reorder, batch, ordered);
    }
    if let Some(batch) = reorder.take_before(i64::MAX) {
        monitors.observe(&batch);
    }
    monitors.finish();
    monitors.records
}

impl Monitor {
    /// The label-driven monitors, for the learner.
    pub fn labeled(&self) -> LabeledMonitors {
        let spec = &self.link.spec;
        let groups = spec.fairness_attribute.map(|i| self.link.interners[i].clone());
        LabeledMonitors::new(spec, self.emitter.clone(), groups)
    }

    /// The model an online job serves (prediction drift scores both windows with it).
    pub fn watch_model(&self, model: Arc<crate::model::ModelHandle>) {
        let _ = self.link.model.set(model);
    }

    /// After the scorers (and the learner) are done: the last evaluation, then
    /// waits for the drift records to be delivered.
    pub fn finish(self) -> Result<MonitorSummary> {
        self.finish.store(true, Ordering::Release);
        drop(self.link);
        let records = self.thread.join().map_err(|_| anyhow!("the monitor thread panicked"))?;
        self.emitter.flush()?;
        Ok(MonitorSummary { records, alarms: self.emitter.alarms() })
    }
}
