//! vigil: a streaming dataflow engine for real-time machine learning.
//!
//! Data flows one way: source -> decode/validate -> features -> score -> sinks.
//! Each stage is one module; the README's architecture section explains the
//! decisions (time domain, watermarks, partition ownership, state).

pub mod accounting;
pub mod checkpoint;
pub mod decode;
pub mod delivery;
pub mod demo;
pub mod epoch;
pub mod gpu;
pub mod graph;
pub mod health;
pub mod http;
pub mod join_output;
pub mod kafka;
pub mod learner;
pub mod local;
pub mod metrics;
pub mod model;
pub mod monitor;
pub mod nexmark;
pub mod offline;
pub mod output;
pub mod pipeline;
pub mod replay_files;
pub mod run;
pub mod source;
pub mod spec;
pub mod store;
pub mod summary;
pub mod table;
pub mod types;
pub mod watermark;

/// The README's Rust examples, run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
