//! The learner's part of a checkpoint, and why it is never ahead of the input
//! offsets it is saved with.
//!
//! With checkpoints on, a joined sample (prediction + label) changes the model only
//! once the epoch its prediction was scored in is *sealed*: covered by a
//! checkpoint. Until then it is held. When the coordinator writes checkpoint `e`
//! it asks the learner for its state: every pending prediction and held sample of
//! epochs `<= e`, the labels of held samples of later epochs (as labels waiting
//! for their prediction: those events are scored again after a restore), the
//! model (trained on sealed epochs only, so on epochs `<= e`), the validation
//! windows, the population bookkeeping and the labels topic's positions. Then
//! epochs `<= e` are sealed and their held samples train.
//!
//! Restoring puts all of it back: the events after the checkpoint's offsets are
//! scored again, their labels are read again from the saved label positions, and
//! nothing is trained twice or lost.

use std::sync::mpsc::SyncSender;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use vigil_operators::learn::ModelState;

use super::pending::Pending;

const MAGIC: &[u8; 8] = b"VIGILLN\0";
pub const FORMAT: u32 = 1;

/// The coordinator's request for the learner's state as of epoch `epoch`.
pub struct CheckpointRequest {
    pub epoch: u64,
    pub reply: SyncSender<Result<Vec<u8>, String>>,
}

/// Label outcomes and volumes so far (they continue across restarts).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub joined: u64,
    pub expired: u64,
    pub orphan: u64,
    pub sampled_out: u64,
    pub malformed: u64,
    pub labels_read: u64,
    pub timed_out: u64,
    pub trained: u64,
    pub selections: u64,
}

/// Everything the learner needs to resume at a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LearnerCheckpoint {
    pub epoch: u64,
    pub model: ModelState,
    pub pending: Vec<Pending>,
    /// Joined samples of sealed-but-not-yet-trained epochs `<= epoch`.
    pub held: Vec<(Pending, bool)>,
    /// Labels waiting for their prediction: event id hash, label, labels partition.
    pub early: Vec<(u64, bool, u32)>,
    /// Next offset of every labels partition.
    pub label_positions: Vec<(u32, i64)>,
    pub windows: Vec<Vec<(f32, bool, f32)>>,
    pub arm_windows: [Vec<(f32, bool, f32)>; 2],
    pub run_ids: Vec<u64>,
    pub parents: Vec<Option<u64>>,
    pub next_run_id: u64,
    pub replaced_at: Vec<u64>,
    pub version: u64,
    pub champion: usize,
    pub challenger: Option<usize>,
    pub labels_since_select: u64,
    pub round: u64,
    pub rng: u64,
    pub counts: Counts,
    /// The newest prediction epoch any trained sample came from (`<= epoch`).
    pub trained_through: Option<u64>,
    /// Per labels partition, the newest event time a label joined.
    pub label_clock: Vec<(u32, i64)>,
}

impl LearnerCheckpoint {
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&FORMAT.to_le_bytes());
        bincode::serialize_into(&mut out, self).context("encoding the learner state")?;
        Ok(out)
    }

    pub fn decode(bytes: &[u8]) -> Result<LearnerCheckpoint> {
        if bytes.len() < 12 || &bytes[..8] != MAGIC {
            bail!("not a vigil learner state");
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if version != FORMAT {
            bail!("learner state format {version}; this build reads format {FORMAT} only");
        }
        let c: LearnerCheckpoint = bincode::deserialize(&bytes[12..]).context("decoding the learner state")?;
        c.model.validate().map_err(|e| anyhow::anyhow!("learner state: {e}"))?;
        if c.windows.len() != c.model.k() || c.run_ids.len() != c.model.k() || c.replaced_at.len() != c.model.k() || c.parents.len() != c.model.k() {
            bail!("learner state: per-variant vectors do not match the model");
        }
        Ok(c)
    }
}
