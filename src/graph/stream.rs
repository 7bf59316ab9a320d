//! The typed stream of a graph, what travels on it, and how watermarks follow it.
//!
//! A [`Stream<T>`] is a timely stream of [`Msg<T>`]: events ([`Rec<T>`], a value
//! with its key, event time and where it was read) and watermark marks. Its
//! timely time is the checkpoint epoch, never the event time: event time lives in
//! the records and in the marks, so a slow partition never holds a worker.
//!
//! Watermarks follow Flink's rule. Every worker's share of a stream has one
//! watermark (no later event of that share is older); a source's is the minimum
//! over the partitions it reads. Where a stream is exchanged between workers
//! (re-keyed for a keyed operator, a join or a view), each worker sends its
//! watermark to every peer and a receiver's watermark is the minimum over all
//! senders. Marks travel in the same FIFO channels as the events, so a mark never
//! overtakes an event it covers.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::Scope;

use super::keyed::Origin;
use super::run::Collector;
use crate::types::key_hash;

/// An event on a stream: its value, its key, its event time (ms), and the
/// partition and offset it was read at, with that partition's watermark after it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rec<T> {
    pub key: String,
    pub time_ms: i64,
    pub origin: Origin,
    pub offset: i64,
    /// The origin partition's watermark after this event.
    pub watermark: i64,
    pub value: T,
}

impl<T> Rec<T> {
    /// The same envelope around another value.
    pub fn with<U>(&self, value: U) -> Rec<U> {
        Rec { key: self.key.clone(), time_ms: self.time_ms, origin: self.origin, offset: self.offset, watermark: self.watermark, value }
    }
}

/// A watermark mark: worker `from`'s share of a stream has no later event older
/// than `watermark`. `to` routes it to one worker at an exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub watermark: i64,
    pub from: u32,
    pub to: u32,
}

/// What travels on a [`Stream`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Msg<T> {
    Event(Rec<T>),
    Mark(Mark),
}

/// The timely stream under a [`Stream`].
pub type Inner<'s, T> = timely::dataflow::Stream<'s, u64, Vec<Msg<T>>>;

/// What every stream of one worker's graph shares: where sinks write, the
/// names given to stateful operators (which must be unique) and checkpoints.
pub(crate) struct Shared {
    pub(crate) collector: Arc<Collector>,
    /// Stateful operators: name and state version.
    pub(crate) names: RefCell<Vec<(String, u32)>>,
    /// Operators whose state is not checkpointed: their names.
    pub(crate) unsaved: RefCell<Vec<String>>,
    pub(crate) errors: RefCell<Vec<String>>,
    /// The sources' topics, in the order built.
    pub(crate) sources: RefCell<Vec<String>>,
    /// The online models scored, in the order built.
    pub(crate) online: RefCell<Vec<String>>,
    pub(crate) worker: usize,
    pub(crate) peers: usize,
    /// Each sink's input frontier after its last activation (`u64::MAX`: its
    /// input ended): a checkpoint waits until every sink has passed its epoch.
    pub(crate) sink_frontiers: RefCell<Vec<Rc<std::cell::Cell<u64>>>>,
}

