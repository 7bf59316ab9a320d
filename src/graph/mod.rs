//! The dataflow API's building blocks: operators a user writes in Rust and runs
//! on vigil's streams.
//!
//! - [`keyed`]: user-defined stateful operators (one state per key, event-time
//!   timers, state checkpointed under the operator's name).

pub mod keyed;
