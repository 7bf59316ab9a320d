//! What a runner connects a graph to, besides memory: the external system its
//! sources read and its sinks write. [`crate::kafka::KafkaRun`] connects Kafka
//! (`crate::kafka::graph_run`); the graph itself knows no broker, only this
//! trait, so the engine's folders import one way (`kafka` uses `graph`).
//!
//! A connected source ([`super::connector_source`]) reads the partitions its
//! worker owns through a [`RecordSource`], and its epochs follow the
//! connector's clock.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Result;

use super::run::{DeadLetter, SinkRecord};
use crate::epoch::EpochClock;
use crate::learner::service::LabelSourceFactory;
use crate::metrics::Metrics;
use crate::source::RecordSource;
use crate::types::Control;

/// A topic's partitions, where reading starts and (bounded runs) ends.
#[derive(Clone, Debug, Default)]
pub struct TopicRange {
    pub partitions: u32,
    pub start: Vec<i64>,
    pub end: Option<HashMap<u32, i64>>,
}

/// An external system a graph reads and writes; see the module docs.
pub trait Connector: Send + Sync {
    /// The range of `topic`, the same for every worker.
    fn topic(&self, topic: &str) -> Result<TopicRange>;
    /// A reader of `partitions` of `topic` from `start` (indexed by partition)
    /// up to `end` (bounded runs).
    fn reader(&self, topic: &str, partitions: Vec<u32>, start: &[i64], end: Option<HashMap<u32, i64>>) -> Result<Box<dyn RecordSource>>;
    /// A reader of every partition of a labels topic, for an online model's
    /// learner: from `from`'s offsets for the partitions it names (a restored
    /// learner's positions), else from where the run starts.
    fn label_source(&self, topic: &str, from: &[(u32, i64)]) -> Result<LabelSourceFactory>;
    /// Whether the run stops at the end offsets it found at the start.
    fn bounded(&self) -> bool;
    /// Sink records to the sink's topic.
    fn produce(&self, sink: &str, records: &mut Vec<SinkRecord>);
    /// Dead letters of records read in `epoch` to the DLQ topic.
    fn dead_letters(&self, dead: &[DeadLetter], epoch: u64);
    /// The clock epochs follow.
    fn clock(&self) -> &EpochClock;
    /// Asks the sources to stop.
    fn control(&self) -> &Control;
    fn metrics(&self) -> Arc<Metrics>;
    /// Pacing: records per source and worker per epoch, at most.
    fn per_epoch(&self) -> Option<usize>;
}
