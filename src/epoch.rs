//! Checkpoint epochs: the timely time of every record is the epoch in which its
//! source read it. A process-wide clock moves the target epoch forward every
//! checkpoint interval; each source follows it one epoch at a time, reporting its
//! cut (next offsets and partition clocks) at every step. On shutdown the clock is
//! frozen so that every source ends at the same final epoch.

use std::sync::Mutex;

/// The target epoch of a process's sources.
#[derive(Debug, Default)]
pub struct EpochClock {
    state: Mutex<(u64, bool)>,
}

impl EpochClock {
    /// A clock starting at `epoch`.
    pub fn starting_at(epoch: u64) -> Self {
        EpochClock { state: Mutex::new((epoch, false)) }
    }
    /// The epoch sources should be in now.
    pub fn target(&self) -> u64 {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).0
    }
    /// Moves the target on by one, unless frozen; returns the target.
    pub fn advance(&self) -> u64 {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !s.1 {
            s.0 += 1;
        }
        s.0
    }
    /// Stops the clock and returns the final epoch (the same for every caller).
    pub fn freeze(&self) -> u64 {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.1 = true;
        s.0
    }
}
