//! Processing a stateful operator's input in epoch order, so that its state can
//! be checkpointed as of exactly the end of an epoch.
//!
//! Records of epoch `t` are handed on as soon as every earlier epoch is complete
//! at the input (the input frontier is at `t` or beyond); records of later epochs
//! wait, with a capability for their epoch. Once the frontier passes a checkpoint
//! epoch `c`, and before any record of a later epoch is handed on, the gate says
//! "snapshot `c`". Records of one epoch keep their arrival order, so each
//! partition's records keep their offset order (a partition's epochs never go
//! back).
//!
//! ```
//! use vigil::graph::epochs::{EpochGate, Step};
//! let mut gate = EpochGate::new(0);
//! gate.push(1, || (), vec!["b"]); // epoch 1 arrives while epoch 0 is still open
//! gate.push(0, || (), vec!["a"]);
//! let mut seen = Vec::new();
//! let mut record = |s: Step<'_, (), &'static str>| match s {
//!     Step::Records(_, _, batch) => seen.extend(batch),
//!     Step::Snapshot(c) => seen.push(if c == 0 { "snapshot 0" } else { "?" }),
//!     Step::Ended(_) => seen.push("ended"),
//! };
//! // the input frontier is at 0: only epoch 0 may go
//! gate.release(Some(0), |e| e == 0, &mut record);
//! // epoch 0 is complete: its checkpoint first, then epoch 1
//! gate.release(Some(2), |e| e == 0, &mut record);
//! assert_eq!(seen, vec!["a", "snapshot 0", "b"]);
//! ```

use std::collections::BTreeMap;

/// What the gate hands on, in order.
pub enum Step<'a, C, M> {
    /// The records of `epoch` that may go now, with what emitting at it needs
    /// (drained from the gate's buffer, which the next epoch reuses).
    Records(u64, &'a C, std::vec::Drain<'a, M>),
    /// Every record up to the end of this checkpoint epoch has gone, none later.
    Snapshot(u64),
    /// The input ended after this epoch: the state now is final, for every
    /// later checkpoint too.
    Ended(u64),
}

/// See the module docs. `C` is what an epoch's records need to be emitted
/// later (a capability), `M` a record.
pub struct EpochGate<C, M> {
    stash: BTreeMap<u64, (C, Vec<M>)>,
    /// An emptied buffer of an epoch handed on, for the next epoch: an
    /// epoch's records are many, and a fresh buffer that size each epoch costs
    /// the allocator fresh pages.
    spare: Vec<M>,
    /// Checkpoint epochs below this one have been reported.
    reported_to: u64,
    /// The latest epoch seen (for the end of the input).
    latest: Option<u64>,
    /// Hand on an epoch only once it is complete (not while it still receives).
    complete_only: bool,
    ended: bool,
}

impl<C, M> EpochGate<C, M> {
    /// A gate whose first epoch is `start` (one after a restored checkpoint).
    pub fn new(start: u64) -> Self {
        EpochGate { stash: BTreeMap::new(), spare: Vec::new(), reported_to: start, latest: None, complete_only: false, ended: false }
    }

    /// A gate that hands on each epoch once, complete (for outputs that net an
    /// epoch's changes out, such as upsert sinks).
    pub fn complete_epochs(start: u64) -> Self {
        EpochGate { complete_only: true, ..EpochGate::new(start) }
    }

    /// Records of `epoch`; `cap` makes what emitting at `epoch` needs (called
    /// for the epoch's first batch only).
    pub fn push(&mut self, epoch: u64, cap: impl FnOnce() -> C, records: impl IntoIterator<Item = M>) {
        self.latest = Some(self.latest.map_or(epoch, |l| l.max(epoch)));
        let spare = &mut self.spare;
        self.stash.entry(epoch).or_insert_with(|| (cap(), std::mem::take(spare))).1.extend(records);
    }

    /// Hands on what may go now, given the input frontier (`None`: the input
    /// ended), to `step`, in epoch order, with a [`Step::Snapshot`] for each
    /// checkpoint epoch passed, before any later record.
    pub fn release(&mut self, frontier: Option<u64>, is_checkpoint: impl Fn(u64) -> bool, mut step: impl FnMut(Step<'_, C, M>)) {
        // epochs below `limit` are complete
        let limit = match frontier {
            Some(f) => f,
            None => self.latest.map_or(self.reported_to, |l| l + 1).max(self.reported_to),
        };
        while let Some(entry) = self.stash.first_entry() {
            let epoch = *entry.key();
            if epoch > limit || (self.complete_only && epoch == limit) {
                break;
            }
            let (cap, mut records) = entry.remove();
            self.report_below(epoch, &is_checkpoint, &mut step);
            step(Step::Records(epoch, &cap, records.drain(..)));
            if records.capacity() > self.spare.capacity() {
                self.spare = records;
            }
        }
        self.report_below(limit, &is_checkpoint, &mut step);
        if frontier.is_none() && !self.ended {
            self.ended = true;
            step(Step::Ended(limit.saturating_sub(1)));
        }
    }

    fn report_below(&mut self, end: u64, is_checkpoint: &impl Fn(u64) -> bool, step: &mut impl FnMut(Step<'_, C, M>)) {
        while self.reported_to < end {
            if is_checkpoint(self.reported_to) {
                step(Step::Snapshot(self.reported_to));
            }
            self.reported_to += 1;
        }
    }

    /// Whether records wait.
    pub fn is_empty(&self) -> bool {
        self.stash.is_empty()
    }
}
