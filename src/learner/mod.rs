//! Online learning inside the job: the model learns from labels that arrive late.
//!
//! ```text
//! scorers (timely workers) --Pending--> learner thread <-- labels topic
//!        ^                                   |  join by event id, train (GPU or CPU),
//!        +------- ModelSnapshot -------------+  validate, select, log runs
//! ```
//!
//! * Scorers score every event with every variant of the current [`ModelSnapshot`],
//!   write the champion's score (or the A/B arm's) to `scores`, the challengers' to
//!   the shadow topic, and hand the exact inputs and predictions to the learner.
//! * The learner ([`service`]) owns the [`Trainer`](vigil_operators::learn::Trainer)
//!   (wgpu kernels or the CPU twin), joins labels to pending predictions
//!   ([`pending`]), trains in chunks, keeps progressive validation per variant,
//!   runs population-based training every `select_every` labels, appends the
//!   experiment log ([`runs`]) and publishes a new snapshot.
//!
//! Scores therefore depend on when labels arrive, as with any online learner fed
//! in real time; the job's other outputs do not.

pub mod checkpoint;
pub mod export;
pub mod label_health;
pub mod labels;
pub use crate::metrics::model as metrics;
pub mod pending;
pub mod replay;
pub mod runs;
pub mod service;

pub use crate::model::{ModelHandle, ModelSnapshot};
pub use crate::spec::online::{Consistency, LabelSpec, OnlineSpec};
pub use pending::Pending;
pub use service::{start, Learner, LearnerLink, LearnerSummary};

/// Names written into champion files.
#[derive(Clone, Debug, Default)]
pub struct ModelNames {
    pub job: String,
    pub model: String,
    pub inputs: Vec<String>,
}

impl ModelNames {
    pub fn of(job: &crate::spec::JobSpec) -> ModelNames {
        ModelNames { job: job.name.clone(), model: job.model.name.clone(), inputs: job.model.inputs.iter().map(|i| i.name.clone()).collect() }
    }
}

/// The starting model: the search space's first variants, from a champion
/// file when `init` is set. `inputs` are the job's model inputs in order.
pub fn initial_state(spec: &OnlineSpec, inputs: &[String]) -> anyhow::Result<vigil_operators::learn::ModelState> {
    let shape = vigil_operators::learn::Shape { kind: spec.kind, d: inputs.len() as u32, hidden_max: spec.hidden_max(), batch: spec.batch };
    let mut state =
        vigil_operators::learn::ModelState::new(shape, spec.space.initial(spec.variants, spec.seed), spec.seed).map_err(|e| anyhow::anyhow!("model: {e}"))?;
    if let Some(path) = &spec.init {
        let champion = export::ChampionFile::read(path)?;
        champion.check_fits(spec.kind, inputs, spec.hidden_max()).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        champion.seed(&mut state);
    }
    Ok(state)
}