impl Shared {
    /// A new sink's progress cell, which it sets after each activation: the
    /// outputs of every epoch before its value have been handed to the runner.
    pub(crate) fn sink_progress(&self) -> SinkProgress {
        let cell = Rc::new(std::cell::Cell::new(self.start_epoch()));
        self.sink_frontiers.borrow_mut().push(cell.clone());
        SinkProgress(cell)
    }
    /// The least frontier over this worker's sinks (`u64::MAX` without sinks).
    pub(crate) fn sinks_frontier(&self) -> u64 {
        self.sink_frontiers.borrow().iter().map(|c| c.get()).min().unwrap_or(u64::MAX)
    }
    /// Registers a stateful operator's name; a second use is a graph error.
    /// Each one sends its state at every checkpoint (a checkpoint is complete
    /// once every registered operator's is in).
    pub(crate) fn claim(&self, name: &str, version: u32) {
        if self.name_free(name) {
            self.names.borrow_mut().push((name.to_owned(), version));
        }
    }
    /// Registers the name of an operator whose state is not checkpointed (a
    /// monitor, data-quality windows): unique like the others, and no part of
    /// any checkpoint.
    pub(crate) fn claim_unsaved(&self, name: &str) {
        if self.name_free(name) {
            self.unsaved.borrow_mut().push(name.to_owned());
        }
    }
    /// Whether `name` is a valid operator name no operator has yet (else a graph error).
    fn name_free(&self, name: &str) -> bool {
        let taken = self.names.borrow().iter().any(|(n, _)| n == name) || self.unsaved.borrow().iter().any(|n| n == name);
        if taken {
            self.errors.borrow_mut().push(format!("two operators are named `{name}`: names key their checkpointed state and must be unique"));
        } else if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') || name.starts_with("source-") {
            self.errors.borrow_mut().push(format!("operator name `{name}`: names become file names (no `/`, no leading `.`, not `source-...`)"));
        } else {
            return true;
        }
        false
    }
    /// Checkpoints, where the run takes them.
    pub(crate) fn checkpoints(&self) -> Option<&Arc<super::checkpoint::Checkpoints>> {
        self.collector.checkpoints.as_ref()
    }
    /// The first epoch of this run (one past a restored checkpoint).
    pub(crate) fn start_epoch(&self) -> u64 {
        self.checkpoints().map_or(0, |c| c.start_epoch())
    }
    /// Every old worker's part of operator `name`'s state, when restoring.
    pub(crate) fn restored(&self, name: &str) -> Vec<Vec<u8>> {
        self.checkpoints().and_then(|c| c.restored.as_ref()).and_then(|r| r.states.get(name).cloned()).unwrap_or_default()
    }
    /// Decodes every old worker's part of `name`'s state and hands each to `take`;
    /// a part that does not decode makes the graph invalid, naming `what`.
    pub(crate) fn restore_each<S: serde::de::DeserializeOwned>(&self, name: &str, what: &str, mut take: impl FnMut(S)) {
        for part in self.restored(name) {
            match bincode::deserialize::<S>(&part) {
                Ok(state) => take(state),
                Err(e) => self.errors.borrow_mut().push(format!("{what} `{name}`: reading its checkpointed state: {e}")),
            }
        }
    }
    /// Whether this worker owns `hash` (keys are spread by hash over workers).
    pub(crate) fn owns(&self, hash: u64) -> bool {
        hash % self.peers as u64 == self.worker as u64
    }
}

/// Where a sink says how far it has written (see [`Shared::sink_progress`]).
pub(crate) struct SinkProgress(Rc<std::cell::Cell<u64>>);

impl SinkProgress {
    /// Records the sink's input frontier, after it wrote what it had.
    pub(crate) fn passed(&self, frontier: Option<u64>) {
        self.0.set(frontier.unwrap_or(u64::MAX));
    }
}

/// A stateful operator's link to checkpoints: which epochs to snapshot and where
/// its state goes.
#[derive(Clone)]
pub(crate) struct StateLink {
    checkpoints: Option<Arc<super::checkpoint::Checkpoints>>,
    name: String,
    worker: usize,
}

impl StateLink {
    pub(crate) fn new(shared: &Shared, name: &str) -> Self {
        StateLink { checkpoints: shared.checkpoints().cloned(), name: name.to_owned(), worker: shared.worker }
    }
    pub(crate) fn is_checkpoint(&self, epoch: u64) -> bool {
        self.checkpoints.as_ref().is_some_and(|c| c.is_checkpoint(epoch))
    }
    pub(crate) fn enabled(&self) -> bool {
        self.checkpoints.is_some()
    }
    /// Sends the state as of the end of `epoch` (encoding errors fail the checkpoint, loudly).
    pub(crate) fn report(&self, epoch: u64, state: impl FnOnce() -> anyhow::Result<Vec<u8>>) {
        self.send(epoch, state, false)
    }
    /// Sends the final state, after the input ended at `epoch`.
    pub(crate) fn report_last(&self, epoch: u64, state: impl FnOnce() -> anyhow::Result<Vec<u8>>) {
        self.send(epoch, state, true)
    }
    /// Encodes the state (only where checkpoints are taken) and sends it.
    fn send(&self, epoch: u64, state: impl FnOnce() -> anyhow::Result<Vec<u8>>, last: bool) {
        let Some(c) = &self.checkpoints else { return };
        match state() {
            Ok(bytes) => c.send(super::checkpoint::Part::State { worker: self.worker, name: self.name.clone(), epoch, bytes: Arc::new(bytes), last }),
            Err(e) => {
                tracing::error!(operator = %self.name, epoch, error = %e, "encoding the operator's state failed; no checkpoint of this epoch");
                c.send(super::checkpoint::Part::Skipped { epoch, why: format!("operator `{}`: encoding its state failed: {e:#}", self.name) });
            }
        }
    }
}

