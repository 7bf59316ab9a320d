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
use super::keyed::{KeyedOperator, KeyedRuntime, Origin};
use super::stream::{Msg, Rec, Stream};
use crate::types::key_hash;

impl<'s, T: timely::ExchangeData + Clone> Stream<'s, T> {
    /// Runs `op` on this stream's events, one state per key, under `name`.
    pub fn stateful<O>(&self, name: &str, op: O) -> Stream<'s, O::Out>
    where
        O: KeyedOperator<In = T>,
        O::Out: Clone + 'static,
    {
        gated(self, name, Stateful { rt: self.runtime(name, op), out: Vec::new(), stream_time: None })
    }

    /// [`Stream::stateful`] whose timers fire on the stream's watermark (the
    /// least over every origin), as Flink's do: for keys whose events come from
    /// many partitions, such as a window over the whole stream keyed by its
    /// start, or a stream re-keyed by another field. A timer at `t` fires once
    /// no event of any partition at or before `t` can still come; the
    /// outputs' values are the same at any worker count, but where they fall
    /// between the input's epochs depends on when the marks of every worker
    /// arrive. In `on_event`, [`super::KeyContext::watermark`] is the stream's.
    ///
    /// ```
    /// use vigil::graph::values_source::Values;
    /// use vigil::graph::{KeyContext, KeyedOperator, LocalRun};
    ///
    /// /// The number of events of each 10 s window, once it is complete.
    /// #[derive(Default)]
    /// struct PerWindow;
    /// impl KeyedOperator for PerWindow {
    ///     type In = i64;
    ///     type Out = (i64, u64);
    ///     type State = u64;
    ///     fn on_event(&mut self, t: &i64, n: &mut u64, ctx: &mut KeyContext<'_, (i64, u64)>) {
    ///         *n += 1;
    ///         ctx.timer_at(t / 10_000 * 10_000 + 9_999); // the window's last millisecond
    ///     }
    ///     fn on_timer(&mut self, at: i64, n: &mut u64, ctx: &mut KeyContext<'_, (i64, u64)>) {
    ///         ctx.emit((at - 9_999, *n));
    ///         ctx.clear();
    ///     }
    /// }
    ///
    /// let t0 = 1_700_000_000_000i64;
    /// // two partitions whose times interleave
    /// let parts = vec![vec![t0, t0 + 6_000, t0 + 12_000], vec![t0 + 3_000, t0 + 9_000, t0 + 15_000]];
    /// let out = LocalRun::new(2)
    ///     .values("times", parts)
    ///     .run(|g| {
    ///         g.source_values(Values::new("times", |t: &i64| *t))
    ///             .key_by(|t| (t / 10_000).to_string())
    ///             .stateful_global("per_window", PerWindow)
    ///             .sink("counts");
    ///         Ok(())
    ///     })
    ///     .unwrap();
    /// assert_eq!(out.values("counts"), vec![format!("[{t0},4]"), format!("[{},2]", t0 + 10_000)]);
    /// ```
    pub fn stateful_global<O>(&self, name: &str, op: O) -> Stream<'s, O::Out>
    where
        O: KeyedOperator<In = T>,
        O::Out: Clone + 'static,
    {
        gated(self, name, Stateful { rt: self.runtime(name, op), out: Vec::new(), stream_time: Some(i64::MIN) })
    }

    /// `op`'s runtime under `name` (claimed), with its restored state.
    fn runtime<O: KeyedOperator<In = T>>(&self, name: &str, op: O) -> KeyedRuntime<O> {
        self.shared.claim(name, O::STATE_VERSION);
        let mut rt = KeyedRuntime::new(name, op).with_stamps();
        for part in self.shared.restored(name) {
            let shared = self.shared.clone();
            if let Err(e) = rt.restore(&part, |k| shared.owns(key_hash(k))) {
                self.shared.errors.borrow_mut().push(format!("{e:#}"));
            }
        }
        rt
    }
}

/// The one origin of every key of a [`Stream::stateful_global`]: the stream.
const STREAM: Origin = Origin { source: u32::MAX, partition: u32::MAX };

/// A user operator's runtime as a gated operator.
struct Stateful<O: KeyedOperator> {
    rt: KeyedRuntime<O>,
    out: Vec<O::Out>,
    /// For timers on the stream's watermark: that watermark (else `None`).
    stream_time: Option<i64>,
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
        match self.stream_time {
            Some(wm) => self.rt.on_event(&r.key, STREAM, wm, r.time_ms, &r.value, &mut self.out),
            None => self.rt.on_event(&r.key, r.origin, r.watermark, r.time_ms, &r.value, &mut self.out),
        }
        stamp(&mut self.rt, &mut self.out, Some(&r), batch);
    }
    /// The stream's watermark fires the timers of every origin, quiet keys' too.
    fn watermark(&mut self, watermark: i64, batch: &mut Vec<Msg<O::Out>>) {
        match self.stream_time.as_mut() {
            Some(wm) => {
                *wm = watermark;
                self.rt.advance(STREAM, watermark, &mut self.out)
            }
            None => self.rt.advance_all(watermark, &mut self.out),
        }
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
