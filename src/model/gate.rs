//! Event-time-consistent scoring: an event is scored by the model trained on
//! exactly the labels revealed before its step of event time began, whatever the
//! speed at which events and labels arrive (live, a burst backfill, a replay).
//!
//! ```text
//! sources --accepted counts, low watermark--> Gate <--ready boundary, snapshots-- learner
//! scorers: features at once; the score waits until ready >= floor(t / step) * step
//! ```
//!
//! Time is cut into steps of `step` ms; boundary `B` is a multiple of the step. The
//! learner builds boundary `B` (trains on every label revealed before `B`, in the
//! order (reveal time, event id), and expires the predictions whose timeout ends
//! before `B`) once it knows that nothing it needs can still come:
//! - every source's low watermark is at least `B` (no event older than `B` will be
//!   accepted: later ones are late and dead-lettered at the source);
//! - every event the sources accepted before `B` has reached the learner as a
//!   prediction (the sources count accepted events per step, the learner counts
//!   the predictions it received);
//! - the labels' watermark (newest reveal time per labels partition less the
//!   labels' lateness, over all partitions) is at least `B`; a labels partition
//!   idle for `labels.idle` or at its end does not hold it back.
//!
//! The model of boundary `B` then scores every event with `B <= t < B + step`. The
//! scorers compute features at once (in arrival order, as always) and hold only
//! the score: the learner's boundary `B + step` needs the predictions of events
//! before it, which boundary `B` can score, so holding never deadlocks.
//!
//! The cost live is latency: a score waits for the sources' watermark (the allowed
//! lateness), the labels' watermark and one step. Memory: scorers hold at most
//! about `hold_limit` events; past it a source stops reading unless its own
//! watermark is what holds the model back.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use super::snapshot::ModelSnapshot;

/// Models kept for scorers that are behind (events still on their way).
const KEPT_SNAPSHOTS: usize = 4096;

/// What the source workers reported.
#[derive(Clone, Debug, Default)]
struct Sources {
    /// Per source worker: no event older than this will be accepted any more
    /// (`i64::MAX`: finished).
    low: Vec<i64>,
    /// Accepted events with an event id, per step index, over every source (the
    /// steps not settled yet).
    accepted: BTreeMap<i64, u64>,
}

/// The meeting point of sources, scorers and the learner; see the module docs.
pub struct Gate {
    step_ms: i64,
    hold_limit: usize,
    /// The newest boundary built (`i64::MIN`: none; `i64::MAX`: everything may be scored).
    ready: AtomicI64,
    /// Events the scorers hold for their model.
    held: AtomicUsize,
    sources: Mutex<Sources>,
    /// Models by the boundary from which they score.
    snapshots: RwLock<BTreeMap<i64, Arc<ModelSnapshot>>>,
    wakers: Mutex<Vec<Box<dyn Fn() + Send + Sync>>>,
    forced: AtomicBool,
}

impl Gate {
    /// A gate for `sources` source workers, starting from the untrained `first` model.
    pub fn new(step_ms: i64, hold_limit: usize, sources: usize, first: Arc<ModelSnapshot>) -> Arc<Gate> {
        Arc::new(Gate {
            step_ms: step_ms.max(1),
            hold_limit,
            ready: AtomicI64::new(i64::MIN),
            held: AtomicUsize::new(0),
            sources: Mutex::new(Sources { low: vec![i64::MIN; sources], accepted: BTreeMap::new() }),
            snapshots: RwLock::new(BTreeMap::from([(i64::MIN, first)])),
            wakers: Mutex::new(Vec::new()),
            forced: AtomicBool::new(false),
        })
    }

    pub fn step_ms(&self) -> i64 {
        self.step_ms
    }

    /// The boundary an event at `time_ms` is scored from.
    pub fn boundary(&self, time_ms: i64) -> i64 {
        time_ms.div_euclid(self.step_ms) * self.step_ms
    }

    /// The step index of an event time.
    pub fn step_of(&self, time_ms: i64) -> i64 {
        time_ms.div_euclid(self.step_ms)
    }

    // ---- sources ----

    /// Source worker `index` reports its low watermark and the events with an id it
    /// accepted since the last report (per step; `accepted` is drained).
    pub fn report_source(&self, index: usize, low: i64, accepted: &mut BTreeMap<i64, u64>) {
        let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        let sources = &mut *sources;
        if let Some(l) = sources.low.get_mut(index) {
            *l = (*l).max(low);
            for (step, n) in std::mem::take(accepted) {
                *sources.accepted.entry(step).or_default() += n;
            }
        }
    }

    /// Whether a source whose low watermark is `low` should read more: yes unless
    /// the scorers hold too much and this source is not what the model waits for.
    pub fn may_read(&self, low: i64) -> bool {
        self.held.load(Ordering::Relaxed) < self.hold_limit || low < self.ready().saturating_add(self.step_ms)
    }

    // ---- learner ----

    /// How far the learner may build: the largest boundary such that every source
    /// is past it and every event accepted before it has been received
    /// (`received`: predictions per step index). Acknowledged steps are dropped
    /// from both sides.
    pub fn buildable(&self, received: &mut BTreeMap<i64, u64>) -> i64 {
        let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        let low = sources.low.iter().copied().min().unwrap_or(i64::MAX);
        if low == i64::MIN {
            return i64::MIN;
        }
        let mut limit = if low == i64::MAX { i64::MAX } else { self.boundary(low) };
        for (step, n) in &sources.accepted {
            let start = step.saturating_mul(self.step_ms);
            if start >= limit {
                break;
            }
            if received.get(step).copied().unwrap_or(0) < *n {
                limit = start;
                break;
            }
        }
        // steps wholly below the limit are settled
        let settled: Vec<i64> = sources.accepted.keys().copied().take_while(|s| s.saturating_mul(self.step_ms).saturating_add(self.step_ms) <= limit).collect();
        for step in settled {
            received.remove(&step);
            sources.accepted.remove(&step);
        }
        limit
    }