/// A typed stream of a graph; see the module docs. Cloning it lets several
/// operators read the same stream.
pub struct Stream<'s, T: 'static> {
    pub(crate) inner: Inner<'s, T>,
    pub(crate) shared: Rc<Shared>,
}

impl<'s, T: Clone + 'static> Clone for Stream<'s, T> {
    fn clone(&self) -> Self {
        Stream { inner: self.inner.clone(), shared: self.shared.clone() }
    }
}

impl<'s, T: Clone + 'static> Stream<'s, T> {
    pub(crate) fn new(inner: Inner<'s, T>, shared: Rc<Shared>) -> Self {
        Stream { inner, shared }
    }
    pub(crate) fn scope(&self) -> Scope<'s, u64> {
        self.inner.scope()
    }
    /// The timely stream under this one, for operators the graph API lacks.
    pub fn inner(&self) -> &Inner<'s, T> {
        &self.inner
    }
}

impl<'s, T: timely::ExchangeData + Clone> Stream<'s, T> {
    /// Copies every mark to every worker, ready for [`Stream::exchanged`]'s
    /// channel: events go by key, marks by `to`.
    pub(crate) fn broadcast_marks(&self, name: &str) -> Inner<'s, T> {
        let peers = self.scope().peers() as u32;
        self.inner.clone().unary::<timely::container::CapacityContainerBuilder<Vec<Msg<T>>>, _, _, _>(Pipeline, name, move |_, _| {
            move |input, output| {
                input.for_each(|time, data| {
                    let mut session = output.session(&time);
                    // most batches have no mark: handed on as they are
                    if data.iter().all(|m| matches!(m, Msg::Event(_))) {
                        session.give_container(data);
                        return;
                    }
                    for m in data.drain(..) {
                        match m {
                            Msg::Mark(mark) => (0..peers).for_each(|to| session.give(Msg::Mark(Mark { to, ..mark }))),
                            event => session.give(event),
                        }
                    }
                });
            }
        })
    }
}

/// The channel that sends events to their key's worker and marks to `to`.
pub(crate) fn by_key<T: timely::ExchangeData>() -> Exchange<Msg<T>, impl FnMut(&Msg<T>) -> u64 + 'static> {
    Exchange::new(|m: &Msg<T>| match m {
        Msg::Event(r) => key_hash(&r.key),
        Msg::Mark(m) => m.to as u64,
    })
}

/// An exchanged input's watermark at a receiver: the minimum of the latest marks
/// of its senders (every worker).
#[derive(Clone, Debug)]
pub(crate) struct Watermarks {
    by_sender: Vec<i64>,
    current: i64,
}

impl Watermarks {
    /// After an exchange: one sender per worker.
    pub(crate) fn exchanged(peers: usize) -> Self {
        Watermarks { by_sender: vec![i64::MIN; peers], current: i64::MIN }
    }
    /// Takes a mark; returns the input's watermark if it moved.
    pub(crate) fn observe(&mut self, mark: &Mark) -> Option<i64> {
        let w = self.by_sender.get_mut(mark.from as usize)?;
        *w = (*w).max(mark.watermark);
        let low = self.by_sender.iter().copied().min().unwrap_or(i64::MIN);
        (low > self.current).then(|| {
            self.current = low;
            low
        })
    }
    pub(crate) fn current(&self) -> i64 {
        self.current
    }
}

/// A two-input operator's output watermark (the lower of its inputs') if it
/// moved past `low` (which then follows it).
pub(crate) fn moved(low: &mut i64, left: &Watermarks, right: &Watermarks) -> Option<i64> {
    let now = left.current().min(right.current());
    (now > *low).then(|| {
        *low = now;
        now
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receivers_watermark_is_the_minimum_over_its_senders() {
        let mut w = Watermarks::exchanged(2);
        assert_eq!(w.observe(&Mark { watermark: 10, from: 0, to: 0 }), None, "worker 1 has said nothing yet");
        assert_eq!(w.observe(&Mark { watermark: 5, from: 1, to: 0 }), Some(5));
        assert_eq!(w.observe(&Mark { watermark: 3, from: 1, to: 0 }), None, "marks never move back");
        assert_eq!(w.observe(&Mark { watermark: 20, from: 1, to: 0 }), Some(10));
        assert_eq!(w.current(), 10);
    }
}
