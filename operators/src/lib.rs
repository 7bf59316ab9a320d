//! vigil-operators: the engine-agnostic operator library of vigil.
//!
//! Operators here know nothing about Kafka or timely: they are plain state machines
//! fed one record at a time, so that they can be tested against naive oracles,
//! benchmarked against plain loops, and snapshotted with serde (every piece of
//! operator state derives `Serialize`/`Deserialize`; see the README's architecture
//! section for why state is operator-owned rather than held in differential
//! arrangements).

pub mod aggregate;
pub mod as_of_join;
pub mod closing;
pub mod decayed;
pub mod distinct;
pub mod drift;
pub mod hll;
pub mod interval_join;
pub mod kinds;
pub mod learn;
pub mod logistic;
pub mod lookup;
pub mod panes;
pub mod shards;
pub mod stream_join;
pub mod tail;
pub mod window;

pub use aggregate::Agg;
pub use closing::ClosedWindow;
pub use distinct::Distinct;
pub use hll::ApproxDistinct;
pub use interval_join::{IntervalJoin, JoinState, Joined};
pub use kinds::{Emit, Span, WindowKind};
pub use logistic::{LogisticModel, Transform};
pub use lookup::Lookup;
pub use panes::RatioToMean;
pub use window::{DecayKind, Decayed, FeatureDef, FeatureState, WindowFeature};
