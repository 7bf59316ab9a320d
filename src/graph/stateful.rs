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

use anyhow::Result;

use super::gated::{gated, Gated};
use super::keyed::{KeyedOperator, KeyedRuntime};
use super::stream::{Msg, Rec, Stream};
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
        gated(self, name, Stateful { rt, out: Vec::new() })
    }
}

/// A user operator's runtime as a gated operator.
struct Stateful<O: KeyedOperator> {
    rt: KeyedRuntime<O>,
    out: Vec<O::Out>,
}

impl<O> Gated for Stateful<O>
where
    O: KeyedOperator,
    O::In: 'static,
    O::Out: 'static,
{
    type In = O::In;
    type Out = O::Out;
    fn event(&mut self, r: Rec<O::In>, batch: &mut Vec<Msg<O::Out>>) {
        self.rt.on_event(&r.key, r.origin, r.watermark, r.time_ms, &r.value, &mut self.out);
        stamp(&mut self.rt, &mut self.out, Some(&r), batch);
    }
    /// The stream's watermark fires the timers of every origin, quiet keys' too.
    fn watermark(&mut self, watermark: i64, batch: &mut Vec<Msg<O::Out>>) {
        self.rt.advance_all(watermark, &mut self.out);
        stamp::<O, O::In>(&mut self.rt, &mut self.out, None, batch);
    }
    /// The end of the input fires every timer left.
    fn finish(&mut self, batch: &mut Vec<Msg<O::Out>>) {
        self.rt.finish(&mut self.out);
        stamp::<O, O::In>(&mut self.rt, &mut self.out, None, batch);
    }
    fn snapshot(&self) -> Result<Vec<u8>> {
        self.rt.snapshot()
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
