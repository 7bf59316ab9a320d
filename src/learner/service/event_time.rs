//! The learner's side of event-time-consistent scoring (`model::gate`): labels
//! wait in a queue ordered by (reveal time, event id) until their step is built;
//! a boundary is built once the sources, the predictions and the labels' watermark
//! allow it, in the same order whatever the arrival speed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;

use super::Service;
use crate::model::gate::Gate;

/// Labels waiting for their step at most; past it the labels source is not read
/// (its partitions do not count as idle meanwhile).
const QUEUED_LABELS: usize = 1 << 22;

/// The labels' side: revealed labels not trained yet, and the labels' watermark.
pub(in crate::learner) struct LabelClock {
    /// (reveal time, event id hash) -> (label, labels partition).
    queue: BTreeMap<(i64, u64), (bool, u32)>,
    /// Per labels partition: newest reveal time seen and when it last delivered.
    partitions: HashMap<u32, (i64, Instant)>,
    /// The labels source ended (bounded runs): nothing more can come.
    pub(in crate::learner) ended: bool,
    lateness_ms: i64,
    idle: std::time::Duration,
    /// Labels that came after their step was built (trained at the next boundary).
    pub(in crate::learner) late: u64,
}

impl LabelClock {
    pub(in crate::learner) fn new(partitions: &[u32], lateness_ms: i64, idle: std::time::Duration) -> LabelClock {
        let now = Instant::now();
        LabelClock { queue: BTreeMap::new(), partitions: partitions.iter().map(|p| (*p, (i64::MIN, now))).collect(), ended: false, lateness_ms, idle, late: 0 }
    }

    /// Whether the labels source should be read now.
    pub(in crate::learner) fn wants_more(&mut self) -> bool {
        if self.queue.len() < QUEUED_LABELS {
            return true;
        }
        // not reading: no partition may look idle meanwhile
        let now = Instant::now();
        self.partitions.values_mut().for_each(|p| p.1 = now);
        false
    }

    /// The labels' watermark: no label revealed before it can still come.
    fn watermark(&self) -> i64 {
        if self.ended {
            return i64::MAX;
        }
        self.partitions
            .values()
            .filter(|(_, seen)| seen.elapsed() < self.idle)
            .map(|(reveal, _)| if *reveal == i64::MIN { i64::MIN } else { reveal.saturating_sub(self.lateness_ms) })
            .min()
            .unwrap_or(i64::MAX)
    }
}

impl Service {
    /// A label with its reveal time, queued for its step (or the next one when its
    /// step is already built: counted late).
    pub(super) fn queue_label(&mut self, id: u64, label: bool, partition: u32, reveal_ms: i64) {
        let Some(clock) = self.label_clock_et.as_mut() else { return };
        let entry = clock.partitions.entry(partition).or_insert((i64::MIN, Instant::now()));
        entry.0 = entry.0.max(reveal_ms);
        entry.1 = Instant::now();
        let reveal = if reveal_ms < self.built {
            clock.late += 1;
            self.metrics.model.labels_late.inc();
            self.built
        } else {
            reveal_ms
        };
        clock.queue.insert((reveal, id), (label, partition));
    }

    /// Builds every boundary the gate, the predictions and the labels allow, then
    /// tells the scorers. `all`: the run ends, everything still queued is built.
    pub(super) fn advance_event_time(&mut self, gate: &Arc<Gate>, all: bool) -> Result<()> {
        let mut received = std::mem::take(&mut self.received);
        let sources = gate.buildable(&mut received);
        self.received = received;
        let labels = self.label_clock_et.as_ref().map_or(i64::MAX, |c| c.watermark());
        let limit = sources.min(labels);
        let target = match limit {
            _ if all => i64::MAX,
            i64::MAX | i64::MIN => limit,
            _ => gate.boundary(limit),
        };
        if target == i64::MIN || target <= self.built {
            return Ok(());
        }
        let step = gate.step_ms();
        // when nothing more can come (the input ended), models are built up to the
        // last label's step: timeouts past the end of the data are not decided
        // (those predictions stay pending, as without event-time consistency)
        let build_to = match target {
            i64::MAX => {
                let last = self.label_clock_et.as_ref().and_then(|c| c.queue.keys().next_back()).map(|(reveal, _)| *reveal);
                last.map_or(self.built, |r| r.div_euclid(step).saturating_add(1).saturating_mul(step)).max(self.built)
            }
            t => t,
        };
        loop {
            let Some(next) = self.next_work(step) else { break };
            if next > build_to {
                break;
            }
            self.build_boundary(gate, next)?;
            self.built = next;
        }
        self.built = self.built.max(build_to);
        if target != i64::MAX {
            self.metrics.model.model_ready.set(target as f64 / 1000.0);
        }
        gate.set_ready(target);
        Ok(())
    }

    /// The next boundary with something to do: a queued label's, or a pending
    /// prediction's timeout.
    fn next_work(&self, step: i64) -> Option<i64> {
        let after = |t: i64| t.div_euclid(step).saturating_add(1).saturating_mul(step);
        let label = self.label_clock_et.as_ref().and_then(|c| c.queue.keys().next()).map(|(reveal, _)| after(*reveal));
        let timeout = self.pending.oldest_time().map(|t| after(t.saturating_add(self.spec.labels.timeout.as_millis() as i64)));
        let next = match (label, timeout) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        // overdue work (a late label, a late prediction) goes to the next boundary
        Some(if self.built != i64::MIN && next <= self.built { self.built.saturating_add(step) } else { next })
    }

    /// Trains the labels revealed before `boundary` (in order), expires the
    /// predictions whose timeout ends before it, runs a selection round when due,
    /// and publishes the model that scores from `boundary` on.
    fn build_boundary(&mut self, gate: &Arc<Gate>, boundary: i64) -> Result<()> {
        let labels: Vec<((i64, u64), (bool, u32))> = match self.label_clock_et.as_mut() {
            Some(clock) => {
                let rest = clock.queue.split_off(&(boundary, 0));
                std::mem::replace(&mut clock.queue, rest).into_iter().collect()
            }
            None => Vec::new(),
        };
        for ((_, id), (label, partition)) in labels {
            self.on_label(id, label, partition);
        }
        let mut out = Vec::new();
        self.pending.expire(boundary, &mut out);
        for p in out {
            self.timed_out(p);
        }
        // labels whose prediction is not here now never will be: orphans
        self.orphan_early(true);
        self.concept_drift_actions()?;
        self.train()?;
        if self.labels_since_select >= self.spec.select_every {
            self.select()?;
        }
        if self.dirty {
            self.publish()?;
        }
        gate.publish(boundary, self.model.current());
        Ok(())
    }
}
