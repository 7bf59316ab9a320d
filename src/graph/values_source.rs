//! A source of values already in memory, of your own type: no bytes, no
//! decoding. For generated streams (benchmarks such as Nexmark, simulations)
//! and tests, where a topic's JSON would cost more than the graph under test.
//!
//! Each partition is a list of values handed to the runner
//! ([`super::LocalRun::values`]) and moved, not copied, into the worker that
//! owns it (`(partition + source index) % workers`, as for topics), once: a
//! second run needs them given again. Event time comes from the value
//! ([`Values::new`]'s `time`); the watermark of a partition follows Flink's
//! rule as for topics (its greatest event time minus the allowed lateness), and a
//! value older than it goes to `dlq` as `late` with its JSON. Epoch `e` holds
//! offsets `[e * n, (e + 1) * n)` of every partition, as for in-memory topics;
//! records have an empty key until a [`super::Stream::key_by`].
//!
//! ```
//! use vigil::graph::values_source::Values;
//! use vigil::graph::LocalRun;
//! let t0 = 1_700_000_000_000i64;
//! let out = LocalRun::new(2)
//!     .values("readings", vec![vec![(t0, 1.5f64), (t0 + 10, 2.5)], vec![(t0 + 5, 4.0)]])
//!     .run(move |g| {
//!         g.source_values(Values::new("readings", |r: &(i64, f64)| r.0)).map(|(_, v)| v * 2.0).sink("doubled");
//!         Ok(())
//!     })
//!     .unwrap();
//! assert_eq!(out.values("doubled"), vec!["3.0", "5.0", "8.0"]);
//! ```

use std::any::Any;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use timely::dataflow::operators::generic::operator::source as timely_source;

use super::checkpoint::Part;
use super::keyed::Origin;
use super::run::{DeadLetter, SourceCounts};
use super::stream::{Mark, Msg, Rec, Stream};
use super::GraphBuilder;
use crate::types::now_us;
use crate::watermark::{PartitionClock, TimePolicy};

/// The partitions of a values topic, each taken once by the worker that owns it.
pub(crate) type ValueTopic<T> = Mutex<Vec<Option<Vec<T>>>>;

/// At most this many values per activation.
const ACTIVATION_RECORDS: usize = 1024;

/// A values source's declaration; see the module docs.
pub struct Values<T> {
    name: String,
    time: Box<dyn Fn(&T) -> i64>,
    lateness: Duration,
}

impl<T> Values<T> {
    /// The values given to the runner under `name`, timed by `time` (epoch ms).
    pub fn new(name: &str, time: impl Fn(&T) -> i64 + 'static) -> Self {
        Values { name: name.to_owned(), time: Box::new(time), lateness: Duration::ZERO }
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    /// How far behind its partition's greatest event time a value may be.
    pub fn lateness(mut self, d: Duration) -> Self {
        self.lateness = d;
        self
    }
}

/// The runner's values for `name`, as given (type-erased).
pub(crate) fn erase<T: Send + 'static>(partitions: Vec<Vec<T>>) -> Arc<dyn Any + Send + Sync> {
    Arc::new(ValueTopic::<T>::new(partitions.into_iter().map(Some).collect()))
}

struct Partition<T> {
    number: u32,
    data: std::vec::IntoIter<T>,
    next: usize,
    len: usize,
    clock: PartitionClock,
}

