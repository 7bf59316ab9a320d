//! Checkpoints: a consistent snapshot of the job at one epoch boundary, the input
//! offsets and partition clocks of every partition plus every worker's operator
//! state, written atomically, versioned, and matched against the offsets committed
//! to Kafka on restart.
//!
//! - `format`: the files (manifest JSON, state files), atomic writes, versions.
//! - `coordinator`: the process thread that assembles checkpoints from the workers'
//!   reports, waits for the outputs to be delivered, commits offsets, cleans up.
//! - `restore`: picks the checkpoint that matches Kafka's committed offsets.
//! - `txlog`: the record of transaction commit decisions.
//! - `savepoint`: checkpoints copied out and kept, to start a changed job from.
//! - `upgrade`: which state of a savepoint a changed job keeps, by name.

pub mod format;
pub mod restore;
pub mod savepoint;
pub mod txlog;
pub mod upgrade;

use serde::{Deserialize, Serialize};

use crate::watermark::PartitionClock;

/// One partition's position at an epoch boundary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartitionCut {
    pub partition: u32,
    /// Next offset to read.
    pub next_offset: i64,
    pub clock: PartitionClock,
}

/// What workers tell the coordinator.
#[derive(Debug)]
pub enum Report {
    /// A source passed the end of `epoch`: its partitions' positions after every
    /// record it stamped with `epoch` or earlier.
    Cut { worker: usize, epoch: u64, partitions: Vec<PartitionCut> },
    /// A scoring operator has processed every record of epochs `..=through` and of
    /// none later (`u64::MAX`: everything, at the end); `state` is its encoded state
    /// then (when checkpoints are on), written to disk by the coordinator.
    ///
    /// No record of epochs `since..=through` changed that state, so it is also the
    /// state as of the end of any of those epochs, and only of those: a checkpoint
    /// of an earlier epoch must not use it (its cut would replay records the state
    /// has already counted).
    Passed { worker: usize, since: u64, through: u64, state: Option<Vec<u8>> },
}

/// Simulates a crash at a named point when the `FAILPOINTS` environment variable
/// asks for it (e.g. `FAILPOINTS=checkpoint-after-rename=return`): the process
/// aborts on the spot, like a SIGKILL. Used by the crash tests.
#[macro_export]
macro_rules! crash_point {
    ($name:expr) => {
        fail::fail_point!($name, |_| {
            eprintln!("vigil: crash point {} reached: aborting", $name);
            std::process::abort()
        })
    };
}
