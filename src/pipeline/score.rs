//! The scoring operator: events arrive by key from every worker; each epoch (the
//! timely time, see `epoch.rs`) is processed once it is complete, in order, and
//! then the operator tells the checkpoint coordinator so, with its state.
//!
//! In one activation:
//! 1. the complete epochs (below the input frontier) still stashed, in order;
//! 2. events held for their model that the learner has built since (event-time
//!    consistency), and at the end of the input all of them;
//! 3. the end of a bounded input closes every window;
//! 4. `Report::Passed` for the newest complete epoch, unless an event of it is
//!    still held (its outputs are not all out), with the state when checkpointing;
//! 5. only then the current epoch's events, so that the reported state has every
//!    record of epochs up to the one passed and none later.
//!
//! What each batch does to the state and the outputs is [`Scorer`]'s.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::Stream;
use vigil_operators::{FeatureState, JoinState};

use super::scorer::Scorer;
use super::WorkerContext;
use crate::checkpoint::Report;
use crate::types::{key_hash, Event};

/// Builds the scoring operator on `events`. The operator is built even when the
/// restored state cannot be read, so that every worker builds the same dataflow;
/// the error (returned) stops the job.
pub(super) fn score(events: Stream<'_, u64, Vec<Event>>, ctx: &Arc<WorkerContext>) -> anyhow::Result<()> {
    let job = &ctx.job;
    let (worker, peers) = (events.scope().index(), events.scope().peers());
    let empty = (FeatureState::new(job.features.clone(), job.numeric_fields().len()), JoinState::new(job.joins.clone()));
    let ((state, joins), restored) = match &ctx.restored {
        Some(r) => match r.worker_state(empty.clone(), |key| key_hash(key) % peers as u64 == worker as u64) {
            Ok(s) => (s, Ok(())),
            Err(e) => (empty, Err(e)),
        },
        None => (empty, Ok(())),
    };
    let mut scorer = Scorer::new(ctx, state, joins);
    let mut epochs = Epochs::new(ctx.clone(), worker);
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
                epochs.stash.entry(epoch).or_default().append(data)
            });
            // None: the input ended
            epochs.activate(&mut scorer, frontier.frontier().as_option().copied());
        }
    });
    restored
}

/// The operator's bookkeeping of epochs; see the module docs.
struct Epochs {
    ctx: Arc<WorkerContext>,
    worker: usize,
    start_epoch: u64,
    /// Events by epoch, until their epoch is processed.
    stash: BTreeMap<u64, Vec<Event>>,
    /// The newest epoch reported as passed.
    passed: Option<u64>,
    /// The newest epoch whose records changed the state (`Report::Passed::since`).
    changed_at: u64,
    /// The newest epoch processed.
    last_epoch: u64,
    input_ended: bool,
    reported_keys: i64,
    join_reported: Vec<i64>,
}

impl Epochs {
    fn new(ctx: Arc<WorkerContext>, worker: usize) -> Epochs {
        let start_epoch = ctx.start_epoch();
        Epochs {
            ctx,
            worker,
            start_epoch,
            stash: BTreeMap::new(),
            passed: None,
            // a restored state is the state as of the checkpoint's epoch
            changed_at: start_epoch.saturating_sub(1),
            last_epoch: start_epoch,
            input_ended: false,
            reported_keys: 0,
            join_reported: Vec::new(),
        }
    }

    /// One activation, with the input frontier `current` (`None`: the input ended).
    fn activate(&mut self, scorer: &mut Scorer, current: Option<u64>) {
        let mut scored = 0;
        // complete epochs first, in order
        let complete_below = current.unwrap_or(u64::MAX);
        while let Some((epoch, mut events)) = self.stash.pop_first() {
            if epoch >= complete_below {
                self.stash.insert(epoch, events);
                break;
            }
            scored += self.process(scorer, epoch, &mut events);
        }
        scored += self.release_held(scorer, current);
        // before the final state is reported, so that its snapshot has them closed
        if current.is_none() && !self.input_ended && !self.ctx.control.shutdown_requested() {
            self.input_ended = true;
            scorer.end_of_input(self.last_epoch);
            self.changed_at = self.changed_at.max(self.last_epoch);
        }
        self.report_passed(scorer, current);
        // only then the current epoch's records
        if let Some(f) = current {
            if let Some(mut events) = self.stash.remove(&f) {
                scored += self.process(scorer, f, &mut events);
            }
        }
        scorer.publish_store();
        if scored > 0 {
            let metrics = &self.ctx.metrics;
            scorer.report_joins(&mut self.join_reported);
            metrics.scores_out.inc_by(scored);
            let live = scorer.state.live_keys() as i64;
            metrics.live_keys.add(live - self.reported_keys);
            self.reported_keys = live;
        }
    }

    fn process(&mut self, scorer: &mut Scorer, epoch: u64, events: &mut Vec<Event>) -> u64 {
        self.last_epoch = self.last_epoch.max(epoch);
        self.changed_at = self.changed_at.max(epoch);
        scorer.process(epoch, events)
    }

    /// Scores the held events whose model is built now; at the end of the input,
    /// all of them (the learner builds every model once the sources end; at a
    /// shutdown the gate is forced open).
    fn release_held(&mut self, scorer: &mut Scorer, current: Option<u64>) -> u64 {
        let Some(gate) = self.ctx.learner.as_ref().and_then(|l| l.gate.as_ref()) else { return 0 };
        let epoch = current.unwrap_or(self.last_epoch);
        let mut scored = 0;
        if scorer.held_min_epoch().is_some() {
            self.changed_at = self.changed_at.max(epoch);
            scored += scorer.process(epoch, &mut Vec::new());
        }
        while current.is_none() && scorer.held_min_epoch().is_some() {
            if self.ctx.control.shutdown_requested() {
                gate.force();
            }
            std::thread::sleep(Duration::from_micros(100));
            scored += scorer.process(epoch, &mut Vec::new());
        }
        scored
    }

    /// Reports the newest complete epoch whose outputs are all out, once, with the
    /// state when checkpointing (only when the state is that epoch's).
    fn report_passed(&mut self, scorer: &Scorer, current: Option<u64>) {
        let start = self.start_epoch;
        let through = match current {
            Some(f) => f.checked_sub(1).filter(|t| *t >= start),
            None => Some(u64::MAX),
        };
        // an epoch with held scores has not passed: its outputs are not all out
        let through = through.and_then(|t| match scorer.held_min_epoch() {
            Some(h) if h <= t => h.checked_sub(1).filter(|x| *x >= start),
            _ => Some(t),
        });
        let snapshot_state = self.ctx.snapshot_state;
        // a state that has records of later epochs is no checkpoint's state
        let state_fits = |t: &u64| !snapshot_state || *t >= self.changed_at;
        let Some(t) = through.filter(|t| self.passed.is_none_or(|p| p < *t)).filter(state_fits) else { return };
        let encoded = if snapshot_state {
            match crate::checkpoint::format::encode_state(&scorer.state, &scorer.joins) {
                Ok(bytes) => Some(bytes),
                Err(e) => {
                    tracing::error!(error = %e, "cannot encode state for a checkpoint");
                    return;
                }
            }
        } else {
            None
        };
        self.ctx.report(Report::Passed { worker: self.worker, since: self.changed_at.min(t), through: t, state: encoded });
        self.passed = Some(t);
    }
}