/// Builds the source of `values` (the graph's `index`-th) on the worker behind
/// `g`, from the runner's `given` (its values for that name, if any).
pub(super) fn values_source<'s, T: Serialize + Clone + Send + 'static>(
    g: &mut GraphBuilder<'s>,
    index: u32,
    values: Values<T>,
    given: Option<Arc<dyn Any + Send + Sync>>,
    per_epoch: usize,
) -> Stream<'s, T> {
    let scope = g.scope;
    let (worker, peers) = (scope.index(), scope.peers());
    let name = values.name.clone();
    let mut parts: Vec<Partition<T>> = Vec::new();
    match given.as_ref().map(|a| a.clone().downcast::<ValueTopic<T>>()) {
        None => g.shared.errors.borrow_mut().push(format!("values `{name}`: the runner has no values of this name")),
        Some(Err(_)) => g.shared.errors.borrow_mut().push(format!("values `{name}`: the runner's values are not of type `{}`", std::any::type_name::<T>())),
        Some(Ok(topic)) => {
            let mut topic = topic.lock().unwrap_or_else(|e| e.into_inner());
            for (p, slot) in topic.iter_mut().enumerate().filter(|(p, _)| (p + index as usize) % peers == worker) {
                match slot.take() {
                    Some(data) => {
                        parts.push(Partition { number: p as u32, len: data.len(), data: data.into_iter(), next: 0, clock: PartitionClock::default() })
                    }
                    None => g.shared.errors.borrow_mut().push(format!("values `{name}`: partition {p} was read by an earlier run; give the values again")),
                }
            }
        }
    }
    let restored = g.shared.checkpoints().and_then(|c| c.restored.clone());
    for part in parts.iter_mut() {
        if let Some(cut) = restored.as_ref().and_then(|r| r.positions.get(&(name.clone(), part.number))) {
            let skip = (cut.next_offset.max(0) as usize).min(part.len);
            if skip > 0 {
                part.data.nth(skip - 1);
            }
            part.next = skip;
            part.clock = cut.clock.clone();
        }
    }
    let policy = TimePolicy { allowed_lateness_ms: values.lateness.as_millis() as i64, max_future_ms: i64::MAX / 4 };
    let collector = g.shared.collector.clone();
    let checkpoints = g.shared.checkpoints().cloned();
    let start = g.shared.start_epoch();
    let me = worker as u32;
    let time = values.time;
    let op_name = format!("Values({name})");
    let inner = timely_source::<_, timely::container::CapacityContainerBuilder<Vec<Msg<T>>>, _, _>(scope, &op_name, move |mut cap, info| {
        let activator = scope.activator_for(info.address.clone());
        cap.downgrade(&start);
        let mut cap = Some(cap);
        let mut batch: Vec<Msg<T>> = Vec::new();
        let (mut counts, mut dead) = (SourceCounts::default(), Vec::<DeadLetter>::new());
        move |output| {
            let Some(c) = cap.as_mut() else { return };
            let epoch = *c.time();
            if collector.crash_before(epoch) {
                return;
            }
            let end = (epoch as usize + 1).saturating_mul(per_epoch);
            let now_ms = (now_us() / 1000) as i64;
            let mut room = ACTIVATION_RECORDS;
            for part in parts.iter_mut() {
                while part.next < part.len.min(end) && room > 0 {
                    let Some(value) = part.data.next() else { break };
                    let offset = part.next as i64;
                    part.next += 1;
                    room -= 1;
                    counts.read += 1;
                    let time_ms = time(&value);
                    match part.clock.admit(time_ms, now_ms, &policy) {
                        Ok(watermark) => {
                            counts.accepted += 1;
                            let origin = Origin { source: index, partition: part.number };
                            batch.push(Msg::Event(Rec { key: String::new(), time_ms, origin, offset, watermark, value }));
                        }
                        Err(r) => {
                            *counts.rejected.entry(r.reason.as_str()).or_default() += 1;
                            let payload = serde_json::to_vec(&value).ok();
                            dead.push(DeadLetter { topic: name.clone(), partition: part.number, offset, reason: r.reason.as_str(), detail: r.detail, payload });
                        }
                    }
                }
            }
            if parts.iter().any(|p| p.next < p.len.min(end)) {
                output.session(&*c).give_container(&mut batch);
                activator.activate();
                return;
            }
            let done = parts.iter().all(|p| p.next >= p.len);
            let watermark = parts.iter().filter(|p| p.next < p.len).map(|p| p.clock.watermark(&policy).unwrap_or(i64::MIN)).min().unwrap_or(i64::MAX);
            batch.push(Msg::Mark(Mark { watermark, from: me, to: me }));
            output.session(&*c).give_container(&mut batch);
            collector.record_source(&name, std::mem::take(&mut counts), std::mem::take(&mut dead), epoch);
            if let Some(ck) = checkpoints.as_ref().filter(|ck| done || ck.is_checkpoint(epoch)) {
                let partitions =
                    parts.iter().map(|p| crate::checkpoint::PartitionCut { partition: p.number, next_offset: p.next as i64, clock: p.clock.clone() }).collect();
                ck.send(Part::Cut { worker, topic: name.clone(), epoch, partitions, last: done });
            }
            if done {
                cap = None;
            } else {
                c.downgrade(&(epoch + 1));
                activator.activate();
            }
        }
    });
    Stream::new(inner, g.shared.clone())
}
