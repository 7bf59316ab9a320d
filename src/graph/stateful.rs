//! A user's [`KeyedOperator`] on a stream: `stream.stateful("name", op)`.
//!
//! Events go to the worker that owns their key; there a [`KeyedRuntime`] hands
//! each one to the operator with its key's state, and fires its event-time timers
//! as watermarks pass (see [`super::keyed`] for the exact rules: a key's timers
//! fire before the event that moves its watermark past them, in (time, key)
//! order, and all of them at the end of the input). The stream's watermark (the
//! minimum over every worker's share, from the marks) also moves every origin's
//! watermark, so a quiet key's timers fire once the whole stream has moved on.
//!
//! Each output carries the envelope of what produced it: the key, and the event's
//! time (or the timer's), origin and offset. The name must be unique in the graph:
//! it keys the operator's checkpointed state.
//!
//! ```
//! use vigil::graph::{KeyContext, KeyedOperator, LocalRun, Record, Source};
//!
//! /// Each key's running event count.
//! #[derive(Default)]
//! struct Count;
//! impl KeyedOperator for Count {
//!     type In = Record;
//!     type Out = u64;
//!     type State = u64;
//!     fn on_event(&mut self, _: &Record, n: &mut u64, ctx: &mut KeyContext<'_, u64>) {
//!         *n += 1;
//!         ctx.emit(*n);
//!     }
//! }
//!
//! let ev = |k: &str, i: i64| format!(r#"{{"key":"{k}","ts":{}}}"#, 1_700_000_000_000 + i).into_bytes();
//! let out = LocalRun::new(2)
//!     .topic("events", vec![vec![ev("a", 0), ev("b", 1)], vec![ev("a", 2)]])
//!     .run(|g| {
//!         g.source(Source::json("events")).stateful("count", Count).sink("counts");
//!         Ok(())
//!     })
//!     .unwrap();
//! assert_eq!(out.values("counts"), vec!["1", "1", "2"]);
//! ```

use timely::dataflow::operators::generic::Operator;

use super::epochs::{EpochGate, Step};
use super::keyed::{KeyedOperator, KeyedRuntime};
use super::stream::{by_key, Mark, Msg, Rec, StateLink, Stream, Watermarks};
use crate::types::key_hash;

impl<'s, T: timely::ExchangeData + Clone> Stream<'s, T> {
    /// Runs `op` on this stream's events, one state per key, under `name`.
    pub fn stateful<O>(&self, name: &str, op: O) -> Stream<'s, O::Out>
    where
        O: KeyedOperator<In = T>,
        O::Out: Clone + 'static,
    {
        self.shared.claim(name, O::STATE_VERSION);
        let mut rt = KeyedRuntime::new(name, op).with_stamps();
        for part in self.shared.restored(name) {
            let shared = self.shared.clone();
            if let Err(e) = rt.restore(&part, |k| shared.owns(key_hash(k))) {
                self.shared.errors.borrow_mut().push(format!("{e:#}"));
            }
        }
        let link = StateLink::new(&self.shared, name);
        let start = self.shared.start_epoch();
        let peers = self.scope().peers();
        let me = self.scope().index() as u32;
        let input = self.broadcast_marks(&format!("Marks({name})"));
        let inner = input.unary_frontier::<timely::container::CapacityContainerBuilder<Vec<Msg<O::Out>>>, _, _, _>(by_key(), name, move |mut cap, _| {
            cap.downgrade(&start);
            // kept at the input frontier, for what the end of the input fires
            let mut end_cap = Some(cap);
            let mut gate = EpochGate::new(start);
            let mut ended_at = None;
            let mut marks = Watermarks::exchanged(peers);
            let mut out = Vec::new();
            let mut batch: Vec<Msg<O::Out>> = Vec::new();
            move |(input, frontier), output| {
                input.for_each(|cap, data| {
                    let epoch = cap.least().copied().unwrap_or_default();
                    gate.push(epoch, || cap.delayed(&epoch, 0), data.drain(..));
                });
                let f = frontier.frontier().as_option().copied();
                gate.release(
                    f,
                    |e| link.is_checkpoint(e),
                    |step| match step {
                        Step::Records(_, cap, msgs) => {
                            for m in msgs {
                                match m {
                                    Msg::Event(r) => {
                                        rt.on_event(&r.key, r.origin, r.watermark, r.time_ms, &r.value, &mut out);
                                        stamp(&mut rt, &mut out, Some(&r), &mut batch);
                                    }
                                    Msg::Mark(mark) => {
                                        if let Some(wm) = marks.observe(&mark) {
                                            rt.advance_all(wm, &mut out);
                                            stamp::<O, T>(&mut rt, &mut out, None, &mut batch);
                                            batch.push(Msg::Mark(Mark { watermark: wm, from: me, to: me }));
                                        }
                                    }
                                }
                            }
                            output.session(cap).give_iterator(batch.drain(..));
                        }
                        Step::Snapshot(epoch) => link.report(epoch, || rt.snapshot()),
                        Step::Ended(epoch) => ended_at = Some(epoch),
                    },
                );
                match f {
                    Some(f) => {
                        if let Some(c) = end_cap.as_mut().filter(|c| *c.time() < f) {
                            c.downgrade(&f);
                        }
                    }
                    None => {
                        if let Some(c) = end_cap.take() {
                            rt.finish(&mut out);
                            stamp::<O, T>(&mut rt, &mut out, None, &mut batch);
                            // the state after the last timers: final for every later checkpoint
                            if let Some(e) = ended_at.take() {
                                link.report_last(e, || rt.snapshot());
                            }
                            batch.push(Msg::Mark(Mark { watermark: i64::MAX, from: me, to: me }));
                            output.session(&c).give_iterator(batch.drain(..));
                        }
                    }
                }
            }
        });
        Stream::new(inner, self.shared.clone())
    }
}

/// Wraps the operator's outputs in their envelopes: the event's where an event
/// produced them, else the timer's key and time (with the key's origin).
fn stamp<O: KeyedOperator, T>(rt: &mut KeyedRuntime<O>, out: &mut Vec<O::Out>, event: Option<&Rec<T>>, batch: &mut Vec<Msg<O::Out>>) {
    let mut start = 0;
    let mut values = out.drain(..);
    for s in rt.take_stamps() {
        for value in values.by_ref().take(s.end - start) {
            let from_event = event.filter(|r| r.key == s.key && r.time_ms == s.time);
            let (offset, watermark) = from_event.map_or((-1, s.time), |r| (r.offset, r.watermark));
            batch.push(Msg::Event(Rec { key: s.key.clone(), time_ms: s.time, origin: s.origin, offset, watermark, value }));
        }
        start = s.end;
    }
}
