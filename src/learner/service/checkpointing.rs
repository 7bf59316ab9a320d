//! The learner's part of a checkpoint, and putting it back (see
//! `learner::checkpoint` for what a checkpoint holds and the sealing rule).

use std::time::Instant;

use anyhow::Result;

use super::*;

impl Service {
    /// The learner's part of checkpoint `epoch` (see `learner::checkpoint`); then
    /// seals the epochs it covers and trains their held samples.
    pub(super) fn checkpoint(&mut self, epoch: u64, label_positions: Vec<(u32, i64)>) -> Result<Vec<u8>> {
        self.train()?; // the chunk holds sealed samples only
        let held: Vec<(Pending, bool)> = self.held.iter().filter(|h| h.0.epoch <= epoch).map(|h| (h.0.clone(), h.1)).collect();
        let mut early: Vec<(u64, bool, u32)> = self.early.iter().map(|(id, (label, _, partition))| (*id, *label, *partition)).collect();
        // Samples of later epochs: their events are scored again after a restore.
        // A label from the topic waits for that prediction again (and counts as
        // joined again then); a timed-out prediction times out again.
        let (mut later_joined, mut later_timed_out) = (0, 0);
        for (p, label, from_topic) in self.held.iter().filter(|h| h.0.epoch > epoch) {
            match from_topic {
                Some(partition) => {
                    early.push((p.id, *label, *partition));
                    later_joined += 1;
                }
                None => later_timed_out += 1,
            }
        }
        let mut counts = self.summary.counts.clone();
        counts.joined -= later_joined;
        counts.timed_out -= later_timed_out;
        let state = LearnerCheckpoint {
            epoch,
            model: self.trainer.state().map_err(|e| anyhow!("reading the model back: {e}"))?,
            pending: self.pending.through(epoch),
            held,
            early,
            label_positions,
            windows: self.windows.iter().map(|w| w.items()).collect(),
            arm_windows: [self.arm_windows[0].items(), self.arm_windows[1].items()],
            run_ids: self.run_ids.clone(),
            parents: self.parents.clone(),
            next_run_id: self.next_run_id,
            replaced_at: self.replaced_at.clone(),
            version: self.version,
            champion: self.champion,
            challenger: self.challenger,
            labels_since_select: self.labels_since_select,
            round: self.round,
            rng: self.rng.0,
            counts,
            trained_through: self.trained_through,
            label_clock: self.label_clock.iter().map(|(p, (t, _))| (*p, *t)).collect(),
        };
        let bytes = state.encode()?;
        self.sealed = self.sealed.max(Some(epoch));
        let (ready, wait): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held).into_iter().partition(|h| h.0.epoch <= epoch);
        self.held = wait;
        for (p, label, _) in ready {
            self.learn_from(p, label);
        }
        Ok(bytes)
    }

    /// Resumes from a checkpoint's learner state (the trainer already holds its model).
    pub(super) fn restore(&mut self, c: LearnerCheckpoint) {
        let now = Instant::now();
        for p in c.pending {
            self.pending.restore(p);
        }
        for (id, label, partition) in c.early {
            self.early.insert(id, (label, now, partition));
            self.early_order.push_back((now, id));
        }
        self.windows = c.windows.into_iter().map(|items| QualityWindow::from_items(self.spec.window, items)).collect();
        let [a, b] = c.arm_windows;
        self.arm_windows = [QualityWindow::from_items(self.spec.window, a), QualityWindow::from_items(self.spec.window, b)];
        self.run_ids = c.run_ids;
        self.parents = c.parents;
        self.next_run_id = c.next_run_id;
        self.replaced_at = c.replaced_at;
        self.version = c.version;
        self.champion = c.champion;
        self.challenger = c.challenger;
        self.labels_since_select = c.labels_since_select;
        self.round = c.round;
        self.rng = SplitMix(c.rng);
        self.summary.counts = c.counts;
        self.trained_through = c.trained_through;
        self.label_clock = c.label_clock.into_iter().map(|(p, t)| (p, (t, now))).collect();
        self.sealed = Some(c.epoch);
        self.summary.restored_epoch = Some(c.epoch);
        for (p, label) in c.held {
            self.learn_from(p, label);
        }
    }
}
