//! What scorers read: an immutable snapshot of the trained variants, swapped in
//! atomically by the learner after each training round.
//!
//! Scorers run the forward pass on the CPU from the snapshot (a logistic or small
//! MLP forward for K variants costs well under a microsecond per event); the
//! learner reads the weights back from the GPU to publish a snapshot, at most every
//! `publish_every`.

use std::sync::{Arc, OnceLock, RwLock, Weak};

use super::gate::Gate;

use vigil_operators::learn::ModelState;

/// The variants as of one training round.
#[derive(Clone, Debug)]
pub struct ModelSnapshot {
    /// Increases with every published snapshot.
    pub version: u64,
    pub state: ModelState,
    /// Slot serving `scores`.
    pub champion: usize,
    /// Slot serving the A/B arm B, when there is one.
    pub challenger: Option<usize>,
    /// Run id of the variant in each slot (a slot gets a new id when it is replaced).
    pub run_ids: Vec<u64>,
    /// Every slot's `model_version`, formatted once per snapshot (scorers write it
    /// with every score).
    versions: Vec<String>,
}

impl ModelSnapshot {
    pub fn new(version: u64, state: ModelState, champion: usize, challenger: Option<usize>, run_ids: Vec<u64>) -> ModelSnapshot {
        let versions = run_ids.iter().map(|id| format!("r{id}@{version}")).collect();
        ModelSnapshot { version, state, champion, challenger, run_ids, versions }
    }

    /// `model_version` written with a served score: the variant's run id and the
    /// snapshot version (`r3@1542`).
    pub fn model_version(&self, slot: usize) -> &str {
        self.versions.get(slot).map_or("r0", String::as_str)
    }

    /// Replaces missing values (NaN) by the running means, in place.
    pub fn impute(&self, x: &mut [f32]) {
        for (j, v) in x.iter_mut().enumerate() {
            if !v.is_finite() {
                *v = self.state.feature_mean(j);
            }
        }
    }

    /// Scores one event as the job serves it: imputes `x` in place, fills `preds`
    /// with every variant's probability, and returns the serving slot and arm
    /// (arm 1 = the A/B challenger, when `arm_b` and there is one).
    pub fn serve(&self, x: &mut [f32], preds: &mut Vec<f32>, arm_b: bool) -> (usize, u8) {
        self.impute(x);
        self.score_all(x, preds);
        match self.challenger.filter(|_| arm_b) {
            Some(c) => (c, 1),
            None => (self.champion, 0),
        }
    }

    /// Every variant's probability for one (imputed) raw row.
    pub fn score_all(&self, x: &[f32], out: &mut Vec<f32>) {
        out.clear();
        out.extend((0..self.state.k()).map(|k| self.state.score(k, x)));
    }
}

/// The current snapshot, shared by the learner (writer) and the scorers (readers).
pub struct ModelHandle {
    current: RwLock<Arc<ModelSnapshot>>,
    /// Event-time consistency: the models by event time.
    gate: OnceLock<Weak<Gate>>,
}

impl ModelHandle {
    pub fn new(first: ModelSnapshot) -> Arc<ModelHandle> {
        Arc::new(ModelHandle { current: RwLock::new(Arc::new(first)), gate: OnceLock::new() })
    }

    pub fn current(&self) -> Arc<ModelSnapshot> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The model that scored events at `time_ms`: with event-time consistency the
    /// one of that time's step, else the current one.
    pub fn at(&self, time_ms: i64) -> Arc<ModelSnapshot> {
        match self.gate.get().and_then(Weak::upgrade) {
            Some(g) => g.model_at(g.boundary(time_ms).min(g.ready())),
            None => self.current(),
        }
    }

    /// The event-time gate, with event-time consistency.
    pub fn gate(&self) -> Option<Arc<Gate>> {
        self.gate.get().and_then(Weak::upgrade)
    }

    /// Attaches the event-time gate (once).
    pub fn attach(&self, gate: &Arc<Gate>) {
        let _ = self.gate.set(Arc::downgrade(gate));
    }

    pub fn publish(&self, snapshot: ModelSnapshot) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(snapshot);
    }
}