    /// Publishes the model that scores from `boundary` on.
    pub fn publish(&self, boundary: i64, snapshot: Arc<ModelSnapshot>) {
        let mut snaps = self.snapshots.write().unwrap_or_else(|e| e.into_inner());
        snaps.insert(boundary, snapshot);
        while snaps.len() > KEPT_SNAPSHOTS {
            snaps.pop_first();
        }
    }

    /// Every event before `boundary + step` may now be scored.
    pub fn set_ready(&self, boundary: i64) {
        if self.ready.fetch_max(boundary, Ordering::SeqCst) < boundary {
            self.wake();
        }
    }

    /// Releases every held event with the newest model (a shutdown, or the learner stopped).
    pub fn force(&self) {
        self.forced.store(true, Ordering::SeqCst);
        self.set_ready(i64::MAX);
    }

    pub fn forced(&self) -> bool {
        self.forced.load(Ordering::SeqCst)
    }

    // ---- scorers ----

    pub fn ready(&self) -> i64 {
        self.ready.load(Ordering::SeqCst)
    }

    /// The model that scores an event at `time_ms`, or `None` while it is not built.
    pub fn model_for(&self, time_ms: i64) -> Option<Arc<ModelSnapshot>> {
        let boundary = self.boundary(time_ms);
        if boundary > self.ready() {
            return None;
        }
        Some(self.model_at(boundary))
    }

    /// The model of the newest boundary at or before `time_ms` (the oldest kept
    /// when all are newer).
    pub fn model_at(&self, time_ms: i64) -> Arc<ModelSnapshot> {
        let snaps = self.snapshots.read().unwrap_or_else(|e| e.into_inner());
        let found = snaps.range(..=time_ms).next_back().or_else(|| snaps.iter().next());
        found.map(|(_, s)| s.clone()).expect("the gate always holds a model")
    }

    /// Scorers count what they hold (for the sources' back-pressure).
    pub fn hold(&self, n: usize) {
        self.held.fetch_add(n, Ordering::Relaxed);
    }
    pub fn unhold(&self, n: usize) {
        self.held.fetch_sub(n.min(self.held.load(Ordering::Relaxed)), Ordering::Relaxed);
    }
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Called (from the learner's thread) whenever more events may be scored.
    pub fn on_ready(&self, wake: Box<dyn Fn() + Send + Sync>) {
        self.wakers.lock().unwrap_or_else(|e| e.into_inner()).push(wake);
    }

    fn wake(&self) {
        for w in self.wakers.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            w();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_operators::learn::{Hyper, ModelKind, ModelState, Shape};

    fn snap(version: u64) -> Arc<ModelSnapshot> {
        let shape = Shape { kind: ModelKind::Logistic, d: 1, hidden_max: 0, batch: 8 };
        let state = ModelState::new(shape, vec![Hyper::adam(0.01, 0.0, 1.0)], 1).expect("valid");
        Arc::new(ModelSnapshot::new(version, state, 0, None, vec![1]))
    }

    #[test]
    fn the_learner_builds_only_what_sources_and_predictions_allow() {
        let gate = Gate::new(1000, 10, 2, snap(0));
        let mut received = BTreeMap::new();
        assert_eq!(gate.buildable(&mut received), i64::MIN, "a source has not reported");
        gate.report_source(0, 5_500, &mut BTreeMap::from([(2, 3), (5, 1)]));
        gate.report_source(1, 9_000, &mut BTreeMap::from([(3, 2)]));
        // sources allow 5000; step 2 (2000..3000) is not all received
        received.insert(2, 2);
        assert_eq!(gate.buildable(&mut received), 2000);
        received.insert(2, 3);
        assert_eq!(gate.buildable(&mut received), 3000, "step 3 missing");
        received.insert(3, 2);
        assert_eq!(gate.buildable(&mut received), 5000);
        assert!(!received.contains_key(&2), "settled steps are dropped");
        // step 5 counts only once the sources pass it
        gate.report_source(0, i64::MAX, &mut BTreeMap::new());
        assert_eq!(gate.buildable(&mut received), 5000);
        received.insert(5, 1);
        assert_eq!(gate.buildable(&mut received), 9000);
    }

    #[test]
    fn scorers_get_the_model_of_their_boundary() {
        let gate = Gate::new(1000, 10, 1, snap(0));
        assert!(gate.model_for(1500).is_none());
        gate.publish(1000, snap(1));
        gate.publish(3000, snap(2));
        gate.set_ready(3000);
        assert_eq!(gate.model_for(999).map(|s| s.version), Some(0));
        assert_eq!(gate.model_for(2999).map(|s| s.version), Some(1));
        assert_eq!(gate.model_for(3999).map(|s| s.version), Some(2));
        assert!(gate.model_for(4000).is_none());
        assert_eq!(gate.model_for(-1).map(|s| s.version), Some(0));
        gate.force();
        assert_eq!(gate.model_for(1_000_000).map(|s| s.version), Some(2));
    }

    #[test]
    fn back_pressure_spares_the_source_the_model_waits_for() {
        let gate = Gate::new(1000, 2, 1, snap(0));
        gate.set_ready(5000);
        gate.hold(3);
        assert!(gate.may_read(5500), "its watermark holds the next boundary back");
        assert!(!gate.may_read(6000));
        gate.unhold(2);
        assert!(gate.may_read(60_000));
    }
}
