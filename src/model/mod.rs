//! The models scorers serve, shared by the learner (which publishes them), the
//! scorers and the monitor (which read them): `snapshot` (a published model and
//! the handle to the current one) and `gate` (event-time consistency: which model
//! an event may be scored with). Imports nothing from the learner or the monitor,
//! so that both can depend on it.

pub mod gate;
pub mod snapshot;

pub use snapshot::{ModelHandle, ModelSnapshot};
