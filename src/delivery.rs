//! Which epochs' outputs the broker has acknowledged. Every output record is sent
//! with its epoch; the producer's delivery callback settles it. An epoch's input
//! offsets may be committed only once every output of that epoch and all earlier
//! ones is delivered.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

/// Epochs tracked at once; the epoch clock never runs this far ahead of the last
/// committed epoch (see [`MAX_EPOCHS_AHEAD`]).
const SLOTS: usize = 64;
/// How far the epoch clock may run ahead of the last committed epoch.
pub const MAX_EPOCHS_AHEAD: u64 = 32;

/// Records sent but not yet acknowledged, per epoch (a ring indexed by epoch).
pub struct InFlight {
    slots: [AtomicI64; SLOTS],
    failed: AtomicBool,
}

impl Default for InFlight {
    fn default() -> Self {
        InFlight { slots: std::array::from_fn(|_| AtomicI64::new(0)), failed: AtomicBool::new(false) }
    }
}

impl InFlight {
    pub fn sent(&self, epoch: u64) {
        self.slots[epoch as usize % SLOTS].fetch_add(1, Ordering::SeqCst);
    }
    /// The broker acknowledged (or finally refused) a record of `epoch`.
    pub fn settled(&self, epoch: u64, ok: bool) {
        if !ok {
            self.failed.store(true, Ordering::SeqCst);
        }
        self.slots[epoch as usize % SLOTS].fetch_sub(1, Ordering::SeqCst);
    }
    /// Whether some output could not be delivered (the job must not commit past it).
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }
    /// Whether every record of epochs `first_open..=epoch` is acknowledged; epochs
    /// before `first_open` were settled earlier.
    pub fn delivered_through(&self, first_open: u64, epoch: u64) -> bool {
        (first_open..=epoch).all(|e| self.slots[e as usize % SLOTS].load(Ordering::SeqCst) == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_epoch_is_delivered_when_it_and_every_earlier_one_is_settled() {
        let f = InFlight::default();
        f.sent(0);
        f.sent(2);
        assert!(!f.delivered_through(0, 0));
        assert!(f.delivered_through(1, 1));
        f.settled(0, true);
        assert!(f.delivered_through(0, 1));
        assert!(!f.delivered_through(0, 2));
        f.settled(2, false);
        assert!(f.delivered_through(0, 2) && f.failed());
    }
}
